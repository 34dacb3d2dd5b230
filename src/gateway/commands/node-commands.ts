import type { Logger } from "../../core/logger.js";
import { RoleMeshError, toRoleMeshError } from "../../core/errors.js";
import { NODE_COMMAND_NAMES } from "../../protocol/node-commands.js";
import type { NodeCommandName } from "../../protocol/node-commands.js";
import type { OperationStatus } from "../../protocol/operations.js";
import { AGENT_PATHS, fillPath } from "../../protocol/paths.js";
import type { NodeRegistry, NodeRecord } from "../registry/node-registry.js";
import type { CommandTransport } from "./command-transport.js";

type Args = Record<string, unknown>;

const MINUTE = 60_000;

/** How one command maps onto the agent's node API (SPEC §7.1), and its timeout (SPEC §10). */
interface CommandSpec {
  method: "GET" | "POST" | "DELETE";
  path: string;
  /** Fills `:id` of the path with the `model_id` argument. */
  modelPath?: true;
  body?(args: Args): unknown;
  timeoutMs: number;
}

const empty = () => ({});

/** The node commands of SPEC §10, plus load / drain / resume for the console. */
const COMMANDS: Record<NodeCommandName, CommandSpec> = {
  "backend.install": {
    method: "POST",
    path: AGENT_PATHS.backendInstall,
    body: (args) => ({ ...args, model_id: modelId(args) }),
    timeoutMs: 15 * MINUTE,
  },
  "backend.upgrade": { method: "POST", path: AGENT_PATHS.backendUpgrade, timeoutMs: 15 * MINUTE },
  "backend.list": { method: "GET", path: AGENT_PATHS.backends, timeoutMs: 30_000 },
  "backend.stop": {
    method: "POST",
    path: AGENT_PATHS.backendStop,
    body: (args) => args,
    timeoutMs: 30_000,
  },
  "backend.delete": { method: "POST", path: AGENT_PATHS.backendDelete, timeoutMs: 2 * MINUTE },
  "model.install": {
    method: "POST",
    path: AGENT_PATHS.install,
    body: (args) => args,
    timeoutMs: 15 * MINUTE,
  },
  "model.load": {
    method: "POST",
    path: AGENT_PATHS.load,
    modelPath: true,
    body: (args) => (typeof args.device === "string" ? { device: args.device } : {}),
    timeoutMs: 15 * MINUTE,
  },
  "model.unload": {
    method: "POST",
    path: AGENT_PATHS.unload,
    modelPath: true,
    body: empty,
    timeoutMs: 2 * MINUTE,
  },
  "model.delete": {
    method: "DELETE",
    path: AGENT_PATHS.model,
    modelPath: true,
    timeoutMs: 2 * MINUTE,
  },
  "node.drain": { method: "POST", path: AGENT_PATHS.drain, body: empty, timeoutMs: 30_000 },
  "node.resume": { method: "POST", path: AGENT_PATHS.resume, body: empty, timeoutMs: 30_000 },
  "node.stop": { method: "POST", path: AGENT_PATHS.stop, body: empty, timeoutMs: 30_000 },
  // Wakeable capacity (SPEC §11): the node runs its own sleep_command; it sends a magic packet.
  "node.sleep": { method: "POST", path: AGENT_PATHS.sleep, body: empty, timeoutMs: 30_000 },
  "node.wol": {
    method: "POST",
    path: AGENT_PATHS.wakeOnLan,
    body: (args) => args,
    timeoutMs: 10_000,
  },
  // Split inference (SPEC §12): a worker starts its rpc-servers; the host restarts its server;
  // a former member leaves the group.
  "split.worker": {
    method: "POST",
    path: AGENT_PATHS.splitWorker,
    body: (args) => args,
    timeoutMs: 2 * MINUTE,
  },
  "split.host": {
    method: "POST",
    path: AGENT_PATHS.splitHost,
    body: (args) => args,
    timeoutMs: 15 * MINUTE,
  },
  "split.leave": {
    method: "POST",
    path: AGENT_PATHS.splitLeave,
    body: (args) => args,
    timeoutMs: 2 * MINUTE,
  },
};

