/**
 * fake-llama-server: a stand-in for llama.cpp's `llama-server` (build b10470) in RoleMesh's
 * integration tests.
 *
 * It reproduces what a supervisor can observe of the real server, as captured in
 * shared/llama-server/: the command line, the stderr log lines, the loading phase (503 on every
 * endpoint), the OpenAI-compatible endpoints byte for byte (headers, JSON field order, SSE framing,
 * error bodies), a fixed number of slots with a FIFO queue, and the ways the process ends. It does
 * no inference: each token is a piece of a fixed story, chosen by its position and the seed.
 *
 * Knobs make it misbehave on purpose. Each is a flag or an environment variable (so a test can set
 * it on a parent process); the flag wins.
 *   --fake-load-ms N        FAKE_LLAMA_LOAD_MS          time spent "loading the model" (default 50)
 *   --fake-token-ms N       FAKE_LLAMA_TOKEN_MS         delay before each token (default 2)
 *   --fake-eos-after N      FAKE_LLAMA_EOS_AFTER        stop with finish_reason "stop" after N tokens
 *   --fake-crash-after N    FAKE_LLAMA_CRASH_AFTER      SIGKILL itself once a generation sent N tokens
 *   --fake-hang             FAKE_LLAMA_HANG=1           accept inference requests, never answer them
 *   --fake-report-model ID  FAKE_LLAMA_REPORT_MODEL     /v1/models reports ID instead of alias/path
 *   --fake-ignore-sigterm   FAKE_LLAMA_IGNORE_SIGTERM=1 log SIGTERM and carry on
 *   --fake-exit-after-ms N  FAKE_LLAMA_EXIT_AFTER_MS    log an error and exit 1 after N ms
 *   --fake-record FILE      FAKE_LLAMA_RECORD           append {pid, argv, env, cwd} to FILE at start
 *
 * GET /fake/stats (fake only, answered even while loading) returns
 * {active, queued, completed, aborted, requests}: generations holding a slot, waiting for one,
 * finished, stopped because the client went away, and inference requests accepted in total.
 */
import { randomInt, createHash } from "node:crypto";
import { appendFileSync, closeSync, openSync, readSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";

// ---------------------------------------------------------------------------------------------
// What the captured server reported about itself and its model (stories260K).

const BUILD_FINGERPRINT = "b10470-34af94cd9";
const N_CTX_TRAIN = 2048;
const N_EMBD = 64;
const DEFAULT_SLOTS = 4;
const DEFAULT_MODEL_PATH = "models/7B/ggml-model-f16.gguf";

/** Token pieces the fake "generates", in the style of the TinyStories model it stands in for. */
const STORY_PIECES = [
  "Once| upon| a| time|,| there| was| a| little| girl| named| Lily|.| She| loved| to| play",
  "| outside| in| the| park|.|\n|One| day|,| she| saw| a| big|,| red| ball|.| She| said|,",
  '| "|Wow|!|"|\n',
]
  .join("")
  .split("|");

// ---------------------------------------------------------------------------------------------
// Command line. Real llama-server flags are accepted under all their spellings; unknown flags are
// skipped (with their value) so the supervisor may pass any option, but a mistyped knob is an
// error, because silently ignoring it would make a test pass for the wrong reason.

/** Value-taking flags, by every spelling, mapped to one option name. */
const VALUE_FLAGS = new Map(
  Object.entries({
    "-m": "model",
    "--model": "model",
    "--host": "host",
    "--port": "port",
    "-c": "ctx-size",
    "--ctx-size": "ctx-size",
    "-ngl": "n-gpu-layers",
    "--n-gpu-layers": "n-gpu-layers",
    "--gpu-layers": "n-gpu-layers",
    "-np": "parallel",
    "--parallel": "parallel",
    "-a": "alias",
    "--alias": "alias",
    "-t": "threads",
    "--threads": "threads",
    "--pooling": "pooling",
    "--fake-load-ms": "fake-load-ms",
    "--fake-token-ms": "fake-token-ms",
    "--fake-eos-after": "fake-eos-after",
    "--fake-crash-after": "fake-crash-after",
    "--fake-report-model": "fake-report-model",
    "--fake-exit-after-ms": "fake-exit-after-ms",
    "--fake-record": "fake-record",
  }),
);

/** Flags without a value. */
const SWITCH_FLAGS = new Map(
  Object.entries({
    "--embeddings": "embeddings",
    "--embedding": "embeddings",
    "--fake-hang": "fake-hang",
    "--fake-ignore-sigterm": "fake-ignore-sigterm",
  }),
);

/** Environment variables standing in for knob flags the command line did not give. */
const KNOB_ENV = new Map(
  Object.entries({
    "fake-load-ms": "FAKE_LLAMA_LOAD_MS",
    "fake-token-ms": "FAKE_LLAMA_TOKEN_MS",
    "fake-eos-after": "FAKE_LLAMA_EOS_AFTER",
    "fake-crash-after": "FAKE_LLAMA_CRASH_AFTER",
    "fake-report-model": "FAKE_LLAMA_REPORT_MODEL",
    "fake-exit-after-ms": "FAKE_LLAMA_EXIT_AFTER_MS",
    "fake-record": "FAKE_LLAMA_RECORD",
    "fake-hang": "FAKE_LLAMA_HANG",
    "fake-ignore-sigterm": "FAKE_LLAMA_IGNORE_SIGTERM",
  }),
);

interface Config {
  modelPath: string;
  /** The name responses carry in `model`: the alias, else the -m argument as typed. */
  modelName: string;
  host: string;
  port: number;
  nCtx: number;
  parallel: number;
  threads: number;
  embeddings: boolean;
  /** `--pooling`; the model (like stories260K, a generative one) sets none of its own. */
  pooling: string;
  loadMs: number;
  tokenMs: number;
  eosAfter: number | undefined;
  crashAfter: number | undefined;
  hang: boolean;
  reportModel: string | undefined;
  ignoreSigterm: boolean;
  exitAfterMs: number | undefined;
  recordFile: string | undefined;
}

function exitWithArgumentError(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

function parseArguments(argv: string[]): Map<string, string> {
  const options = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const valueName = VALUE_FLAGS.get(arg);
    const switchName = SWITCH_FLAGS.get(arg);
    if (valueName !== undefined) {
      const value = argv[++i];
      if (value === undefined) exitWithArgumentError(`error: expected value for argument: ${arg}`);
      options.set(valueName, value);
    } else if (switchName !== undefined) {
      options.set(switchName, "1");
    } else if (arg.startsWith("--fake-")) {
      exitWithArgumentError(`error: invalid argument: ${arg}`);
    } else if (!(argv[i + 1] ?? "-").startsWith("-")) {
      i++;
    }
  }
  return options;
}

function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  const options = parseArguments(argv);
  const text = (name: string): string | undefined => {
    const envName = KNOB_ENV.get(name);
    return options.get(name) ?? (envName === undefined ? undefined : env[envName]);
  };
  // Numbers go through stoi in llama-server; a value it cannot read stops the program there.
  const integer = (name: string): number | undefined => {
    const value = text(name);
    if (value === undefined) return undefined;
    if (!/^-?\d+$/.test(value)) {
      exitWithArgumentError(`error while handling argument "--${name}": stoi`);
    }
    return Number(value);
  };
  const enabled = (name: string): boolean => ["1", "true"].includes(text(name) ?? "");
  const positive = (value: number | undefined): number | undefined =>
    value !== undefined && value > 0 ? value : undefined;

  const modelPath = text("model") ?? DEFAULT_MODEL_PATH;
  return {
    modelPath,
    modelName: text("alias") ?? modelPath,
    host: text("host") ?? "127.0.0.1",
    port: integer("port") ?? 8080,
    nCtx: positive(integer("ctx-size")) ?? N_CTX_TRAIN,
    parallel: positive(integer("parallel")) ?? DEFAULT_SLOTS,
    threads: positive(integer("threads")) ?? availableParallelism(),
    embeddings: enabled("embeddings"),
    pooling: text("pooling") ?? "none",
    loadMs: integer("fake-load-ms") ?? 50,
    tokenMs: integer("fake-token-ms") ?? 2,
    eosAfter: integer("fake-eos-after"),
    crashAfter: integer("fake-crash-after"),
    hang: enabled("fake-hang"),
    reportModel: text("fake-report-model"),
    ignoreSigterm: enabled("fake-ignore-sigterm"),
    exitAfterMs: integer("fake-exit-after-ms"),
    recordFile: text("fake-record"),
  };
}

