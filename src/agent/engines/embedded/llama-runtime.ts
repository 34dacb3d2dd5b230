import {
  ChatMLChatWrapper,
  getLlama,
  LlamaChat,
  LlamaCompletion,
  LlamaLogLevel,
} from "node-llama-cpp";
import type {
  ChatHistoryItem,
  ChatWrapper,
  Llama,
  LlamaContext,
  LlamaContextSequence,
  LlamaEmbeddingContext,
  LlamaModel,
} from "node-llama-cpp";
import type { EmbeddedServerOptions } from "./server-options.js";
import { Serial } from "../../../core/async.js";
import { SequencePool } from "./sequence-pool.js";

/** Sampling and stopping options of one generation, from the OpenAI request. */
export interface GenerationParams {
  maxTokens: number | undefined;
  temperature: number;
  topP: number | undefined;
  seed: number | undefined;
  stop: string[];
}

export interface GenerationResult {
  text: string;
  promptTokens: number;
  completionTokens: number;
  finishReason: "stop" | "length";
}

export interface ChatMessage {
  role: string;
  content: string;
}

/** Called with each piece of generated text as it is produced. */
export type OnText = (text: string) => void;

/**
 * One model loaded through node-llama-cpp, with `parallel` context sequences handed out to
 * requests in arrival order. A generation whose signal fires stops at once and gives its
 * sequence back.
 */
export class LlamaRuntime {
  readonly #llama: Llama;
  readonly #model: LlamaModel;
  readonly #context: LlamaContext;
  readonly #sequences: SequencePool<LlamaContextSequence>;
  readonly #chatWrapper: ChatWrapper | "auto";
  readonly #options: EmbeddedServerOptions;
  #embedding: Promise<LlamaEmbeddingContext> | undefined;
  readonly #embeddingTurns = new Serial();

