/** The benchmark report: machine, then one table per benchmark, figures with their ratios. */
import type { EngineRow } from "./scenarios/engine.js";
import type { FailoverResult } from "./scenarios/failover.js";
import type { Footprint } from "./scenarios/footprint.js";
import type { GatewayFailoverResult } from "./scenarios/gateway-failover.js";
import type { RelayRow } from "./scenarios/relay.js";
import type { AffinitySection } from "./scenarios/affinity.js";
import type { SplitSection } from "./scenarios/split.js";
import type { NatsScaleRow } from "./scenarios/registry-nats.js";
import type { ScaleRow } from "./scenarios/registry-scale.js";
import type { StreamingRow } from "./scenarios/streaming.js";
import type { Figure } from "./lib/stats.js";
import { round } from "./lib/stats.js";

export interface BenchResults {
  machine: Record<string, string | number | boolean>;
  relay?: RelayRow[];
  streaming?: { setup: { tokenMs: number; tokens: number }; rows: StreamingRow[] };
  readiness?: Figure;
  failover?: FailoverResult;
  gatewayFailover?: GatewayFailoverResult;
  registry?: { rows: ScaleRow[]; largestUnder50: number | null };
  registryNats?: NatsScaleRow[];
  footprint?: Footprint;
  engine?: EngineRow[];
  split?: SplitSection;
  affinity?: AffinitySection;
}

/** `median (p99)` of a figure. */
const fig = (value: Figure, digits = 1) =>
  `${round(value.median, digits)} (${round(value.p99, digits)})`;
const ratio = (value: number, base: number) => (base > 0 ? `${round(value / base, 2)}×` : "–");

function table(header: string[], rows: (string | number)[][]): string {
  return [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ].join("\n");
}

