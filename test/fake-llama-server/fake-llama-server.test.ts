// Checks the fake llama-server against the real one's captured behaviour (shared/llama-server/):
// byte for byte where the real answer is deterministic, by JSON shape (keys, their order, value
// types) where it carries ids, times or generated text. Every test talks raw HTTP/1.1 over a socket,
// as the captures were made, so headers and chunk boundaries are seen exactly as sent.
import { after, before, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const WRAPPER = join(REPO, "test/bin/fake-llama-server");
const SHARED = resolve(REPO, "../shared");
const TRANSCRIPTS = join(SHARED, "llama-server");
/** The model argument as a user would type it from the repository root. */
const MODEL_ARG = "../shared/models/stories260K.gguf";
const MODEL_PATH = resolve(REPO, MODEL_ARG);
const DEADLINE_MS = 15_000;
const TEST_OPTIONS = { timeout: 30_000 };

// ---------------------------------------------------------------------------------------------
// Raw HTTP.

interface RawResponse {
  raw: string;
  status: number;
  head: string;
  body: string;
  /** The payload of each HTTP chunk, for chunked responses. */
  chunks: string[];
  /** False if the connection closed before the headers, or before a chunked body's last chunk. */
  complete: boolean;
}

function parseResponse(raw: Buffer): RawResponse {
  const headEnd = raw.indexOf("\r\n\r\n");
  const head = raw.subarray(0, headEnd).toString();
  const rest = raw.subarray(headEnd + 4);
  const status = Number(head.split(" ")[1]);
  if (!/^Transfer-Encoding: chunked$/im.test(head)) {
    const body = rest.toString();
    return { raw: raw.toString(), status, head, body, chunks: [], complete: headEnd >= 0 };
  }
  const chunks: string[] = [];
  let pos = 0;
  let complete = false;
  for (;;) {
    const lineEnd = rest.indexOf("\r\n", pos);
    if (lineEnd < 0) break;
    const size = parseInt(rest.subarray(pos, lineEnd).toString(), 16);
    if (size === 0) {
      complete = true;
      break;
    }
    if (lineEnd + 2 + size > rest.length) break;
    chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size).toString());
    pos = lineEnd + 2 + size + 2;
  }
  return { raw: raw.toString(), status, head, body: chunks.join(""), chunks, complete };
}

interface Exchange {
  socket: Socket;
  /** Everything received so far. */
  received(): string;
  /** Settles when the connection closes. */
  response: Promise<RawResponse>;
}

/**
 * Sends raw request bytes and collects the response until the connection closes. `onData` sees
 * everything received so far and may end the exchange early by destroying the socket.
 */
function send(port: number, request: string, onData?: (received: string) => void): Exchange {
  const chunks: Buffer[] = [];
  const socket = connect(port, "127.0.0.1", () => socket.write(request));
  const received = () => Buffer.concat(chunks).toString();
  socket.on("data", (data: Buffer) => {
    chunks.push(data);
    onData?.(received());
  });
  const response = new Promise<RawResponse>((resolvePromise, reject) => {
    socket.on("error", reject);
    socket.on("close", () => resolvePromise(parseResponse(Buffer.concat(chunks))));
  });
  return { socket, received, response };
}

function exchange(port: number, request: string): Promise<RawResponse> {
  return send(port, request).response;
}