const config = loadConfig(process.argv.slice(2), process.env);

// ---------------------------------------------------------------------------------------------
// Logging, in llama.cpp's format: "M.SS.mmm.uuu L tag func: message", all on stderr.

type Level = "I" | "W" | "E";

function timestamp(): string {
  const us = Math.round(performance.now() * 1000);
  const pad = (value: number, width: number) => String(value).padStart(width, "0");
  const minutes = Math.floor(us / 60e6);
  const seconds = pad(Math.floor(us / 1e6) % 60, 2);
  return `${minutes}.${seconds}.${pad(Math.floor(us / 1e3) % 1000, 3)}.${pad(us % 1000, 3)}`;
}

function log(level: Level, message: string): void {
  process.stderr.write(`${timestamp()} ${level} ${message}\n`);
}

/** llama.cpp prints the function name right-aligned and cut to 12 characters ("%12.*s"). */
function funcName(name: string): string {
  return name.slice(0, 12).padStart(12);
}

function logServer(level: Level, func: string, message: string): void {
  log(level, `srv  ${funcName(func)}: ${message}`);
}

interface SlotTask {
  readonly slot: number;
  readonly id: number;
  /** Tokens in the slot's context: the prompt, then each generated token. */
  nTokens: number;
}

function logSlot(func: string, task: SlotTask, message: string): void {
  const slot = String(task.slot).padStart(2);
  log("I", `slot ${funcName(func)}: id ${slot} | task ${task.id} | ${message}`);
}

// ---------------------------------------------------------------------------------------------
// API errors, with the bodies llama-server sends.

