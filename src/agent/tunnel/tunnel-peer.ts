import { EventEmitter, once } from "node:events";
import { connect as connectHttp2, constants } from "node:http2";
import type { ClientHttp2Session } from "node:http2";
import { createServer } from "node:net";
import type { AddressInfo, Server, Socket } from "node:net";
import { connect as connectTls } from "node:tls";
import type { TLSSocket } from "node:tls";
import { Deferred, waitFor } from "../../core/async.js";
import { RoleMeshError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import type { TunnelState } from "../../protocol/split.js";
import { reset, splice } from "./splice.js";
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

const { HTTP2_METHOD_CONNECT, NGHTTP2_CANCEL } = constants;

/** Reconnection backoff: doubles from the first to the cap, with jitter. */
const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5000;
/** A dial (TCP, TLS and the server's HTTP/2 settings) that takes longer is a failure. */
const CONNECT_TIMEOUT_MS = 10_000;

export interface TunnelPeerOptions {
  /** This agent's key and certificate, presented to the remote agent. */
  identity: TunnelIdentity;
  /** The remote agent's host (that of its `agent_url`). */
  host: string;
  /** Its tunnel port, as it registered it. */
  port: number;
  /** Its certificate fingerprint as it registered it; any other certificate is refused. */
  fingerprint: string;
  log: Logger;
}

/**
 * One link to one remote agent's tunnel (SPEC §12): a single TLS 1.3 session that carries every
 * relayed connection as an HTTP/2 stream. `openLocal(target)` gives a 127.0.0.1 port whose
 * connections come out at `target` on the remote agent. The session is used only once the
 * remote certificate's fingerprint matched the pinned one and the remote agent accepted this
 * one's (its HTTP/2 settings arrived); it is dialled again, with backoff, whenever it breaks.
 * While the link is down, local connections are reset at once rather than held.
 *
 * `state` is `connecting` until the first dial ends, `connected` while a session is up, and
 * `failed` after a dial or a session failed, while it dials again (a certificate that is not
 * the pinned one included: the remote agent may be replaced by one that holds it). Emits
 * `state` on every change.
 */
export class TunnelPeer extends EventEmitter<{ state: [TunnelState] }> {
  readonly #options: TunnelPeerOptions;
  #state: TunnelState = "connecting";
  /** The connection of the current dial or session, if any. */
  #socket: TLSSocket | undefined;
  /** The session, while connected. */
  #session: ClientHttp2Session | undefined;
  /** Resolved while connected; replaced when the link goes down, rejected by `close()`. */
  #connected = new Deferred();
  #lastError = "not dialled yet";
  #failures = 0;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  #started = false;
  readonly #listeners = new Map<string, Server>();
  readonly #sockets = new Set<Socket>();
  #bytesSent = 0;
  #bytesReceived = 0;

  constructor(options: TunnelPeerOptions) {
    super();
    this.#options = options;
  }

  get state(): TunnelState {
    return this.#state;
  }

  /** Payload bytes sent to the remote agent, over every session so far. */
  get bytesSent(): number {
    return this.#bytesSent;
  }

  /** Payload bytes received from the remote agent, over every session so far. */
  get bytesReceived(): number {
    return this.#bytesReceived;
  }

  /** Dials the remote agent, and again whenever the link breaks, until `close()`. */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#dial();
  }

  /**
   * Resolves once the link is connected; rejects with 503 `node_unreachable` (naming the last
   * failure) when `timeoutMs` passes first or the peer is closed. The host waits on this before
   * it starts llama-server, which would silently fall back to the CPU over a dead link.
   */
  async ready(timeoutMs: number): Promise<void> {
    if (this.#state === "connected") return;
    await waitFor(
      this.#connected.promise,
      Date.now() + timeoutMs,
      undefined,
      () => new RoleMeshError("node_unreachable", `${this.#describe()}: ${this.#lastError}`),
    );
  }

  /**
   * A 127.0.0.1 port whose connections are relayed to `target` on the remote agent, each as a
   * stream of this link; the same port for the same target. A connection the remote agent
   * refuses, or one open when the link breaks, is reset.
   */
  async openLocal(target: string): Promise<number> {
    if (!TARGET_NAME.test(target)) throw new Error(`not a tunnel target name: ${target}`);
    if (this.#closed) throw new Error(`${this.#describe()} is closed`);
    let server = this.#listeners.get(target);
    if (!server) {
      server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) =>
        this.#relay(socket, target),
      );
      this.#listeners.set(target, server);
      server.once("error", () => this.#listeners.delete(target));
      server.listen(0, "127.0.0.1");
    }
    if (!server.listening) await once(server, "listening");
    return (server.address() as AddressInfo).port;
  }

  /** Stops dialling, closes the local ports, their connections and the session. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#connected.reject(new RoleMeshError("node_unreachable", `${this.#describe()} is closed`));
    const listeners = [...this.#listeners.values()].map(
      (server) => new Promise((resolve) => server.close(resolve)),
    );
    for (const socket of this.#sockets) reset(socket);
    this.#session?.destroy();
    this.#socket?.destroy();
    await Promise.all(listeners);
  }

  #dial(): void {
    const { host, port, identity, fingerprint } = this.#options;
    let accepted: ClientHttp2Session | undefined;
    let session: ClientHttp2Session | undefined;
    let ended = false;
    // The first failure of a dial, or of the session it made, counts; its echoes do not.
    const fail = (reason: string, level: "warn" | "error" = "warn") => {
      if (ended) return;
      ended = true;
      // The session goes with its socket: one left open keeps Node from ever exiting.
      session?.destroy();
      socket.destroy();
      if (accepted && this.#session === accepted) this.#session = undefined;
      this.#down(reason, level);
    };
    const socket = connectTls({
      ...TUNNEL_TLS,
      host,
      port,
      key: identity.key,
      cert: identity.cert,
      timeout: CONNECT_TIMEOUT_MS,
    });
    this.#socket = socket;
    let secured = false;
    // After the TLS handshake and before its HTTP/2 settings, the remote agent closing the
    // connection (cleanly or with a reset, as it likes) means it refused this agent's certificate.
    const explain = (detail: string) =>
      secured && !accepted
        ? `the remote agent closed the connection before accepting this agent's certificate (${detail})`
        : detail;
    socket.once("timeout", () => fail(`no answer within ${CONNECT_TIMEOUT_MS} ms`));
    socket.once("error", (err) => fail(explain(err.message)));
    socket.once("close", () => fail(explain("connection closed")));
    socket.once("secureConnect", () => {
      secured = true;
      const presented = peerFingerprint(socket);
      if (presented !== fingerprint) {
        const pin = `its certificate ${presented ?? "(none)"} is not the registered ${fingerprint}`;
        return fail(`refused the remote agent: ${pin}`, "error");
      }
      socket.setNoDelay(true);
      const opened = connectHttp2(`https://${host}:${port}`, {
        createConnection: () => socket,
        settings: TUNNEL_SETTINGS,
        maxSessionMemory: TUNNEL_SESSION_MEMORY_MB,
      });
      session = opened;
      opened.on("error", (err) => fail(explain(err.message)));
      opened.once("close", () => fail(explain("session closed")));
      opened.once("goaway", () => fail("the remote agent is going away"));
      // Its settings arrive only once it has accepted this agent's certificate.
      opened.once("remoteSettings", () => {
        if (ended) return;
        socket.setTimeout(0);
        opened.setLocalWindowSize(TUNNEL_SESSION_WINDOW);
        keepAlive(opened);
        accepted = opened;
        this.#up(opened);
      });
    });
  }

  #up(session: ClientHttp2Session): void {
    if (this.#closed) {
      session.destroy();
      return;
    }
    this.#session = session;
    this.#failures = 0;
    this.#setState("connected");
    this.#connected.resolve();
  }

  #down(reason: string, level: "warn" | "error"): void {
    if (this.#closed) return;
    const wasConnected = this.#state === "connected";
    // Each new reason is said once; the same one again, attempt after attempt, only in debug.
    const repeated = !wasConnected && reason === this.#lastError;
    this.#lastError = reason;
    if (wasConnected) this.#connected = new Deferred();
    this.#failures++;
    const delay = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** (this.#failures - 1));
    const jittered = Math.round(delay * (0.5 + Math.random() / 2));
    this.#options.log[repeated ? "debug" : level](
      { host: this.#options.host, port: this.#options.port, reason, retry_in_ms: jittered },
      wasConnected ? "tunnel: link lost" : "tunnel: could not connect",
    );
    this.#setState("failed");
    this.#retry = setTimeout(() => this.#dial(), jittered);
    this.#retry.unref();
  }

  #relay(socket: Socket, target: string): void {
    const session = this.#session;
    if (!session || this.#state !== "connected") {
      reset(socket);
      return;
    }
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    socket.on("error", () => {});
    const stream = session.request(
      { ":method": HTTP2_METHOD_CONNECT, ":authority": target },
      { endStream: false },
    );
    stream.on("error", () => {});
    const cancel = () => stream.close(NGHTTP2_CANCEL);
    const lost = () => reset(socket);
    socket.once("close", cancel);
    stream.once("close", lost);
    stream.once("response", (headers) => {
      socket.off("close", cancel);
      stream.off("close", lost);
      const status = headers[":status"];
      if (status !== 200) {
        this.#options.log.warn({ target, status }, "tunnel: the remote agent refused a stream");
        reset(socket);
        stream.close(NGHTTP2_CANCEL);
        return;
      }
      splice(socket, stream, {
        sent: (bytes) => (this.#bytesSent += bytes),
        received: (bytes) => (this.#bytesReceived += bytes),
      });
    });
  }

  #setState(state: TunnelState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit("state", state);
  }

  #describe(): string {
    return `the tunnel to ${this.#options.host}:${this.#options.port}`;
  }
}