function httpRequest(method: string, path: string, body?: string): string {
  const lines = [`${method} ${path} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close"];
  if (body !== undefined) {
    lines.push("Content-Type: application/json", `Content-Length: ${Buffer.byteLength(body)}`);
  }
  return `${lines.join("\r\n")}\r\n\r\n${body ?? ""}`;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read ad hoc
type Json = any;

async function call(port: number, method: string, path: string, body?: unknown) {
  const text = body === undefined || typeof body === "string" ? body : JSON.stringify(body);
  const response = await exchange(port, httpRequest(method, path, text));
  return { ...response, json: JSON.parse(response.body) as Json };
}

/** The data of each SSE event in a stream body; "[DONE]" stays a string. */
function sseData(body: string): Json[] {
  return body
    .split("\n\n")
    .filter(Boolean)
    .map((event) => {
      assert.match(event, /^data: /);
      const data = event.slice("data: ".length);
      return data === "[DONE]" ? data : JSON.parse(data);
    });
}

/** Keys (in order) and value types, recursively; arrays by their first element. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.length === 0 ? [] : [shape(value[0])];
  if (value !== null && typeof value === "object") {
    return Object.entries(value).map(([key, v]) => [key, shape(v)]);
  }
  return value === null ? "null" : typeof value;
}

function maskContentLength(head: string): string {
  return head.replace(/^Content-Length: \d+$/m, "Content-Length: N");
}

// ---------------------------------------------------------------------------------------------
// Captures.

interface Transcript {
  request: string;
  response: RawResponse;
}

/** A capture file: the exact request bytes, then the exact response bytes (and maybe notes). */
function transcript(name: string): Transcript {
  const text = readFileSync(join(TRANSCRIPTS, name), "utf8");
  const requestStart = text.indexOf("\n") + 1;
  const responseMarker = text.indexOf("\n\n<<< RESPONSE");
  const responseStart = text.indexOf("\n", responseMarker + 2) + 1;
  const notes = text.indexOf("\n\n### ", responseStart);
  const response = text.slice(responseStart, notes < 0 ? -1 : notes);
  return {
    request: text.slice(requestStart, responseMarker),
    response: parseResponse(Buffer.from(response)),
  };
}

/** A captured server log without its timestamps. */
function capturedLog(name: string): string[] {
  return readFileSync(join(TRANSCRIPTS, name), "utf8")
    .split("\n")
    .filter((line) => /^\d+\.\d\d\.\d{3}\.\d{3} /.test(line))
    .map(withoutTimestamp);
}

function withoutTimestamp(line: string): string {
  return line.replace(/^\d+\.\d\d\.\d{3}\.\d{3} /, "");
}

// ---------------------------------------------------------------------------------------------
// Fake processes.

interface Fake {
  child: ChildProcess;
  port: number;
  stdout(): string;
  stderr(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  port?: number;
  /** Replaces the default `-m MODEL_ARG`. */
  model?: string;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await new Promise((ready) => server.once("listening", ready));
  const { port } = server.address() as AddressInfo;
  await new Promise((closed) => server.close(closed));
  return port;
}

async function spawnFake(args: string[], options: SpawnOptions = {}): Promise<Fake> {
  const port = options.port ?? (await freePort());
  const argv = ["-m", options.model ?? MODEL_ARG, "--host", "127.0.0.1", "--port", String(port)];
  // Detached: the fake leads its own process group, so cleanup can kill the whole group.
  const child = spawn(WRAPPER, [...argv, ...args], {
    cwd: options.cwd ?? REPO,
    env: { ...process.env, ...options.env },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (data: Buffer) => (stdout += data.toString()));
  child.stderr?.on("data", (data: Buffer) => (stderr += data.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.on("exit", (code, signal) => done({ code, signal })),
  );
  return { child, port, stdout: () => stdout, stderr: () => stderr, exit };
}

async function kill(fake: Fake): Promise<void> {
  if (fake.child.exitCode !== null || fake.child.signalCode !== null) return;
  try {
    process.kill(-(fake.child.pid ?? 0), "SIGKILL");
  } catch {
    // Already gone.
  }
  await fake.exit;
}

/** Spawns a fake that is killed when the test ends, however it ends. */
async function fakeForTest(t: TestContext, args: string[], options?: SpawnOptions) {
  const fake = await spawnFake(args, options);
  t.after(() => kill(fake));
  return fake;
}

/** Polls `probe` every 10 ms until it returns a value other than undefined. */
async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Resolves with the response once the fake accepts connections (loading or not). */
function firstAnswer(fake: Fake, request: string): Promise<RawResponse> {
  return until("the listener", () =>
    exchange(fake.port, request).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNREFUSED") return undefined;
      throw error;
    }),
  );
}

async function waitUntilReady(fake: Fake): Promise<void> {
  await until("the model to load", async () => {
    if (fake.child.exitCode !== null) throw new Error(`fake exited early:\n${fake.stderr()}`);
    const response = await firstAnswer(fake, httpRequest("GET", "/health"));
    return response.status === 200 ? true : undefined;
  });
}

function waitForLog(fake: Fake, pattern: RegExp): Promise<string> {
  return until(`a log line matching ${pattern}`, () => fake.stderr().match(pattern)?.[0]);
}

async function stats(fake: Fake): Promise<Json> {
  return (await call(fake.port, "GET", "/fake/stats")).json;
}

function loggedLines(fake: Fake): string[] {
  return fake.stderr().trimEnd().split("\n").map(withoutTimestamp);
}

// ---------------------------------------------------------------------------------------------
// One server for the tests that only make requests. -c 512 and four slots, as in the captures;
// the unknown flags must be skipped, as a supervisor may pass any llama-server option.

const SHARED_SERVER_ARGS = ["-c", "512", "-np", "4", "-ngl", "99", "--flash-attn", "on", "--jinja"];
let shared: Fake;

before(async () => {
  assert.ok(existsSync(MODEL_PATH), `the model is missing: ${MODEL_PATH}`);
  shared = await spawnFake(SHARED_SERVER_ARGS);
  await waitUntilReady(shared);
});

after(() => kill(shared));

// ---------------------------------------------------------------------------------------------
// Loading and readiness.

test(
  "every endpoint answers 503 Loading model until loaded, then /health is 200",
  TEST_OPTIONS,
  async (t) => {
    const fake = await fakeForTest(t, ["--fake-load-ms", "2000"]);
    const captured: { answers: { request: string; raw: string }[] } = JSON.parse(
      readFileSync(join(TRANSCRIPTS, "43-requests-while-loading.json"), "utf8"),
    );
    const health = captured.answers.find((a) => a.request === "GET /health");
    assert.equal((await firstAnswer(fake, httpRequest("GET", "/health"))).raw, health?.raw);
    for (const answer of captured.answers) {
      const [method = "", path = ""] = answer.request.split(" ");
      const body = method === "POST" ? '{"messages":[{"role":"user","content":"Hi"}]}' : undefined;
      const response = await exchange(fake.port, httpRequest(method, path, body));
      assert.equal(response.raw, answer.raw, answer.request);
    }

    await waitUntilReady(fake);
    const log = loggedLines(fake);
    const position = (text: string) => log.findIndex((line) => line.includes(text));
    assert.ok(position(`load_model: loading model '${MODEL_ARG}'`) >= 0);
    assert.ok(position("load_model: loading model") < position("llama_server: model loaded"));
    assert.ok(
      position("model loaded") < position(`listening on http://127.0.0.1:${fake.port}`),
      "listening is logged once the model is loaded",
    );
    const chat = await call(fake.port, "POST", "/v1/chat/completions", {
      messages: [{ role: "user", content: "Hi" }],
    });
    assert.equal(chat.status, 200);
  },
);