/** An error answered as format_error_response does: {"error":{"code","message","type",...}}. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = "invalid_request_error",
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }

  body(): object {
    return { error: { code: this.status, message: this.message, type: this.type, ...this.extra } };
  }
}

// These two come from a different code path in llama-server, hence the other field order.
const LOADING_BODY = { error: { message: "Loading model", type: "unavailable_error", code: 503 } };
const NOT_FOUND_BODY = { error: { message: "File Not Found", type: "not_found_error", code: 404 } };

// ---------------------------------------------------------------------------------------------
// Request bodies. llama-server parses them with nlohmann::json and answers a syntax error with a
// 500 carrying the parser's message, so the fake re-creates that message: the same grammar walk,
// the same position counting (bytes, with the end of input counted as one read) and wording.

const EOF = "<eof>";

const TOKEN_NAMES = {
  true: "true literal",
  false: "false literal",
  null: "null literal",
  string: "string literal",
  number: "number literal",
  "[": "'['",
  "{": "'{'",
  "]": "']'",
  "}": "'}'",
  ":": "':'",
  ",": "','",
  error: "<parse error>",
  end: "end of input",
  value: "'[', '{', or a literal",
};

type JsonToken = Exclude<keyof typeof TOKEN_NAMES, "value">;

class JsonSyntaxError extends Error {}

class NlohmannSyntaxCheck {
  /** Bytes as latin1 characters, so that one character is one byte, as nlohmann counts. */
  private readonly text: string;
  private next = 0;
  private current = EOF;
  private charsRead = 0;
  private line = 0;
  private column = 0;
  private tokenText = "";
  private lexerError = "";

  constructor(body: Buffer) {
    this.text = body.toString("latin1");
  }

  /** The parse_error.101 message nlohmann would throw for this body, if any. */
  firstError(): string | undefined {
    try {
      this.value(this.scan());
      const after = this.scan();
      if (after !== "end") this.fail("value", after, "end");
      return undefined;
    } catch (error) {
      if (error instanceof JsonSyntaxError) return error.message;
      throw error;
    }
  }

  private value(token: JsonToken): void {
    switch (token) {
      case "{":
        return this.object();
      case "[":
        return this.array();
      case "string":
      case "number":
      case "true":
      case "false":
      case "null":
        return;
      case "error":
        return this.fail("value", token);
      case "end":
        if (this.charsRead === 1) {
          this.failAt(
            "attempting to parse an empty input; check that your input string or stream contains the expected JSON",
          );
        }
        return this.fail("value", token, "value");
      default:
        return this.fail("value", token, "value");
    }
  }

  private object(): void {
    let token = this.scan();
    if (token === "}") return;
    for (;;) {
      if (token !== "string") this.fail("object key", token, "string");
      token = this.scan();
      if (token !== ":") this.fail("object separator", token, ":");
      this.value(this.scan());
      token = this.scan();
      if (token === "}") return;
      if (token !== ",") this.fail("object", token, "}");
      token = this.scan();
    }
  }

  private array(): void {
    let token = this.scan();
    if (token === "]") return;
    for (;;) {
      this.value(token);
      token = this.scan();
      if (token === "]") return;
      if (token !== ",") this.fail("array", token, "]");
      token = this.scan();
    }
  }

  private fail(context: string, token: JsonToken, expected?: keyof typeof TOKEN_NAMES): never {
    let message = `syntax error while parsing ${context} - `;
    message +=
      token === "error"
        ? `${this.lexerError}; last read: '${this.lastRead()}'`
        : `unexpected ${TOKEN_NAMES[token]}`;
    if (expected !== undefined) message += `; expected ${TOKEN_NAMES[expected]}`;
    return this.failAt(message);
  }

  private failAt(message: string): never {
    const where = `line ${this.line + 1}, column ${this.column}`;
    throw new JsonSyntaxError(
      `[json.exception.parse_error.101] parse error at ${where}: ${message}`,
    );
  }

  /** What the lexer read for the failing token, control characters shown as <U+XXXX>. */
  private lastRead(): string {
    const read = Buffer.from(this.tokenText, "latin1").toString("utf8");
    return [...read].map((c) => (c < " " ? `<U+${hex4(c)}>` : c)).join("");
  }

  private get(): string {
    this.charsRead++;
    this.column++;
    this.current = this.next < this.text.length ? this.text.charAt(this.next++) : EOF;
    if (this.current !== EOF) this.tokenText += this.current;
    if (this.current === "\n") {
      this.line++;
      this.column = 0;
    }
    return this.current;
  }

  private unget(): void {
    this.charsRead--;
    if (this.column > 0) this.column--;
    else if (this.line > 0) this.line--;
    if (this.current !== EOF) {
      this.next--;
      this.tokenText = this.tokenText.slice(0, -1);
    }
  }

  private lexFail(message: string): JsonToken {
    this.lexerError = message;
    return "error";
  }

  private scan(): JsonToken {
    do this.get();
    while ([" ", "\t", "\n", "\r"].includes(this.current));
    const c = this.current;
    if (c.length === 1 && "[]{}:,".includes(c)) return c as JsonToken;
    if (c === "t") return this.literal("true");
    if (c === "f") return this.literal("false");
    if (c === "n") return this.literal("null");
    if (c === '"') return this.string();
    if (c === "-" || isDigit(c)) return this.number();
    if (c === EOF) return "end";
    return this.lexFail("invalid literal");
  }

  private literal(word: "true" | "false" | "null"): JsonToken {
    for (const expected of word.slice(1)) {
      if (this.get() !== expected) return this.lexFail("invalid literal");
    }
    return word;
  }

  private string(): JsonToken {
    this.tokenText = this.current;
    for (;;) {
      const c = this.get();
      if (c === EOF) return this.lexFail("invalid string: missing closing quote");
      if (c === '"') return "string";
      if (c === "\\" && !this.escape()) return "error";
      if (c < " ") {
        return this.lexFail(`invalid string: control character U+${hex4(c)} must be escaped`);
      }
    }
  }

  private escape(): boolean {
    const c = this.get();
    if (c.length === 1 && '"\\/bfnrt'.includes(c)) return true;
    if (c !== "u") {
      this.lexFail("invalid string: forbidden character after backslash");
      return false;
    }
    for (let i = 0; i < 4; i++) {
      if (!/^[0-9a-fA-F]$/.test(this.get())) {
        this.lexFail("invalid string: '\\u' must be followed by 4 hex digits");
        return false;
      }
    }
    return true;
  }

  private number(): JsonToken {
    this.tokenText = this.current;
    let c = this.current;
    if (c === "-") c = this.get();
    if (c === "0") c = this.get();
    else if (isDigit(c)) c = this.digits();
    else return this.lexFail("invalid number; expected digit after '-'");
    if (c === ".") {
      if (!isDigit(this.get())) return this.lexFail("invalid number; expected digit after '.'");
      c = this.digits();
    }
    if (c === "e" || c === "E") {
      c = this.get();
      if (c === "+" || c === "-") {
        if (!isDigit(this.get())) {
          return this.lexFail("invalid number; expected digit after exponent sign");
        }
      } else if (!isDigit(c)) {
        return this.lexFail("invalid number; expected '+', '-', or digit after exponent");
      }
      this.digits();
    }
    // The character that ended the number belongs to the next token.
    this.unget();
    return "number";
  }

  /** Reads past the digits following the current one; returns the first non-digit. */
  private digits(): string {
    let c: string;
    do c = this.get();
    while (isDigit(c));
    return c;
  }
}

