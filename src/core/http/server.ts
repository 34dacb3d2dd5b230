import { createServer } from "node:http";
import type { RequestListener, Server } from "node:http";

export interface SlowClientLimits {
  /** The request head must be complete this long after its first byte (else 408, closed). */
  headersTimeoutMs: number;
  /** The whole request, body included, must have arrived by then (else 408, closed). */
  requestTimeoutMs: number;
  /** How often node looks for connections past those limits. */
  checkIntervalMs: number;
}

/**
 * Against slow clients (slowloris). node 20's defaults hold a connection whose head trickles
 * in for 60 s, a body for 300 s, and look only every 30 s. A real client sends its head in one
 * packet; 10 s allows for a slow link. Two minutes for the whole request still lets the largest
 * body (8 MiB) arrive at ~70 KB/s; a body that merely stops is refused sooner (readBody).
 */
export const SLOW_CLIENT_LIMITS: SlowClientLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 120_000,
  checkIntervalMs: 1_000,
};

/** The HTTP server of the agent's and the gateway's APIs. */
export function createApiServer(
  listener: RequestListener,
  limits: SlowClientLimits = SLOW_CLIENT_LIMITS,
): Server {
  return createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: limits.checkIntervalMs,
    },
    listener,
  );
}
