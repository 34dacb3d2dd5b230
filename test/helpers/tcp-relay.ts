/**
 * A TCP relay to put between one client and its server (an agent and nats-server), so a test can
 * cut that one link while both ends keep running: `cut()` drops every relayed connection and
 * refuses new ones until `restore()`.
 */
import { once } from "node:events";
import { createConnection, createServer } from "node:net";
import type { AddressInfo, Socket } from "node:net";

export interface TcpRelay {
  /** The port it listens on, on 127.0.0.1. */
  port: number;
  /** Closes every relayed connection, on both sides, and resets new ones until `restore()`. */
  cut(): void;
  /** Relays new connections again. */
  restore(): void;
  /** Cuts, and stops listening. */
  close(): Promise<void>;
}

export async function startTcpRelay(target: { host: string; port: number }): Promise<TcpRelay> {
  const sockets = new Set<Socket>();
  let isCut = false;
  const server = createServer((client) => {
    if (isCut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection(target);
    for (const [socket, peer] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(socket);
      socket.pipe(peer);
      // One link: a side that fails or closes takes the other with it ("close" follows "error").
      socket.on("error", () => {});
      socket.on("close", () => {
        sockets.delete(socket);
        peer.destroy();
      });
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const cut = () => {
    isCut = true;
    for (const socket of sockets) socket.destroy();
  };
  return {
    port: (server.address() as AddressInfo).port,
    cut,
    restore() {
      isCut = false;
    },
    async close() {
      cut();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
