import type { TunnelEndpoint } from "../../protocol/split.js";
import { EventEmitter } from "node:events";
import type { LiveState } from "../../protocol/inventory.js";
import type {
  DeregisterRequest,
  HeartbeatRequest,
  MessageOrder,
  NodeSnapshot,
  PeerStatus,
  RegisterRequest,
  RegistryEvent,
} from "../../protocol/registry.js";

/** A live node as the gateway keeps it. */
export interface NodeRecord {
  nodeId: string;
  hostname: string;
  agentUrl: string;
  version: string;
  labels: Record<string, string>;
  capabilities: RegisterRequest["capabilities"];
  /** Presented to the agent on every call; never shown or logged. */
  authToken: string | undefined;
  /** Its tunnel for split inference, if it can take part in one (SPEC §12). */
  tunnel: TunnelEndpoint | undefined;
  snapshot: NodeSnapshot;
  order: MessageOrder;
  registeredAt: number;
  lastSeen: number;
  /** Requests the gateway has in flight to this node. */
  inFlight: number;
  /** Connection failures in a row; reset by a successful call or a heartbeat. */
  connectFailures: number;
}

export interface NodeRegistryOptions {
  /** A node with no accepted message for this long leaves the registry. */
  leaseMs: number;
  /** Connection failures in a row after which a node leaves routing. */
  maxConnectFailures?: number;
  /** How often `sweep()` is called; a longer gap means the gateway itself was not running. */
  sweepIntervalMs?: number;
  /** Removed nodes remembered at most (the oldest is forgotten first). */
  maxTombstones?: number;
  now?: () => number;
}

export interface NodeRegistryEvents {
  event: [RegistryEvent];
}

export type HeartbeatOutcome = "accepted" | "stale" | "unknown";

/**
 * How long the order of a removed node is remembered, to refuse replays of its messages. A
 * forgotten one costs little: a replayed registration of it is a node that lapses with its lease.
 */
const TOMBSTONE_MS = 10 * 60_000;

/**
 * The registry of live nodes (SPEC §7.2): register, heartbeat, deregister, lease expiry.
 * Messages carry an order; one that is not newer than what is held (or than a removed node's
 * last order) changes nothing, so late and replayed messages never revive or roll back.
 */
export class NodeRegistry extends EventEmitter<NodeRegistryEvents> {
  readonly #nodes = new Map<string, NodeRecord>();
  readonly #tombstones = new Map<string, { order: MessageOrder; at: number }>();
  readonly #options: Required<NodeRegistryOptions>;
  /** When leases were last checked (from the start: a pause before the first sweep counts). */
  #lastSweep: number;

