/**
 * A real nats-server (Debian's, with JetStream) for tests, as nats.js's own tests start one:
 * on a free loopback port with a store in a temp dir, stopped after the test file. It can be
 * restarted on the same port, keeping its store or losing it.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after } from "node:test";
import { freeLoopbackPort } from "../../src/core/net.js";
import { tempDir } from "./launcher.js";

export interface NatsServer {
  /** `nats://127.0.0.1:PORT`, the same across restarts. */
  url: string;
  /** Stops the server (SIGTERM, as an operator would). */
  stop(): Promise<void>;
  /** Starts it again on the same port; `loseStore` first deletes its JetStream store. */
  restart(options?: { loseStore?: boolean }): Promise<void>;
}

const running = new Set<ChildProcess>();
after(() => {
  for (const child of running) child.kill("SIGKILL");
});

export async function startNatsServer(): Promise<NatsServer> {
  const port = await freeLoopbackPort();
  const storeDir = join(await tempDir("rolemesh-nats-"), "store");
  let child = await launch(port, storeDir);
  return {
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      await stop(child);
    },
    async restart(options = {}) {
      await stop(child);
      if (options.loseStore) await rm(storeDir, { recursive: true, force: true });
      child = await launch(port, storeDir);
    },
  };
}

async function launch(port: number, storeDir: string): Promise<ChildProcess> {
  const child = spawn(
    "nats-server",
    ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
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