function isDigit(c: string): boolean {
  return c.length === 1 && c >= "0" && c <= "9";
}

function hex4(c: string): string {
  return c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
}

type JsonObject = Record<string, unknown>;

function parseBody(raw: Buffer): unknown {
  const syntaxError = new NlohmannSyntaxCheck(raw).firstError();
  if (syntaxError !== undefined) throw new ApiError(500, syntaxError, "server_error");
  return JSON.parse(raw.toString("utf8"));
}

/** A body that is not an object has no fields, as nlohmann's contains() sees it. */
function asObject(body: unknown): JsonObject {
  return typeof body === "object" && body !== null && !Array.isArray(body)
    ? (body as JsonObject)
    : {};
}

function jsonTypeName(value: unknown): string {
  if (Array.isArray(value)) return "array";
  return typeof value === "object" ? "object" : typeof value;
}

/** Reads an optional field as llama-server's json_value does: null means absent, a wrong type is a 400. */
function field<T>(body: JsonObject, key: string, type: "number" | "boolean"): T | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== type) {
    const reason = `type must be ${type}, but is ${jsonTypeName(value)}`;
    throw new ApiError(400, `Field '${key}': [json.exception.type_error.302] ${reason}`);
  }
  return value as T;
}

interface SamplingParams {
  stream: boolean;
  /** Negative means "until the context is full", as n_predict = -1 does. */
  maxTokens: number;
  seed: number | undefined;
}

const DEFAULT_MAX_TOKENS = 16;

function samplingParams(body: JsonObject): SamplingParams {
  const stream = field<boolean>(body, "stream", "boolean") ?? false;
  const maxTokens = field<number>(body, "max_tokens", "number");
  // n_predict, llama.cpp's own name, overrides the OpenAI one.
  const nPredict = field<number>(body, "n_predict", "number");
  for (const key of ["temperature", "top_p", "top_k"]) field<number>(body, key, "number");
  const seed = field<number>(body, "seed", "number");
  return { stream, maxTokens: Math.trunc(nPredict ?? maxTokens ?? DEFAULT_MAX_TOKENS), seed };
}

// ---------------------------------------------------------------------------------------------
// Prompt size. Any deterministic count will do; words stand in for tokens.

const CHAT_TEMPLATE_TOKENS = 3;
const TOKENS_PER_MESSAGE = 4;

function countWords(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((part) => String(asObject(part).text ?? "")).join(" ");
}

function chatPromptTokens(messages: unknown[]): number {
  const perMessage = messages.map(
    (m) => TOKENS_PER_MESSAGE + countWords(contentText(asObject(m).content)),
  );
  return perMessage.reduce((sum, n) => sum + n, CHAT_TEMPLATE_TOKENS);
}

/** A prompt is text, token ids, or a list of either; a BOS token comes first. */
function completionPromptTokens(prompt: unknown): number {
  const parts: unknown[] = Array.isArray(prompt) ? prompt.flat() : [prompt];
  const count = (part: unknown) => (typeof part === "number" ? 1 : countWords(String(part)));
  return parts.reduce((sum: number, part) => sum + count(part), 1);
}

function checkContextSize(promptTokens: number): void {
  if (promptTokens < config.nCtx) return;
  const message = `request (${promptTokens} tokens) exceeds the available context size (${config.nCtx} tokens), try increasing it`;
  throw new ApiError(400, message, "exceed_context_size_error", {
    n_prompt_tokens: promptTokens,
    n_ctx: config.nCtx,
  });
}

// ---------------------------------------------------------------------------------------------
// Slots. Like llama-server, at most --parallel generations run at once; the rest wait in order.

class SlotPool {
  /** Free slot ids; the highest is taken first, as the real server's LRU pick does when idle. */
  private readonly free: number[];
  private readonly waiting: Array<(slot: number) => void> = [];

  constructor(size: number) {
    this.free = Array.from({ length: size }, (_, id) => id);
  }

  get queued(): number {
    return this.waiting.length;
  }

  isBusy(slot: number): boolean {
    return !this.free.includes(slot);
  }

  /** Resolves with a slot id, or undefined if the signal fires first. */
  acquire(signal: AbortSignal): Promise<number | undefined> {
    const slot = this.free.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    return new Promise((resolve) => {
      const grant = (granted: number) => {
        signal.removeEventListener("abort", giveUp);
        resolve(granted);
      };
      const giveUp = () => {
        this.waiting.splice(this.waiting.indexOf(grant), 1);
        resolve(undefined);
      };
      this.waiting.push(grant);
      signal.addEventListener("abort", giveUp, { once: true });
    });
  }

  release(slot: number): void {
    const next = this.waiting.shift();
    if (next) next(slot);
    else this.free.push(slot);
  }
}

const slots = new SlotPool(config.parallel);
const stats = { active: 0, completed: 0, aborted: 0, requests: 0 };
let nextTaskId = 0;
let loaded = false;

function whenAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/** A hung server holds its slot and sends nothing until the client gives up. */
async function hangUntilAborted(signal: AbortSignal): Promise<undefined> {
  await whenAborted(signal);
  return undefined;
}

/** Aborts when the client disconnects before the response is complete, as the real server notices. */
function abortOnDisconnect(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

/**
 * Runs one inference request in a slot: waits for a free one, does the work, frees the slot at
 * once when done or when the client leaves. Resolves with undefined if the client left.
 */
async function runInSlot<T>(
  res: ServerResponse,
  promptTokens: number,
  work: (task: SlotTask, signal: AbortSignal) => Promise<T | undefined>,
): Promise<T | undefined> {
  stats.requests++;
  const signal = abortOnDisconnect(res);
  const slot = await slots.acquire(signal);
  if (slot === undefined) {
    stats.aborted++;
    return undefined;
  }
  const task: SlotTask = { slot, id: nextTaskId++, nTokens: promptTokens };
  logSlot("launch_slot_", task, "processing task, is_child = 0");
  stats.active++;
  try {
    const result = config.hang ? await hangUntilAborted(signal) : await work(task, signal);
    if (result === undefined) {
      stats.aborted++;
      logServer("W", "stop", `cancel task, id_task = ${task.id}`);
    } else {
      stats.completed++;
    }
    return result;
  } finally {
    stats.active--;
    logSlot("release", task, `stop processing: n_tokens = ${task.nTokens}, truncated = 0`);
    slots.release(slot);
  }
}

// ---------------------------------------------------------------------------------------------
// Generation.

interface GenerationJob {
  promptTokens: number;
  maxTokens: number;
  seed: number | undefined;
}

interface Timings {
  cache_n: number;
  prompt_n: number;
  prompt_ms: number;
  prompt_per_token_ms: number;
  prompt_per_second: number;
  predicted_n: number;
  predicted_ms: number;
  predicted_per_token_ms: number;
  predicted_per_second: number;
}

interface GenerationResult {
  text: string;
  promptTokens: number;
  completionTokens: number;
  finishReason: "length" | "stop";
  timings: Timings;
}

/** The fake evaluates prompts instantly but reports a plausible 0.1 ms per prompt token. */
const PROMPT_MS_PER_TOKEN = 0.1;

function storyPiece(seed: number | undefined, index: number): string {
  const offset = Math.abs(Math.trunc(seed ?? 0));
  return STORY_PIECES[(offset + index) % STORY_PIECES.length] ?? "";
}

/** How many tokens a job gets and why it stops: max_tokens or a full context, else the EOS knob. */
function plannedTokens(
  job: GenerationJob,
): Pick<GenerationResult, "completionTokens" | "finishReason"> {
  const room = config.nCtx - job.promptTokens;
  const limit = job.maxTokens < 0 ? room : Math.min(job.maxTokens, room);
  const eos = config.eosAfter ?? Infinity;
  return eos < limit
    ? { completionTokens: eos, finishReason: "stop" }
    : { completionTokens: limit, finishReason: "length" };
}

function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** Shaped like server_task_result timings; a count of 0 gives NaN, sent as null, as in llama.cpp. */
function makeTimings(promptTokens: number, predicted: number, predictedMs: number): Timings {
  const promptMs = roundMs(promptTokens * PROMPT_MS_PER_TOKEN);
  const ms = roundMs(predictedMs);
  return {
    cache_n: 0,
    prompt_n: promptTokens,
    prompt_ms: promptMs,
    prompt_per_token_ms: promptMs / promptTokens,
    prompt_per_second: (1e3 / promptMs) * promptTokens,
    predicted_n: predicted,
    predicted_ms: ms,
    predicted_per_token_ms: ms / predicted,
    predicted_per_second: (1e3 / ms) * predicted,
  };
}

function logTimings(task: SlotTask, t: Timings): void {
  const line = (label: string, ms: number, n: number) =>
    `${label} = ${ms.toFixed(2).padStart(10)} ms / ${String(n).padStart(5)} tokens`;
  const rates = (perToken: number, perSecond: number) =>
    ` (${perToken.toFixed(2).padStart(8)} ms per token, ${perSecond.toFixed(2).padStart(10)} tokens per second)`;
  const total = t.prompt_ms + t.predicted_ms;
  logSlot(
    "print_timing",
    task,
    line("prompt eval time", t.prompt_ms, t.prompt_n) +
      rates(t.prompt_per_token_ms, t.prompt_per_second),
  );
  logSlot(
    "print_timing",
    task,
    line("       eval time", t.predicted_ms, t.predicted_n) +
      rates(t.predicted_per_token_ms, t.predicted_per_second),
  );
  logSlot("print_timing", task, line("      total time", total, t.prompt_n + t.predicted_n));
}

/**
 * Dies like a real crash (a failed GGML_ASSERT) does: a line on stderr, then the process is gone.
 * A signal a process sends itself is delivered before kill() returns, so nothing runs after this.
 */
function crash(tokens: number): void {
  process.stderr.write(
    `llama.cpp/ggml/src/ggml-cpu/ggml-cpu.c:2950: GGML_ASSERT(--fake-crash-after ${tokens} reached) failed\n`,
  );
  process.kill(process.pid, "SIGKILL");
}

/**
 * Produces the job's tokens one by one, handing each to `onToken` (which may write it out).
 * Resolves with undefined as soon as the signal fires.
 */
async function generate(
  job: GenerationJob,
  task: SlotTask,
  signal: AbortSignal,
  onToken: (piece: string, index: number) => Promise<void>,
): Promise<GenerationResult | undefined> {
  const plan = plannedTokens(job);
  const aborted = whenAborted(signal);
  const started = performance.now();
  let text = "";
  for (let index = 0; index < plan.completionTokens; index++) {
    await Promise.race([sleep(config.tokenMs), aborted]);
    if (signal.aborted) return undefined;
    const piece = storyPiece(job.seed, index);
    await Promise.race([onToken(piece, index), aborted]);
    if (signal.aborted) return undefined;
    text += piece;
    task.nTokens++;
    if (index + 1 === config.crashAfter) crash(index + 1);
  }
  const timings = makeTimings(job.promptTokens, plan.completionTokens, performance.now() - started);
  logTimings(task, timings);
  return { ...plan, text, promptTokens: job.promptTokens, timings };
}

// ---------------------------------------------------------------------------------------------
// Response bodies, with the field order of the captured ones.

/** How one endpoint renders a generation: streamed as SSE events, or as one JSON body. */
interface ResponseFormat {
  /** Events sent just before the first token's. */
  openingEvents(): object[];
  tokenEvent(piece: string): object;
  closingEvents(result: GenerationResult): object[];
  body(result: GenerationResult): object;
}

const ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** llama-server uses the chatcmpl- prefix for every endpoint. */
function completionId(): string {
  const random = Array.from({ length: 32 }, () => ID_ALPHABET[randomInt(ID_ALPHABET.length)]);
  return `chatcmpl-${random.join("")}`;
}

function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}

