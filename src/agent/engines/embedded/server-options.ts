/** What the embedded server is told on its command line: the llama-server options it shares. */
export interface EmbeddedServerOptions {
  modelPath: string;
  host: string;
  port: number;
  /** The id `/v1/models` reports; the model path when not given, as llama-server does. */
  alias: string;
  ctxSize: number | undefined;
  /** Layers to offload; 0 keeps everything on the CPU. Undefined lets node-llama-cpp decide. */
  gpuLayers: number | undefined;
  parallel: number;
  threads: number | undefined;
  /** Options llama-server has and this server ignores (reported in its log). */
  ignored: string[];
}

const VALUE_OPTIONS: Record<string, keyof EmbeddedServerOptions> = {
  "-m": "modelPath",
  "--model": "modelPath",
  "--host": "host",
  "--port": "port",
  "--alias": "alias",
  "-a": "alias",
  "-c": "ctxSize",
  "--ctx-size": "ctxSize",
  "-ngl": "gpuLayers",
  "--gpu-layers": "gpuLayers",
  "--n-gpu-layers": "gpuLayers",
  "-np": "parallel",
  "--parallel": "parallel",
  "-t": "threads",
  "--threads": "threads",
};
const NUMERIC = new Set<keyof EmbeddedServerOptions>([
  "port",
  "ctxSize",
  "gpuLayers",
  "parallel",
  "threads",
]);

/** Parses llama-server style arguments; throws on a missing model or a malformed number. */
export function parseServerOptions(argv: readonly string[]): EmbeddedServerOptions {
  const values: Partial<Record<keyof EmbeddedServerOptions, string>> = {};
  const ignored: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const key = VALUE_OPTIONS[arg];
    if (key) {
      const value = argv[++i];
      if (value === undefined) throw new Error(`${arg} needs a value`);
      values[key] = value;
    } else {
      ignored.push(arg);
      // Skip the value of an option we do not know, so it is not taken for an option itself.
      const next = argv[i + 1];
      if (arg.startsWith("-") && next !== undefined && !next.startsWith("-"))
        ignored.push(argv[++i] ?? "");
    }
  }
  if (!values.modelPath) throw new Error("-m MODEL_PATH is required");
  const number = (key: keyof EmbeddedServerOptions): number | undefined => {
    const text = values[key];
    if (text === undefined) return undefined;
    const value = Number(text);
    if (!Number.isInteger(value)) throw new Error(`${key} must be a whole number, got "${text}"`);
    return value;
  };
  for (const key of NUMERIC) number(key);
  return {
    modelPath: values.modelPath,
    host: values.host ?? "127.0.0.1",
    port: number("port") ?? 8080,
    alias: values.alias ?? values.modelPath,
    ctxSize: number("ctxSize"),
    gpuLayers: number("gpuLayers"),
    parallel: Math.max(1, number("parallel") ?? 1),
    threads: number("threads"),
    ignored,
  };
}
