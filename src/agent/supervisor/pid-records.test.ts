import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { pino } from "pino";
import { PidRecords } from "./pid-records.js";
import { readIdentity } from "../../core/process/process-identity.js";

const log = pino({ level: "silent" });
const dirs: string[] = [];
after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

async function stateDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "rolemesh-pids-"));
  dirs.push(dir);
  return dir;
}

function sleeper(seconds: string) {
  const child = spawn("sleep", [seconds], { detached: true, stdio: "ignore" });
  after(() => child.kill("SIGKILL"));
  return child;
}

test("reaps a recorded process whose identity matches, and forgets the record", async () => {
  const child = sleeper("61");
  const identity = await readIdentity(child.pid!);
  assert.ok(identity);
  assert.match(identity.commandLine, /sleep 61$/);
  const dir = await stateDir();
  const records = new PidRecords(dir);
  await records.write({
    pid: child.pid!,
    start_time: identity.startTime,
    args: "61",
    device: "gpu:0",
    model_id: "m",
    port: 1,
    agent_pid: 1,
    recorded_at: new Date().toISOString(),
  });
  assert.equal(await records.reapLeftovers(log), 1);
  assert.equal(await readIdentity(child.pid!), null);
  assert.deepEqual(await readdir(join(dir, "servers")), []);
});

test("leaves alone a process that reused the pid (other start time or arguments)", async () => {
  const child = sleeper("62");
  const identity = await readIdentity(child.pid!);
  assert.ok(identity);
  const records = new PidRecords(await stateDir());
  const base = {
    pid: child.pid!,
    device: "gpu:0",
    model_id: "m",
    port: 1,
    agent_pid: 1,
    recorded_at: "",
  };
  await records.write({ ...base, start_time: "1", args: "62" });
  assert.equal(await records.reapLeftovers(log), 0);
  await records.write({ ...base, start_time: identity.startTime, args: "-m other.gguf" });
  assert.equal(await records.reapLeftovers(log), 0);
  assert.ok(await readIdentity(child.pid!), "still alive");
});

test("records of another kind sit beside llama-server's for the same device; one reap stops both", async () => {
  const dir = await stateDir();
  const llama = sleeper("63");
  const rpc = sleeper("64");
  const started = { device: "gpu:0", port: 1 };
  await new PidRecords(dir).record(
    llama.pid!,
    { ...started, args: ["63"], model_id: "m" },
    () => true,
  );
  const rpcRecords = new PidRecords(dir, "rpc-server");
  await rpcRecords.record(rpc.pid!, { ...started, args: ["64"], model_id: null }, () => true);
  assert.deepEqual((await readdir(join(dir, "servers"))).sort(), [
    "gpu_0.json",
    "rpc-server.gpu_0.json",
  ]);
  // A process replaced before its record was written is not recorded.
  await rpcRecords.record(process.pid, { ...started, args: [], model_id: null }, () => false);
  assert.equal(await new PidRecords(dir).reapLeftovers(log), 2);
  assert.equal(await readIdentity(llama.pid!), null);
  assert.equal(await readIdentity(rpc.pid!), null);
});