  constructor(options: NodeRegistryOptions) {
    super();
    this.#options = {
      maxConnectFailures: 3,
      sweepIntervalMs: 1000,
      maxTombstones: 1000,
      now: Date.now,
      ...options,
    };
    this.#lastSweep = this.#options.now();
  }

  get leaseMs(): number {
    return this.#options.leaseMs;
  }

  /** Live nodes. */
  get size(): number {
    return this.#nodes.size;
  }

  /** Stores or refreshes a node. Returns false when the message was stale and ignored. */
  register(request: RegisterRequest): boolean {
    const known = this.#nodes.get(request.node_id);
    if (!isNewer(request, known?.order ?? this.#tombstones.get(request.node_id)?.order))
      return false;
    const now = this.#options.now();
    const fields = {
      hostname: request.hostname,
      agentUrl: request.agent_url.replace(/\/+$/, ""),
      version: request.version,
      labels: request.labels,
      capabilities: request.capabilities,
      authToken: request.auth_token || undefined,
      tunnel: request.tunnel,
      snapshot: request.snapshot,
      order: { started_at: request.started_at, sequence: request.sequence },
      lastSeen: now,
      connectFailures: 0,
    };
    // A known node keeps its record object: requests in flight count down on the one they
    // counted up on, so a re-registration never leaves the count adrift.
    const record: NodeRecord = known
      ? Object.assign(known, fields)
      : { nodeId: request.node_id, registeredAt: now, inFlight: 0, ...fields };
    this.#nodes.set(record.nodeId, record);
    this.#tombstones.delete(record.nodeId);
    this.#emit({ type: known ? "node_updated" : "node_registered", node: this.peerStatus(record) });
    return true;
  }

  heartbeat(request: HeartbeatRequest): HeartbeatOutcome {
    const record = this.#nodes.get(request.node_id);
    if (!record) return "unknown";
    if (!isNewer(request, record.order)) return "stale";
    record.order = { started_at: request.started_at, sequence: request.sequence };
    record.snapshot = request.snapshot;
    record.lastSeen = this.#options.now();
    record.connectFailures = 0;
    this.#emit({ type: "node_updated", node: this.peerStatus(record) });
    return "accepted";
  }

  deregister(request: DeregisterRequest): boolean {
    const record = this.#nodes.get(request.node_id);
    if (!record || !isNewer(request, record.order)) return false;
    record.order = { started_at: request.started_at, sequence: request.sequence };
    this.remove(record.nodeId, "deregistered");
    return true;
  }

  /** Drops a node from the registry and routing; it comes back by registering again. */
  remove(nodeId: string, reason: string): void {
    const record = this.#nodes.get(nodeId);
    if (!record) return;
    this.#nodes.delete(nodeId);
    this.#remember(nodeId, record.order);
    this.#emit({ type: "node_removed", node_id: nodeId, reason });
  }

  /**
   * Removes nodes whose lease ran out, and forgets old tombstones. When the gateway itself was
   * not running (stopped, paused, starved), the silence was its own, not the nodes': their
   * leases are extended by the gap, so a blip of the gateway never marks every node dead.
   */
  sweep(): void {
    const now = this.#options.now();
    const gap = now - this.#lastSweep;
    this.#lastSweep = now;
    if (gap > 2 * this.#options.sweepIntervalMs) {
      for (const record of this.#nodes.values()) {
        record.lastSeen = Math.min(now, record.lastSeen + gap);
      }
    }
    for (const record of [...this.#nodes.values()]) {
      if (now - record.lastSeen > this.#options.leaseMs)
        this.remove(record.nodeId, "lease expired");
    }
    for (const [nodeId, tombstone] of this.#tombstones) {
      if (now - tombstone.at > TOMBSTONE_MS) this.#tombstones.delete(nodeId);
    }
  }

  /** Counts a failed connection; a node that keeps failing leaves routing at once. */
  connectFailed(nodeId: string): void {
    const record = this.#nodes.get(nodeId);
    if (!record) return;
    record.connectFailures++;
    if (record.connectFailures >= this.#options.maxConnectFailures)
      this.remove(nodeId, "connection failed repeatedly");
  }

  connectSucceeded(nodeId: string): void {
    const record = this.#nodes.get(nodeId);
    if (record) record.connectFailures = 0;
  }

  get(nodeId: string): NodeRecord | undefined {
    return this.#nodes.get(nodeId);
  }

  live(): NodeRecord[] {
    return [...this.#nodes.values()];
  }

  peerStatus(record: NodeRecord): PeerStatus {
    return {
      node_id: record.nodeId,
      hostname: record.hostname,
      agent_url: record.agentUrl,
      version: record.version,
      labels: record.labels,
      state: record.snapshot.state,
      draining: record.snapshot.draining ?? false,
      capabilities: record.capabilities,
      devices: record.snapshot.devices,
      models: record.snapshot.models,
      split_groups: record.snapshot.split_groups ?? [],
      ...(record.tunnel ? { tunnel: record.tunnel } : {}),
      registered_at: new Date(record.registeredAt).toISOString(),
      last_seen: new Date(record.lastSeen).toISOString(),
      gateway_in_flight: record.inFlight,
    };
  }

  /** Keeps a removed node's order (a live node has none); the oldest go beyond `maxTombstones`. */
  #remember(nodeId: string, order: MessageOrder): void {
    this.#tombstones.set(nodeId, { order, at: this.#options.now() });
    for (const oldest of this.#tombstones.keys()) {
      if (this.#tombstones.size <= this.#options.maxTombstones) break;
      this.#tombstones.delete(oldest);
    }
  }

  #emit(event: RegistryEvent): void {
    this.emit("event", event);
  }
}

function isNewer(message: MessageOrder, held: MessageOrder | undefined): boolean {
  if (!held) return true;
  if (message.started_at !== held.started_at) return message.started_at > held.started_at;
  return message.sequence > held.sequence;
}

/** Title Case of a live state, for `node_status`. */
export function titleCase(state: LiveState): string {
  return state.charAt(0).toUpperCase() + state.slice(1);
}
