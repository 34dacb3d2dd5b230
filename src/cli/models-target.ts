/**
 * Where `rolemesh models …` sends its work: a gateway (commands to nodes, SPEC §7.3) or one
 * agent directly (its admin API, SPEC §7.1). Both answer the same questions.
 */
import { ApiClient } from "../core/http/api-client.js";
import type { OperationStatus } from "../protocol/operations.js";
import type { StatusResponse } from "../protocol/registry.js";
import { CliExit, EXIT } from "./exit-codes.js";
import type { NodeInventory } from "../protocol/inventory.js";
import type { AgentModelEntry, ModelList } from "../protocol/models.js";
import { AGENT_PATHS, fillPath } from "../protocol/paths.js";

/** One model on one node, for `models list`. */
export interface ModelRow {
  model_id: string;
  roles: string[];
  node_id: string;
  loaded_on: string[];
}

export interface InstallArgs {
  url: string;
  model_id: string;
  roles: string[];
  sha256?: string;
}

/** An install's first answer: an operation to follow, or "installed already". */
export type InstallAnswer =
  { op_id: string; joined: boolean; node_id?: string } | { installed: true; model: unknown };

export interface ModelsTarget {
  /** What the output calls the place, e.g. "node gpu-1". */
  describe(node?: string): string;
  list(): Promise<ModelRow[]>;
  load(modelId: string, node?: string, device?: string): Promise<unknown>;
  unload(modelId: string, node?: string): Promise<unknown>;
  install(args: InstallArgs, node?: string): Promise<InstallAnswer>;
  follow(
    opId: string,
    onStatus: (status: OperationStatus) => void,
    signal: AbortSignal,
  ): Promise<void>;
  operation(opId: string): Promise<OperationStatus>;
  /** Cancels an operation; its status once stopped (still `running` while it stops). */
  cancel(opId: string): Promise<OperationStatus>;
  delete(modelId: string, node?: string): Promise<unknown>;
}

const LONG_MS = 15 * 60_000;
/** A node answers a cancel once the work has stopped, or after 30 s. */
const CANCEL_MS = 60_000;

export class GatewayTarget implements ModelsTarget {
  readonly #api: ApiClient;

  constructor(url: string, key: string | undefined) {
    this.#api = new ApiClient(url, key);
  }

  describe(node?: string): string {
    return node ? `node ${node}` : `gateway ${this.#api.baseUrl}`;
  }

  async list(): Promise<ModelRow[]> {
    const { body } = await this.#api.call<StatusResponse>("GET", "/api/status");
    return body.peers.flatMap((peer) =>
      peer.models.map((model) => ({
        model_id: model.id,
        roles: model.roles,
        node_id: peer.node_id,
        loaded_on: model.loaded_on,
      })),
    );
  }

