/**
 * Pieces for tunnel tests: identities in temporary state dirs, a TCP echo target that counts
 * the connections it got, and a client that sends bytes through a port and reads them back.
 */
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { connect, createServer } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import { loadTunnelIdentity } from "../../src/agent/tunnel/tunnel-identity.js";
import type { TunnelIdentity } from "../../src/agent/tunnel/tunnel-identity.js";
import { tempDir } from "./launcher.js";

export function newIdentity(): Promise<TunnelIdentity> {
  return tempDir("rolemesh-tunnel-").then(loadTunnelIdentity);
}

export interface EchoTarget {
  port: number;
  /** Connections accepted so far. */
  connections: number;
  close(): Promise<void>;
}

/**
 * Echoes every byte back and ends its side when the client ends its own, as a TCP service
 * that honours half-closed connections does.
 */
export async function startEchoTarget(): Promise<EchoTarget> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    target.connections++;
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.pipe(socket);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const target: EchoTarget = {
    port: (server.address() as AddressInfo).port,
    connections: 0,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return target;
}

/** A connection to `port` on 127.0.0.1, once connected. */
export async function dial(port: number): Promise<Socket> {
  const socket = connect({ host: "127.0.0.1", port, allowHalfOpen: true });
  await once(socket, "connect");
  return socket;
}

/** Everything `socket` reads until the other side ends or closes it; then it is closed. */
export async function readAll(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  socket.on("error", () => {});
  await new Promise((resolve) => {
    socket.once("end", resolve);
    socket.once("close", resolve);
  });
  socket.destroy();
  return Buffer.concat(chunks);
}

/** Sends `size` random bytes on `socket` and ends it; true when exactly those came back. */
export async function echoThrough(socket: Socket, size: number): Promise<boolean> {
  const payload = randomBytes(size);
  const back = readAll(socket);
  socket.end(payload);
  return (await back).equals(payload);
}

/**
 * Speaks TLS to an agent's tunnel at `host:port` without a client certificate and, once the
 * handshake is done, starts HTTP/2 as a peer would; what came back before it was closed.
 */
export async function probeWithoutCertificate(host: string, port: number): Promise<Buffer> {
  const socket = connectTls({ host, port, rejectUnauthorized: false });
  socket.once("secureConnect", () => socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
  return readAll(socket);
}

/**
 * Connects to `port`, sends a few bytes and reads until the connection ends, is closed or reset
 * (a reset may come before the connect completes); what came back.
 */
export function probe(port: number): Promise<Buffer> {
  const socket = connect({ host: "127.0.0.1", port, allowHalfOpen: true });
  socket.write("hello");
  return readAll(socket);
}