test("/health and /v1/health answer the captured bytes", TEST_OPTIONS, async () => {
  for (const name of ["01-health-ready.txt", "02-v1-health.txt"]) {
    const { request, response } = transcript(name);
    assert.equal((await exchange(shared.port, request)).raw, response.raw, name);
  }
});

// ---------------------------------------------------------------------------------------------
// Models.

test(
  "/v1/models and /models have the captured shape; the id is -m as typed",
  TEST_OPTIONS,
  async () => {
    for (const name of ["03-v1-models.txt", "03b-models.txt"]) {
      const { request, response } = transcript(name);
      const answer = await exchange(shared.port, request);
      assert.equal(maskContentLength(answer.head), maskContentLength(response.head));
      const body = JSON.parse(answer.body);
      assert.deepEqual(shape(body), shape(JSON.parse(response.body)));
      assert.equal(body.data[0].id, MODEL_ARG);
      assert.deepEqual(body.data[0].aliases, [MODEL_ARG]);
      assert.equal(body.models[0].name, MODEL_ARG);
      assert.equal(body.data[0].meta.n_ctx, 512);
    }
  },
);

test("--alias names the model in /v1/models and in responses", TEST_OPTIONS, async (t) => {
  const fake = await fakeForTest(t, ["--alias", "stories260k"]);
  await waitUntilReady(fake);
  const { json } = await call(fake.port, "GET", "/v1/models");
  assert.equal(json.data[0].id, "stories260k");
  assert.equal(json.models[0].model, "stories260k");
  // The request's model field is ignored, as llama-server ignores it.
  const chat = await call(fake.port, "POST", "/v1/chat/completions", {
    model: "no-such-model",
    messages: [{ role: "user", content: "Hi" }],
  });
  assert.equal(chat.status, 200);
  assert.equal(chat.json.model, "stories260k");
});