function usage(r: GenerationResult): object {
  return {
    completion_tokens: r.completionTokens,
    prompt_tokens: r.promptTokens,
    total_tokens: r.completionTokens + r.promptTokens,
    prompt_tokens_details: { cached_tokens: 0 },
  };
}

function chatFormat(includeUsage: boolean): ResponseFormat {
  const id = completionId();
  const created = unixNow();
  const model = config.modelName;
  const chunk = (choices: object[], extra: object = {}) => ({
    choices,
    created,
    id,
    model,
    system_fingerprint: BUILD_FINGERPRINT,
    object: "chat.completion.chunk",
    ...extra,
  });
  const choice = (finishReason: string | null, delta: object) => ({
    finish_reason: finishReason,
    index: 0,
    delta,
  });
  return {
    openingEvents: () => [chunk([choice(null, { role: "assistant", content: null })])],
    tokenEvent: (piece) => chunk([choice(null, { content: piece })]),
    // Usage gets a chunk of its own only on request; the timings go in the last chunk either way.
    closingEvents: (r) =>
      includeUsage
        ? [chunk([choice(r.finishReason, {})]), chunk([], { usage: usage(r), timings: r.timings })]
        : [chunk([choice(r.finishReason, {})], { timings: r.timings })],
    body: (r) => ({
      choices: [
        {
          finish_reason: r.finishReason,
          index: 0,
          message: { role: "assistant", content: r.text },
        },
      ],
      created,
      model,
      system_fingerprint: BUILD_FINGERPRINT,
      object: "chat.completion",
      usage: usage(r),
      id,
      timings: r.timings,
    }),
  };
}

function completionFormat(): ResponseFormat {
  const id = completionId();
  const created = unixNow();
  const choice = (text: string, finishReason: string | null) => ({
    text,
    index: 0,
    logprobs: null,
    finish_reason: finishReason,
  });
  const envelope = { created, model: config.modelName, system_fingerprint: BUILD_FINGERPRINT };
  const object = "text_completion";
  // Unlike chat, the final event of a completions stream always carries usage and timings.
  const final = (r: GenerationResult, text: string) => ({
    choices: [choice(text, r.finishReason)],
    ...envelope,
    object,
    usage: usage(r),
    id,
    timings: r.timings,
  });
  return {
    openingEvents: () => [],
    tokenEvent: (piece) => ({ choices: [choice(piece, null)], ...envelope, object, id }),
    closingEvents: (r) => [final(r, "")],
    body: (r) => final(r, r.text),
  };
}

/** A deterministic unit vector derived from the text, as the OAI endpoint normalises (L2). */
function embeddingFor(text: string): number[] {
  const digest = createHash("sha256").update(text).digest();
  const raw = Array.from({ length: N_EMBD }, (_, i) =>
    Math.sin((digest[i % digest.length] ?? 0) + i),
  );
  const norm = Math.hypot(...raw);
  return raw.map((v) => Math.fround(v / norm));
}

// ---------------------------------------------------------------------------------------------
// HTTP. Headers are set in the order llama-server (cpp-httplib) sends them; Node appends
// Connection after them, as httplib does.

const BASE_HEADERS = { Server: "llama.cpp", "Access-Control-Allow-Origin": "" };

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...BASE_HEADERS,
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
  });
  res.end(text);
}

function startEventStream(res: ServerResponse): void {
  res.writeHead(200, {
    ...BASE_HEADERS,
    "X-Accel-Buffering": "no",
    "Content-Type": "text/event-stream",
    "Transfer-Encoding": "chunked",
  });
  res.flushHeaders();
}

function sseEvent(data: object | string): string {
  return `data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`;
}

/** Writes each event on its own (one HTTP chunk each); resolves once the last is handed to the OS. */
function writeEvents(res: ServerResponse, events: object[]): Promise<void> {
  let written = Promise.resolve();
  for (const event of events) {
    written = new Promise((resolve) => res.write(sseEvent(event), () => resolve()));
  }
  return written;
}