export function writeReport(results: BenchResults): string {
  const m = results.machine;
  const out = [
    `# RoleMesh benchmarks — ${String(m.date).slice(0, 10)}`,
    "",
    `Machine: ${m.host}, ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, Linux ${m.kernel}; commit ${m.commit}${m.quick ? " — **quick run, not for publishing**" : ""}.`,
    "Figures are the median over repeated runs with the p99 over runs in brackets; ratios compare",
    "with the baseline measured in the same run. Load generator and servers share the machine.",
  ];
  if (results.relay) {
    out.push("", "## P1 Relay cost (small chat completion, closed loop)", "");
    const rows = results.relay.map((row) => {
      const base = results.relay!.find(
        (b) => b.concurrency === row.concurrency && b.path === "direct to upstream",
      )!;
      return [
        row.concurrency,
        row.path,
        fig(row.requestsPerSecond, 0),
        ratio(row.requestsPerSecond.median, base.requestsPerSecond.median),
        fig(row.p50Ms),
        fig(row.p99Ms),
        `+${round(row.p50Ms.median - base.p50Ms.median, 2)} ms`,
        row.failed,
      ];
    });
    out.push(
      table(
        ["conc.", "path", "req/s", "vs direct", "p50 ms", "p99 ms", "p50 added", "failed"],
        rows,
      ),
    );
    out.push("", "The direct row is the upstream stand-in's own ceiling on this machine.");
  }
  if (results.streaming) {
    const { setup, rows } = results.streaming;
    const direct = rows.find((row) => row.path === "direct to upstream")!;
    out.push(
      "",
      `## P2 Streaming (${setup.tokens} tokens, one every ${setup.tokenMs} ms upstream)`,
      "",
    );
    out.push(
      table(
        ["path", "first token ms", "added vs direct", "events", "spacing ms"],
        rows.map((row) => [
          row.path,
          fig(row.firstTokenMs, 2),
          `+${round(row.firstTokenMs.median - direct.firstTokenMs.median, 2)} ms`,
          `${row.events} (direct ${direct.events})`,
          fig(row.spacingMs, 2),
        ]),
      ),
    );
  }
  if (results.readiness) {
    out.push("", "## P3 Readiness", "");
    out.push(
      `From the upstream answering /health 200 to the first byte of the request waiting for it, through the agent with default probe settings: **${fig(results.readiness)} ms**.`,
    );
  }
  if (results.failover) {
    const f = results.failover;
    out.push("", "## P4 Failover (3 nodes, 16 client loops, one node SIGKILLed)", "");
    out.push(
      table(
        [
          "node removed from routing after",
          "last answer from it after kill",
          "failed requests",
          "requests",
        ],
        [
          [
            `${fig(f.removedAfterMs, 0)} ms`,
            `${fig(f.lastRoutedAfterMs, 0)} ms`,
            f.failed,
            f.total,
          ],
        ],
      ),
    );
  }
  if (results.gatewayFailover) {
    const g = results.gatewayFailover;
    out.push(
      "",
      "## P4g Gateway failover (2 gateways and 3 nodes over NATS, 16 client loops, one gateway SIGKILLed)",
      "",
    );
    out.push(
      table(
        [
          "lost after one retry",
          "cut after response began",
          "retried on the other gateway (in flight at the kill)",
          "requests",
        ],
        [[g.lost, g.cut, `${g.retried} (${g.retriedInFlight})`, g.requests]],
      ),
    );
    out.push(
      "",
      table(
        ["answered", "p50 ms", "p99 ms"],
        [
          ["before the kill", fig(g.before.p50Ms, 0), fig(g.before.p99Ms, 0)],
          ["after the kill", fig(g.after.p50Ms, 0), fig(g.after.p99Ms, 0)],
        ],
      ),
    );
    out.push(
      "",
      "Each client loop prefers one gateway and sends a request once to the other when the connection fails before any response byte.",
      "Goal: 0 lost — a request the killed gateway admitted but had not begun to answer is answered by the other.",
      "A cut request (a stream under way through the killed gateway) failed for its client too: its answer had begun, so the client cannot safely send it again.",
    );
  }
  if (results.registry) {
    out.push("", "## P5 Registry scale (simulated nodes, heartbeat every 5 s)", "");
    out.push(
      table(
        ["nodes", "heartbeats/s", "p50 ms", "p99 ms", "gateway CPU", "errors"],
        results.registry.rows.map((row) => [
          row.nodes,
          round(row.heartbeatsPerSecond, 0),
          round(row.p50Ms, 2),
          round(row.p99Ms, 2),
          `${round(row.gatewayCpuPct, 0)}%`,
          row.errors,
        ]),
      ),
    );
    out.push(
      "",
      `Largest count held with p99 < 50 ms: **${results.registry.largestUnder50 ?? "none"}**.`,
    );
  }
  if (results.registryNats) {
    out.push("", "## P5n Registry over NATS (two gateways, a put every 5 s per node)", "");
    out.push(
      table(
        ["nodes", "puts/s", "put → seen p50 ms", "p99 ms", "gateway CPU", "errors"],
        results.registryNats.map((row) => [
          row.nodes,
          round(row.putsPerSecond, 0),
          round(row.p50Ms, 1),
          round(row.p99Ms, 1),
          row.gatewayCpuPct.map((pct) => `${round(pct, 0)}%`).join(" / "),
          row.errors,
        ]),
      ),
    );
    out.push("", "Goal: 10,000 nodes with p99 < 100 ms.");
  }
  if (results.footprint) {
    const f = results.footprint;
    out.push("", "## P6 Footprint", "");
    out.push(
      table(
        ["process", "start to listening ms", "idle RSS MiB"],
        [
          ["agent", fig(f.agentStartMs, 0), fig(f.agentIdleRssMb)],
          ["gateway", fig(f.gatewayStartMs, 0), fig(f.gatewayIdleRssMb)],
        ],
      ),
    );
  }
  if (results.engine) {
    out.push("", "## P7 Engine (stories260K, decode)", "");
    const base = results.engine.find((row) => row.engine === "embedded" && row.threads === 1);
    out.push(
      table(
        ["engine", "threads", "tokens/s", "vs embedded 1 thread", "first token ms"],
        results.engine.map((row) => [
          row.engine,
          row.threads,
          fig(row.tokensPerSecond, 0),
          base ? ratio(row.tokensPerSecond.median, base.tokensPerSecond.median) : "–",
          fig(row.firstTokenMs, 1),
        ]),
      ),
    );
    if (!results.engine.some((row) => row.engine === "llama-server")) {
      out.push("", "llama-server: not measured (set LLAMA_SERVER_BIN to a llama.cpp build).");
    }
  }
  if (results.split) out.push("", ...splitReport(results.split));
  if (results.affinity) out.push("", ...affinityReport(results.affinity));
  return `${out.join("\n")}\n`;
}