test(
  "--fake-report-model changes the id /v1/models reports; the flag beats the env",
  TEST_OPTIONS,
  async (t) => {
    const fake = await fakeForTest(
      t,
      ["--alias", "stories260k", "--fake-report-model", "from-flag"],
      {
        env: { FAKE_LLAMA_REPORT_MODEL: "from-env" },
      },
    );
    await waitUntilReady(fake);
    for (const path of ["/v1/models", "/models"]) {
      const { json } = await call(fake.port, "GET", path);
      assert.equal(json.data[0].id, "from-flag");
      assert.equal(json.models[0].name, "from-flag");
    }
    const completion = await call(fake.port, "POST", "/v1/completions", { prompt: "Once" });
    assert.equal(completion.json.model, "stories260k");
  },
);

// ---------------------------------------------------------------------------------------------
// Chat and completions.

test(
  "chat, not streamed: captured headers and shape, deterministic text",
  TEST_OPTIONS,
  async () => {
    const { request, response } = transcript("10-chat-nonstream-default-template.txt");
    const answer = await exchange(shared.port, request);
    assert.equal(maskContentLength(answer.head), maskContentLength(response.head));
    const body = JSON.parse(answer.body);
    assert.deepEqual(shape(body), shape(JSON.parse(response.body)));
    assert.match(body.id, /^chatcmpl-[A-Za-z0-9]{32}$/);
    assert.equal(body.system_fingerprint, "b10470-34af94cd9");
    assert.equal(body.model, MODEL_ARG);
    assert.equal(body.choices[0].finish_reason, "length");
    assert.equal(body.usage.completion_tokens, 48);
    assert.equal(body.usage.total_tokens, body.usage.prompt_tokens + 48);
    assert.equal(body.timings.predicted_n, 48);

    const again = JSON.parse((await exchange(shared.port, request)).body);
    assert.equal(again.choices[0].message.content, body.choices[0].message.content, "same seed");
    const otherSeed = await call(shared.port, "POST", "/v1/chat/completions", {
      messages: [{ role: "user", content: "Tell me a story about a cat." }],
      max_tokens: 48,
      seed: 7,
    });
    assert.notEqual(otherSeed.json.choices[0].message.content, body.choices[0].message.content);
  },
);