async function serveGeneration(
  res: ServerResponse,
  job: GenerationJob,
  stream: boolean,
  format: ResponseFormat,
): Promise<void> {
  checkContextSize(job.promptTokens);
  if (!stream) {
    const result = await runInSlot(res, job.promptTokens, (task, signal) =>
      generate(job, task, signal, async () => {}),
    );
    if (result !== undefined) sendJson(res, 200, format.body(result));
    return;
  }
  await runInSlot(res, job.promptTokens, async (task, signal) => {
    startEventStream(res);
    const result = await generate(job, task, signal, (piece, index) => {
      const opening = index === 0 ? format.openingEvents() : [];
      return writeEvents(res, [...opening, format.tokenEvent(piece)]);
    });
    if (result !== undefined) {
      await writeEvents(res, format.closingEvents(result));
      res.end(sseEvent("[DONE]"));
    }
    return result;
  });
}

async function chatCompletions(res: ServerResponse, raw: Buffer): Promise<void> {
  const body = asObject(parseBody(raw));
  if (!("messages" in body)) throw new ApiError(400, "'messages' is required");
  if (!Array.isArray(body.messages)) throw new ApiError(400, "Expected 'messages' to be an array");
  const { stream, maxTokens, seed } = samplingParams(body);
  const includeUsage = asObject(body.stream_options).include_usage === true;
  const job = { promptTokens: chatPromptTokens(body.messages), maxTokens, seed };
  await serveGeneration(res, job, stream, chatFormat(includeUsage));
}

async function completions(res: ServerResponse, raw: Buffer): Promise<void> {
  const body = asObject(parseBody(raw));
  if (!("prompt" in body)) {
    throw new ApiError(400, "[json.exception.out_of_range.403] key 'prompt' not found");
  }
  const { stream, maxTokens, seed } = samplingParams(body);
  const job = { promptTokens: completionPromptTokens(body.prompt), maxTokens, seed };
  await serveGeneration(res, job, stream, completionFormat());
}

async function embeddings(res: ServerResponse, raw: Buffer): Promise<void> {
  // Checked before the body is even parsed, as in llama-server.
  if (!config.embeddings) {
    const message = "This server does not support embeddings. Start it with `--embeddings`";
    throw new ApiError(501, message, "not_supported_error");
  }
  if (config.pooling === "none") {
    throw new ApiError(
      400,
      "Pooling type 'none' is not OAI compatible. Please use a different pooling type",
    );
  }
  const body = asObject(parseBody(raw));
  if (!("input" in body)) throw new ApiError(400, '"input" or "content" must be provided');
  const inputs = (Array.isArray(body.input) ? body.input : [body.input]).map((i) =>
    Array.isArray(i) ? i.join(" ") : String(i),
  );
  const promptTokens = inputs.reduce((sum, text) => sum + completionPromptTokens(text), 0);
  const data = await runInSlot(res, promptTokens, async () =>
    inputs.map((text, index) => ({ embedding: embeddingFor(text), index, object: "embedding" })),
  );
  if (data === undefined) return;
  sendJson(res, 200, {
    model: typeof body.model === "string" ? body.model : config.modelName,
    object: "list",
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    data,
  });
}

function modelList(): object {
  const id = config.reportModel ?? config.modelName;
  const details = {
    parent_model: "",
    format: "gguf",
    family: "",
    families: [""],
    parameter_size: "",
    quantization_level: "",
  };
  const meta = {
    vocab_type: 1,
    n_vocab: 512,
    n_ctx: config.nCtx,
    n_ctx_train: N_CTX_TRAIN,
    n_embd: N_EMBD,
    n_params: 292800,
    size: 1171200,
    ftype: "(guessed) all F32",
  };
  return {
    models: [
      {
        name: id,
        model: id,
        modified_at: "",
        size: "",
        digest: "",
        type: "model",
        description: "",
        tags: [""],
        capabilities: ["completion"],
        parameters: "",
        details,
      },
    ],
    object: "list",
    data: [
      {
        id,
        aliases: [id],
        tags: [],
        object: "model",
        created: unixNow(),
        owned_by: "llamacpp",
        meta,
      },
    ],
  };
}

/** A subset of the real /props: the fields a supervisor is likely to read. */
function props(): object {
  return {
    default_generation_settings: { n_ctx: config.nCtx },
    total_slots: config.parallel,
    model_alias: config.modelName,
    model_path: config.modelPath,
    build_info: BUILD_FINGERPRINT,
  };
}

function slotList(): object[] {
  return Array.from({ length: config.parallel }, (_, id) => ({
    id,
    n_ctx: config.nCtx,
    speculative: false,
    is_processing: slots.isBusy(id),
  }));
}

type Handler = (res: ServerResponse, body: Buffer) => void | Promise<void>;

const health: Handler = (res) => sendJson(res, 200, { status: "ok" });
const models: Handler = (res) => sendJson(res, 200, modelList());

const ROUTES = new Map<string, Handler>([
  ["GET /health", health],
  ["GET /v1/health", health],
  ["GET /models", models],
  ["GET /v1/models", models],
  ["GET /props", (res) => sendJson(res, 200, props())],
  ["GET /slots", (res) => sendJson(res, 200, slotList())],
  ["POST /chat/completions", chatCompletions],
  ["POST /v1/chat/completions", chatCompletions],
  ["POST /completions", completions],
  ["POST /v1/completions", completions],
  ["POST /embeddings", embeddings],
  ["POST /v1/embeddings", embeddings],
]);

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
  res.sendDate = false;
  const body = await readBody(req);
  const path = (req.url ?? "/").split("?")[0];
  if (req.method === "GET" && path === "/fake/stats") {
    return sendJson(res, 200, { ...stats, queued: slots.queued });
  }
  if (!loaded) return sendJson(res, 503, LOADING_BODY);
  const handler = ROUTES.get(`${req.method} ${path}`);
  if (!handler) return sendJson(res, 404, NOT_FOUND_BODY);
  try {
    await handler(res, body);
  } catch (error) {
    // llama-server turns any exception in a handler into an error response and logs it.
    const apiError =
      error instanceof ApiError ? error : new ApiError(500, String(error), "server_error");
    logServer("W", "operator()", `got exception: ${JSON.stringify(apiError.body())}`);
    if (res.headersSent) res.destroy();
    else sendJson(res, apiError.status, apiError.body());
  }
}

