/**
 * The console's picture of the fleet, kept from `/api/events`: the first event is the whole
 * status, later ones change one node (or the wakeable list). Pure: no DOM, no network.
 */
import type { LiveState } from "../protocol/inventory.js";
import type {
  GatewayStatus,
  PeerStatus,
  RegistryEvent,
  StatusResponse,
} from "../protocol/registry.js";
import type { SplitGroupInfo } from "../protocol/split.js";
import type { WakeableStatus } from "../protocol/wakeable.js";

export type Connection = "connecting" | "live" | "reconnecting" | "needs-key";

/** A model id or role offered somewhere in the fleet, and the nodes that offer it. */
export interface FleetModel {
  id: string;
  roles: string[];
  /** Every node that has the model configured, with the devices holding it now. */
  nodes: { nodeId: string; hostname: string; loadedOn: string[] }[];
}

export class FleetStore {
  gateway: StatusResponse["gateway"] | undefined;
  /** The live state of the gateway's own process (`rolemesh up`: its local agent). */
  gatewayState: LiveState = "client";
  readonly peers = new Map<string, PeerStatus>();
  wakeable: WakeableStatus[] = [];
  /** The gateways sharing the fleet (several over NATS), the one serving this page first. */
  gateways: GatewayStatus[] = [];
  connection: Connection = "connecting";
  /** When each node's last heartbeat arrived, on this browser's clock. */
  readonly #heardAt = new Map<string, number>();
  readonly #listeners = new Set<() => void>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  setConnection(connection: Connection): void {
    if (this.connection === connection) return;
    this.connection = connection;
    this.#changed();
  }

  apply(event: RegistryEvent): void {
    switch (event.type) {
      case "status":
        this.gateway = event.status.gateway;
        this.gatewayState = event.status.node_state;
        this.peers.clear();
        this.#heardAt.clear();
        // Heartbeats older than this status: the gateway's clock says when (never in the future).
        for (const peer of event.status.peers)
          this.#put(peer, Math.min(this.#now(), Date.parse(peer.last_seen)));
        this.wakeable = event.status.wakeable;
        this.gateways = event.status.gateways;
        break;
      case "gateways":
        this.gateways = event.gateways;
        break;
      case "node_registered":
      case "node_updated":
        this.#put(event.node, this.#now());
        break;
      case "node_removed":
        this.peers.delete(event.node_id);
        this.#heardAt.delete(event.node_id);
        break;
      case "wakeable":
        this.wakeable = event.wakeable;
        break;
      case "gateway_state":
        this.gatewayState = event.node_state;
        break;
    }
    this.#changed();
  }

  /** Nodes in a stable order: by hostname, then id. */
  nodes(): PeerStatus[] {
    return [...this.peers.values()].sort(
      (a, b) => a.hostname.localeCompare(b.hostname) || a.node_id.localeCompare(b.node_id),
    );
  }

  /** Every model configured in the fleet, with its roles and the nodes that offer it. */
  models(): FleetModel[] {
    const byId = new Map<string, FleetModel>();
    for (const node of this.nodes()) {
      for (const model of node.models) {
        const entry = byId.get(model.id) ?? { id: model.id, roles: [], nodes: [] };
        for (const role of model.roles) if (!entry.roles.includes(role)) entry.roles.push(role);
        entry.nodes.push({
          nodeId: node.node_id,
          hostname: node.hostname,
          loadedOn: model.loaded_on,
        });
        byId.set(model.id, entry);
      }
    }
    return [...byId.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Roles in the fleet, each with the model ids that take it. */
  roles(): Map<string, string[]> {
    const roles = new Map<string, string[]>();
    for (const model of this.models()) {
      for (const role of model.roles) roles.set(role, [...(roles.get(role) ?? []), model.id]);
    }
    return new Map([...roles].sort(([a], [b]) => a.localeCompare(b)));
  }

  /**
   * The fleet's split groups (SPEC §12) as their hosts report them, by model id: only the host
   * knows every member's tunnel link; a worker reports its own part of the same group.
   */
  splitGroups(): SplitGroupInfo[] {
    return this.nodes()
      .flatMap((node) => node.split_groups.filter((group) => group.role === "host"))
      .sort((a, b) => a.model_id.localeCompare(b.model_id) || a.host.localeCompare(b.host));
  }

  /** Milliseconds since the gateway last heard from a node (its last heartbeat). */
  sinceHeartbeat(nodeId: string): number | undefined {
    const heard = this.#heardAt.get(nodeId);
    return heard === undefined ? undefined : Math.max(0, this.#now() - heard);
  }

  #put(peer: PeerStatus, heardAt: number): void {
    this.peers.set(peer.node_id, peer);
    this.#heardAt.set(peer.node_id, Number.isNaN(heardAt) ? this.#now() : heardAt);
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}
