import type { ServerResponse } from "node:http";
import { RoleMeshError, toRoleMeshError } from "../errors.js";

/** Sends `body` as JSON; a response that already started is left alone. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Answers any error in the OpenAI shape, with `Retry-After` when the error carries one. */
export function sendError(res: ServerResponse, err: unknown): void {
  const error = toRoleMeshError(err);
  const headers: Record<string, string> =
    error.retryAfterS === undefined
      ? {}
      : { "Retry-After": String(Math.max(1, Math.ceil(error.retryAfterS))) };
  if (res.headersSent) {
    // An answer that ended itself (a held stream that told its failure as an event) stays.
    if (!res.writableEnded) res.destroy(error);
    return;
  }
  sendJson(res, error.status, error.toBody(), headers);
}

export { RoleMeshError };
