/**
 * The agent-to-agent tunnel's cost (issue 19): 256 MiB pushed through it vs straight over
 * loopback TCP, and small request/answer round trips (what llama.cpp RPC does per graph) both
 * ways. The far side (TunnelServer, a byte sink, an echo target) runs in a child process, as a
 * worker agent would, so encryption and decryption do not share one event loop. Part of the
 * bench's split section; alone:
 *
 *   npx tsx bench/tunnel-throughput.ts
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer } from "node:net";
import type { AddressInfo, Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { loadTunnelIdentity } from "../src/agent/tunnel/tunnel-identity.js";
import { TunnelPeer } from "../src/agent/tunnel/tunnel-peer.js";
import { TunnelServer } from "../src/agent/tunnel/tunnel-server.js";
import { createLogger } from "../src/core/logger.js";
import { figure } from "./lib/stats.js";
import type { Figure } from "./lib/stats.js";

const TOTAL = 256 * 1024 * 1024;
const CHUNK = 1024 * 1024;
const ROUND_TRIPS = 5000;
const MESSAGE = 64;
const log = createLogger("warn");

/** One measurement straight over loopback TCP and through the tunnel. */
export interface TunnelCostRow {
  what: string;
  direct: Figure;
  tunnel: Figure;
  /**
   * Through a plain TCP relay in each process instead of the tunnel — the same hops with no
   * TLS and no HTTP/2 — for round trips: the floor of any relay in Node.
   */
  plainRelay?: Figure;
}

interface FarSide {
  sink: number;
  echo: number;
  /** A plain TCP relay to the echo. */
  relay: number;
  tunnel: number;
  fingerprint: string;
}

/** A loopback server whose connections are piped both ways to `target`. */
function relayTo(target: number): Promise<Server> {
  return listen((socket) => {
    const upstream = connect({ host: "127.0.0.1", port: target, noDelay: true });
    socket.pipe(upstream).pipe(socket);
    for (const end of [socket, upstream]) end.on("error", () => socket.destroy());
    upstream.on("close", () => socket.destroy());
  });
}

