import { modelList } from "../../core/proxy/model-list.js";
import { MIB } from "../../core/units.js";
import type { BackendName, LiveState, NodeInventory } from "../../protocol/inventory.js";
import type { AgentModelEntry, ModelList } from "../../protocol/models.js";
import type { SplitGroupInfo } from "../../protocol/split.js";
import type { ModelEntry } from "../config/agent-config.js";
import { hostCapabilities } from "../devices/host-capabilities.js";
import type { ModelCatalog } from "../models/model-catalog.js";
import type { Scheduler } from "../scheduler/scheduler.js";

/** What the node's reports are made of. */
export interface InventorySource {
  nodeId: string;
  /** Refusing new requests while admitted ones finish. */
  draining: boolean;
  backend: BackendName;
  engine: "llama-server" | "embedded";
  models: readonly ModelEntry[];
  scheduler: Scheduler;
  catalog: ModelCatalog;
  /** The split groups the node takes part in (SPEC §12). */
  splitGroups: readonly SplitGroupInfo[];
}

/** The node's live state (SPEC §7.4). */
export function liveState({ scheduler, models }: InventorySource): LiveState {
  const devices = scheduler.devices;
  if (devices.length === 0 || models.length === 0) return "client";
  if (devices.some((device) => device.serverState === "ready")) return "serving";
  const busy = devices.some((device) => device.serverState === "starting" || device.pressure > 0);
  return busy ? "loading" : "standby";
}

/** `GET /v1/node/inventory` (SPEC §7.1), also the descriptor sent to gateways. */
export function nodeInventory(source: InventorySource): NodeInventory {
  const { scheduler, catalog } = source;
  const engineVersion = scheduler.devices.map((device) => device.engineVersion).find(Boolean);
  const capabilities = hostCapabilities(source.engine, engineVersion ?? null);
  return {
    node_id: source.nodeId,
    hostname: capabilities.hostname,
    state: liveState(source),
    draining: source.draining,
    capabilities,
    backend: source.backend,
    engine: source.engine,
    devices: scheduler.devices.map((device) =>
      device.inventory(Math.round(scheduler.reservedBytes(device) / MIB)),
    ),
    models: source.models.map((model) => ({
      id: model.model_id,
      path: model.path,
      roles: model.roles,
      size_bytes: catalog.get(model.model_id)?.sizeBytes ?? null,
      loaded_on: scheduler.devicesWith(model.model_id).map((device) => device.id),
      split: model.split,
      split_max_nodes: model.split_max_nodes,
      parallel: model.parallel,
    })),
    split_groups: [...source.splitGroups],
  };
}

/** `GET /v1/models` of the agent: each model with its roles and where it is loaded. */
export function agentModels({
  models,
  scheduler,
}: Pick<InventorySource, "models" | "scheduler">): ModelList<AgentModelEntry> {
  return modelList(
    new Date(),
    models.map((model) => {
      const devices = scheduler.devicesWith(model.model_id);
      const state: AgentModelEntry["state"] = devices.some(
        (device) => device.serverState === "ready",
      )
        ? "ready"
        : devices.length > 0
          ? "loading"
          : "stopped";
      return {
        id: model.model_id,
        roles: model.roles,
        loaded_on: devices.map((device) => device.id),
        state,
      };
    }),
  );
}
