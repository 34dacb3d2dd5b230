/**
 * Closed-loop clients for chaos scenarios: each sends one request after another until the time
 * is up, and every answer is sorted into what a client of RoleMesh may see.
 */
import { Agent, request } from "undici";

/** How answers ended. `lost` is what must never happen: no answer, or an answer cut short. */
export interface Tally {
  sent: number;
  /** 200 with a whole answer (a JSON body with choices, or a stream ending in `[DONE]`). */
  completed: number;
  /** 503 with a `Retry-After` header, by error code (`queue_full`, `no_capacity`, …). */
  rejected: Record<string, number>;
  /** A clean failure after admission: 502 `upstream_error`, or a stream's final `error` event. */
  failedCleanly: number;
  /** Hung past the client's timeout, cut off without an error, or refused without an answer. */
  lost: number;
  /** Any other status or shape, e.g. `"503 without Retry-After"`: count. */
  unexpected: Record<string, number>;
}

export interface LoadOptions {
  /** Where the server answers, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /**
   * The n-th request: its path (e.g. `/v1/chat/completions`) and JSON body; `stream: true` in
   * the body reads the answer as SSE.
   */
  next(n: number): { path: string; body: Record<string, unknown> };
  concurrency: number;
  durationMs: number;
  headers?: Record<string, string>;
  /** A request still unanswered after this long counts as lost (hung). */
  clientTimeoutMs?: number;
  /** After a 503, a client waits up to this long (random) before its next request. */
  pauseAfterRejectMs?: number;
}

export function emptyTally(): Tally {
  return { sent: 0, completed: 0, rejected: {}, failedCleanly: 0, lost: 0, unexpected: {} };
}

/** Adds `from` into `into`. */
export function addTally(into: Tally, from: Tally): Tally {
  into.sent += from.sent;
  into.completed += from.completed;
  into.failedCleanly += from.failedCleanly;
  into.lost += from.lost;
  for (const [key, count] of Object.entries(from.rejected)) bump(into.rejected, key, count);
  for (const [key, count] of Object.entries(from.unexpected)) bump(into.unexpected, key, count);
  return into;
}

export async function closedLoop(options: LoadOptions): Promise<Tally> {
  const tally = emptyTally();
  const dispatcher = new Agent({ connections: options.concurrency + 1 });
  const endAt = performance.now() + options.durationMs;
  let n = 0;
  const client = async () => {
    while (performance.now() < endAt) {
      const outcome = await send(options, options.next(n++), dispatcher);
      tally.sent++;
      record(tally, outcome);
      if (outcome.kind === "rejected") await pause(options.pauseAfterRejectMs ?? 0);
    }
  };
  try {
    await Promise.all(Array.from({ length: options.concurrency }, client));
  } finally {
    await dispatcher.close();
  }
  return tally;
}

type Outcome =
  | { kind: "completed" | "failedCleanly" | "lost" }
  | { kind: "rejected"; code: string }
  | { kind: "unexpected"; what: string };

async function send(
  options: LoadOptions,
  { path, body }: { path: string; body: Record<string, unknown> },
  dispatcher: Agent,
): Promise<Outcome> {
  const signal = AbortSignal.timeout(options.clientTimeoutMs ?? 60_000);
  try {
    const answer = await request(`${options.baseUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...options.headers },
      body: JSON.stringify(body),
      dispatcher,
      signal,
    });
    const text = await answer.body.text();
    return judge(answer.statusCode, answer.headers["retry-after"], text, body.stream === true);
  } catch (err) {
    return signal.aborted ? { kind: "lost" } : lostOrRefused(err);
  }
}

/** A connection the server never took is no admitted request: only one it dropped is lost. */
function lostOrRefused(err: unknown): Outcome {
  const code = (err as { code?: unknown }).code;
  return code === "ECONNREFUSED"
    ? { kind: "unexpected", what: "connection refused" }
    : { kind: "lost" };
}

function judge(
  status: number,
  retryAfter: string | string[] | undefined,
  text: string,
  stream: boolean,
): Outcome {
  if (status === 200) {
    if (stream) {
      if (text.includes("data: [DONE]")) return { kind: "completed" };
      return /data: \{"error":/.test(text) ? { kind: "failedCleanly" } : { kind: "lost" };
    }
    const parsed = parse(text) as { choices?: unknown[]; data?: unknown[] } | undefined;
    return parsed?.choices?.length || parsed?.data?.length
      ? { kind: "completed" }
      : { kind: "unexpected", what: "200 without choices" };
  }
  const code = (parse(text) as { error?: { code?: unknown } } | undefined)?.error?.code;
  if (status === 502 && code === "upstream_error") return { kind: "failedCleanly" };
  if (status === 503 && typeof code === "string") {
    return Number(retryAfter) >= 1
      ? { kind: "rejected", code }
      : { kind: "unexpected", what: `503 ${code} without Retry-After` };
  }
  return { kind: "unexpected", what: `${status} ${String(code ?? text.slice(0, 80))}` };
}

function record(tally: Tally, outcome: Outcome): void {
  if (outcome.kind === "rejected") bump(tally.rejected, outcome.code);
  else if (outcome.kind === "unexpected") bump(tally.unexpected, outcome.what);
  else tally[outcome.kind]++;
}

function bump(counts: Record<string, number>, key: string, by = 1): void {
  counts[key] = (counts[key] ?? 0) + by;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function pause(upToMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.random() * upToMs));
}

/** `{a: 1, b: 2}` as `a:1,b:2`, for a figure. */
export function counts(record: Record<string, number>): string {
  return (
    Object.entries(record)
      .map(([key, count]) => `${key}:${count}`)
      .join(",") || "0"
  );
}
