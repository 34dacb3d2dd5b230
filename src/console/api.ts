/**
 * The console's calls to its gateway. The key (admin key, or a client key when the gateway
 * has keys) is entered once and kept for the tab in sessionStorage.
 */
import { readEventStream } from "./sse.js";

const KEY_ITEM = "rolemesh.key";

/** An error answered by the gateway, in the OpenAI shape (SPEC §7). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }

  /** True when a key is missing or wrong: the console asks for one. */
  get needsKey(): boolean {
    return this.status === 401;
  }
}

export function savedKey(): string {
  return sessionStorage.getItem(KEY_ITEM) ?? "";
}

export function saveKey(key: string): void {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

/** `fetch` with the saved key; a non-2xx answer throws an ApiError. */
export async function call(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const key = savedKey();
  if (key) headers.set("authorization", `Bearer ${key}`);
  // Every change is declared JSON, body or not: the gateway refuses anything else (415).
  if (init.body !== undefined || (init.method ?? "GET") !== "GET")
    headers.set("content-type", "application/json");
  const response = await fetch(path, { ...init, headers });
  if (!response.ok) throw await apiError(response);
  return response;
}

export async function postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  const response = await call(path, {
    method: "POST",
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });
  return (await response.json()) as T;
}

/** Reads an SSE response, handing each event's parsed JSON to `onEvent`. */
export async function readJsonEvents(
  response: Response,
  onEvent: (event: unknown) => void,
): Promise<void> {
  if (!response.body) return;
  await readEventStream(response.body, (data) => {
    if (data !== "[DONE]") onEvent(JSON.parse(data));
  });
}

async function apiError(response: Response): Promise<ApiError> {
  let code = "http_error";
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message);
}