function splitReport(split: SplitSection): string[] {
  const out = ["## P8 Split inference (2 agents on loopback, 1 thread each)", ""];
  if ("skipped" in split) return [...out, `Skipped: ${split.skipped}.`];
  for (const model of split.models) {
    out.push(`### ${model.model}`, "");
    if ("skipped" in model) {
      out.push(`Skipped: ${model.skipped}.`, "");
      continue;
    }
    const base = model.speed.find((row) => row.path.endsWith("the host's split"));
    out.push(
      `The planner's group: \`${model.groupArgs.join(" ")}\` on the host.`,
      "",
      table(
        [
          "path",
          "llama-server",
          "decode tokens/s",
          "vs direct RPC, same split",
          "end to end tokens/s",
        ],
        model.speed.map((row) => [
          row.path,
          `\`${row.args}\``,
          fig(row.tokensPerSecond, 0),
          base ? ratio(row.tokensPerSecond.median, base.tokensPerSecond.median) : "–",
          fig(row.endToEndTokensPerSecond, 0),
        ]),
      ),
      "",
      `Decode tokens/s is llama-server's own \`timings.predicted_per_second\` for ${model.tokens} tokens at temperature 0, the paths taking turns run by run; end to end, the completion tokens over the request's wall-clock time at the client (prompt and relays included). Goal: the tunnel ≥ 0.9× direct loopback RPC with the same split. The tunnel alone is the same llama-server command line with the agents' tunnel (a peer in the bench process, a server in a child) between it and its rpc-server; the last row adds the gateway, both agents and their relays.`,
      "",
      table(
        ["rpc_cache", "bytes sent at first load", "at a reload", "per 1-token completion"],
        model.loadBytes.map((row) => [
          row.rpcCache ? "on" : "off",
          row.firstLoad,
          row.reload,
          row.request,
        ]),
      ),
      "",
    );
  }
  out.push(
    "Bytes the host's tunnel link carried to the worker, from its inventory: loading the model when the group formed, and loading it again after `model.unload` (the same group), each less the 1-token completion that triggered it. rpc-server's cache (`-c`) stands in a hash for each tensor over 10 MiB that it already holds, so only a model with such tensors gains from it, and only from its second load on.",
    "",
    "### Re-forming (stories260K)",
    "",
    table(
      ["killed", "first answer after", "runs"],
      [
        [
          "the worker's rpc-server (SIGKILL)",
          `${fig(split.reformAfterRpcServerKillMs, 0)} ms`,
          split.reformAfterRpcServerKillMs.runs.map((ms) => round(ms, 0)).join(", "),
        ],
        [
          "the whole worker: agent and rpc-server (SIGKILL)",
          `${fig(split.aloneAfterWorkerKillMs, 0)} ms`,
          split.aloneAfterWorkerKillMs.runs.map((ms) => round(ms, 0)).join(", "),
        ],
      ],
    ),
    "",
    "A completion every 100 ms, one at a time, from the kill to the first 200: after an rpc-server kill (each made once it had run 10 s, so a first crash with a 1 s backoff) the group re-forms on the restarted rpc-server; after a worker kill the host serves alone once the worker's lease (3 heartbeats of 1 s) ended. Goal: ≤ 10 s (mesh-llm takes about 41 s to notice a `kill -9`).",
    "",
    "### The tunnel alone",
    "",
    table(
      ["measured", "loopback TCP", "tunnel", "tunnel vs loopback", "plain relay, same hops"],
      split.tunnel.map((row) => [
        row.what,
        fig(row.direct, 0),
        fig(row.tunnel, 0),
        ratio(row.tunnel.median, row.direct.median),
        row.plainRelay ? fig(row.plainRelay, 0) : "–",
      ]),
    ),
    "",
    "`bench/tunnel-throughput.ts`: bytes pushed, and a 64-byte message echoed back 5000 times one at a time, straight to a server in another process and through a tunnel peer to a tunnel server in that process (TLS 1.3 both ways). The plain relay makes the same hops — a TCP relay in this process to one in the other — with no TLS and no HTTP/2: what separates it from loopback is what any relay through two more processes costs, and what separates the tunnel from it is encryption and framing.",
  );
  return out;
}

function affinityReport(affinity: AffinitySection): string[] {
  const out = [
    "## P9 Routing by prompt prefix (stories260K, 4 agents with the real llama-server, 2 slots each)",
    "",
  ];
  if ("skipped" in affinity) return [...out, `Skipped: ${affinity.skipped}.`];
  const [withAffinity, leastLoad] = affinity.modes;
  out.push(
    table(
      [
        "routing",
        "TTFT p50, later turns",
        "TTFT p99, later turns",
        "TTFT p50, first turns",
        "turns/s",
        "turns on the previous turn's node",
      ],
      affinity.modes.map((mode) => [
        `\`${mode.routing}\``,
        `${round(mode.ttftMs.p50, 0)} ms`,
        `${round(mode.ttftMs.p99, 0)} ms`,
        `${round(mode.firstTurnTtftMs, 0)} ms`,
        round(mode.turnsPerSecond, 1),
        `${Math.round(mode.sameNodeShare * 100)} %`,
      ]),
    ),
    "",
    `8 sessions at once, each a system prompt of its own (about 1,900 characters, some 650 tokens) and 4 turns of 8 streamed tokens; the run whose later-turn p50 is the median of ${affinity.ttftRatio.runs.length}. TTFT p50 of later turns, prefix affinity over least load: ${fig(affinity.ttftRatio, 2)} (runs ${affinity.ttftRatio.runs.map((r) => round(r, 2)).join(", ")}; goal ≤ 0.5 with throughput not lower: ${withAffinity && leastLoad ? `${ratio(withAffinity.turnsPerSecond, leastLoad.turnsPerSecond)}` : "–"}).`,
    "",
    `Skew: ${affinity.skew.requests} requests with one prefix at once went ${Object.entries(
      affinity.skew.perNode,
    )
      .sort()
      .map(([node, count]) => `${count} to ${node}`)
      .join(", ")}; the load bound (1.25 × the mean) is ${affinity.skew.bound}.`,
  );
  return out;
}
