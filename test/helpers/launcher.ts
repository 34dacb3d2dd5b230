/**
 * The one place integration tests start RoleMesh processes. Every process started here is
 * tagged with an environment variable, so a test can prove that nothing it started (agents,
 * servers, their children) outlives it.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { after } from "node:test";
import { SECRET_ENV } from "../../src/core/config/secret-env.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const CLI = join(ROOT, "src/cli/rolemesh.ts");
export const FAKE_LLAMA_SERVER = join(ROOT, "test/bin/fake-llama-server");
export const STORIES_MODEL = join(ROOT, "../shared/models/stories260K.gguf");

/** Set on every process a test starts; children inherit it. */
const TAG_VARIABLE = "ROLEMESH_TEST_TAG";

export interface LaunchOptions {
  /** Config written as the agent's YAML file (JSON is YAML). */
  config: Record<string, unknown>;
  /** Extra environment for the agent (and so for its servers). */
  env?: Record<string, string>;
  /** Reuse a state dir, e.g. to restart an agent after killing it. */
  stateDir?: string;
  /** Resolve once the process exited instead of waiting for it to listen. */
  expectExit?: boolean;
  /** Extra command-line arguments. */
  args?: string[];
  /** Run in this network namespace (`ip netns exec`), as on another host (see netns.ts). */
  netns?: string;
}

export interface AgentProcess {
  child: ChildProcess;
  pid: number;
  url: string;
  stateDir: string;
  tag: string;
  /** Every log line the agent printed so far (stdout JSON and stderr). */
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** GET a path and parse the JSON answer. */
  json<T = unknown>(path: string, init?: RequestInit): Promise<T>;
  /** Sends a signal to the agent process alone (not its servers). */
  signal(signal: NodeJS.Signals): void;
}

const started: AgentProcess[] = [];
/** Tags of the agents `agentCommandLine` gave out, started by whatever ran them. */
const bootedTags: string[] = [];
const tempDirs: string[] = [];

