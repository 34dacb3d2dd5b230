/**
 * HTTP/1.1 over a plain socket, for requests an HTTP client refuses to send: bytes that break
 * the grammar, absolute-form targets, header values with control bytes, oversized heads.
 */
import { connect } from "node:net";

export interface RawAnswer {
  /** The status of the first final response; undefined when the server closed without one. */
  status: number | undefined;
  /** Lowercased header names (the last of repeated ones). */
  headers: Record<string, string>;
  body: string;
}

const HEAD_END = "\r\n\r\n";

/**
 * Sends `bytes` as they are and reads the first final response: to its Content-Length, its
 * last chunk, or the close; a stream or a HEAD answer ends with its head. Rejects when nothing
 * complete arrived within `timeoutMs`.
 */
export function rawExchange(
  url: string,
  bytes: string | Buffer,
  options: { timeoutMs: number; head?: boolean },
): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let received = Buffer.alloc(0);
    const finish = (answer: RawAnswer) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const answer = parseAnswer(received, options.head ?? false, false);
      if (answer) finish(answer);
    });
    // The server may close before reading all we sent (e.g. after a 431): not our failure.
    socket.on("error", () => undefined);
    socket.on("close", () => {
      finish(parseAnswer(received, options.head ?? false, true) ?? noAnswer());
    });
    socket.write(bytes);
  });
}

const noAnswer = (): RawAnswer => ({ status: undefined, headers: {}, body: "" });

/** The first final response in `data` once it is complete (or `closed` ends it), else undefined. */
function parseAnswer(data: Buffer, head: boolean, closed: boolean): RawAnswer | undefined {
  let start = 0;
  for (;;) {
    const end = data.indexOf(HEAD_END, start);
    if (end < 0) return undefined;
    const lines = data.subarray(start, end).toString("latin1").split("\r\n");
    const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(lines[0] ?? "")?.[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0)
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const bodyStart = end + HEAD_END.length;
    // 1xx (e.g. 100 Continue) precede the final response.
    if (status >= 100 && status < 200) {
      start = bodyStart;
      continue;
    }
    const answer = (body: Buffer): RawAnswer => ({ status, headers, body: body.toString("utf8") });
    const rest = data.subarray(bodyStart);
    if (head || status === 204 || status === 304) return answer(Buffer.alloc(0));
    if ((headers["content-type"] ?? "").startsWith("text/event-stream")) return answer(rest);
    if (headers["content-length"] !== undefined) {
      const length = Number(headers["content-length"]);
      if (rest.length >= length) return answer(rest.subarray(0, length));
      return closed ? answer(rest) : undefined;
    }
    if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
      const body = dechunk(rest);
      return body ? answer(body) : closed ? answer(rest) : undefined;
    }
    return closed ? answer(rest) : undefined;
  }
}

/** A chunked body decoded, or undefined while its last chunk has not arrived. */
function dechunk(data: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf("\r\n", at);
    if (lineEnd < 0) return undefined;
    const size = parseInt(data.subarray(at, lineEnd).toString("latin1"), 16);
    if (!Number.isFinite(size)) return undefined;
    if (size === 0) return Buffer.concat(parts);
    const chunkStart = lineEnd + 2;
    if (data.length < chunkStart + size + 2) return undefined;
    parts.push(data.subarray(chunkStart, chunkStart + size));
    at = chunkStart + size + 2;
  }
}
