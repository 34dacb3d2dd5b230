import { RoleMeshError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import type { REGISTRY_PATHS } from "../../protocol/paths.js";
import type {
  DeregisterRequest,
  HeartbeatRequest,
  RegisterRequest,
  RegisterResponse,
} from "../../protocol/registry.js";
import { RateLimiter } from "../auth/rate-limiter.js";
import { checkAgentUrl } from "./agent-url.js";
import type { NodeIdentities } from "./node-identities.js";
import type { NodeRegistry } from "./node-registry.js";

/** `register`, `heartbeat` or `deregister`. */
export type RegistryMessage = keyof typeof REGISTRY_PATHS;

export interface RegistryServiceOptions {
  registry: NodeRegistry;
  identities: NodeIdentities;
  /** Told to every agent that registers. */
  terms: { heartbeat_interval_s: number; lease_s: number };
  /** `allow_public_agent_urls` (see checkAgentUrl). */
  allowPublicAgentUrls: boolean;
  /** Live nodes held at most (`max_nodes`): one more is refused. */
  maxNodes: number;
  /** The shortest average gap between one live node's messages, in seconds; 0: no limit. */
  minMessageIntervalS: number;
  /** Told how every message ended: `accepted`, `stale`, or why it was refused. */
  observe?(message: RegistryMessage, outcome: string): void;
  log: Logger;
  now?: () => number;
}

/**
 * Messages a live node may send at once above its rate: a state change nudges a heartbeat
 * between the regular ones (0.1 s after it, several during a load or a switch).
 */
const MESSAGE_BURST = 10;

/** A registration refused because the registry holds `max_nodes` live nodes. */
class RegistryFullError extends RoleMeshError {}

/**
 * The registry's answers to agents (SPEC §7.2), whatever carries their messages: the HTTP
 * routes, and `rolemesh up`'s local agent in the same process. Every message must come from
 * the agent the node id is bound to (see NodeIdentities). What a node may cost is bounded: at
 * most `maxNodes` live nodes, each sending at most one message per `minMessageIntervalS` on
 * average (429 `rate_limited` with `Retry-After` beyond, as nginx's `limit_req` with a burst).
 */
export class RegistryService {
  readonly #options: RegistryServiceOptions;
  /** Message budgets of live nodes, forgotten when a node leaves. */
  readonly #budgets: RateLimiter;

  constructor(options: RegistryServiceOptions) {
    this.#options = options;
    this.#budgets = new RateLimiter(options.now);
    options.registry.on("event", (event) => {
      if (event.type === "node_removed") this.#budgets.forget(event.node_id);
    });
  }

  /**
   * `peer` is the address the registration came from, when it came over the network: an
   * `agent_url` on a public address must be its own (see checkAgentUrl).
   */
  register(request: RegisterRequest, peer?: string): RegisterResponse {
    return this.#observed("register", () => {
      const { registry, identities, terms, log } = this.#options;
      const nodeId = request.node_id;
      const agentUrl = checkAgentUrl(request.agent_url, peer, this.#options.allowPublicAgentUrls);
      const isLive = (id: string) => registry.get(id) !== undefined;
      const live = isLive(nodeId);
      if (!live && registry.size >= this.#options.maxNodes) throw this.#full(nodeId);
      const verdict = identities.check(nodeId, request.node_secret, isLive);
      if (verdict.kind === "other") throw heldByAnother(nodeId);
      if (verdict.kind === "bound" && live) {
        log.warn({ node_id: nodeId }, "node id bound to the agent that registered it");
      }
      if (live) this.#spend(nodeId);
      const stored = registry.register({ ...request, agent_url: agentUrl });
      return {
        outcome: stored ? "accepted" : "stale",
        answer: { node_id: nodeId, node_secret: verdict.secret, ...terms },
      };
    });
  }

  /**
   * Throws `unknown_node` for a node the registry does not hold; the agent registers again at
   * once when it reads this, so a restarted gateway heals itself. `accepted` is false for a
   * message older than what the registry holds.
   */
  heartbeat(request: HeartbeatRequest): { accepted: boolean } {
    return this.#observed("heartbeat", () => {
      this.#checkSender(request.node_id, request.node_secret);
      if (this.#options.registry.get(request.node_id)) this.#spend(request.node_id);
      const outcome = this.#options.registry.heartbeat(request);
      if (outcome === "unknown") {
        throw new RoleMeshError("unknown_node", `node ${request.node_id} is not registered`);
      }
      return { outcome, answer: { accepted: outcome === "accepted" } };
    });
  }

  deregister(request: DeregisterRequest): { removed: boolean } {
    return this.#observed("deregister", () => {
      this.#checkSender(request.node_id, request.node_secret);
      const removed = this.#options.registry.deregister(request);
      return { outcome: removed ? "accepted" : "stale", answer: { removed } };
    });
  }

  /**
   * A descriptor read from the nodes bucket (SPEC §8): each put is a register and a heartbeat
   * at once. NATS permissions, not a node secret, decide who may put a node's key, and the
   * agent's interval paces its puts; the agent URL and `max_nodes` hold as over HTTP.
   */
  putFromBucket(request: RegisterRequest): void {
    this.#observed("register", () => {
      const { registry, allowPublicAgentUrls, maxNodes } = this.#options;
      const agentUrl = checkAgentUrl(request.agent_url, undefined, allowPublicAgentUrls);
      if (!registry.get(request.node_id) && registry.size >= maxNodes) {
        throw this.#full(request.node_id);
      }
      const stored = registry.register({ ...request, agent_url: agentUrl });
      return { outcome: stored ? "accepted" : "stale", answer: undefined };
    });
  }

  /** A node's key deleted from the nodes bucket: the agent deregistered. */
  deleteFromBucket(nodeId: string): void {
    this.#observed("deregister", () => {
      const live = this.#options.registry.get(nodeId) !== undefined;
      if (live) this.#options.registry.remove(nodeId, "deregistered");
      return { outcome: live ? "accepted" : "stale", answer: undefined };
    });
  }

  /** Runs the handling of one message and tells `observe` how it ended. */
  #observed<T>(message: RegistryMessage, handle: () => { outcome: string; answer: T }): T {
    try {
      const { outcome, answer } = handle();
      this.#options.observe?.(message, outcome);
      return answer;
    } catch (err) {
      this.#options.observe?.(message, refusal(err));
      throw err;
    }
  }

  #checkSender(nodeId: string, presented: string | undefined): void {
    if (!this.#options.identities.matches(nodeId, presented)) throw heldByAnother(nodeId);
  }

  /** Takes one message from a live node's budget: 429 when it has none left. */
  #spend(nodeId: string): void {
    const intervalS = this.#options.minMessageIntervalS;
    if (intervalS <= 0) return;
    const verdict = this.#budgets.take(nodeId, 60 / intervalS, MESSAGE_BURST);
    if (verdict.allowed) return;
    throw new RoleMeshError(
      "rate_limited",
      `node ${nodeId} sends registry messages faster than one per ${intervalS} s on average`,
      { retryAfterS: verdict.retryAfterS },
    );
  }

  /**
   * 409: the request conflicts with the registry's state, not with the sender's pace (429
   * would tell a well-behaved agent to slow down) nor with the gateway's health (503: it serves
   * the nodes it holds). The agent logs a 409 as an error at every retry, so it is seen; and it
   * gets in once a node leaves.
   */
  #full(nodeId: string): RoleMeshError {
    const { maxNodes, log, terms } = this.#options;
    log.warn({ node_id: nodeId, max_nodes: maxNodes }, "registry full; registration refused");
    return new RegistryFullError(
      "conflict",
      `the gateway holds max_nodes (${maxNodes}) live nodes; node "${nodeId}" gets in when ` +
        "one leaves, or raise max_nodes in the gateway's config",
      { retryAfterS: terms.heartbeat_interval_s },
    );
  }
}

function heldByAnother(nodeId: string): RoleMeshError {
  return new RoleMeshError(
    "conflict",
    `node id "${nodeId}" belongs to another agent (its node_secret differs); ` +
      "give this agent another node_id, or stop the other one",
  );
}

/** Why a message was refused, for `observe`: the error's code, told apart where one is shared. */
export function refusal(err: unknown): string {
  if (err instanceof RegistryFullError) return "registry_full";
  return err instanceof RoleMeshError ? err.code : "internal_error";
}