const isCommand = (name: string): name is NodeCommandName =>
  (NODE_COMMAND_NAMES as readonly string[]).includes(name);

/** Who sent a command, for the log. */
export interface Sender {
  by: string;
}

/** One node's answer to a command that was applied. */
export interface NodeAnswer {
  node_id: string;
  status: number;
  body: unknown;
}

/**
 * Node commands from the gateway's admin API (SPEC §10): each is sent to one node through a
 * transport, logged with who sent it, and answered with the node's result, or with an
 * `op_id` for long work that `operation()`, `follow()` and `cancel()` then reach.
 */
export class NodeCommands {
  readonly #registry: NodeRegistry;
  readonly #transport: CommandTransport;
  readonly #log: Logger;

  constructor(registry: NodeRegistry, transport: CommandTransport, log: Logger) {
    this.#registry = registry;
    this.#transport = transport;
    this.#log = log;
  }

  async send(nodeId: string, command: string, args: Args, sender: Sender): Promise<NodeAnswer> {
    if (!isCommand(command)) {
      throw new RoleMeshError(
        "invalid_request",
        `unknown command "${command}" (known: ${NODE_COMMAND_NAMES.join(", ")})`,
      );
    }
    const spec = COMMANDS[command];
    const node = this.#node(nodeId);
    const path = fillPath(spec.path, spec.modelPath ? { id: modelId(args) } : {});
    this.#log.info(
      { node_id: nodeId, command, args: loggable(args), by: sender.by },
      "node command",
    );
    const answer = await this.#transport.call(node, {
      command,
      method: spec.method,
      path,
      ...(spec.body ? { body: spec.body(args) } : {}),
      timeoutMs: spec.timeoutMs,
    });
    return { node_id: nodeId, status: answer.status, body: answer.body };
  }

  /** An operation's status, from the node that runs it. */
  async operation(opId: string): Promise<OperationStatus> {
    return (await this.#transport.operation(opId, "status")).body;
  }

  /** Hands every status change of an operation to `onStatus` until it is done. */
  follow(
    opId: string,
    onStatus: (status: OperationStatus) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    return this.#transport.followOperation(opId, onStatus, signal);
  }

  /**
   * Cancels an operation on whichever node runs it: 200 with its final status once the work has
   * stopped, 202 while it is still stopping.
   */
  async cancel(opId: string, sender: Sender): Promise<{ status: number; body: OperationStatus }> {
    this.#log.info({ op_id: opId, by: sender.by }, "cancel operation");
    return this.#transport.operation(opId, "cancel");
  }

  /** `model.delete` on every live node that has the model (SPEC §10). */
  async deleteEverywhere(modelId: string, sender: Sender): Promise<NodeAnswer[]> {
    const holders = this.#registry
      .live()
      .filter((node) => node.snapshot.models.some((model) => model.id === modelId));
    if (holders.length === 0)
      throw new RoleMeshError("model_not_found", `no live node has a model "${modelId}"`);
    return Promise.all(
      holders.map(async (node) => {
        try {
          return await this.send(node.nodeId, "model.delete", { model_id: modelId }, sender);
        } catch (err) {
          const error = toRoleMeshError(err);
          return { node_id: node.nodeId, status: error.status, body: error.toBody() };
        }
      }),
    );
  }

  #node(nodeId: string): NodeRecord {
    const node = this.#registry.get(nodeId);
    if (!node) throw new RoleMeshError("unknown_node", `no live node "${nodeId}"`);
    return node;
  }
}

function modelId(args: Args): string {
  if (typeof args.model_id !== "string" || args.model_id === "") {
    throw new RoleMeshError("invalid_request", "model_id: expected the id of a model on the node", {
      param: "model_id",
    });
  }
  return args.model_id;
}

/** Arguments for the log: URLs lose their query string (it may carry a token). */
function loggable(args: Args): Args {
  return Object.fromEntries(
    Object.entries(args).map(([key, value]) => [
      key,
      typeof value === "string" && /^https?:\/\//.test(value)
        ? value.replace(/\?.*$/, "?…")
        : value,
    ]),
  );
}
