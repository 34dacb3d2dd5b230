import type { NodeInventory } from "../../protocol/inventory.js";
import type { AgentModelEntry, ModelList } from "../../protocol/models.js";
import type { DrainState, LoadResult, UnloadResult } from "../../protocol/node-commands.js";
import type { Backends } from "../backends/backends.js";
import type { InferenceService } from "../inference/inference-service.js";
import type { ModelManager } from "../models/model-manager.js";
import type { Operations } from "../operations/operations.js";
import type { NodeSleep } from "../sleep/node-sleep.js";
import type { SplitNode } from "../split/split-node.js";

/** What the agent's HTTP routes need of the agent: they parse, call this, and answer. */
export interface AgentApi {
  readonly nodeId: string;
  /** Largest request body accepted (`max_body_mb`). */
  readonly maxBodyBytes: number;
  readonly inference: InferenceService;
  /** Installed models (SPEC §10 `model.install`, `model.delete`). */
  readonly modelManager: ModelManager;
  readonly operations: Operations;
  readonly backends: Backends;
  /** Its part in split inference; throws when it can take none (SPEC §12). */
  readonly split: SplitNode;
  /** `node.sleep`: the machine suspended by its `sleep_command` (SPEC §11). */
  readonly sleep: NodeSleep;
  /** `GET /v1/models`. */
  models(): ModelList<AgentModelEntry>;
  inventory(): NodeInventory;
  /** The Prometheus text exposition, and its content type. */
  scrapeMetrics(): Promise<{ contentType: string; text: string }>;
  /** Starts `name` (a model id or role) on `device` or the one the scheduler picks; once ready. */
  load(name: string, device: string | undefined, signal?: AbortSignal): Promise<LoadResult>;
  /** Stops every server holding `name`, each once its device has drained. */
  unload(name: string, signal?: AbortSignal): Promise<UnloadResult>;
  drain(): DrainState;
  resume(): DrainState;
  /** `node.stop`: deregister and exit, as on SIGTERM. */
  requestStop(): void;
}
