import type { Logger } from "../../core/logger.js";
import type { OperationStarted } from "../../protocol/operations.js";
import type { ServerInfo } from "../../protocol/inventory.js";
import type { BackendList, BackendServer, LoadResult } from "../../protocol/node-commands.js";
import type { ModelEntry } from "../config/agent-config.js";
import type { Operations } from "../operations/operations.js";
import type { Scheduler } from "../scheduler/scheduler.js";

export interface BackendsOptions {
  nodeId: string;
  engine: string;
  scheduler: Scheduler;
  operations: Operations;
  log: Logger;
  resolveModel(name: string): ModelEntry;
  load(name: string, device: string | undefined, signal?: AbortSignal): Promise<LoadResult>;
  unload(modelId: string): Promise<string[]>;
}

/**
 * The `backend.*` commands (SPEC §10) on this node: its servers, one per device. The agent
 * runs engines it finds and installs no engine files, so upgrade and delete stop servers only.
 */
export class Backends {
  readonly #options: BackendsOptions;

  constructor(options: BackendsOptions) {
    this.#options = options;
  }

  /** `backend.list`: every device's server. */
  list(): BackendList {
    const { nodeId, engine, scheduler } = this.#options;
    return {
      node_id: nodeId,
      engine,
      backends: scheduler.devices.map((device) => {
        const server = device.server();
        return { device: device.id, ...server, address: address(server) };
      }),
    };
  }

  /**
   * `backend.install`: a ready server for the model. Its address at once when one runs already
   * (on `device`, if given); otherwise an operation that starts it (a repeat joins it).
   */
  install(modelId: string, device: string | undefined): BackendServer | OperationStarted {
    const model = this.#options.resolveModel(modelId);
    const ready = this.list().backends.find(
      (server) =>
        server.model_id === model.model_id &&
        server.state === "ready" &&
        (device === undefined || server.device === device),
    );
    if (ready) return ready;
    return this.#options.operations.start(
      "backend.install",
      `backend.install:${model.model_id}:${device ?? "auto"}`,
      async (operation) => {
        operation.report({ phase: "starting server" });
        // Cancelled: the server being started stops, which ends the load.
        const stop = () =>
          void this.#options
            .unload(model.model_id)
            .catch((err: unknown) => this.#options.log.warn({ err }, "backend.install cancel"));
        operation.signal.addEventListener("abort", stop, { once: true });
        try {
          const loaded = await this.#options.load(model.model_id, device);
          operation.signal.throwIfAborted();
          return { ...loaded, address: address(loaded.server) };
        } finally {
          operation.signal.removeEventListener("abort", stop);
        }
      },
    );
  }

  /**
   * `backend.stop`: the servers of `modelId` (all when absent) stop, each once its device has
   * drained. Fire-and-forget (SPEC §10): answers the devices at once.
   */
  stop(modelId: string | undefined): string[] {
    const devices = this.#serving(modelId);
    void Promise.all(
      (modelId ? [modelId] : this.#runningModels()).map((id) => this.#options.unload(id)),
    ).catch((err: unknown) => this.#options.log.warn({ err }, "backend.stop failed"));
    return devices;
  }

  /** `backend.upgrade` and `backend.delete`: every server stops; answers once they have. */
  async stopAll(): Promise<string[]> {
    const devices = this.#serving(undefined);
    await Promise.all(this.#runningModels().map((id) => this.#options.unload(id)));
    return devices;
  }

  #runningModels(): string[] {
    const ids = this.#options.scheduler.devices.map((device) => device.activeModel?.model_id);
    return [...new Set(ids.filter((id): id is string => id !== undefined))];
  }

  /** Devices whose server holds `modelId`, or any model when it is absent. */
  #serving(modelId: string | undefined): string[] {
    return this.#options.scheduler.devices
      .filter((device) => {
        const active = device.activeModel?.model_id;
        return active !== undefined && (modelId === undefined || active === modelId);
      })
      .map((device) => device.id);
  }
}

const address = (server: ServerInfo) => (server.port ? `http://127.0.0.1:${server.port}` : null);
