import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { REQUEST_DURATION_BUCKETS } from "../../core/metrics.js";
import type { LiveState } from "../../protocol/inventory.js";
import type { NodeRegistry } from "../registry/node-registry.js";
import type { RegistryMessage } from "../registry/registry-service.js";

const LIVE_STATES: readonly LiveState[] = ["client", "standby", "loading", "serving"];

export interface GatewayMetricsOptions {
  nodes: NodeRegistry;
  /** `max_nodes`. */
  maxNodes: number;
  /** `/api/events` streams open now. */
  eventClients(): number;
  /** Requests held for a wake now (SPEC §11). */
  heldRequests(): number;
}

/** One OpenAI request the gateway answered. */
export interface RequestRecord {
  endpoint: string;
  /**
   * The model id or role asked for, "" when no live node offers it: names a client makes up
   * never become series.
   */
  model: string;
  /** The name of the client key it came with, if any (never the key itself). */
  key: string | undefined;
  /** `ok`, `aborted` (the client left), `upstream_error` (the answer broke off), or an error code. */
  outcome: string;
  seconds: number;
}

/**
 * The gateway's Prometheus metrics (`GET /metrics`), in the `rolemesh_*` family of the agent's.
 * Registry gauges are read from the registry when scraped; requests, attempts and messages are
 * counted as they end. Series are bounded: per node only for live nodes (a node's go when it
 * leaves), per model only for names the fleet offers, per key only for configured keys.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #nodes: NodeRegistry;
  /** Attempts on each live node by outcome. */
  readonly #attempts = new Map<string, Map<string, number>>();
  readonly #requests: Counter<"endpoint" | "model" | "outcome">;
  readonly #duration: Histogram<"endpoint" | "model">;
  readonly #keyRequests: Counter<"key" | "outcome">;
  readonly #registryMessages: Counter<"message" | "outcome">;
  readonly #eventClientsRefused: Counter;
  readonly #registryLag: Histogram;
  readonly #affinity: Counter<"outcome">;
  readonly #wakes: Counter<"entry">;
  readonly #wakeFailures: Counter<"entry">;
  readonly #wakeDuration: Histogram;

  constructor(options: GatewayMetricsOptions) {
    const { nodes } = options;
    const attempts = this.#attempts;
    const registers = [this.registry];
    this.#nodes = nodes;
    new Gauge({
      name: "rolemesh_nodes",
      help: "Live nodes in the registry, by live state.",
      labelNames: ["state"] as const,
      registers,
      collect() {
        for (const state of LIVE_STATES) this.set({ state }, 0);
        for (const record of nodes.live()) this.inc({ state: record.snapshot.state });
      },
    });
    new Gauge({
      name: "rolemesh_gateway_max_nodes",
      help: "Live nodes the registry holds at most (max_nodes).",
      registers,
    }).set(options.maxNodes);
    new Gauge({
      name: "rolemesh_gateway_node_in_flight_requests",
      help: "Requests the gateway has in flight to each live node.",
      labelNames: ["node"] as const,
      registers,
      collect() {
        this.reset();
        for (const record of nodes.live()) this.set({ node: record.nodeId }, record.inFlight);
      },
    });
    new Counter({
      name: "rolemesh_gateway_node_requests_total",
      help:
        "Requests sent to each live node (every attempt), by how they ended: ok, " +
        "upstream_error (the answer broke off), unreachable, or the error code the node answered.",
      labelNames: ["node", "outcome"] as const,
      registers,
      collect() {
        this.reset();
        for (const [node, outcomes] of attempts) {
          for (const [outcome, count] of outcomes) this.inc({ node, outcome }, count);
        }
      },
    });
    this.#requests = new Counter({
      name: "rolemesh_gateway_requests_total",
      help:
        "OpenAI requests answered, by outcome: ok, aborted (the client left), upstream_error " +
        "(the answer broke off), or the error code answered.",
      labelNames: ["endpoint", "model", "outcome"],
      registers,
    });
    this.#registryLag = new Histogram({
      name: "rolemesh_gateway_registry_lag_seconds",
      help: "Over NATS: time from a node's put into the nodes bucket to its descriptor in this gateway's registry.",
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
      registers,
    });
    this.#duration = new Histogram({
      name: "rolemesh_gateway_request_duration_seconds",
      help: "Time from receiving a request to its last byte.",
      labelNames: ["endpoint", "model"],
      buckets: REQUEST_DURATION_BUCKETS,
      registers,
    });
    this.#keyRequests = new Counter({
      name: "rolemesh_gateway_key_requests_total",
      help: "OpenAI requests made with each client key, by the key's name and outcome.",
      labelNames: ["key", "outcome"],
      registers,
    });
    this.#registryMessages = new Counter({
      name: "rolemesh_gateway_registry_messages_total",
      help:
        "Register, heartbeat and deregister messages, by outcome: accepted, stale (older than " +
        "what the registry holds), or why they were refused.",
      labelNames: ["message", "outcome"],
      registers,
    });
    const removals = new Counter({
      name: "rolemesh_gateway_node_removals_total",
      help: "Nodes that left the registry, by reason.",
      labelNames: ["reason"] as const,
      registers,
    });
    new Gauge({
      name: "rolemesh_gateway_event_clients",
      help: "Open /api/events streams.",
      registers,
      collect() {
        this.set(options.eventClients());
      },
    });
    this.#eventClientsRefused = new Counter({
      name: "rolemesh_gateway_event_clients_refused_total",
      help: "/api/events streams refused because max_event_clients were open.",
      registers,
    });
    this.#affinity = new Counter({
      name: "rolemesh_gateway_affinity_total",
      help:
        "Requests routed by prompt prefix, by outcome: hit (to the node the prefix went to " +
        "last), miss (to its own node, new to it) or overflow (its node was over the load bound).",
      labelNames: ["outcome"],
      registers,
    });
    this.#wakes = new Counter({
      name: "rolemesh_gateway_wakes_total",
      help: "Wakes this gateway ran, by wakeable entry (one per entry however many requests).",
      labelNames: ["entry"],
      registers,
    });
    this.#wakeFailures = new Counter({
      name: "rolemesh_gateway_wake_failures_total",
      help: "Wakes that failed (the action, or no node within wake_timeout_s), by wakeable entry.",
      labelNames: ["entry"],
      registers,
    });
    this.#wakeDuration = new Histogram({
      name: "rolemesh_gateway_wake_seconds",
      help: "From a wake's start to its node registering.",
      buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
      registers,
    });
    new Gauge({
      name: "rolemesh_gateway_wake_held_requests",
      help: "Requests held while what serves them wakes.",
      registers,
      collect() {
        this.set(options.heldRequests());
      },
    });
    nodes.on("event", (event) => {
      if (event.type !== "node_removed") return;
      removals.inc({ reason: event.reason });
      attempts.delete(event.node_id);
    });
  }

  observeRequest(request: RequestRecord): void {
    const { endpoint, model, key, outcome } = request;
    this.#requests.inc({ endpoint, model, outcome });
    this.#duration.observe({ endpoint, model }, request.seconds);
    if (key !== undefined) this.#keyRequests.inc({ key, outcome });
  }

  /** One attempt on a node; one that left meanwhile is not counted (its series are gone). */
  observeAttempt(nodeId: string, outcome: string): void {
    if (!this.#nodes.get(nodeId)) return;
    const outcomes = this.#attempts.get(nodeId) ?? new Map<string, number>();
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    this.#attempts.set(nodeId, outcomes);
  }

  observeRegistryMessage(message: RegistryMessage, outcome: string): void {
    this.#registryMessages.inc({ message, outcome });
  }

  /** Over NATS: how long a node's put took to reach this gateway's registry. */
  observeRegistryLag(seconds: number): void {
    this.#registryLag.observe(Math.max(0, seconds));
  }

  eventClientRefused(): void {
    this.#eventClientsRefused.inc();
  }

  observeAffinity(outcome: string): void {
    this.#affinity.inc({ outcome });
  }

  /** Hooks for the waker (SPEC §11). */
  readonly wakes = {
    wakeStarted: (entry: string) => this.#wakes.inc({ entry }),
    wakeFailed: (entry: string) => this.#wakeFailures.inc({ entry }),
    wakeSeconds: (seconds: number) => this.#wakeDuration.observe(seconds),
  };
}