after(async () => {
  for (const agent of started) {
    try {
      agent.child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const tag of [...started.map((agent) => agent.tag), ...bootedTags]) await killTagged(tag);
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

export async function tempDir(prefix = "rolemesh-test-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Starts `rolemesh agent` on a free port and waits until it listens. */
export async function startAgent(options: LaunchOptions): Promise<AgentProcess> {
  const stateDir = options.stateDir ?? (await tempDir());
  return launch("agent", agentConfig(stateDir, options), stateDir, options, "node agent listening");
}

/**
 * The command line of an agent the test does not start itself — a wake command boots it, as a
 * machine coming up would. Its config is written; it runs under a test tag of its own (set
 * through `env`, no shell), which the launcher's cleanup stops.
 */
export async function agentCommandLine(options: LaunchOptions): Promise<string[]> {
  const stateDir = options.stateDir ?? (await tempDir());
  const configFile = join(stateDir, "agent-booted.yaml");
  await writeFile(configFile, JSON.stringify(agentConfig(stateDir, options), null, 2));
  const tag = `${process.pid}-booted-${bootedTags.length}-${Date.now()}`;
  bootedTags.push(tag);
  return [
    "env",
    `${TAG_VARIABLE}=${tag}`,
    process.execPath,
    "--import",
    "tsx",
    CLI,
    "agent",
    "--config",
    configFile,
    ...(options.args ?? []),
  ];
}

function agentConfig(stateDir: string, options: LaunchOptions): Record<string, unknown> {
  return {
    listen_port: 0,
    // Several agents on one machine: each its own split tunnel port.
    tunnel_port: 0,
    state_dir: stateDir,
    ...engineConfig(),
    llama_server_probe_interval_s: 0.05,
    shutdown_grace_s: 10,
    log_level: "debug",
    ...options.config,
  };
}

/** The flags that make an agent register with `gateway`: its join token, heartbeat interval. */
export function joinArgs(
  gateway: AgentProcess,
  options: { joinToken?: string; heartbeatS?: number } = {},
): string[] {
  return [
    "--dispatcher-url",
    gateway.url,
    ...(options.joinToken ? ["--join-token", options.joinToken] : []),
    ...(options.heartbeatS ? ["--heartbeat-interval", String(options.heartbeatS)] : []),
  ];
}

/** Starts `rolemesh gateway` (on a free port unless the config names one). */
export async function startGateway(options: LaunchOptions): Promise<AgentProcess> {
  const stateDir = options.stateDir ?? (await tempDir());
  const config = { listen_port: 0, state_dir: stateDir, log_level: "debug", ...options.config };
  return launch("gateway", config, stateDir, options, "gateway listening");
}

/** Starts `rolemesh up` with the given `gateway:` and `agent:` sections; `url` is the gateway's. */
export async function startUp(options: LaunchOptions): Promise<AgentProcess> {
  const stateDir = options.stateDir ?? (await tempDir());
  const sections = options.config as { gateway?: object; agent?: object };
  const config = {
    gateway: {
      listen_port: 0,
      state_dir: join(stateDir, "gateway"),
      log_level: "debug",
      ...sections.gateway,
    },
    agent: {
      listen_port: 0,
      tunnel_port: 0,
      state_dir: join(stateDir, "agent"),
      ...engineConfig(),
      llama_server_probe_interval_s: 0.05,
      ...sections.agent,
    },
  };
  return launch("up", config, stateDir, options, "gateway listening");
}

async function launch(
  command: "agent" | "gateway" | "up",
  config: Record<string, unknown>,
  stateDir: string,
  options: LaunchOptions,
  listeningMessage: string,
): Promise<AgentProcess> {
  const configFile = join(stateDir, `${command}-${started.length}.yaml`);
  await writeFile(configFile, JSON.stringify(config, null, 2));
  const tag = `${process.pid}-${started.length}-${Date.now()}`;
  const argv = ["--import", "tsx", CLI, command, "--config", configFile, ...(options.args ?? [])];
  // `ip netns exec` enters the namespace and execs the command: the same pid, group and tag.
  const child = spawn(
    options.netns ? "ip" : process.execPath,
    options.netns ? ["netns", "exec", options.netns, process.execPath, ...argv] : argv,
    {
      cwd: ROOT,
      env: { ...withoutSecretVariables(process.env), ...options.env, [TAG_VARIABLE]: tag },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const output: string[] = [];
  const exited = once(child, "exit").then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  const listening = new Promise<string>((resolve) => {
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream! }).on("line", (line) => {
        output.push(line);
        if (process.env.ROLEMESH_TEST_VERBOSE) console.log(`[${command} ${child.pid}] ${line}`);
        const url = parseListening(line, listeningMessage);
        if (url) resolve(url);
      });
    }
  });
  const handle: AgentProcess = {
    child,
    pid: child.pid ?? -1,
    url: "",
    stateDir,
    tag,
    output,
    exited,
    json: async (path, init) => {
      const res = await fetch(`${handle.url}${path}`, init);
      return (await res.json()) as never;
    },
    signal: (signal) => child.kill(signal),
  };
  started.push(handle);
  if (options.expectExit) {
    await exited;
    return handle;
  }
  handle.url = await Promise.race([
    listening,
    exited.then(({ code }) => {
      throw new Error(`${command} exited with ${code} before listening:\n${output.join("\n")}`);
    }),
    timeout(30_000, `${command} did not start listening`),
  ]);
  return handle;
}

function parseListening(line: string, message: string): string | undefined {
  try {
    const entry = JSON.parse(line) as { msg?: string; url?: string };
    return entry.msg === message ? entry.url : undefined;
  } catch {
    return undefined;
  }
}

/** Pids of live processes carrying `tag` in their environment (Linux /proc). */
export async function taggedProcesses(tag: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const environ = await readFile(`/proc/${name}/environ`, "utf8");
      if (!environ.split("\0").includes(`${TAG_VARIABLE}=${tag}`)) continue;
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state !== "Z") found.push(Number(name));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

async function killTagged(tag: string): Promise<void> {
  for (const pid of await taggedProcesses(tag)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
}

/** Polls `check` until it returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitUntil<T>(
  check: () => T | Promise<T>,
  what: string,
  timeoutMs = 15_000,
  intervalMs = 25,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

function timeout(ms: number, what: string): Promise<never> {
  return new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms).unref(),
  );
}

/**
 * The engine the end-to-end tests run against: the fake llama-server, or a real one when
 * `LLAMA_SERVER_BIN` and `ROLEMESH_TEST_MODEL` are set.
 */
export const REAL_ENGINE =
  process.env.LLAMA_SERVER_BIN && process.env.ROLEMESH_TEST_MODEL
    ? { bin: process.env.LLAMA_SERVER_BIN, model: process.env.ROLEMESH_TEST_MODEL }
    : undefined;

/**
 * Request fields for a stream long enough that, relayed chunk by chunk, it reaches the client in
 * many reads (buffered, it would come in one): the fake paces its tokens; a real server makes
 * about 2,000 a second on stories260K, and on two busy cores a process can wait tens of
 * milliseconds for its turn, so it must generate for about half a second.
 */
export const LONG_STREAM = REAL_ENGINE ? { max_tokens: 400, ignore_eos: true } : { max_tokens: 24 };

/** `{ skip }` for tests that need the fake's fault knobs. */
export const NEEDS_FAKE = {
  skip: REAL_ENGINE ? "needs the fake llama-server's fault knobs" : false,
};

/** A model entry for the engine under test; small context and one thread keep it cheap. */
export function testModel(
  modelId = "stories",
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    model_id: modelId,
    path: REAL_ENGINE?.model ?? STORIES_MODEL,
    roles: ["storyteller"],
    ctx_size: 512,
    threads: 1,
    ...extra,
  };
}

/** Agent config keys that select the engine under test. */
export function engineConfig(): Record<string, unknown> {
  return { llama_server_bin: REAL_ENGINE?.bin ?? FAKE_LLAMA_SERVER };
}

if (!REAL_ENGINE && process.env.LLAMA_SERVER_BIN === undefined) {
  console.log(
    "# note: LLAMA_SERVER_BIN and ROLEMESH_TEST_MODEL are not set; end-to-end tests use the fake llama-server",
  );
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a one-shot `rolemesh …` command from source and collects its output; `onOutput` sees
 * stdout and stderr as they come, for a test that acts while the command runs.
 */
export async function runCli(
  args: string[],
  env: Record<string, string> = {},
  entry = CLI,
  onOutput?: (output: { stdout: string; stderr: string }) => void,
): Promise<CliResult> {
  const child = spawn(
    process.execPath,
    entry.endsWith(".ts") ? ["--import", "tsx", entry, ...args] : [entry, ...args],
    {
      cwd: ROOT,
      env: { ...withoutRoleMeshVariables(process.env), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    onOutput?.({ stdout, stderr });
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    onOutput?.({ stdout, stderr });
  });
  const [code] = (await once(child, "exit")) as [number | null];
  return { code, stdout, stderr };
}

/** The test runner's environment without ROLEMESH_* settings a developer may have exported. */
function withoutRoleMeshVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith("ROLEMESH_")));
}

/** The caller's environment without the variables that stand in for config secrets. */
function withoutSecretVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const secrets = new Set<string>(Object.values(SECRET_ENV));
  return Object.fromEntries(Object.entries(env).filter(([name]) => !secrets.has(name)));
}

/** Stops an agent the way an operator would (SIGTERM) and waits for it and its servers to be gone. */
export async function stopAgent(agent: AgentProcess): Promise<void> {
  if (agent.child.exitCode === null && agent.child.signalCode === null) agent.signal("SIGTERM");
  await agent.exited;
  await waitUntil(
    async () => (await taggedProcesses(agent.tag)).length === 0,
    "the agent's servers to be gone",
  );
}