  private constructor(
    llama: Llama,
    model: LlamaModel,
    context: LlamaContext,
    options: EmbeddedServerOptions,
  ) {
    this.#llama = llama;
    this.#model = model;
    this.#context = context;
    this.#options = options;
    this.#sequences = new SequencePool(
      Array.from({ length: options.parallel }, () => context.getSequence()),
    );
    // Models without a chat template get ChatML, as llama-server does (see README).
    this.#chatWrapper = model.fileInfo.metadata.tokenizer?.chat_template
      ? "auto"
      : new ChatMLChatWrapper();
  }

  static async load(
    options: EmbeddedServerOptions,
    log: (line: string) => void,
  ): Promise<LlamaRuntime> {
    const llama = await getLlama({
      // -ngl 0 (the CPU device) needs no GPU build; otherwise the best build found, else CPU.
      gpu: options.gpuLayers === 0 ? false : "auto",
      build: "never",
      logLevel: LlamaLogLevel.warn,
      logger: (_level, message) => log(message.trimEnd()),
    });
    const model = await llama.loadModel({
      modelPath: options.modelPath,
      ...(options.gpuLayers === undefined ? {} : { gpuLayers: options.gpuLayers }),
    });
    const context = await model.createContext({
      sequences: options.parallel,
      contextSize: options.ctxSize ?? { max: 4096 },
      ...(options.threads ? { threads: options.threads } : {}),
    });
    return new LlamaRuntime(llama, model, context, options);
  }

  /** `cpu`, `cuda`, `vulkan` or `metal`: the llama.cpp build in use. */
  get gpu(): string {
    return this.#llama.gpu === false ? "cpu" : this.#llama.gpu;
  }

  get contextSize(): number {
    return this.#context.contextSize;
  }

  get trainContextSize(): number {
    return this.#model.trainContextSize;
  }

  get embeddingLength(): number {
    return this.#model.embeddingVectorSize;
  }

  async chat(
    messages: ChatMessage[],
    params: GenerationParams,
    onText: OnText,
    signal: AbortSignal,
  ): Promise<GenerationResult> {
    const history = toChatHistory(messages);
    return this.#withSequence(signal, async (sequence) => {
      const chat = new LlamaChat({ contextSequence: sequence, chatWrapper: this.#chatWrapper });
      try {
        const promptTokens = chat.chatWrapper
          .generateContextState({ chatHistory: history })
          .contextText.tokenize(this.#model.tokenizer).length;
        const meter = { tokens: 0 };
        const response = await chat.generateResponse(
          history,
          generation(params, signal, onText, meter),
        );
        return {
          text: response.response,
          promptTokens,
          completionTokens: meter.tokens,
          finishReason: finishReason(response.metadata.stopReason),
        };
      } finally {
        chat.dispose({ disposeSequence: false });
      }
    });
  }

  async complete(
    prompt: string,
    params: GenerationParams,
    onText: OnText,
    signal: AbortSignal,
  ): Promise<GenerationResult> {
    const promptTokens = this.#model.tokenize(prompt).length;
    return this.#withSequence(signal, async (sequence) => {
      const completion = new LlamaCompletion({ contextSequence: sequence });
      try {
        const meter = { tokens: 0 };
        const { response, metadata } = await completion.generateCompletionWithMeta(
          prompt,
          generation(params, signal, onText, meter),
        );
        return {
          text: response,
          promptTokens,
          completionTokens: meter.tokens,
          finishReason: finishReason(metadata.stopReason),
        };
      } finally {
        completion.dispose({ disposeSequence: false });
      }
    });
  }

  /** Embeds each input in turn on an embedding context created on first use. */
  async embed(inputs: string[]): Promise<{ vectors: number[][]; tokens: number }> {
    this.#embedding ??= this.#model.createEmbeddingContext({
      contextSize: this.#options.ctxSize ?? { max: 4096 },
      ...(this.#options.threads ? { threads: this.#options.threads } : {}),
    });
    const context = await this.#embedding;
    return this.#embeddingTurns.run(async () => {
      const vectors: number[][] = [];
      let tokens = 0;
      for (const input of inputs) {
        tokens += this.#model.tokenize(input).length;
        vectors.push([...(await context.getEmbeddingFor(input)).vector]);
      }
      return { vectors, tokens };
    });
  }

  async dispose(): Promise<void> {
    await this.#llama.dispose();
  }

  async #withSequence<T>(
    signal: AbortSignal,
    work: (sequence: LlamaContextSequence) => Promise<T>,
  ): Promise<T> {
    const sequence = await this.#sequences.acquire(signal);
    try {
      return await work(sequence);
    } finally {
      this.#sequences.release(sequence);
    }
  }
}

/** Options of one generation, chat or completion; generated tokens are counted into `meter`. */
function generation(
  params: GenerationParams,
  signal: AbortSignal,
  onText: OnText,
  meter: { tokens: number },
) {
  return {
    temperature: params.temperature,
    ...(params.maxTokens === undefined ? {} : { maxTokens: params.maxTokens }),
    ...(params.topP === undefined ? {} : { topP: params.topP }),
    ...(params.seed === undefined ? {} : { seed: params.seed }),
    customStopTriggers: params.stop,
    signal,
    stopOnAbortSignal: false,
    onTextChunk: onText,
    onToken: (tokens: readonly unknown[]) => (meter.tokens += tokens.length),
  };
}

/** OpenAI's finish_reason for node-llama-cpp's stop reason. */
function finishReason(stopReason: string): GenerationResult["finishReason"] {
  return stopReason === "maxTokens" ? "length" : "stop";
}

/** OpenAI messages as node-llama-cpp history, ending with the model's turn to answer. */
function toChatHistory(messages: ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = messages.map((message): ChatHistoryItem => {
    if (message.role === "system" || message.role === "developer")
      return { type: "system", text: message.content };
    if (message.role === "assistant") return { type: "model", response: [message.content] };
    return { type: "user", text: message.content };
  });
  history.push({ type: "model", response: [] });
  return history;
}
