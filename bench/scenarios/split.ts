/**
 * P8 split inference (issue 19) with the real llama-server and rpc-server of `rolemesh engine
 * build`, one thread everywhere: a gateway and two agents on loopback, the tunnel between them.
 * Two models: stories260K (1 MB), where a token costs about as much as the RPC round trips it
 * makes, so the tunnel's cost shows at its largest; and a synthetic 400 MB llama with random
 * weights (`bench/lib/synthetic-model.py`), where compute outweighs them as in a real model,
 * and whose tensors are large enough for `rpc_cache`.
 *
 * - Decode tokens/s through the gateway, the host agent and the tunnel to the worker's
 *   rpc-server, vs the host's own llama-server command line talking to an rpc-server directly
 *   over loopback (the fair baseline), every layer over direct RPC (the reference) and
 *   no RPC at all.
 * - From SIGKILL of the worker's rpc-server, or of the whole worker, to the first answer
 *   (stories260K only: re-forming does not depend on the model).
 * - What the host sends the worker at load, and at a reload, with and without `rpc_cache`.
 * - The tunnel itself against loopback TCP: throughput, and the small round trips RPC makes.
 */
import { execFile } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { buildFor } from "../../src/agent/engines/build/engine-cache.js";
import { findLlamaCppSource } from "../../src/agent/engines/build/llama-cpp-source.js";
import type { EngineBuild } from "../../src/agent/engines/build/engine-cache.js";
import { rpcServerArgs } from "../../src/agent/split/rpc-server-supervisor.js";
import { LogTail } from "../../src/agent/supervisor/log-tail.js";
import { sleep } from "../../src/core/async.js";
import { freeLoopbackPort, loopbackPortAccepts } from "../../src/core/net.js";
import { ManagedProcess } from "../../src/core/process/managed-process.js";
import type { NodeInventory } from "../../src/protocol/inventory.js";
import { start, stop, STORIES_MODEL, tempDir } from "../lib/cluster.js";
import type { Started } from "../lib/cluster.js";
import { getJson, postJson } from "../lib/client.js";
import { until, waitForPeers } from "../lib/gateway-status.js";
import { figure } from "../lib/stats.js";
import type { Figure } from "../lib/stats.js";
import { tunnelCost, tunnelTo } from "../tunnel-throughput.js";
import type { TunnelCostRow } from "../tunnel-throughput.js";

export interface SplitSpeedRow {
  path: string;
  /** What differs in llama-server's command line, e.g. `--rpc <tunnel> --tensor-split 0.5 -ngl 3`. */
  args: string;
  /** llama-server's own decode rate (`timings.predicted_per_second`). */
  tokensPerSecond: Figure;
  /** Completion tokens over the wall-clock time of the whole request, at the client. */
  endToEndTokensPerSecond: Figure;
}

export interface SplitLoadBytes {
  rpcCache: boolean;
  /** Bytes the host sent the worker to load the model the first time. */
  firstLoad: number;
  /** The same after the model was unloaded and loaded again on the same group. */
  reload: number;
  /** What one 1-token completion sends, taken off both loads above. */
  request: number;
}

/** What the section measured of one model. */
export interface SplitModelResult {
  /** What the report calls the model. */
  model: string;
  /** Tokens of each timed completion. */
  tokens: number;
  /** The group's llama-server arguments the host chose: `--rpc … --tensor-split … -ngl …`. */
  groupArgs: string[];
  speed: SplitSpeedRow[];
  loadBytes: SplitLoadBytes[];
}

export interface SplitResult {
  models: (SplitModelResult | { model: string; skipped: string })[];
  /** From SIGKILL of the worker's rpc-server to the first answer from the re-formed group. */
  reformAfterRpcServerKillMs: Figure;
  /** From SIGKILL of the whole worker (agent and rpc-server) to the first answer, host alone. */
  aloneAfterWorkerKillMs: Figure;
  tunnel: TunnelCostRow[];
}

export type SplitSection = SplitResult | { skipped: string };