// ---------------------------------------------------------------------------------------------
// Lifecycle: bind at once, then "load" the model, as llama-server does.

function exitAfterCleanup(code: number, reason?: string): never {
  logServer("I", "operator()", "operator(): cleaning up before exit...");
  if (reason !== undefined) logServer("E", "llama_server", reason);
  process.exit(code);
}

function record(file: string): void {
  const entry = {
    pid: process.pid,
    argv: process.argv.slice(2),
    env: process.env,
    cwd: process.cwd(),
  };
  appendFileSync(file, `${JSON.stringify(entry)}\n`);
}

function logStartupBanner(): void {
  log(
    "I",
    "cmn  common_param: common_params_print_info: verbosity = 3 (adjust with the `-lv N` CLI arg)",
  );
  for (const line of [
    "-----------------",
    "CORS is set to allow all origins ('*') and no API key is set",
    "this can be a security risk (cross-origin attacks)",
    "more info: https://github.com/ggml-org/llama.cpp/pull/25655",
    "-----------------",
  ]) {
    logServer("W", "llama_server", line);
  }
}

const STRERROR: Record<string, string> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EISDIR: "Is a directory",
};

/** The reason llama.cpp's GGUF reader would give for rejecting the model file, if any. */
function modelFileProblem(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    return `gguf_init_from_file: failed to open GGUF file '${path}' (${STRERROR[code] ?? code})`;
  }
  try {
    const magic = Buffer.alloc(4);
    const read = readSync(fd, magic, 0, 4, 0);
    if (read < 4) return "gguf_init_from_reader: failed to read magic";
    const text = magic.toString("latin1");
    return text === "GGUF"
      ? undefined
      : `gguf_init_from_reader: invalid magic characters: '${text}', expected 'GGUF'`;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    return `gguf_init_from_file: failed to read GGUF file '${path}' (${STRERROR[code] ?? code})`;
  } finally {
    closeSync(fd);
  }
}

/** llama.cpp tries to load twice (once to fit parameters to memory), so each failure shows twice. */
function failModelLoad(problem: string): never {
  const path = config.modelPath;
  for (const fitting of [true, false]) {
    log("E", problem);
    log(
      "E",
      `llama_model_load: error loading model: llama_model_loader: failed to load model from ${path}`,
    );
    log("E", "llama_model_load_from_file_impl: failed to load model");
    if (fitting) {
      log(
        "E",
        "common_fit_params: encountered an error while trying to fit params to free device memory: failed to load model",
      );
    }
  }
  log("E", `cmn  common_init_: failed to load model '${path}'`);
  logServer("E", "load_model", `failed to load model, '${path}'`);
  exitAfterCleanup(1, "exiting due to model loading error");
}

function loadModel(boundPort: number): void {
  logServer("I", "load_model", `loading model '${config.modelPath}'`);
  const problem = modelFileProblem(config.modelPath);
  if (problem !== undefined) failModelLoad(problem);
  setTimeout(() => {
    log("I", `cmn          init: llama threadpool init, n_threads = ${config.threads}`);
    const slotInfo = `n_slots = ${config.parallel}, n_ctx_slot = ${config.nCtx}, kv_unified = 'true'`;
    logServer("I", "load_model", `initializing, ${slotInfo}`);
    loaded = true;
    logServer("I", "llama_server", "model loaded");
    logServer("I", "llama_server", `listening on http://${config.host}:${boundPort}`);
  }, config.loadMs);
}

function handleSignals(): void {
  process.on("SIGINT", () => exitAfterCleanup(0));
  process.on("SIGTERM", () => {
    if (!config.ignoreSigterm) exitAfterCleanup(0);
    logServer("W", "operator()", "--fake-ignore-sigterm: ignoring SIGTERM");
  });
  // A real server whose reader died is killed by SIGPIPE on its next log line. A server that
  // ignores SIGTERM stands for one that survives its agent, so it survives that too.
  if (config.ignoreSigterm) process.stderr.on("error", () => undefined);
}

function scheduleExit(ms: number): void {
  setTimeout(() => {
    const reason = `--fake-exit-after-ms ${ms} reached`;
    if (loaded) exitAfterCleanup(1, `exiting: ${reason}`);
    log("E", `llama_model_load: error loading model: ${reason}`);
    logServer("E", "load_model", `failed to load model, '${config.modelPath}'`);
    exitAfterCleanup(1, "exiting due to model loading error");
  }, ms);
}

function main(): void {
  if (config.recordFile !== undefined) record(config.recordFile);
  handleSignals();
  if (config.exitAfterMs !== undefined) scheduleExit(config.exitAfterMs);
  logStartupBanner();

  // A client that goes away while sending its body leaves nothing to answer.
  const server = createServer((req, res) => {
    handleRequest(req, res).catch(() => res.destroy());
  });
  server.on("error", () => {
    const where = `hostname: ${config.host}, port: ${config.port}`;
    logServer("E", "start", `couldn't bind HTTP server socket, ${where}`);
    exitAfterCleanup(1, "exiting due to HTTP server error");
  });
  server.listen(config.port, config.host, () => {
    const address = server.address();
    loadModel(typeof address === "object" && address !== null ? address.port : config.port);
  });
}

main();
