import { pino } from "pino";
import type { Logger, LevelWithSilent } from "pino";

export type { Logger };

/** Paths that may hold secrets; pino replaces them before anything is written. */
const REDACT = [
  "auth_token",
  "join_token",
  "admin_key",
  "node_secret",
  "*.node_secret",
  "*.auth_token",
  "*.join_token",
  "*.admin_key",
  "headers.authorization",
  "*.headers.authorization",
];

/**
 * JSON lines on stdout, one logger per process, children tagged by component. Written through
 * Node's own `process.stdout` rather than pino's default sonic-boom writer: when a slow reader
 * fills the pipe (EAGAIN), sonic-boom was seen to throw from `log.info` inside a request
 * handler (a 500 for a request that had succeeded); Node's stream queues instead.
 */
export function createLogger(level: LevelWithSilent = "info", name = "rolemesh"): Logger {
  return pino({ name, level, redact: { paths: REDACT, censor: "[redacted]" } }, process.stdout);
}
