/**
 * 4. One upstream accepts connections and never answers: its request times out with a clear
 * error, while another node keeps serving through the same gateway.
 */
import { request } from "undici";
import { fakeAgent, start, stop, STORIES_MODEL } from "../../bench/lib/cluster.js";
import { chatBody, postJson } from "../../bench/lib/client.js";
import { Checks, sleep } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

const TIMEOUT_S = 3;

export const hungUpstream: Scenario = {
  name: "hung upstream",
  async run() {
    const checks = new Checks();
    const gateway = await start("gateway", { heartbeat_interval_s: 1, request_timeout_s: 30 });
    const join = ["--dispatcher-url", gateway.url, "--heartbeat-interval", "1"];
    const hung = await fakeAgent(
      1,
      { node_id: "hung", request_timeout_s: TIMEOUT_S, models: [model("hung-model")] },
      { FAKE_LLAMA_HANG: "1" },
      join,
    );
    const healthy = await fakeAgent(
      1,
      { node_id: "healthy", models: [model("ok-model")] },
      {},
      join,
    );
    try {
      await postJson(`${healthy.url}/v1/node/models/ok-model/load`, {});
      await sleep(1500);
      const began = performance.now();
      const stuck = postJson<{ error?: { code: string; message: string } }>(
        `${gateway.url}/v1/chat/completions`,
        { ...chatBody(4), model: "hung-model" },
      ).then((answer) => ({ ...answer, ms: performance.now() - began }));
      // Meanwhile the healthy node answers, one request after another.
      let served = 0;
      let failed = 0;
      while (performance.now() - began < TIMEOUT_S * 1000) {
        const answer = await request(`${gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ ...chatBody(4), model: "ok-model" }),
        });
        await answer.body.dump();
        if (answer.statusCode === 200) served++;
        else failed++;
      }
      const result = await stuck;
      checks.expect(result.status >= 500, `the hung request answered ${result.status}`);
      checks.expect(
        /within|timed out|did not answer/.test(result.body?.error?.message ?? ""),
        `unclear error: ${result.body?.error?.message}`,
      );
      checks.expect(
        result.ms < (TIMEOUT_S + 5) * 1000,
        `the hung request took ${Math.round(result.ms)} ms`,
      );
      checks.expect(failed === 0 && served > 0, `healthy node: ${served} served, ${failed} failed`);
      return checks.outcome({
        timeout_after_ms: Math.round(result.ms),
        status: result.status,
        healthy_served: served,
        healthy_failed: failed,
      });
    } finally {
      await stop(hung);
      await stop(healthy);
      await stop(gateway);
    }
  },
};

function model(id: string) {
  return { model_id: id, path: STORIES_MODEL, roles: [], parallel: 1 };
}
