/**
 * 12. The agent's disk fills up while it starts servers: the pid record cannot be written
 * (ENOSPC on a tiny tmpfs as the state dir), the agent logs it and goes on — the server is
 * still probed and serves — and once space is back the next server is recorded again.
 */
import { execFile } from "node:child_process";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { fakeAgent, stop, tempDir } from "../../bench/lib/cluster.js";
import { chatBody, postJson } from "../../bench/lib/client.js";
import { until } from "../../bench/lib/gateway-status.js";
import { Checks } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

const run = promisify(execFile);

export const diskFull: Scenario = {
  name: "disk full",
  async run({ durationS }) {
    const checks = new Checks();
    const stateDir = join(await tempDir(), "state");
    await mkdir(stateDir);
    // A real full disk needs a mount (root); elsewhere the scenario cannot run as meant.
    await run("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", stateDir]);
    const filler = join(stateDir, "filler");
    const agent = await fakeAgent(1, { state_dir: stateDir });
    const rounds = Math.max(3, Math.round(durationS / 3));
    let servedFull = 0;
    let recordedAfter = 0;
    try {
      for (let round = 0; round < rounds; round++) {
        // Unloaded first: removing the last record frees the room a new one needs.
        await postJson(`${agent.url}/v1/node/models/stories/unload`, {});
        await fill(filler);
        const answer = await postJson(`${agent.url}/v1/chat/completions`, chatBody(4));
        if (answer.status === 200) servedFull++;
        await rm(filler);
        await postJson(`${agent.url}/v1/node/models/stories/unload`, {});
        await postJson(`${agent.url}/v1/chat/completions`, chatBody(4));
        if ((await readdir(join(stateDir, "servers"))).some((name) => name.endsWith(".json")))
          recordedAfter++;
      }
      const failedRecords = () =>
        agent.output.filter((line) => line.includes("could not record the server's pid")).length;
      // The agent's log reaches us through a pipe, maybe after the answers that followed it.
      await until(() => Promise.resolve(failedRecords() >= rounds), 5000);
      const logged = failedRecords();
      checks.expect(servedFull === rounds, `${rounds - servedFull} requests failed on a full disk`);
      checks.expect(logged >= rounds, `${logged} of ${rounds} failed records logged`);
      checks.expect(recordedAfter === rounds, `${recordedAfter} of ${rounds} recorded with space`);
      return checks.outcome({ rounds, served_on_full_disk: servedFull, logged, recordedAfter });
    } finally {
      await stop(agent);
      await run("umount", ["--lazy", stateDir]);
    }
  },
};

/** Writes until the file system says it is full. */
async function fill(file: string): Promise<void> {
  try {
    await writeFile(file, Buffer.alloc(1024 * 1024));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  }
}
