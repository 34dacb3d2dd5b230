import { stat } from "node:fs/promises";
import type { Logger } from "../../core/logger.js";
import type { DeviceRef } from "../../protocol/inventory.js";
import type { ModelEntry } from "../config/agent-config.js";
import { expandHome } from "../../core/paths.js";
import type { GgufHeader } from "./gguf.js";
import { readGgufHeader } from "./gguf.js";
import type { MemoryEstimate } from "./memory-estimate.js";
import { estimateMemory } from "./memory-estimate.js";

/** A configured model with what its file says about it. */
export interface CatalogEntry {
  entry: ModelEntry;
  sizeBytes: number | null;
  header: GgufHeader | null;
}

/** The models this node can serve, with their file sizes and GGUF metadata read once at start. */
export class ModelCatalog {
  readonly #entries: Map<string, CatalogEntry>;

  private constructor(entries: CatalogEntry[]) {
    this.#entries = new Map(entries.map((entry) => [entry.entry.model_id, entry]));
  }

  static async load(models: readonly ModelEntry[], log: Logger): Promise<ModelCatalog> {
    return new ModelCatalog(await Promise.all(models.map((model) => describe(model, log))));
  }

  /** Adds a model installed while the agent runs. */
  async add(entry: ModelEntry, log: Logger): Promise<void> {
    this.#entries.set(entry.model_id, await describe(entry, log));
  }

  remove(modelId: string): void {
    this.#entries.delete(modelId);
  }

  get(modelId: string): CatalogEntry | undefined {
    return this.#entries.get(modelId);
  }

  /** What `modelId` would need on `device`; offload settings only matter on a GPU. */
  estimate(model: ModelEntry, device: DeviceRef): MemoryEstimate {
    const known = this.#entries.get(model.model_id);
    return estimateMemory({
      fileBytes: known?.sizeBytes ?? 0,
      header: known?.header ?? null,
      ctxSize: model.ctx_size,
      gpuLayers: model.n_gpu_layers,
      offload: device.backend !== "cpu",
    });
  }
}

async function describe(entry: ModelEntry, log: Logger): Promise<CatalogEntry> {
  const path = expandHome(entry.path);
  let sizeBytes: number | null = null;
  let header: GgufHeader | null = null;
  try {
    sizeBytes = (await stat(path)).size;
    header = await readGgufHeader(path);
  } catch (err) {
    log.warn(
      { model: entry.model_id, path, err: (err as Error).message },
      "cannot read the model file's metadata",
    );
  }
  return { entry, sizeBytes, header };
}
