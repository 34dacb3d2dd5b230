/**
 * 5. Overload at 10x queue capacity, straight to an agent and then through a gateway: memory
 * stays bounded, the queue never holds more than its limit, every rejection is 503 `queue_full`
 * with `Retry-After`, and every admitted request completes.
 */
import { fakeAgent, start, stop } from "../../bench/lib/cluster.js";
import type { Started } from "../../bench/lib/cluster.js";
import { chatBody } from "../../bench/lib/client.js";
import { waitForPeers } from "../../bench/lib/gateway-status.js";
import { firstDevice } from "../lib/agent-device.js";
import { closedLoop, counts } from "../lib/load.js";
import type { Tally } from "../lib/load.js";
import { sampleRss, summarize } from "../lib/rss.js";
import type { RssSummary } from "../lib/rss.js";
import { Checks } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

const PARALLEL = 2;
const QUEUE_LIMIT = 4;
const CLIENTS = 10 * QUEUE_LIMIT;
/** Growth of resident memory over the run that still counts as bounded (caches, heap slack). */
const RSS_GROWTH_LIMIT_MIB = 128;

export const overload: Scenario = {
  name: "overload at 10x queue capacity",
  async run({ durationS }) {
    const checks = new Checks();
    const gateway = await start("gateway", { heartbeat_interval_s: 1 });
    const agent = await fakeAgent(
      PARALLEL,
      { node_id: "busy", max_pending_requests_per_device: QUEUE_LIMIT },
      { FAKE_LLAMA_TOKEN_MS: "5" },
      ["--dispatcher-url", gateway.url, "--heartbeat-interval", "1"],
    );
    try {
      await waitForPeers(gateway.url, (nodes) => nodes.length === 1, "the agent to register");
      const agentRss = sampleRss(() => agent.pid);
      const gatewayRss = sampleRss(() => gateway.pid);
      const deepest = watchQueue(agent);
      const direct = await overloadOnce(agent.url, durationS);
      const throughGateway = await overloadOnce(gateway.url, durationS);
      agentRss.stop();
      gatewayRss.stop();
      deepest.stop();

      for (const [path, tally] of [
        ["agent", direct],
        ["gateway", throughGateway],
      ] as const) {
        const rejectedOtherwise = Object.entries(tally.rejected).filter(
          ([code]) => code !== "queue_full",
        );
        checks.expect(tally.lost === 0, `${path}: ${tally.lost} admitted request(s) lost`);
        checks.expect(tally.failedCleanly === 0, `${path}: ${tally.failedCleanly} failed`);
        checks.expect(
          Object.keys(tally.unexpected).length === 0 && rejectedOtherwise.length === 0,
          `${path}: unexpected answers ${counts(tally.unexpected)}; rejections other than queue_full ${counts(Object.fromEntries(rejectedOtherwise))}`,
        );
        checks.expect(
          tally.completed > 0 && (tally.rejected.queue_full ?? 0) > 0,
          `${path}: not overloaded (${tally.completed} completed, ${counts(tally.rejected)} rejected)`,
        );
      }
      checks.expect(
        deepest.max() <= QUEUE_LIMIT,
        `the queue held ${deepest.max()} (limit ${QUEUE_LIMIT})`,
      );
      const memory = {
        agent: summarize(agentRss.samples()),
        gateway: summarize(gatewayRss.samples()),
      };
      for (const [name, summary] of Object.entries(memory)) {
        checks.expect(
          summary.peakMib - summary.firstMib <= RSS_GROWTH_LIMIT_MIB,
          `${name} RSS grew from ${summary.firstMib} to ${summary.peakMib} MiB`,
        );
      }
      return checks.outcome({
        clients: CLIENTS,
        queue_limit: QUEUE_LIMIT,
        ...figures("agent", direct),
        ...figures("gateway", throughGateway),
        deepest_queue: deepest.max(),
        ...memoryFigures(memory),
      });
    } finally {
      await stop(agent);
      await stop(gateway);
    }
  },
};

/** CLIENTS clients without pause between requests; a third of them stream. */
function overloadOnce(baseUrl: string, durationS: number): Promise<Tally> {
  return closedLoop({
    baseUrl,
    next: (n) => ({ path: "/v1/chat/completions", body: chatBody(16, n % 3 === 0) }),
    concurrency: CLIENTS,
    durationMs: durationS * 1000,
    clientTimeoutMs: 30_000,
    // Rejections take well under a millisecond; a short pause keeps the clients from turning
    // the test into a busy loop on two cores while keeping ten times the demand the queue holds.
    pauseAfterRejectMs: 20,
  });
}

/** The most requests the agent's device ever held (in flight plus queued), polled. */
function watchQueue(agent: Started): { max(): number; stop(): void } {
  let max = 0;
  let stopped = false;
  void (async () => {
    while (!stopped) {
      const queue = (await firstDevice(agent.url))?.queue;
      if (queue) max = Math.max(max, queue.in_flight + queue.pending);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return { max: () => max, stop: () => (stopped = true) };
}

function figures(path: string, tally: Tally): Record<string, number | string> {
  return {
    [`${path}_sent`]: tally.sent,
    [`${path}_completed`]: tally.completed,
    [`${path}_rejected`]: counts(tally.rejected),
    [`${path}_lost`]: tally.lost,
  };
}

function memoryFigures(memory: Record<string, RssSummary>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(memory).map(([name, summary]) => [
      `${name}_rss_mib`,
      `${summary.firstMib}→${summary.peakMib}→${summary.lastMib}`,
    ]),
  );
}