test(
  "chat stream: one event per chunk, role first, finish and timings last, then [DONE]",
  TEST_OPTIONS,
  async () => {
    const { request, response } = transcript("11-chat-stream.txt");
    const answer = await exchange(shared.port, request);
    assert.equal(answer.head, response.head);
    assert.ok(answer.complete);
    for (const chunk of answer.chunks) {
      assert.match(chunk, /^data: [^\n]+\n\n$/, "one event per chunk");
    }

    const events = sseData(answer.body);
    const real = sseData(response.body);
    assert.deepEqual(events[0].choices[0].delta, { role: "assistant", content: null });
    assert.deepEqual(shape(events[0]), shape(real[0]), "role chunk");
    assert.deepEqual(shape(events[1]), shape(real[1]), "content chunk");
    assert.deepEqual(shape(events.at(-2)), shape(real.at(-2)), "finish chunk");
    assert.equal(events.at(-1), "[DONE]");
    assert.equal(events.length, real.length);
    const final = events.at(-2);
    assert.equal(final.choices[0].finish_reason, "length");
    assert.equal(final.timings.predicted_n, 8);
    assert.equal(final.usage, undefined, "usage only on request");
    assert.equal(new Set(events.slice(0, -1).map((e: Json) => e.id)).size, 1, "one id per stream");
  },
);

test(
  "chat stream with include_usage: a usage chunk with no choices before [DONE]",
  TEST_OPTIONS,
  async () => {
    const { request, response } = transcript("12-chat-stream-include-usage.txt");
    const answer = await exchange(shared.port, request);
    const events = sseData(answer.body);
    const real = sseData(response.body);
    assert.deepEqual(events.slice(-3).map(shape), real.slice(-3).map(shape));
    const usageChunk = events.at(-2);
    assert.deepEqual(usageChunk.choices, []);
    assert.equal(usageChunk.usage.completion_tokens, 8);
    assert.equal(events.at(-3).timings, undefined, "timings move to the usage chunk");
  },
);

test("completions, not streamed and streamed, have the captured shapes", TEST_OPTIONS, async () => {
  const plain = transcript("13-completions-nonstream.txt");
  const answer = await exchange(shared.port, plain.request);
  assert.equal(maskContentLength(answer.head), maskContentLength(plain.response.head));
  const body = JSON.parse(answer.body);
  assert.deepEqual(shape(body), shape(JSON.parse(plain.response.body)));
  assert.equal(body.object, "text_completion");
  assert.equal(body.usage.completion_tokens, 32);

  const streamed = transcript("14-completions-stream.txt");
  const stream = await exchange(shared.port, streamed.request);
  assert.equal(stream.head, streamed.response.head);
  const events = sseData(stream.body);
  const real = sseData(streamed.response.body);
  assert.deepEqual(events.map(shape), real.map(shape), "no role chunk; usage in the last chunk");
  assert.equal(events.at(-2).choices[0].text, "");
  assert.equal(events.at(-2).choices[0].finish_reason, "length");
});

test("--fake-eos-after ends generations with finish_reason stop", TEST_OPTIONS, async (t) => {
  const fake = await fakeForTest(t, ["--fake-eos-after", "3"]);
  await waitUntilReady(fake);
  const short = await call(fake.port, "POST", "/v1/completions", {
    prompt: "Once",
    max_tokens: 10,
  });
  assert.equal(short.json.choices[0].finish_reason, "stop");
  assert.equal(short.json.usage.completion_tokens, 3);
  const capped = await call(fake.port, "POST", "/v1/completions", {
    prompt: "Once",
    max_tokens: 2,
  });
  assert.equal(capped.json.choices[0].finish_reason, "length");
});

// ---------------------------------------------------------------------------------------------
// Errors.

test("errors answer the captured bytes", TEST_OPTIONS, async () => {
  for (const name of [
    "31-err-malformed-json.txt",
    "31b-err-malformed-json-completions.txt",
    "31c-err-empty-body.txt",
    "32-err-missing-messages.txt",
    "33-err-bad-param-type.txt",
    "33b-err-missing-prompt.txt",
    "34-err-404.txt",
    "34b-post-health.txt",
    "34c-get-chat.txt",
    "36-err-embeddings-disabled.txt",
  ]) {
    const { request, response } = transcript(name);
    assert.equal((await exchange(shared.port, request)).raw, response.raw, name);
  }
});

