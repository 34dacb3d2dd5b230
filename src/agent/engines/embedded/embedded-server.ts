/**
 * The embedded engine's server process (SPEC §6): llama.cpp through node-llama-cpp behind the
 * HTTP subset of llama-server that the agent uses. Started by the supervisor like llama-server,
 * with the same options; logs on stderr, nothing on stdout.
 */
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import { clientSignal } from "../../../core/http/client-signal.js";
import { parseJsonObject, readBody } from "../../../core/http/read-body.js";
import { sendError, sendJson } from "../../../core/http/respond.js";
import { RoleMeshError } from "../../../core/errors.js";
import { checkOpenAIRequest } from "../../../core/proxy/openai-request.js";
import type {
  ChatMessage,
  GenerationParams,
  GenerationResult,
  LlamaRuntime,
} from "./llama-runtime.js";
import { parseServerOptions } from "./server-options.js";
import type { EmbeddedServerOptions } from "./server-options.js";
import { MIB } from "../../../core/units.js";

const BODY_LIMIT = 8 * MIB;
/** llama-server's answer to every request while the model loads. */
const LOADING = { error: { message: "Loading model", type: "unavailable_error", code: 503 } };

interface Completion {
  kind: "chat" | "text";
  body: Record<string, unknown>;
}

function log(level: "I" | "W" | "E", message: string): void {
  process.stderr.write(`${level} srv  embedded: ${message}\n`);
}

