import type { IncomingMessage } from "node:http";
import { RoleMeshError } from "../errors.js";

/**
 * Reads the whole request body, refusing it with 413 `request_too_large` as soon as it passes
 * `limitBytes` (by its Content-Length or while it streams in).
 */
export async function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const tooLarge = () =>
    new RoleMeshError(
      "request_too_large",
      `request body is larger than the limit of ${limitBytes} bytes`,
    );
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limitBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON object body; anything else is a 400 `invalid_request` that says what was wrong. */
export function parseJsonObject(raw: Buffer): Record<string, unknown> {
  if (raw.length === 0)
    throw new RoleMeshError("invalid_request", "request body is empty; expected a JSON object");
  let value: unknown;
  try {
    value = JSON.parse(raw.toString("utf8"));
  } catch (err) {
    throw new RoleMeshError(
      "invalid_request",
      `request body is not valid JSON: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new RoleMeshError("invalid_request", "request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

/** Reads a body of arguments that may be left out: an empty body is `{}`. */
export async function readOptionalJsonObject(
  req: IncomingMessage,
  limitBytes: number,
): Promise<Record<string, unknown>> {
  const raw = await readBody(req, limitBytes);
  return raw.length > 0 ? parseJsonObject(raw) : {};
}