async function listen(onSocket: (socket: Socket) => void): Promise<Server> {
  const server = createServer({ allowHalfOpen: true, noDelay: true }, onSocket);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

const portOf = (server: Server) => (server.address() as AddressInfo).port;

/**
 * The worker's side: a sink that answers its byte count at the end, an echo, the tunnel; and
 * `rpc`, a loopback port of the caller's, when given.
 */
async function farSide(stateDir: string, allowed: string, rpc: number | undefined): Promise<void> {
  // This process ends with the bench's tunnel: its servers are never closed.
  const sink = portOf(
    await listen((socket) => {
      let bytes = 0;
      socket.on("data", (chunk: Buffer) => (bytes += chunk.length));
      socket.on("end", () => socket.end(`${bytes}`));
    }),
  );
  const echo = portOf(await listen((socket) => socket.pipe(socket)));
  const relay = portOf(await relayTo(echo));
  const identity = await loadTunnelIdentity(stateDir);
  const tunnel = new TunnelServer({
    identity,
    host: "127.0.0.1",
    port: 0,
    isAllowed: (fingerprint) => fingerprint === allowed,
    resolveTarget: (name) => ({ sink, echo, rpc })[name],
    log,
  });
  await tunnel.start();
  const ready: FarSide = {
    sink,
    echo,
    relay,
    tunnel: tunnel.port,
    fingerprint: identity.fingerprint,
  };
  console.log(JSON.stringify(ready));
}

/** MiB/s of TOTAL bytes written to `port` until the sink has counted them all. */
async function push(port: number): Promise<number> {
  const socket = connect({ host: "127.0.0.1", port, noDelay: true });
  await once(socket, "connect");
  const chunk = Buffer.alloc(CHUNK, 7);
  const started = performance.now();
  for (let sent = 0; sent < TOTAL; sent += CHUNK) {
    if (!socket.write(chunk)) await once(socket, "drain");
  }
  socket.end();
  let answer = "";
  socket.on("data", (data: Buffer) => (answer += data.toString()));
  await once(socket, "end");
  const seconds = (performance.now() - started) / 1000;
  socket.destroy();
  if (Number(answer) !== TOTAL) throw new Error(`the sink counted ${answer} bytes`);
  return TOTAL / 1024 / 1024 / seconds;
}

/** Microseconds per round trip of a MESSAGE-byte request and its echo, one at a time. */
async function pingPong(port: number): Promise<number> {
  const socket = connect({ host: "127.0.0.1", port, noDelay: true });
  await once(socket, "connect");
  const message = Buffer.alloc(MESSAGE, 1);
  const started = performance.now();
  for (let i = 0; i < ROUND_TRIPS; i++) {
    let received = 0;
    const answered = new Promise<void>((resolve) => {
      const onData = (data: Buffer) => {
        received += data.length;
        if (received < MESSAGE) return;
        socket.off("data", onData);
        resolve();
      };
      socket.on("data", onData);
    });
    socket.write(message);
    await answered;
  }
  const micros = ((performance.now() - started) * 1000) / ROUND_TRIPS;
  socket.destroy();
  return micros;
}

/** A tunnel peer in this process linked to a tunnel server in a child, as a host to a worker. */
interface TunnelPair {
  far: FarSide;
  peer: TunnelPeer;
  close(): Promise<void>;
}

async function tunnelPair(rpc?: number): Promise<TunnelPair> {
  const hostDir = await mkdtemp(join(tmpdir(), "rolemesh-bench-tunnel-"));
  const workerDir = await mkdtemp(join(tmpdir(), "rolemesh-bench-tunnel-"));
  const identity = await loadTunnelIdentity(hostDir);
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      fileURLToPath(import.meta.url),
      "--far-side",
      workerDir,
      identity.fingerprint,
      ...(rpc === undefined ? [] : [String(rpc)]),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const exited = once(child, "exit");
  const [line] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
  const far = JSON.parse(line) as FarSide;
  const peer = new TunnelPeer({
    identity,
    host: "127.0.0.1",
    port: far.tunnel,
    fingerprint: far.fingerprint,
    log,
  });
  peer.start();
  const close = async () => {
    await peer.close();
    child.kill();
    await exited;
    await rm(hostDir, { recursive: true, force: true });
    await rm(workerDir, { recursive: true, force: true });
  };
  try {
    await peer.ready(10_000);
  } catch (err) {
    await close();
    throw err;
  }
  return { far, peer, close };
}

/**
 * A 127.0.0.1 port whose connections come out at `target` through the agents' tunnel alone —
 * no agent, no gateway — for llama-server's `--rpc`.
 */
export async function tunnelTo(target: number): Promise<{ port: number; close(): Promise<void> }> {
  const pair = await tunnelPair(target);
  return { port: await pair.peer.openLocal("rpc"), close: pair.close };
}

/** Throughput and round trips, each `repeats` times, straight and through the tunnel. */
export async function tunnelCost(repeats: number): Promise<TunnelCostRow[]> {
  const { far, peer, close } = await tunnelPair();
  const relayServer = await relayTo(far.relay);
  try {
    const tunnelSink = await peer.openLocal("sink");
    const tunnelEcho = await peer.openLocal("echo");
    const relayEcho = portOf(relayServer);
    const throughput = { direct: [] as number[], tunnel: [] as number[] };
    const roundTrip = { direct: [] as number[], tunnel: [] as number[], relay: [] as number[] };
    for (let i = 0; i < repeats; i++) {
      throughput.direct.push(await push(far.sink));
      throughput.tunnel.push(await push(tunnelSink));
      roundTrip.direct.push(await pingPong(far.echo));
      roundTrip.tunnel.push(await pingPong(tunnelEcho));
      roundTrip.relay.push(await pingPong(relayEcho));
    }
    return [
      {
        what: "256 MiB, MiB/s",
        direct: figure(throughput.direct),
        tunnel: figure(throughput.tunnel),
      },
      {
        what: `${MESSAGE}-byte round trip, µs`,
        direct: figure(roundTrip.direct),
        tunnel: figure(roundTrip.tunnel),
        plainRelay: figure(roundTrip.relay),
      },
    ];
  } finally {
    relayServer.close();
    await close();
  }
}

if (process.argv[2] === "--far-side") {
  const rpc = process.argv[5];
  await farSide(process.argv[3]!, process.argv[4]!, rpc === undefined ? undefined : Number(rpc));
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const { what, direct, tunnel, plainRelay } of await tunnelCost(3)) {
    const runs = (value: Figure) => value.runs.map((run) => run.toFixed(0)).join(", ");
    console.log(`${what}\n  direct loopback: ${runs(direct)}\n  tunnel: ${runs(tunnel)}`);
    if (plainRelay) console.log(`  plain relay: ${runs(plainRelay)}`);
  }
}