  async load(modelId: string, node?: string, device?: string): Promise<unknown> {
    const target = node ?? (await this.#onlyHolder(modelId, "load"));
    return this.#command(target, "model.load", {
      model_id: modelId,
      ...(device ? { device } : {}),
    });
  }

  async unload(modelId: string, node?: string): Promise<unknown> {
    const targets = node
      ? [node]
      : (await this.list())
          .filter((row) => row.model_id === modelId && row.loaded_on.length > 0)
          .map((row) => row.node_id);
    return Promise.all(
      targets.map((target) => this.#command(target, "model.unload", { model_id: modelId })),
    );
  }

  async install(args: InstallArgs, node?: string): Promise<InstallAnswer> {
    const target = node ?? (await this.#onlyNode());
    return (await this.#command(target, "model.install", { ...args })) as InstallAnswer;
  }

  follow(opId: string, onStatus: (status: OperationStatus) => void, signal: AbortSignal) {
    return this.#api.events(
      `/api/operations/${encodeURIComponent(opId)}`,
      (event) => onStatus(event as OperationStatus),
      signal,
    );
  }

  async operation(opId: string): Promise<OperationStatus> {
    return (
      await this.#api.call<OperationStatus>("GET", `/api/operations/${encodeURIComponent(opId)}`)
    ).body;
  }

  async cancel(opId: string): Promise<OperationStatus> {
    const path = `/api/operations/${encodeURIComponent(opId)}`;
    return (await this.#api.call<OperationStatus>("DELETE", path, { timeoutMs: CANCEL_MS })).body;
  }

  async delete(modelId: string, node?: string): Promise<unknown> {
    if (node) return this.#command(node, "model.delete", { model_id: modelId });
    return (await this.#api.call("DELETE", `/api/models/${encodeURIComponent(modelId)}`)).body;
  }

  async #command(node: string, command: string, args: Record<string, unknown>): Promise<unknown> {
    const path = `/api/nodes/${encodeURIComponent(node)}/commands/${command}`;
    const { status, body } = await this.#api.call<Record<string, unknown>>("POST", path, {
      body: args,
      timeoutMs: LONG_MS,
    });
    return status === 202 ? body : body.result;
  }

  async #onlyHolder(modelId: string, verb: string): Promise<string> {
    const holders = [
      ...new Set(
        (await this.list()).filter((row) => row.model_id === modelId).map((row) => row.node_id),
      ),
    ];
    if (holders.length === 1 && holders[0]) return holders[0];
    throw new CliExit(
      EXIT.usage,
      holders.length === 0
        ? `no live node has a model "${modelId}"`
        : `several nodes have "${modelId}" (${holders.join(", ")}): choose one to ${verb} with --node`,
    );
  }

  async #onlyNode(): Promise<string> {
    const { body } = await this.#api.call<StatusResponse>("GET", "/api/status");
    const nodes = body.peers.map((peer) => peer.node_id);
    if (nodes.length === 1 && nodes[0]) return nodes[0];
    throw new CliExit(
      EXIT.usage,
      nodes.length === 0
        ? "no live node to install on"
        : `several nodes (${nodes.join(", ")}): choose one with --node`,
    );
  }
}

export class AgentTarget implements ModelsTarget {
  readonly #api: ApiClient;

  constructor(url: string, key: string | undefined) {
    this.#api = new ApiClient(url, key);
  }

  describe(): string {
    return `agent ${this.#api.baseUrl}`;
  }

  async list(): Promise<ModelRow[]> {
    const { body } = await this.#api.call<ModelList<AgentModelEntry>>("GET", "/v1/models");
    const { body: inventory } = await this.#api.call<NodeInventory>("GET", AGENT_PATHS.inventory);
    return body.data.map((model) => ({
      model_id: model.id,
      roles: model.roles,
      node_id: inventory.node_id,
      loaded_on: model.loaded_on,
    }));
  }

  async load(modelId: string, _node?: string, device?: string): Promise<unknown> {
    return (
      await this.#api.call("POST", fillPath(AGENT_PATHS.load, { id: modelId }), {
        body: device ? { device } : {},
        timeoutMs: LONG_MS,
      })
    ).body;
  }

  async unload(modelId: string): Promise<unknown> {
    return (
      await this.#api.call("POST", fillPath(AGENT_PATHS.unload, { id: modelId }), {
        body: {},
        timeoutMs: LONG_MS,
      })
    ).body;
  }

  async install(args: InstallArgs): Promise<InstallAnswer> {
    return (await this.#api.call<InstallAnswer>("POST", AGENT_PATHS.install, { body: args })).body;
  }

  follow(opId: string, onStatus: (status: OperationStatus) => void, signal: AbortSignal) {
    return this.#api.events(
      operationPath(opId),
      (event) => onStatus(event as OperationStatus),
      signal,
    );
  }

  async operation(opId: string): Promise<OperationStatus> {
    return (await this.#api.call<OperationStatus>("GET", operationPath(opId))).body;
  }

  async cancel(opId: string): Promise<OperationStatus> {
    const path = operationPath(opId);
    return (await this.#api.call<OperationStatus>("DELETE", path, { timeoutMs: CANCEL_MS })).body;
  }

  async delete(modelId: string): Promise<unknown> {
    return (await this.#api.call("DELETE", fillPath(AGENT_PATHS.model, { id: modelId }))).body;
  }
}

const operationPath = (opId: string) => fillPath(AGENT_PATHS.operation, { op_id: opId });
