/**
 * Slow clients (slowloris): connections that send their request a byte at a time, or stop
 * halfway, and record when the server gives up on them.
 */
import { connect } from "node:net";
import type { Socket } from "node:net";

export interface SlowScript {
  /** Sent at once on connect. */
  burst?: string;
  /** Then one byte per tick. */
  drip?: string;
  /** Then this byte once per tick, forever; without it the client falls silent. */
  filler?: string;
}

export interface SlowClient {
  /** Milliseconds from opening until the server closed the connection, once it did. */
  closedAfterMs: number | undefined;
  /** The status the server answered before closing, if it did. */
  status: number | undefined;
}

interface Connection extends SlowClient {
  socket: Socket;
  pending: string;
  filler: string | undefined;
}

/** A set of slow connections fed by one ticker, so hundreds of them cost one timer. */
export class SlowClients {
  readonly #connections: Connection[] = [];
  readonly #ticker: NodeJS.Timeout;

  constructor(tickMs: number) {
    this.#ticker = setInterval(() => this.#tick(), tickMs);
  }

  get clients(): readonly SlowClient[] {
    return this.#connections;
  }

  get closed(): number {
    return this.#connections.filter((connection) => connection.closedAfterMs !== undefined).length;
  }

  open(url: string, script: SlowScript): void {
    const { hostname, port } = new URL(url);
    const opened = performance.now();
    const socket = connect(Number(port), hostname, () => socket.write(script.burst ?? ""));
    const connection: Connection = {
      socket,
      pending: script.drip ?? "",
      filler: script.filler,
      closedAfterMs: undefined,
      status: undefined,
    };
    socket.once("data", (chunk: Buffer) => {
      const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(chunk.toString("latin1"))?.[1]);
      if (status) connection.status = status;
    });
    socket.on("error", () => undefined); // a reset is one way the server closes it
    socket.once("close", () => (connection.closedAfterMs = performance.now() - opened));
    this.#connections.push(connection);
  }

  /** Stops the ticker and closes whatever the server left open. */
  stop(): void {
    clearInterval(this.#ticker);
    for (const { socket } of this.#connections) socket.destroy();
  }

  #tick(): void {
    for (const connection of this.#connections) {
      const { socket } = connection;
      if (connection.closedAfterMs !== undefined || socket.connecting) continue;
      const next = connection.pending.slice(0, 1) || connection.filler;
      if (!next) continue;
      connection.pending = connection.pending.slice(1);
      socket.write(next);
    }
  }
}
