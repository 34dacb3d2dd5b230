import { RoleMeshError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import type {
  DeregisterRequest,
  HeartbeatRequest,
  RegisterRequest,
  RegisterResponse,
} from "../../protocol/registry.js";
import { checkAgentUrl } from "./agent-url.js";
import type { NodeIdentities } from "./node-identities.js";
import type { NodeRegistry } from "./node-registry.js";

export interface RegistryServiceOptions {
  registry: NodeRegistry;
  identities: NodeIdentities;
  /** Told to every agent that registers. */
  terms: { heartbeat_interval_s: number; lease_s: number };
  /** `allow_public_agent_urls` (see checkAgentUrl). */
  allowPublicAgentUrls: boolean;
  log: Logger;
}

/**
 * The registry's answers to agents (SPEC §7.2), whatever carries their messages: the HTTP
 * routes, and `rolemesh up`'s local agent in the same process. Every message must come from
 * the agent the node id is bound to (see NodeIdentities).
 */
export class RegistryService {
  readonly #options: RegistryServiceOptions;

  constructor(options: RegistryServiceOptions) {
    this.#options = options;
  }

  /**
   * `peer` is the address the registration came from, when it came over the network: an
   * `agent_url` on a public address must be its own (see checkAgentUrl).
   */
  register(request: RegisterRequest, peer?: string): RegisterResponse {
    const { registry, identities, terms, log } = this.#options;
    const nodeId = request.node_id;
    const agentUrl = checkAgentUrl(request.agent_url, peer, this.#options.allowPublicAgentUrls);
    const live = registry.get(nodeId) !== undefined;
    const verdict = identities.check(nodeId, request.node_secret, live);
    if (verdict.kind === "other") throw heldByAnother(nodeId);
    if (verdict.kind === "bound" && live) {
      log.warn({ node_id: nodeId }, "node id bound to the agent that registered it");
    }
    registry.register({ ...request, agent_url: agentUrl });
    return { node_id: nodeId, node_secret: verdict.secret, ...terms };
  }

  /**
   * Throws `unknown_node` for a node the registry does not hold; the agent registers again at
   * once when it reads this, so a restarted gateway heals itself. `accepted` is false for a
   * message older than what the registry holds.
   */
  heartbeat(request: HeartbeatRequest): { accepted: boolean } {
    this.#checkSender(request.node_id, request.node_secret);
    const outcome = this.#options.registry.heartbeat(request);
    if (outcome === "unknown") {
      throw new RoleMeshError("unknown_node", `node ${request.node_id} is not registered`);
    }
    return { accepted: outcome === "accepted" };
  }

  deregister(request: DeregisterRequest): { removed: boolean } {
    this.#checkSender(request.node_id, request.node_secret);
    return { removed: this.#options.registry.deregister(request) };
  }

  #checkSender(nodeId: string, presented: string | undefined): void {
    if (!this.#options.identities.matches(nodeId, presented)) throw heldByAnother(nodeId);
  }
}

function heldByAnother(nodeId: string): RoleMeshError {
  return new RoleMeshError(
    "conflict",
    `node id "${nodeId}" belongs to another agent (its node_secret differs); ` +
      "give this agent another node_id, or stop the other one",
  );
}
