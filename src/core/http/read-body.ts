import type { IncomingMessage } from "node:http";
import { RoleMeshError } from "../errors.js";
import { ClientGoneError } from "./client-signal.js";

/**
 * How long a body may pause before the request is refused: a client that stops sending halfway
 * would otherwise hold its connection until node's requestTimeout.
 */
export const BODY_IDLE_TIMEOUT_MS = 10_000;

/**
 * Deeper than any real request nests, and far below the depth at which re-serializing a body
 * (JSON.stringify recurses) overflows the stack.
 */
export const MAX_JSON_DEPTH = 128;

/**
 * Reads the whole request body, refusing it with 413 `request_too_large` as soon as it passes
 * `limitBytes` (by its Content-Length or while it streams in), and with 400 when it stops
 * arriving for `idleMs`. A client that leaves halfway is a ClientGoneError: nobody to answer.
 */
export function readBody(
  req: IncomingMessage,
  limitBytes: number,
  idleMs = BODY_IDLE_TIMEOUT_MS,
): Promise<Buffer> {
  const tooLarge = () =>
    new RoleMeshError(
      "request_too_large",
      `request body is larger than the limit of ${limitBytes} bytes`,
    );
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limitBytes) return Promise.reject(tooLarge());
  if (req.destroyed) return Promise.reject(new ClientGoneError());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const idle = setTimeout(
      () =>
        settle(
          new RoleMeshError(
            "invalid_request",
            `the request body stopped arriving: nothing came for ${idleMs / 1000} s`,
          ),
        ),
      idleMs,
    );
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limitBytes) return settle(tooLarge());
      chunks.push(chunk);
      idle.refresh();
    };
    const onEnd = () => settle();
    // 'close' before 'end': the connection is gone with the body unfinished.
    const onClose = () => settle(new ClientGoneError());
    function settle(err?: Error) {
      clearTimeout(idle);
      req.off("data", onData).off("end", onEnd).off("close", onClose);
      if (!err) return resolve(Buffer.concat(chunks));
      // The rest is discarded as it comes, so a client that keeps sending can read the answer.
      req.resume();
      reject(err);
    }
    req.on("data", onData).once("end", onEnd).once("close", onClose);
  });
}

/** Parses a JSON object body; anything else is a 400 `invalid_request` that says what was wrong. */
export function parseJsonObject(raw: Buffer): Record<string, unknown> {
  if (raw.length === 0)
    throw new RoleMeshError("invalid_request", "request body is empty; expected a JSON object");
  if (nestsDeeperThan(raw, MAX_JSON_DEPTH)) {
    throw new RoleMeshError(
      "invalid_request",
      `request body nests arrays or objects deeper than ${MAX_JSON_DEPTH} levels`,
    );
  }
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

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPENERS = new Set([0x5b, 0x7b]); // [ {
const CLOSERS = new Set([0x5d, 0x7d]); // ] }

/**
 * Whether JSON text nests brackets deeper than `limit`, by one scan of its bytes (UTF-8 never
 * puts these ASCII bytes inside a multi-byte character); brackets inside strings do not count.
 */
function nestsDeeperThan(raw: Buffer, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) inString = true;
    else if (OPENERS.has(byte)) {
      if (++depth > limit) return true;
    } else if (CLOSERS.has(byte)) depth--;
  }
  return false;
}
