import type { GgufHeader } from "./gguf.js";
import { MIB } from "../../core/units.js";

/** Compute buffers and scratch space llama.cpp allocates besides weights and KV cache. */
const OVERHEAD_BYTES = 128 * MIB;
/** Used when neither the config nor the file says: llama-server's usual default context. */
const DEFAULT_CONTEXT = 4096;

/** Memory a model needs on a device, in bytes. */
export interface MemoryEstimate {
  weights: number;
  kv_cache: number;
  overhead: number;
  total: number;
}

export interface EstimateInput {
  fileBytes: number;
  /** The file's metadata; without it only the file size is known. */
  header: GgufHeader | null;
  ctxSize: number | undefined;
  /** `n_gpu_layers` of the model entry; fewer layers than the model has means less on the GPU. */
  gpuLayers: number | undefined;
  /** True for a GPU: partial offload counts; on the CPU everything is in RAM. */
  offload: boolean;
}

/**
 * Estimates what loading a model costs: its weights (the file size, scaled for partial GPU
 * offload), an f16 KV cache for the context, and a fixed overhead. It is an estimate to refuse
 * placements that cannot fit, not an exact accounting.
 */
export function estimateMemory(input: EstimateInput): MemoryEstimate {
  const { header } = input;
  const arch = stringValue(header, "general.architecture");
  const layers = offloadableLayers(header);
  const share =
    input.offload && input.gpuLayers !== undefined && input.gpuLayers >= 0 && layers
      ? Math.min(1, input.gpuLayers / layers)
      : 1;
  const weights = Math.round(input.fileBytes * share);
  const context =
    input.ctxSize ??
    Math.min(numberValue(header, `${arch}.context_length`) ?? DEFAULT_CONTEXT, DEFAULT_CONTEXT);
  const kv_cache = Math.round(kvCacheBytes(header, arch, context) * share);
  return {
    weights,
    kv_cache,
    overhead: OVERHEAD_BYTES,
    total: weights + kv_cache + OVERHEAD_BYTES,
  };
}

/**
 * The layers llama.cpp can offload (`-ngl`): the repeating blocks and the output layer; null
 * when the file does not say.
 */
export function offloadableLayers(header: GgufHeader | null): number | null {
  const blocks = numberValue(header, `${stringValue(header, "general.architecture")}.block_count`);
  return blocks ? blocks + 1 : null;
}

/** K and V, f16, for every layer and position: 2 x layers x context x (k + v width) x 2 bytes. */
function kvCacheBytes(
  header: GgufHeader | null,
  arch: string | undefined,
  context: number,
): number {
  const layers = numberValue(header, `${arch}.block_count`);
  const embedding = numberValue(header, `${arch}.embedding_length`);
  const heads = numberValue(header, `${arch}.attention.head_count`);
  if (!layers || !embedding || !heads) return 0;
  const kvHeads = numberValue(header, `${arch}.attention.head_count_kv`) ?? heads;
  const keyWidth = numberValue(header, `${arch}.attention.key_length`) ?? embedding / heads;
  const valueWidth = numberValue(header, `${arch}.attention.value_length`) ?? embedding / heads;
  return layers * context * kvHeads * (keyWidth + valueWidth) * 2;
}

function numberValue(header: GgufHeader | null, key: string): number | undefined {
  const value = header?.metadata.get(key);
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  return undefined;
}

function stringValue(header: GgufHeader | null, key: string): string | undefined {
  const value = header?.metadata.get(key);
  return typeof value === "string" ? value : undefined;
}
