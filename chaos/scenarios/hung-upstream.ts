/**
 * 4. One upstream accepts connections and never answers: its request times out with a clear
 * error, once (a hung server is not retried), while another device of the same node and another
 * node keep serving through the same gateway.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { request } from "undici";
import { fakeAgent, ROOT, start, stop, STORIES_MODEL, tempDir } from "../../bench/lib/cluster.js";
import { chatBody, postJson } from "../../bench/lib/client.js";
import { waitForPeers } from "../../bench/lib/gateway-status.js";
import { Checks } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

const TIMEOUT_S = 3;
/** Two GPUs as the stand-in nvidia-smi prints them, so one node has two devices. */
const TWO_GPUS = [0, 1]
  .map((i) => `${i}, GPU-${i}, Stand-in GPU, 24576, 0, 24576, 0, 40, 30.00`)
  .join("\n");

export const hungUpstream: Scenario = {
  name: "hung upstream",
  async run() {
    const checks = new Checks();
    const gateway = await start("gateway", { heartbeat_interval_s: 1, request_timeout_s: 30 });
    const joinGateway = ["--dispatcher-url", gateway.url, "--heartbeat-interval", "1"];
    const gpus = join(await tempDir(), "nvidia-smi.csv");
    await writeFile(gpus, TWO_GPUS);
    const mixed = await fakeAgent(
      1,
      {
        node_id: "mixed",
        backend: "cuda",
        request_timeout_s: TIMEOUT_S,
        // One model's server hangs on every inference request; the other's answers.
        models: [model("hung-model", ["--fake-hang"]), model("neighbour-model")],
      },
      {
        PATH: `${join(ROOT, "test/bin/gpu")}:${process.env.PATH}`,
        FAKE_NVIDIA_SMI_FILE: gpus,
      },
      joinGateway,
    );
    const healthy = await fakeAgent(
      1,
      { node_id: "healthy", models: [model("ok-model")] },
      {},
      joinGateway,
    );
    try {
      await postJson(`${mixed.url}/v1/node/models/hung-model/load`, { device: "gpu:0" });
      await postJson(`${mixed.url}/v1/node/models/neighbour-model/load`, { device: "gpu:1" });
      await postJson(`${healthy.url}/v1/node/models/ok-model/load`, {});
      await waitForPeers(
        gateway.url,
        (nodes) =>
          nodes.length === 2 &&
          nodes.every((node) => node.models.some((entry) => entry.loaded_on.length > 0)),
        "both nodes with their models loaded",
      );
      const began = performance.now();
      const stuck = postJson<{ error?: { code: string; message: string } }>(
        `${gateway.url}/v1/chat/completions`,
        { ...chatBody(4), model: "hung-model" },
      ).then((answer) => ({ ...answer, ms: performance.now() - began }));
      // Meanwhile the other device and the other node answer, one request after another.
      const served = { "neighbour-model": 0, "ok-model": 0 };
      let failed = 0;
      while (performance.now() - began < TIMEOUT_S * 1000) {
        for (const name of Object.keys(served) as (keyof typeof served)[]) {
          const answer = await request(`${gateway.url}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ ...chatBody(4), model: name }),
          });
          await answer.body.dump();
          if (answer.statusCode === 200) served[name]++;
          else failed++;
        }
      }
      const result = await stuck;
      checks.expect(result.status === 502, `the hung request answered ${result.status}`);
      checks.expect(
        /within|timed out|did not answer/.test(result.body?.error?.message ?? ""),
        `unclear error: ${result.body?.error?.message}`,
      );
      // Generous for a loaded machine, but well short of a second try of the deadline.
      checks.expect(
        result.ms < (TIMEOUT_S * 1.8 + 0.5) * 1000,
        `the hung request took ${Math.round(result.ms)} ms for a ${TIMEOUT_S} s deadline`,
      );
      checks.expect(
        failed === 0 && served["neighbour-model"] > 0 && served["ok-model"] > 0,
        `others: ${JSON.stringify(served)} served, ${failed} failed`,
      );
      return checks.outcome({
        timeout_after_ms: Math.round(result.ms),
        status: result.status,
        other_device_served: served["neighbour-model"],
        other_node_served: served["ok-model"],
        others_failed: failed,
      });
    } finally {
      await stop(mixed);
      await stop(healthy);
      await stop(gateway);
    }
  },
};

function model(id: string, args: string[] = []) {
  return { model_id: id, path: STORIES_MODEL, roles: [], parallel: 1, args };
}
