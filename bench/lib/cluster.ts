/**
 * Starts RoleMesh processes for benchmarks from the built package (`dist/`, as users run it),
 * each in its own process group, and stops every one of them (and their servers) at the end.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const FAKE_LLAMA_SERVER = join(ROOT, "test/bin/fake-llama-server");
export const STORIES_MODEL = join(ROOT, "../shared/models/stories260K.gguf");

export interface Started {
  child: ChildProcess;
  pid: number;
  url: string;
  /** Milliseconds from spawn to the "listening" log line. */
  startMs: number;
  exited: Promise<unknown>;
  /** Every line the process printed so far: its JSON log (stdout), and stderr. */
  output: string[];
}

const running: Started[] = [];
const dirs: string[] = [];

export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "rolemesh-bench-"));
  dirs.push(dir);
  return dir;
}

/** `rolemesh agent|gateway --config <json>` from dist; resolves once it listens. */
export async function start(
  command: "agent" | "gateway",
  config: Record<string, unknown>,
  args: string[] = [],
  env: Record<string, string> = {},
  /** Options for node itself, e.g. `--cpu-prof` to profile the process. */
  nodeArgs: string[] = [],
): Promise<Started> {
  const dir = await tempDir();
  const file = join(dir, `${command}.yaml`);
  await writeFile(
    file,
    JSON.stringify({
      state_dir: dir,
      listen_port: 0,
      // Several agents on one machine: each its own split tunnel port.
      ...(command === "agent" ? { tunnel_port: 0 } : {}),
      log_level: "info",
      ...config,
    }),
  );
  const began = performance.now();
  const child = spawn(
    process.execPath,
    [...nodeArgs, join(ROOT, "bin/rolemesh.js"), command, "--config", file, ...args],
    {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    },
  );
  const exited = once(child, "exit");
  const output: string[] = [];
  // stderr still reaches the terminal, as it did when inherited.
  child.stderr!.on("data", (chunk: Buffer) => process.stderr.write(chunk));
  createInterface({ input: child.stderr! }).on("line", (line) => output.push(line));
  const message = command === "agent" ? "node agent listening" : "gateway listening";
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      output.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === message && entry.url) resolve(entry.url);
      } catch {
        // not a log line
      }
    });
    void exited.then(() => reject(new Error(`${command} exited before listening`)));
  });
  const started = {
    child,
    pid: child.pid!,
    url,
    startMs: performance.now() - began,
    exited,
    output,
  };
  running.push(started);
  return started;
}

/** SIGTERM (or `signal`) to the process group, and waits for the process to exit. */
export async function stop(process_: Started, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (process_.child.exitCode !== null || process_.child.signalCode !== null) return;
  try {
    process.kill(-process_.pid, signal);
  } catch {
    // gone already
  }
  await process_.exited;
}

export async function stopAll(): Promise<void> {
  await Promise.all(running.map((started) => stop(started)));
  running.length = 0;
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
  dirs.length = 0;
}

/** An agent that serves `stories` through the fake llama-server, `parallel` slots wide. */
export function fakeAgent(
  parallel: number,
  extra: Record<string, unknown> = {},
  env: Record<string, string> = {},
  args: string[] = [],
): Promise<Started> {
  return start(
    "agent",
    {
      llama_server_bin: FAKE_LLAMA_SERVER,
      llama_server_probe_interval_s: 0.05,
      max_pending_requests_per_device: parallel * 4,
      models: [{ model_id: "stories", path: STORIES_MODEL, roles: ["chat"], parallel }],
      ...extra,
    },
    args,
    { FAKE_LLAMA_TOKEN_MS: "0", ...env },
  );
}