/** A model the section runs split. */
interface BenchModel {
  /** Its model id, in the agents' config and in requests. */
  id: string;
  /** What the report calls it. */
  label: string;
  path: string;
  /** Tokens of each timed completion. */
  tokens: number;
}

const HEARTBEAT_S = 1;
const THREADS = 1;
const GIVE_UP_MS = 120_000;
/** How long an rpc-server runs before its crash no longer counts as part of a crash loop. */
const RPC_SERVER_STABLE_RUN_MS = 10_500;
const CPU = { id: "cpu:0", backend: "cpu", index: 0, name: "CPU" } as const;
const STORIES: BenchModel = {
  id: "stories",
  label: "stories260K (1 MB)",
  path: STORIES_MODEL,
  tokens: 128,
};

interface Completion {
  usage: { completion_tokens: number };
  timings: { predicted_per_second: number };
}

/** A completion of `tokens` tokens at temperature 0; the prompt is evaluated every time. */
function complete(url: string, model: BenchModel, tokens: number) {
  return postJson<Completion>(`${url}/v1/completions`, {
    model: model.id,
    prompt: "Once upon a time",
    max_tokens: tokens,
    ignore_eos: true,
    temperature: 0,
    cache_prompt: false,
  });
}

export async function splitInference(options: {
  /** Timed completions per path. */
  runs: number;
  /** rpc-server kills, and runs of the tunnel's own measurements. */
  repeats: number;
}): Promise<SplitSection> {
  const build = await buildFor("cpu");
  if (!build) return { skipped: "no engine build (`rolemesh engine build` makes one)" };

  const reform: number[] = [];
  const alone: number[] = [];
  const models: SplitResult["models"] = [
    await measureModel(build, STORIES, options.runs, {
      formed: async (group) => {
        for (let i = 0; i < options.repeats; i++) {
          // Each kill a first crash, as for a worker that dies once in a while: the rpc-server
          // has run past the 10 s after which its crash backoff starts a fresh series.
          await sleep(RPC_SERVER_STABLE_RUN_MS);
          const pid = await rpcServerPid(group.workerDir);
          reform.push(await firstAnswerAfter(group, () => process.kill(pid, "SIGKILL")));
        }
        alone.push(await killWorker(group));
      },
      cached: async (group) => void alone.push(await killWorker(group)),
    }),
  ];
  const dir = await tempDir();
  try {
    const synthetic = await syntheticModel(dir);
    models.push(
      "skipped" in synthetic ? synthetic : await measureModel(build, synthetic, options.runs),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return {
    models,
    reformAfterRpcServerKillMs: figure(reform),
    aloneAfterWorkerKillMs: figure(alone),
    tunnel: await tunnelCost(options.repeats),
  };
}

/**
 * Speeds and load bytes of `model`: one cluster without `rpc_cache`, then one with it; `also`
 * runs more measurements on each once its group has formed and been measured.
 */
async function measureModel(
  build: EngineBuild,
  model: BenchModel,
  runs: number,
  also: {
    formed?: (group: SplitCluster) => Promise<void>;
    cached?: (group: SplitCluster) => Promise<void>;
  } = {},
): Promise<SplitModelResult> {
  // One cluster at a time, one generation at a time: ggml busy-waits on two cores. Idle
  // servers cost nothing, so the direct baselines run beside the idle cluster and the paths
  // take turns, run by run, whatever else the machine does meanwhile touching them alike.
  const plain = await cluster(build, model, false);
  const direct = new DirectServers(build);
  let groupArgs: string[];
  let speed: SplitSpeedRow[];
  const loadBytes: SplitLoadBytes[] = [];
  try {
    loadBytes.push(await measureLoadBytes(plain));
    const hostArgs = splitServerCommand(plain.host);
    groupArgs = pick(hostArgs, ["--rpc", "--tensor-split", "-ngl"]);
    const sameSplit = pick(hostArgs, ["--tensor-split", "-ngl"]).join(" ");
    speed = await decodeSpeeds(
      model,
      [
        {
          path: "llama-server alone, no RPC",
          args: "(no --rpc)",
          url: await direct.start(without(hostArgs, ["--rpc", "--tensor-split"])),
        },
        {
          path: "direct loopback RPC, every layer",
          args: "--rpc <rpc-server> -ngl 99",
          url: await direct.start([...without(hostArgs, ["--tensor-split", "-ngl"]), "-ngl", "99"]),
        },
        {
          path: "direct loopback RPC, the host's split",
          args: `--rpc <rpc-server> ${sameSplit}`,
          url: await direct.start(hostArgs),
        },
        {
          path: "the agents' tunnel alone (no agent, no gateway)",
          args: `--rpc <tunnel> ${sameSplit}`,
          url: await direct.start(hostArgs, { throughTunnel: true }),
        },
        {
          path: "gateway → host agent → tunnel → worker",
          args: `--rpc <tunnel> ${sameSplit}`,
          url: plain.gateway.url,
        },
      ],
      runs,
    );
    await direct.stop();
    await also.formed?.(plain);
  } finally {
    await direct.stop();
    await plain.stop();
  }

  const cached = await cluster(build, model, true);
  try {
    loadBytes.push(await measureLoadBytes(cached));
    await also.cached?.(cached);
  } finally {
    await cached.stop();
  }
  return { model: model.label, tokens: model.tokens, groupArgs, speed, loadBytes };
}

/**
 * The synthetic model, written into `dir` by `bench/lib/synthetic-model.py` with the gguf-py of
 * the llama.cpp source node-llama-cpp carries (checked out of its bundle); skipped where git,
 * Python or numpy is missing.
 */
async function syntheticModel(
  dir: string,
): Promise<BenchModel | { model: string; skipped: string }> {
  const label = "synthetic llama, 1024 wide, 8 layers, F32 (415 MB)";
  const path = join(dir, "synthetic.gguf");
  const source = join(dir, "llama.cpp");
  const script = fileURLToPath(new URL("../lib/synthetic-model.py", import.meta.url));
  const run = promisify(execFile);
  try {
    const { bundle } = await findLlamaCppSource();
    await run("git", ["clone", "--quiet", "--no-checkout", bundle, source]);
    await run("git", ["-C", source, "checkout", "HEAD", "--", "gguf-py"]);
    await run("python3", [script, path, STORIES_MODEL, "1024", "8"], {
      env: { ...process.env, PYTHONPATH: join(source, "gguf-py") },
    });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim().split("\n").at(-1);
    return { model: label, skipped: `could not write it: ${stderr || String(err)}` };
  }
  return { id: "synthetic", label, path, tokens: 32 };
}

interface SplitCluster {
  model: BenchModel;
  rpcCache: boolean;
  gateway: Started;
  hostId: string;
  host: Started;
  worker: Started;
  workerDir: string;
  stop(): Promise<void>;
}

/**
 * A gateway and two agents that may serve the model only split, formed by a first request: which
 * agent hosts is the planner's choice (the most free memory), the other is the worker.
 */
async function cluster(
  build: EngineBuild,
  model: BenchModel,
  rpcCache: boolean,
): Promise<SplitCluster> {
  const gateway = await start("gateway", { heartbeat_interval_s: HEARTBEAT_S });
  const agents = new Map<string, { agent: Started; stateDir: string }>();
  const stopAll = async () => {
    for (const { agent } of agents.values()) await stop(agent);
    await stop(gateway);
  };
  try {
    for (const nodeId of ["node-a", "node-b"]) {
      const stateDir = await tempDir();
      const agent = await start(
        "agent",
        {
          node_id: nodeId,
          state_dir: stateDir,
          llama_server_bin: build.llamaServer,
          rpc_server_bin: build.rpcServer,
          rpc_cache: rpcCache,
          models: [
            {
              model_id: model.id,
              path: model.path,
              ctx_size: 512,
              threads: THREADS,
              split: "always",
            },
          ],
        },
        ["--dispatcher-url", gateway.url, "--heartbeat-interval", String(HEARTBEAT_S)],
      );
      agents.set(nodeId, { agent, stateDir });
    }
    await waitForPeers(
      gateway.url,
      (nodes) => nodes.length === 2 && nodes.every((node) => node.tunnel),
      "both agents to register their tunnels",
    );
    const first = await complete(gateway.url, model, 1);
    if (first.status !== 200) throw new Error(`the split group did not form: ${first.status}`);
    const hostId = String(first.headers["x-rolemesh-node"]);
    const host = agents.get(hostId);
    if (!host) throw new Error(`the group's answer came from ${hostId}`);
    const worker = [...agents.values()].find((entry) => entry !== host)!;
    return {
      model,
      rpcCache,
      gateway,
      hostId,
      host: host.agent,
      worker: worker.agent,
      workerDir: worker.stateDir,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * Bytes through the host's link to the worker: after the first request formed the group, after
 * a second request, and after the model was unloaded and a third request loaded it again.
 */
async function measureLoadBytes(group: SplitCluster): Promise<SplitLoadBytes> {
  const { gateway, host, hostId, model } = group;
  const sent = async () => {
    const inventory = await getJson<NodeInventory>(`${host.url}/v1/node/inventory`);
    const link = inventory.split_groups.find((entry) => entry.role === "host")?.links[0];
    if (!link) throw new Error("the host reports no link to its worker");
    return link.bytes_sent;
  };
  const formed = await sent();
  await answered(complete(gateway.url, model, 1));
  const request = (await sent()) - formed;
  const unloaded = await postJson(`${gateway.url}/api/nodes/${hostId}/commands/model.unload`, {
    model_id: model.id,
  });
  if (unloaded.status !== 200) throw new Error(`model.unload answered ${unloaded.status}`);
  const beforeReload = await sent();
  await answered(complete(gateway.url, model, 1));
  return {
    rpcCache: group.rpcCache,
    firstLoad: formed - request,
    reload: (await sent()) - beforeReload - request,
    request,
  };
}

async function answered(reply: Promise<{ status: number }>): Promise<void> {
  const { status } = await reply;
  if (status !== 200) throw new Error(`a completion answered ${status}`);
}

/**
 * Decode rates of `runs` completions of the model's tokens on each path, after one to warm each
 * up; the paths take turns.
 */
async function decodeSpeeds(
  model: BenchModel,
  paths: { path: string; args: string; url: string }[],
  runs: number,
): Promise<SplitSpeedRow[]> {
  for (const { url } of paths) await answered(complete(url, model, 8));
  const rates = paths.map(() => [] as number[]);
  const endToEnd = paths.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) {
    for (const [at, { url }] of paths.entries()) {
      const began = performance.now();
      const answer = await complete(url, model, model.tokens);
      if (answer.status !== 200) throw new Error(`a completion answered ${answer.status}`);
      rates[at]!.push(answer.body.timings.predicted_per_second);
      endToEnd[at]!.push(
        (answer.body.usage.completion_tokens * 1000) / (performance.now() - began),
      );
    }
  }
  return paths.map(({ path, args }, at) => ({
    path,
    args,
    tokensPerSecond: figure(rates[at]!),
    endToEndTokensPerSecond: figure(endToEnd[at]!),
  }));
}

/**
 * llama-servers started by hand from a command line, with its `--rpc` (if any) pointed at an
 * rpc-server of their own on loopback; each in its own process group.
 */
class DirectServers {
  readonly #build: EngineBuild;
  readonly #started: ManagedProcess[] = [];
  readonly #tunnels: { close(): Promise<void> }[] = [];
  /** The last lines they printed, to say why one did not start. */
  readonly #output = new LogTail(20);

  constructor(build: EngineBuild) {
    this.#build = build;
  }

  /**
   * Starts one on a free port; its URL once it answers /health. With `throughTunnel` its
   * rpc-server is reached through a tunnel peer here and a tunnel server in a child process.
   */
  async start(
    llamaServerArgs: string[],
    options: { throughTunnel?: boolean } = {},
  ): Promise<string> {
    let args = llamaServerArgs;
    if (args.includes("--rpc")) {
      const rpcPort = await freeLoopbackPort();
      this.#run(
        this.#build.rpcServer,
        rpcServerArgs(CPU, rpcPort, { threads: THREADS, cache: false }),
      );
      await this.#ready("rpc-server", () => loopbackPortAccepts(rpcPort));
      let port = rpcPort;
      if (options.throughTunnel) {
        const tunnel = await tunnelTo(rpcPort);
        this.#tunnels.push(tunnel);
        port = tunnel.port;
      }
      args = [...without(args, ["--rpc"]), "--rpc", `127.0.0.1:${port}`];
    }
    const port = await freeLoopbackPort();
    this.#run(this.#build.llamaServer, [...without(args, ["--port"]), "--port", String(port)]);
    const url = `http://127.0.0.1:${port}`;
    await this.#ready("llama-server", async () => {
      const answer = await fetch(`${url}/health`).catch(() => undefined);
      return answer?.status === 200;
    });
    return url;
  }

  /** Stops every one, each llama-server before its rpc-server (which it would abort without). */
  async stop(): Promise<void> {
    for (const proc of this.#started.reverse()) await proc.stop(2000);
    this.#started.length = 0;
    for (const tunnel of this.#tunnels.splice(0)) await tunnel.close();
  }

  #run(command: string, args: string[]): void {
    this.#started.push(
      new ManagedProcess({ command, args, env: {} }, (_, line) => this.#output.push(line)),
    );
  }

  async #ready(what: string, check: () => Promise<boolean>): Promise<void> {
    if (!(await until(check, 60_000))) {
      throw new Error(`${what} did not start:\n${this.#output.lines.join("\n")}`);
    }
  }
}

/**
 * Runs `kill`, then sends a small completion every 100 ms (one at a time) until one is answered
 * 200; the milliseconds from the kill to that answer.
 */
async function firstAnswerAfter(group: SplitCluster, kill: () => unknown): Promise<number> {
  const killedAt = performance.now();
  kill();
  for (;;) {
    const answer = await complete(group.gateway.url, group.model, 8).catch(() => undefined);
    const elapsed = performance.now() - killedAt;
    if (answer?.status === 200) return elapsed;
    if (elapsed > GIVE_UP_MS) throw new Error(`no answer within ${GIVE_UP_MS} ms of the kill`);
    await sleep(100);
  }
}

/** SIGKILLs the worker as a machine that dies would go: its agent and its rpc-server at once. */
async function killWorker(group: SplitCluster): Promise<number> {
  const pid = await rpcServerPid(group.workerDir);
  return firstAnswerAfter(group, () => {
    process.kill(pid, "SIGKILL");
    process.kill(-group.worker.pid, "SIGKILL");
  });
}

/** The worker's rpc-server for its CPU, from its pid record. */
async function rpcServerPid(stateDir: string): Promise<number> {
  const record = join(stateDir, "servers", "rpc-server.cpu_0.json");
  return (JSON.parse(await readFile(record, "utf8")) as { pid: number }).pid;
}

/** The host's llama-server command line for the group, from its last "server starting" log line. */
function splitServerCommand(host: Started): string[] {
  for (const line of [...host.output].reverse()) {
    try {
      const entry = JSON.parse(line) as { msg?: string; args?: string[] };
      if (entry.msg === "server starting" && entry.args?.includes("--rpc")) return entry.args;
    } catch {
      // not a log line
    }
  }
  throw new Error("the host logged no llama-server start with --rpc");
}

/** `args` without the options named (each with its value, every time it occurs). */
function without(args: readonly string[], options: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (options.includes(args[i]!)) i++;
    else kept.push(args[i]!);
  }
  return kept;
}

/** The options named with their values, the last occurrence of each (llama.cpp's reading). */
function pick(args: readonly string[], options: readonly string[]): string[] {
  return options.flatMap((option) => {
    const at = args.lastIndexOf(option);
    return at >= 0 ? [option, args[at + 1]!] : [];
  });
}