test("a prompt beyond the context is a 400 exceed_context_size_error", TEST_OPTIONS, async () => {
  const { request, response } = transcript("35-err-context-overflow.txt");
  const answer = await exchange(shared.port, request);
  assert.equal(answer.status, 400);
  assert.deepEqual(shape(JSON.parse(answer.body)), shape(JSON.parse(response.body)));
});

test(
  "--embeddings with no pooling (a generative model's none) refuses OpenAI embeddings, as llama-server does",
  TEST_OPTIONS,
  async (t) => {
    const fake = await fakeForTest(t, ["--embeddings"]);
    await waitUntilReady(fake);
    const answer = await call(fake.port, "POST", "/v1/embeddings", { input: "hello" });
    assert.equal(answer.status, 400);
    assert.deepEqual(answer.json, {
      error: {
        code: 400,
        message: "Pooling type 'none' is not OAI compatible. Please use a different pooling type",
        type: "invalid_request_error",
      },
    });
  },
);

test(
  "--embeddings --pooling mean serves a deterministic 64-float vector with usage",
  TEST_OPTIONS,
  async (t) => {
    const fake = await fakeForTest(t, ["--embeddings", "--pooling", "mean"]);
    await waitUntilReady(fake);
    const first = await call(fake.port, "POST", "/v1/embeddings", { input: "hello" });
    assert.equal(first.status, 200);
    assert.equal(first.json.object, "list");
    const [item] = first.json.data;
    assert.equal(item.object, "embedding");
    assert.equal(item.index, 0);
    assert.equal(item.embedding.length, 64);
    assert.ok(Math.abs(Math.hypot(...item.embedding) - 1) < 1e-6, "L2-normalised");
    assert.ok(first.json.usage.prompt_tokens > 0);
    assert.equal(first.json.usage.total_tokens, first.json.usage.prompt_tokens);
    const second = await call(fake.port, "POST", "/v1/embeddings", { input: ["hello", "world"] });
    assert.deepEqual(second.json.data[0].embedding, item.embedding);
    assert.notDeepEqual(second.json.data[1].embedding, item.embedding);
  },
);

// ---------------------------------------------------------------------------------------------
// Start-up failures: the log must match the captured one line for line (timestamps aside).

test("a missing model file: the captured error lines, exit 1", TEST_OPTIONS, async (t) => {
  // The capture's path is relative, so run where it does not exist.
  const cwd = mkdtempSync(join(tmpdir(), "fake-llama-"));
  const fake = await fakeForTest(t, [], { cwd, model: "models/does-not-exist.gguf" });
  assert.deepEqual(await fake.exit, { code: 1, signal: null });
  assert.deepEqual(loggedLines(fake), capturedLog("41-err-missing-model.log"));
});

test("a file that is not GGUF: the captured error lines, exit 1", TEST_OPTIONS, async (t) => {
  const model = join(mkdtempSync(join(tmpdir(), "fake-llama-")), "not-a-gguf.gguf");
  writeFileSync(model, "not a gguf file\n");
  const fake = await fakeForTest(t, [], { model });
  assert.deepEqual(await fake.exit, { code: 1, signal: null });
  const expected = capturedLog("42-err-invalid-gguf.log").map((l) =>
    l.replaceAll("/tmp/not-a-gguf.gguf", model),
  );
  assert.deepEqual(loggedLines(fake), expected);
});

test("a port in use: the captured error lines, exit 1", TEST_OPTIONS, async (t) => {
  const blocker = createServer();
  blocker.listen(0, "127.0.0.1");
  await new Promise((ready) => blocker.once("listening", ready));
  t.after(() => new Promise((closed) => blocker.close(closed)));
  const { port } = blocker.address() as AddressInfo;
  const fake = await fakeForTest(t, [], { port });
  assert.deepEqual(await fake.exit, { code: 1, signal: null });
  const expected = capturedLog("40-err-port-in-use.log").map((l) =>
    l.replace("18080", String(port)),
  );
  assert.deepEqual(loggedLines(fake), expected);
});

