import { once } from "node:events";
import { constants, performServerHandshake } from "node:http2";
import type { IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from "node:http2";
import { connect } from "node:net";
import type { AddressInfo, Socket } from "node:net";
import { createServer } from "node:tls";
import type { Server, TLSSocket } from "node:tls";
import type { Logger } from "../../core/logger.js";
import { splice } from "./splice.js";
import type { TunnelIdentity } from "./tunnel-identity.js";
import {
  TARGET_NAME,
  TUNNEL_SESSION_MEMORY_MB,
  TUNNEL_SESSION_WINDOW,
  TUNNEL_SETTINGS,
  TUNNEL_TLS,
  keepAlive,
  peerFingerprint,
} from "./tunnel-wire.js";

const { HTTP2_METHOD_CONNECT } = constants;

/** A handshake that has not finished by then is dropped (slow or silent clients hold nothing). */
const HANDSHAKE_TIMEOUT_MS = 10_000;

export interface TunnelServerOptions {
  /** The key and certificate this agent presents; peers accept it by its fingerprint. */
  identity: TunnelIdentity;
  /** The address to listen on (the agent's `listen_host`); `127.0.0.1` keeps the tunnel on this machine. */
  host: string;
  /** The port to listen on (`tunnel_port`); 0 takes a free one, read from `port` after `start()`. */
  port: number;
  /**
   * Whether the certificate with this fingerprint belongs to a fleet member allowed in. Asked
   * when a session opens and again for each stream, so the answer may change at runtime;
   * `recheckPeers()` also closes the sessions it no longer allows.
   */
  isAllowed(fingerprint: string): boolean;
  /**
   * The 127.0.0.1 port that the target `name` stands for, as this peer may reach it, or
   * undefined to refuse the stream (404). Names only, so a peer reaches nothing else.
   */
  resolveTarget(name: string, peerFingerprint: string): number | undefined;
  log: Logger;
}

/** What the tunnel carried for one peer (by certificate fingerprint) since the server started. */
export interface TunnelPeerStats {
  /** Payload bytes received from the peer and written to local targets. */
  bytesIn: number;
  /** Payload bytes read from local targets and sent to the peer. */
  bytesOut: number;
  /** Streams relayed right now. */
  openStreams: number;
  /** Sessions open right now (one per peer, unless it is reconnecting). */
  sessions: number;
}

/**
 * The agent's tunnel endpoint (SPEC §12): TLS 1.3 where both sides present a certificate, and
 * HTTP/2 inside, each CONNECT stream relayed to the loopback port of the target it names. A
 * connection whose certificate is not an allowed fleet member's is closed right after the TLS
 * handshake, before any HTTP/2 session exists: nothing it sent is parsed, let alone relayed.
 */
export class TunnelServer {
  readonly #options: TunnelServerOptions;
  readonly #server: Server;
  /** Every connection, from its first byte: `close()` leaves none behind. */
  readonly #connections = new Set<Socket>();
  readonly #sessions = new Map<ServerHttp2Session, string>();
  readonly #targets = new Set<Socket>();
  readonly #stats = new Map<string, TunnelPeerStats>();

  constructor(options: TunnelServerOptions) {
    this.#options = options;
    this.#server = createServer({
      ...TUNNEL_TLS,
      key: options.identity.key,
      cert: options.identity.cert,
      requestCert: true,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
    this.#server.on("connection", (socket: Socket) => {
      this.#connections.add(socket);
      socket.once("close", () => this.#connections.delete(socket));
    });
    this.#server.on("secureConnection", (socket) => this.#admit(socket));
    this.#server.on("tlsClientError", (err, socket) =>
      options.log.debug(
        { remote: socket.remoteAddress, err: err.message },
        "tunnel: TLS handshake failed",
      ),
    );
  }

  /** The port it listens on, once started. */
  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Listens; rejects when the address cannot be bound. */
  async start(): Promise<void> {
    this.#server.listen(this.#options.port, this.#options.host);
    await once(this.#server, "listening");
    this.#options.log.info(
      {
        host: this.#options.host,
        port: this.port,
        fingerprint: this.#options.identity.fingerprint,
      },
      "tunnel listening",
    );
  }

  /** Stops listening and closes every session, relayed socket and connection. */
  async close(): Promise<void> {
    const closed = this.#server.listening ? once(this.#server, "close") : undefined;
    this.#server.close();
    for (const session of this.#sessions.keys()) session.destroy();
    for (const socket of [...this.#targets, ...this.#connections]) socket.destroy();
    await closed;
  }

  /** Closes the sessions of peers that `isAllowed` no longer allows. */
  recheckPeers(): void {
    for (const [session, fingerprint] of this.#sessions) {
      if (!this.#options.isAllowed(fingerprint)) {
        this.#options.log.warn({ fingerprint }, "tunnel: closing a peer no longer allowed");
        session.destroy();
      }
    }
  }

  /** Bytes and streams per peer certificate fingerprint. */
  stats(): Record<string, TunnelPeerStats> {
    return Object.fromEntries([...this.#stats].map(([peer, stats]) => [peer, { ...stats }]));
  }

  #admit(socket: TLSSocket): void {
    const fingerprint = peerFingerprint(socket);
    if (!fingerprint || !this.#options.isAllowed(fingerprint) || socket.alpnProtocol !== "h2") {
      this.#options.log.warn(
        { remote: socket.remoteAddress, fingerprint: fingerprint ?? null },
        "tunnel: refused a connection that is not an allowed fleet member",
      );
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const session = performServerHandshake(socket, {
      settings: TUNNEL_SETTINGS,
      maxSessionMemory: TUNNEL_SESSION_MEMORY_MB,
    });
    session.setLocalWindowSize(TUNNEL_SESSION_WINDOW);
    keepAlive(session);
    const stats = this.#peerStats(fingerprint);
    this.#sessions.set(session, fingerprint);
    stats.sessions++;
    this.#options.log.info({ remote: socket.remoteAddress, fingerprint }, "tunnel: peer connected");
    session.on("stream", (stream, headers) => this.#relay(stream, headers, fingerprint, stats));
    session.on("error", (err) =>
      this.#options.log.debug({ fingerprint, err: err.message }, "tunnel: session failed"),
    );
    session.once("close", () => {
      this.#sessions.delete(session);
      stats.sessions--;
      this.#options.log.info({ fingerprint }, "tunnel: peer disconnected");
    });
  }

  #relay(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    fingerprint: string,
    stats: TunnelPeerStats,
  ): void {
    stream.on("error", () => {});
    if (headers[":method"] !== HTTP2_METHOD_CONNECT) return refuse(stream, 405);
    if (!this.#options.isAllowed(fingerprint)) return refuse(stream, 403);
    const name = headers[":authority"] ?? "";
    const port = TARGET_NAME.test(name)
      ? this.#options.resolveTarget(name, fingerprint)
      : undefined;
    if (port === undefined) {
      this.#options.log.warn({ fingerprint, target: name }, "tunnel: refused an unknown target");
      return refuse(stream, 404);
    }
    const target = connect({ host: "127.0.0.1", port, allowHalfOpen: true, noDelay: true });
    this.#targets.add(target);
    target.once("close", () => this.#targets.delete(target));
    const cancel = () => target.destroy();
    stream.once("close", cancel);
    target.once("error", (err) => {
      if (stream.headersSent) return;
      this.#options.log.warn(
        { fingerprint, target: name, port, err: err.message },
        "tunnel: target unreachable",
      );
      refuse(stream, 502);
    });
    target.once("connect", () => {
      stream.off("close", cancel);
      stream.respond({ ":status": 200 });
      stats.openStreams++;
      stream.once("close", () => stats.openStreams--);
      splice(target, stream, {
        sent: (bytes) => (stats.bytesOut += bytes),
        received: (bytes) => (stats.bytesIn += bytes),
      });
    });
  }

  #peerStats(fingerprint: string): TunnelPeerStats {
    let stats = this.#stats.get(fingerprint);
    if (!stats) {
      stats = { bytesIn: 0, bytesOut: 0, openStreams: 0, sessions: 0 };
      this.#stats.set(fingerprint, stats);
    }
    return stats;
  }
}

/** Answers a CONNECT with a refusal and ends the stream; nothing is relayed. */
function refuse(stream: ServerHttp2Stream, status: number): void {
  if (!stream.destroyed) stream.respond({ ":status": status }, { endStream: true });
}
