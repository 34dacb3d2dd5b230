/**
 * A real nats-server (Debian's, with JetStream) for tests and chaos scenarios, as nats.js's own
 * tests start one: on a free loopback port with its store in a temp dir. It can be restarted on
 * the same port, keeping its store or losing it. Free of node:test, so the chaos suite uses it
 * too; a test file stops its servers with `after(stopNatsServers)`.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { freeLoopbackPort } from "../../src/core/net.js";

export interface NatsServer {
  /** `nats://127.0.0.1:PORT`, the same across restarts. */
  url: string;
  /** Stops the server (SIGTERM, as an operator would). */
  stop(): Promise<void>;
  /** Starts it again on the same port; `loseStore` first deletes its JetStream store. */
  restart(options?: { loseStore?: boolean }): Promise<void>;
}

const running = new Set<ChildProcess>();
const storeDirs: string[] = [];

/** Stops every server started here and removes their stores. */
export async function stopNatsServers(): Promise<void> {
  await Promise.all([...running].map(stop));
  await Promise.all(storeDirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
}

export interface NatsServerOptions {
  /** A config file (`-c`); the port, address and store given here override its own. */
  config?: string;
  /** Environment for the server, e.g. the passwords its config reads. */
  env?: Record<string, string>;
}

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const port = await freeLoopbackPort();
  const home = await mkdtemp(join(tmpdir(), "rolemesh-nats-"));
  storeDirs.push(home);
  const storeDir = join(home, "store");
  const start = () => launch(port, storeDir, options);
  let child = await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      await stop(child);
    },
    async restart(options = {}) {
      await stop(child);
      if (options.loseStore) await rm(storeDir, { recursive: true, force: true });
      child = await start();
    },
  };
}

async function launch(
  port: number,
  storeDir: string,
  options: NatsServerOptions,
): Promise<ChildProcess> {
  const args = [
    ...(options.config ? ["-c", options.config] : []),
    ...["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir],
  ];
  const child = spawn("nats-server", args, {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...options.env },
  });
  running.add(child);
  const output: string[] = [];
  const ready = new Promise<void>((resolve) => {
    createInterface({ input: child.stderr! }).on("line", (line) => {
      output.push(line);
      if (line.includes("Server is ready")) resolve();
    });
  });
  await Promise.race([
    ready,
    once(child, "exit").then(() => {
      throw new Error(`nats-server exited before it was ready:\n${output.join("\n")}`);
    }),
  ]);
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  await exited;
  running.delete(child);
}