// Unknown llama-server flags are skipped: the shared server is started with some.
test("a mistyped --fake- knob stops the program with exit 1", TEST_OPTIONS, async (t) => {
  const fake = await fakeForTest(t, ["--fake-lod-ms", "5"]);
  assert.deepEqual(await fake.exit, { code: 1, signal: null });
  assert.match(fake.stderr(), /invalid argument: --fake-lod-ms/);
});

test("--fake-exit-after-ms dies during load with exit 1 and an error", TEST_OPTIONS, async (t) => {
  const fake = await fakeForTest(t, ["--fake-load-ms", "60000", "--fake-exit-after-ms", "300"]);
  assert.deepEqual(await fake.exit, { code: 1, signal: null });
  const lastLine = "E srv  llama_server: exiting due to model loading error\n";
  assert.ok(fake.stderr().endsWith(lastLine), fake.stderr());
});

// ---------------------------------------------------------------------------------------------
// Signals, crashes, hangs.

test("SIGTERM: exit 0 promptly, nothing on stdout", TEST_OPTIONS, async (t) => {
  const fake = await fakeForTest(t, []);
  await waitUntilReady(fake);
  const sent = Date.now();
  fake.child.kill("SIGTERM");
  assert.deepEqual(await fake.exit, { code: 0, signal: null });
  assert.ok(Date.now() - sent < 2000, "exits promptly");
  assert.match(fake.stderr(), /operator\(\): cleaning up before exit...\n$/);
  assert.equal(fake.stdout(), "");
});

test("FAKE_LLAMA_IGNORE_SIGTERM=1: SIGTERM is logged and ignored", TEST_OPTIONS, async (t) => {
  const fake = await fakeForTest(t, [], { env: { FAKE_LLAMA_IGNORE_SIGTERM: "1" } });
  await waitUntilReady(fake);
  fake.child.kill("SIGTERM");
  await waitForLog(fake, /ignoring SIGTERM/);
  assert.equal((await call(fake.port, "GET", "/health")).status, 200);
  fake.child.kill("SIGKILL");
  assert.deepEqual(await fake.exit, { code: null, signal: "SIGKILL" });
});

test("--fake-crash-after kills the process mid-stream", TEST_OPTIONS, async (t) => {
  const fake = await fakeForTest(t, ["--fake-crash-after", "3"]);
  await waitUntilReady(fake);
  const body = { messages: [{ role: "user", content: "Hi" }], max_tokens: 10, stream: true };
  const answer = await exchange(
    fake.port,
    httpRequest("POST", "/v1/chat/completions", JSON.stringify(body)),
  );
  assert.equal(answer.status, 200);
  assert.equal(answer.complete, false, "the stream is cut off");
  const events = sseData(answer.body);
  assert.equal(events.filter((e: Json) => e.choices?.[0]?.delta?.content).length, 3);
  assert.ok(!events.includes("[DONE]"));
  assert.deepEqual(await fake.exit, { code: null, signal: "SIGKILL" });
  assert.match(fake.stderr(), /GGML_ASSERT\(.*\) failed/);
});

test(
  "--fake-hang accepts inference requests and never answers; health still answers",
  TEST_OPTIONS,
  async (t) => {
    const fake = await fakeForTest(t, ["--fake-hang"]);
    await waitUntilReady(fake);
    const body = JSON.stringify({ messages: [{ role: "user", content: "Hi" }] });
    const hung = send(fake.port, httpRequest("POST", "/v1/chat/completions", body));
    await until("the hung request to hold a slot", async () =>
      (await stats(fake)).active === 1 ? true : undefined,
    );
    assert.equal((await call(fake.port, "GET", "/health")).status, 200);
    assert.equal((await call(fake.port, "GET", "/v1/models")).status, 200);
    assert.equal(hung.received(), "", "not a byte was sent");

    // Giving up frees the slot and counts as an abort.
    hung.socket.destroy();
    await hung.response;
    const current = await until("the abort to be counted", async () => {
      const now = await stats(fake);
      return now.aborted === 1 ? now : undefined;
    });
    assert.equal(current.active, 0);
  },
);

