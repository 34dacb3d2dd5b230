/**
 * rpc-server supervision against the real rpc-server of `rolemesh engine build` (found the way
 * the agent finds it; skipped when there is none), and against tiny stand-in scripts for the
 * failures a real one will not stage on demand.
 */
import assert from "node:assert/strict";
import { chmod, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { pino } from "pino";
import { RoleMeshError } from "../../core/errors.js";
import { readIdentity } from "../../core/process/process-identity.js";
import type { DeviceRef, ServerState } from "../../protocol/inventory.js";
import { PidRecords } from "../supervisor/pid-records.js";
import { findRpcServer } from "./find-rpc-server.js";
import { RpcServerSupervisor, rpcServerArgs } from "./rpc-server-supervisor.js";
import type { RpcServerInfo, RpcServerSupervisorOptions } from "./rpc-server-supervisor.js";
import { standInTool } from "../../../test/helpers/stand-in-tool.js";
import { listeningSockets } from "../../../test/helpers/proc-net.js";
import { tempDir, waitUntil } from "../../../test/helpers/launcher.js";

const log = pino({ level: "silent" });
const CPU: DeviceRef = { id: "cpu:0", backend: "cpu", index: 0, name: "CPU" };

const realBin = await findRpcServer("rpc-server", "cpu").catch((err: Error) => err);
const NEEDS_RPC_SERVER = {
  skip:
    realBin instanceof Error
      ? `no rpc-server to test against (${realBin.message.split(";")[0]}); CI builds one with "rolemesh engine build"`
      : false,
};

const supervisors: RpcServerSupervisor[] = [];
after(() => Promise.all(supervisors.map((supervisor) => supervisor.stopAll())));

async function supervise(
  bin: string,
  options: Partial<RpcServerSupervisorOptions> = {},
): Promise<{ rpc: RpcServerSupervisor; stateDir: string }> {
  const stateDir = await tempDir("rolemesh-rpc-");
  const rpc = new RpcServerSupervisor({ bin, stateDir, threads: 1, cache: false, log, ...options });
  supervisors.push(rpc);
  return { rpc, stateDir };
}

function cpuInfo(rpc: RpcServerSupervisor): RpcServerInfo {
  const info = rpc.info().find((one) => one.device === CPU.id);
  assert.ok(info, "the CPU device has an rpc-server entry");
  return info;
}

/** The process group of `pid`, from /proc/<pid>/stat. */
async function processGroup(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
}

function isCode(code: string, message: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof RoleMeshError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  };
}

describe("the real rpc-server", NEEDS_RPC_SERVER, () => {
  const bin = realBin as string;

  test("listens on 127.0.0.1 only, in a process group of its own, recorded; stop leaves nothing", async () => {
    const { rpc, stateDir } = await supervise(bin);
    const { port } = await rpc.ensure(CPU);
    const info = cpuInfo(rpc);
    assert.equal(info.state, "ready");
    assert.equal(info.port, port);
    const pid = info.pid;
    assert.ok(pid !== null && pid > 0);
    assert.deepEqual(await listeningSockets(pid), [`127.0.0.1:${port}`]);
    assert.equal(await processGroup(pid), pid);
    const identity = await readIdentity(pid);
    assert.match(identity?.commandLine ?? "", / -H 127\.0\.0\.1 -p \d+ -t 1 -d CPU$/);
    const record = JSON.parse(
      await readFile(join(stateDir, "servers", "rpc-server.cpu_0.json"), "utf8"),
    ) as Record<string, unknown>;
    assert.equal(record.pid, pid);
    assert.equal(record.model_id, null);
    assert.equal(record.port, port);

    assert.deepEqual(await rpc.ensure(CPU), { port }, "a second ensure finds the running one");
    assert.equal(cpuInfo(rpc).pid, pid);

    await rpc.stop(CPU.id);
    assert.equal(await readIdentity(pid), null, "the process is gone");
    assert.equal(cpuInfo(rpc).state, "stopped");
    assert.equal(cpuInfo(rpc).pid, null);
    await waitUntil(
      async () => (await readdir(join(stateDir, "servers"))).length === 0,
      "the pid record to be removed",
    );
  });

  test("killed by SIGKILL, it is started again for the same device (new pid, loopback only)", async () => {
    const { rpc } = await supervise(bin);
    const states: string[] = [];
    rpc.on("state", (device, state) => states.push(`${device} ${state}`));
    await rpc.ensure(CPU);
    const first = cpuInfo(rpc).pid;
    assert.ok(first);
    process.kill(first, "SIGKILL");
    const again = await waitUntil(
      () => {
        const info = cpuInfo(rpc);
        return info.state === "ready" && info.pid !== first ? info : null;
      },
      "the rpc-server to be started again",
      30_000,
    );
    assert.equal(await readIdentity(first), null);
    assert.equal(again.restarts, 1);
    assert.equal(again.consecutive_failures, 1);
    assert.equal(again.last_error?.signal, "SIGKILL");
    assert.match(again.last_error?.message ?? "", /rpc-server on cpu:0 was killed by SIGKILL$/);
    assert.ok(states.includes("cpu:0 failed"), states.join(", "));
    assert.ok(again.pid !== null && again.port !== null);
    assert.deepEqual(await listeningSockets(again.pid), [`127.0.0.1:${again.port}`]);
    assert.deepEqual(await rpc.ensure(CPU), { port: again.port });
    await rpc.stopAll();
    assert.equal(await readIdentity(again.pid), null);
  });

  test("its pid record is reaped like llama-server's by a restarted agent", async () => {
    const { rpc, stateDir } = await supervise(bin);
    await rpc.ensure(CPU);
    const pid = cpuInfo(rpc).pid;
    assert.ok(pid);
    // What NodeAgent.start does with the records an agent killed by SIGKILL left behind.
    assert.equal(await new PidRecords(stateDir).reapLeftovers(log, 2000), 1);
    assert.equal(await readIdentity(pid), null);
  });

  test("with rpc_cache it runs with -c, its cache under the state dir", async () => {
    const { rpc, stateDir } = await supervise(bin, { cache: true });
    await rpc.ensure(CPU);
    const pid = cpuInfo(rpc).pid;
    assert.ok(pid);
    assert.match((await readIdentity(pid))?.commandLine ?? "", / -d CPU -c$/);
    // rpc-server creates `$LLAMA_CACHE/rpc/` before it listens.
    assert.deepEqual(await readdir(join(stateDir, "rpc-cache")), ["rpc"]);
  });
});

