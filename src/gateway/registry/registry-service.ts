import { RoleMeshError } from "../../core/errors.js";
import type {
  DeregisterRequest,
  HeartbeatRequest,
  RegisterRequest,
  RegisterResponse,
} from "../../protocol/registry.js";
import type { NodeRegistry } from "./node-registry.js";

/**
 * The registry's answers to agents (SPEC §7.2), whatever carries their messages: the HTTP
 * routes, and `rolemesh up`'s local agent in the same process.
 */
export class RegistryService {
  readonly #registry: NodeRegistry;
  readonly #terms: Omit<RegisterResponse, "node_id">;

  constructor(registry: NodeRegistry, terms: { heartbeat_interval_s: number; lease_s: number }) {
    this.#registry = registry;
    this.#terms = terms;
  }

  register(request: RegisterRequest): RegisterResponse {
    this.#registry.register(request);
    return { node_id: request.node_id, ...this.#terms };
  }

  /**
   * Throws `unknown_node` for a node the registry does not hold; the agent registers again at
   * once when it reads this, so a restarted gateway heals itself. `accepted` is false for a
   * message older than what the registry holds.
   */
  heartbeat(request: HeartbeatRequest): { accepted: boolean } {
    const outcome = this.#registry.heartbeat(request);
    if (outcome === "unknown") {
      throw new RoleMeshError("unknown_node", `node ${request.node_id} is not registered`);
    }
    return { accepted: outcome === "accepted" };
  }

  deregister(request: DeregisterRequest): { removed: boolean } {
    return { removed: this.#registry.deregister(request) };
  }
}