// ---------------------------------------------------------------------------------------------
// Slots and aborts.

test(
  "a client leaving mid-stream stops the generation and counts as aborted",
  TEST_OPTIONS,
  async () => {
    const before = await stats(shared);
    const body = { messages: [{ role: "user", content: "Hi" }], max_tokens: -1, stream: true };
    const stream = send(
      shared.port,
      httpRequest("POST", "/v1/chat/completions", JSON.stringify(body)),
      (received) => {
        if (received.includes('"content":"')) stream.socket.destroy();
      },
    );
    assert.equal((await stream.response).complete, false);
    const current = await until("the abort to be counted", async () => {
      const now = await stats(shared);
      return now.aborted === before.aborted + 1 && now.active === 0 ? now : undefined;
    });
    assert.equal(current.completed, before.completed);
    assert.equal(current.requests, before.requests + 1);
  },
);

test("--parallel 1 serializes two requests in arrival order", TEST_OPTIONS, async (t) => {
  const fake = await fakeForTest(t, ["--parallel", "1", "--fake-token-ms", "20"]);
  await waitUntilReady(fake);
  /** Streams a completion, noting when its first token and its [DONE] arrive. */
  const timedStream = async (maxTokens: number) => {
    const times = { firstToken: Infinity, done: Infinity };
    const body = JSON.stringify({ prompt: "Once", max_tokens: maxTokens, stream: true });
    await send(fake.port, httpRequest("POST", "/v1/completions", body), (received) => {
      if (times.firstToken === Infinity && received.includes('"text":"')) {
        times.firstToken = performance.now();
      }
      if (times.done === Infinity && received.includes("[DONE]")) {
        times.done = performance.now();
      }
    }).response;
    return times;
  };
  const first = timedStream(10);
  await until("the first request to run", async () =>
    (await stats(fake)).active === 1 ? true : undefined,
  );
  const second = timedStream(2);
  const waiting = await until("the second request to queue", async () => {
    const current = await stats(fake);
    return current.queued === 1 ? current : undefined;
  });
  assert.equal(waiting.active, 1);
  const [a, b] = await Promise.all([first, second]);
  assert.ok(b.firstToken >= a.done, "the second starts only after the first is done");
});

// ---------------------------------------------------------------------------------------------
// Recording.

test(
  "--fake-record and FAKE_LLAMA_RECORD append {pid, argv, env, cwd} per start",
  TEST_OPTIONS,
  async (t) => {
    // From a working directory outside the repository, which the wrapper must cope with.
    const cwd = mkdtempSync(join(tmpdir(), "fake-llama-"));
    const file = join(cwd, "starts.jsonl");
    const byFlag = await fakeForTest(t, ["--fake-record", file], {
      cwd,
      model: "missing.gguf",
      env: { MARK: "one" },
    });
    await byFlag.exit;
    const byEnv = await fakeForTest(t, [], {
      cwd,
      model: "missing.gguf",
      env: { FAKE_LLAMA_RECORD: file, MARK: "two" },
    });
    await byEnv.exit;
    const starts = readFileSync(file, "utf8")
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    assert.equal(starts.length, 2);
    for (const [start, fake, mark] of [
      [starts[0], byFlag, "one"],
      [starts[1], byEnv, "two"],
    ] as const) {
      assert.equal(start.pid, fake.child.pid);
      assert.deepEqual(start.argv, fake.child.spawnargs.slice(1));
      assert.equal(start.cwd, cwd);
      assert.equal(start.env.MARK, mark);
    }
  },
);