async function main(): Promise<void> {
  const options = parseServerOptions(process.argv.slice(2));
  if (options.ignored.length > 0)
    log("W", `ignoring options the embedded engine does not have: ${options.ignored.join(" ")}`);
  let runtime: LlamaRuntime | undefined;
  const server = createServer((req, res) => {
    handle(req, res, runtime, options).catch((err: unknown) => sendError(res, err));
  });
  server.on("error", (err) => {
    log(
      "E",
      `couldn't bind HTTP server socket, hostname: ${options.host}, port: ${options.port}: ${err.message}`,
    );
    process.exit(1);
  });
  const stop = () => {
    server.close();
    void (runtime?.dispose() ?? Promise.resolve()).finally(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  // Listen first, like llama-server: /health answers 503 "Loading model" until the model is in.
  await new Promise<void>((resolve) => server.listen(options.port, options.host, resolve));
  log("I", `loading model '${options.modelPath}'`);
  try {
    // Imported here so that a broken native build shows as a load failure with its message.
    const { LlamaRuntime } = await import("./llama-runtime.js");
    runtime = await LlamaRuntime.load(options, (line) => log("W", line));
  } catch (err) {
    log("E", `failed to load model '${options.modelPath}': ${(err as Error).message}`);
    log("E", "exiting due to model loading error");
    process.exit(1);
  }
  log(
    "I",
    `model loaded (${runtime.gpu}, context ${runtime.contextSize}, ${options.parallel} sequences)`,
  );
  log("I", `listening on http://${options.host}:${options.port}`);
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  runtime: LlamaRuntime | undefined,
  options: EmbeddedServerOptions,
): Promise<void> {
  const path = new URL(req.url ?? "/", "http://localhost").pathname;
  if (!runtime) return sendJson(res, 503, LOADING);
  const route = `${req.method} ${path}`;
  switch (route) {
    case "GET /health":
    case "GET /v1/health":
      return sendJson(res, 200, { status: "ok" });
    case "GET /v1/models":
    case "GET /models":
      return sendJson(res, 200, modelList(runtime, options));
    case "GET /props":
      return sendJson(res, 200, {
        model_alias: options.alias,
        model_path: options.modelPath,
        total_slots: options.parallel,
        build_info: `node-llama-cpp-${runtime.gpu}`,
      });
    case "POST /v1/chat/completions":
      return complete(req, res, runtime, options, "chat");
    case "POST /v1/completions":
      return complete(req, res, runtime, options, "text");
    case "POST /v1/embeddings":
      return embeddings(req, res, runtime, options);
    default:
      throw new RoleMeshError("not_found", `no such endpoint: ${route}`);
  }
}

function modelList(runtime: LlamaRuntime, options: EmbeddedServerOptions) {
  return {
    object: "list",
    data: [
      {
        id: options.alias,
        object: "model",
        created: Math.floor(Date.now() / 1000),
        owned_by: "llamacpp",
        meta: {
          n_ctx: runtime.contextSize,
          n_ctx_train: runtime.trainContextSize,
          n_embd: runtime.embeddingLength,
        },
      },
    ],
  };
}

async function complete(
  req: IncomingMessage,
  res: ServerResponse,
  runtime: LlamaRuntime,
  options: EmbeddedServerOptions,
  kind: Completion["kind"],
): Promise<void> {
  const endpoint = kind === "chat" ? "/v1/chat/completions" : "/v1/completions";
  const body = parseJsonObject(await readBody(req, BODY_LIMIT));
  const { stream } = checkOpenAIRequest(endpoint, body);
  const params = generationParams(body);
  const signal = clientSignal(res);
  const frame = new ResponseFrame(kind, options.alias);
  const run = (onText: (text: string) => void): Promise<GenerationResult> =>
    kind === "chat"
      ? runtime.chat(chatMessages(body), params, onText, signal)
      : runtime.complete(promptText(body), params, onText, signal);

  if (!stream) {
    const result = await run(() => undefined);
    return sendJson(res, 200, frame.whole(result));
  }
  res.writeHead(200, { "Content-Type": "text/event-stream", "X-Accel-Buffering": "no" });
  const send = (payload: unknown) => res.write(`data: ${JSON.stringify(payload)}\n\n`);
  if (kind === "chat") send(frame.chunk({ role: "assistant", content: null }, null));
  try {
    const result = await run((text) => {
      if (text) send(frame.chunk(kind === "chat" ? { content: text } : text, null));
    });
    send(frame.chunk(kind === "chat" ? {} : "", result.finishReason));
    const includeUsage =
      (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
    if (includeUsage) send({ ...frame.base(), choices: [], usage: usage(result) });
    res.end("data: [DONE]\n\n");
  } catch (err) {
    if (signal.aborted) return;
    res.end(
      `data: ${JSON.stringify(new RoleMeshError("upstream_error", (err as Error).message).toBody())}\n\n`,
    );
  }
}

async function embeddings(
  req: IncomingMessage,
  res: ServerResponse,
  runtime: LlamaRuntime,
  options: EmbeddedServerOptions,
): Promise<void> {
  const body = parseJsonObject(await readBody(req, BODY_LIMIT));
  checkOpenAIRequest("/v1/embeddings", body);
  const inputs = Array.isArray(body.input) ? body.input.map(String) : [String(body.input)];
  const { vectors, tokens } = await runtime.embed(inputs);
  sendJson(res, 200, {
    object: "list",
    model: options.alias,
    data: vectors.map((embedding, index) => ({ object: "embedding", index, embedding })),
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  });
}

/** The shapes llama-server answers with: one id and timestamp per response. */
class ResponseFrame {
  readonly #id = `chatcmpl-${randomBytes(16).toString("hex")}`;
  readonly #created = Math.floor(Date.now() / 1000);

  constructor(
    readonly kind: Completion["kind"],
    readonly model: string,
  ) {}

  base() {
    const object = this.kind === "chat" ? "chat.completion.chunk" : "text_completion";
    return { id: this.#id, object, created: this.#created, model: this.model };
  }

  chunk(delta: Record<string, unknown> | string, finishReason: string | null) {
    const choice =
      typeof delta === "string"
        ? { index: 0, text: delta, logprobs: null, finish_reason: finishReason }
        : { index: 0, delta, finish_reason: finishReason };
    return { ...this.base(), choices: [choice] };
  }

  whole(result: GenerationResult) {
    const choice =
      this.kind === "chat"
        ? {
            index: 0,
            message: { role: "assistant", content: result.text },
            finish_reason: result.finishReason,
          }
        : { index: 0, text: result.text, logprobs: null, finish_reason: result.finishReason };
    const object = this.kind === "chat" ? "chat.completion" : "text_completion";
    return { ...this.base(), object, choices: [choice], usage: usage(result) };
  }
}

function usage(result: GenerationResult) {
  return {
    prompt_tokens: result.promptTokens,
    completion_tokens: result.completionTokens,
    total_tokens: result.promptTokens + result.completionTokens,
  };
}

function generationParams(body: Record<string, unknown>): GenerationParams {
  const maxTokens = body.max_completion_tokens ?? body.max_tokens;
  return {
    // llama-server's defaults: sample at 0.8, generate until end of text or context.
    maxTokens: typeof maxTokens === "number" && maxTokens > 0 ? maxTokens : undefined,
    temperature: typeof body.temperature === "number" ? body.temperature : 0.8,
    topP: typeof body.top_p === "number" ? body.top_p : undefined,
    seed: typeof body.seed === "number" ? body.seed : undefined,
    stop:
      typeof body.stop === "string"
        ? [body.stop]
        : Array.isArray(body.stop)
          ? body.stop.map(String)
          : [],
  };
}

/** Message content as text; content parts other than text are not understood here. */
function chatMessages(body: Record<string, unknown>): ChatMessage[] {
  return (body.messages as { role: string; content?: unknown }[]).map((message) => ({
    role: message.role,
    content: Array.isArray(message.content)
      ? message.content
          .map((part) =>
            part && typeof part === "object" && "text" in part ? String(part.text) : "",
          )
          .join("")
      : String(message.content ?? ""),
  }));
}

function promptText(body: Record<string, unknown>): string {
  const prompt = body.prompt;
  if (typeof prompt === "string") return prompt;
  if (Array.isArray(prompt) && prompt.every((item) => typeof item === "string"))
    return prompt.join("");
  throw new RoleMeshError("invalid_request", "prompt: the embedded engine takes text prompts", {
    param: "prompt",
  });
}

main().catch((err: unknown) => {
  log("E", (err as Error).message);
  process.exit(1);
});