describe("failures (stand-in scripts)", () => {
  test("one that keeps dying is started again with a growing backoff; a wait past the deadline is refused", async () => {
    const dying = await standInTool("rpc-server", {}, 3);
    const { rpc } = await supervise(dying, { startTimeoutMs: 3000 });
    const failures: RpcServerInfo[] = [];
    let refused: Promise<unknown> | undefined;
    rpc.on("state", (_device, state: ServerState) => {
      if (state !== "failed") return;
      failures.push(cpuInfo(rpc));
      // Backoff is now 4 s, longer than the start timeout: an ensure cannot be served in time.
      if (failures.length === 3)
        refused = rpc.ensure(CPU).then(
          () => "served",
          (err) => err,
        );
    });
    await assert.rejects(
      rpc.ensure(CPU),
      isCode("upstream_error", /exited with code 3 while starting$/),
    );
    await waitUntil(() => failures.length === 3, "three failures in a row", 30_000);
    isCode("no_capacity", /crashed 3 times in a row; next start in 4 s$/)(await refused);
    assert.deepEqual(
      failures.map((info) => [info.consecutive_failures, info.restarts]),
      [
        [1, 0],
        [2, 1],
        [3, 2],
      ],
    );
    const delays = failures.map(
      (info) => Date.parse(info.next_attempt_at ?? "") - Date.parse(info.last_error?.at ?? ""),
    );
    assert.ok(delays[0]! < delays[1]! && delays[1]! < delays[2]!, `growing: ${delays.join(", ")}`);
    await rpc.stop(CPU.id);
    assert.equal(cpuInfo(rpc).state, "stopped");
    assert.equal(cpuInfo(rpc).next_attempt_at, null);
  });

  test("one that never listens is killed as hung; a stop fails the ensure waiting on it", async () => {
    const dir = await tempDir("rolemesh-rpc-bin-");
    const silent = join(dir, "rpc-server");
    await writeFile(silent, "#!/bin/sh\nexec sleep 300\n");
    await chmod(silent, 0o755);

    const hung = await supervise(silent, { startTimeoutMs: 1000 });
    await assert.rejects(hung.rpc.ensure(CPU), RoleMeshError);
    const failed = await waitUntil(
      () => cpuInfo(hung.rpc).last_error,
      "the hung rpc-server to be killed",
    );
    assert.match(failed.message, /was not listening after 1 s and was killed while starting$/);
    await hung.rpc.stop(CPU.id);

    const { rpc } = await supervise(silent);
    const refused = assert.rejects(rpc.ensure(CPU), isCode("no_capacity", /was stopped$/));
    const pid = await waitUntil(() => cpuInfo(rpc).pid, "the rpc-server to start");
    await rpc.stop(CPU.id);
    await refused;
    assert.equal(await readIdentity(pid), null);
  });
});

test("arguments: loopback always, ggml's name of the pinned device, -c for the cache", () => {
  const gpu = (backend: DeviceRef["backend"]): DeviceRef => ({
    id: "gpu:1",
    backend,
    index: 1,
    name: "card",
  });
  assert.deepEqual(rpcServerArgs(gpu("cuda"), 5000, { threads: 2, cache: true }), [
    "-H",
    "127.0.0.1",
    "-p",
    "5000",
    "-t",
    "2",
    "-d",
    "CUDA0",
    "-c",
  ]);
  const device = (backend: DeviceRef["backend"]) =>
    rpcServerArgs(gpu(backend), 1, { threads: 1, cache: false }).at(-1);
  assert.deepEqual((["cpu", "rocm", "vulkan", "sycl", "metal"] as const).map(device), [
    "CPU",
    "ROCm0",
    "Vulkan0",
    "SYCL0",
    "MTL0",
  ]);
});
