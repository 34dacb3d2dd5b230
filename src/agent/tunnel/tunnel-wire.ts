/**
 * What both ends of a tunnel agree on: TLS 1.3 with a certificate on each side, HTTP/2 inside
 * it (ALPN `h2`), one CONNECT stream per relayed TCP connection naming its target.
 */
import type { Http2Session, Settings } from "node:http2";
import type { TLSSocket } from "node:tls";

/** TLS options of both ends; the certificate check is the fingerprint pin, not a CA. */
export const TUNNEL_TLS = {
  minVersion: "TLSv1.3",
  ALPNProtocols: ["h2"],
  // Self-signed certificates fail CA validation by design; each end checks the other's
  // fingerprint itself before any HTTP/2 frame is exchanged (`peerFingerprint`).
  rejectUnauthorized: false,
} as const;

/**
 * HTTP/2 settings of both ends. The default 64 KiB stream window caps a stream at one window per
 * round trip, far below what a model upload needs; 16 MiB per stream (and per session, set with
 * `setLocalWindowSize`) lets a link run at the speed of TLS. Frames of 256 KiB cut per-frame cost.
 */
export const TUNNEL_SETTINGS: Settings = {
  enablePush: false,
  initialWindowSize: 16 * 1024 * 1024,
  maxFrameSize: 256 * 1024,
  // A peer is one host's llama-server: a handful of connections per device, never hundreds.
  maxConcurrentStreams: 256,
};

/** The session window, which covers all streams of a link. */
export const TUNNEL_SESSION_WINDOW = 64 * 1024 * 1024;

/** Node's cap on a session's buffered data, in MiB; it must exceed the windows above. */
export const TUNNEL_SESSION_MEMORY_MB = 128;

/**
 * A target name as a CONNECT stream's `:authority` carries it: a name the server maps to one of
 * its loopback ports, never a host or port, so a peer can reach only what the server exposes.
 */
export const TARGET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The SHA-256 fingerprint (`AA:BB:…`) of the certificate the other end presented, if any. */
export function peerFingerprint(socket: TLSSocket): string | undefined {
  return socket.getPeerX509Certificate()?.fingerprint256;
}

/** How often each end pings the other; a ping still unanswered at the next one ends the session. */
export const TUNNEL_PING_INTERVAL_MS = 15_000;

/**
 * Ends `session` when the other end stops answering pings: a peer whose machine vanished sends
 * no FIN, and its session would otherwise look open until TCP gives up, many minutes later.
 */
export function keepAlive(session: Http2Session, intervalMs = TUNNEL_PING_INTERVAL_MS): void {
  let waiting = false;
  const timer = setInterval(() => {
    if (waiting) {
      session.destroy(new Error(`no answer to a ping within ${intervalMs} ms`));
      return;
    }
    waiting = session.ping((err) => {
      if (!err) waiting = false;
    });
  }, intervalMs);
  timer.unref();
  session.once("close", () => clearInterval(timer));
}
