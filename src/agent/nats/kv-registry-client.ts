import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { RoleMeshError } from "../../core/errors.js";
import { openNodesBucket } from "../../core/nats/nodes-bucket.js";
import type {
  DeregisterRequest,
  HeartbeatRequest,
  RegisterRequest,
  RegisterResponse,
} from "../../protocol/registry.js";
import { NODES_BUCKET } from "../../protocol/nats.js";
import type { RegistryClient } from "../registration/registry-client.js";

/** A put may wait this long for JetStream at least, however short the heartbeat interval. */
const MIN_PUT_TIMEOUT_MS = 1000;

/** What the agent needs to know of the nodes bucket it heartbeats into. */
export interface KvRegistryOptions {
  /** Seconds between heartbeats (`heartbeat_interval_s`). */
  heartbeatIntervalS: number;
  /**
   * The lease, used as the bucket's TTL when this agent is the first to create it (gateways
   * create it the same way); a bucket that exists keeps its own.
   */
  leaseS: number;
}

/**
 * The registry over NATS (SPEC §8): the node's descriptor is its key in the `rolemesh_nodes`
 * bucket, put again on every heartbeat. The bucket's TTL is the lease, so a node whose NATS
 * link dies ages out of every gateway at once — a heartbeat over HTTP could not tell that.
 * Each put holds the whole descriptor, so a gateway that starts later reads every node from
 * the bucket alone. NATS permissions, not a node secret, decide who may put a node's key.
 */
export class KvRegistryClient implements RegistryClient {
  readonly #connection: NatsConnection;
  readonly #options: KvRegistryOptions;
  #bucket: Promise<KV> | undefined;
  /** The last descriptor put: a heartbeat changes its order and snapshot. */
  #descriptor: Omit<RegisterRequest, "node_secret"> | undefined;

  constructor(connection: NatsConnection, options: KvRegistryOptions) {
    this.#connection = connection;
    this.#options = options;
  }

  /** Opens the bucket anew on the next put: NATS came back, perhaps without its store. */
  reopen(): void {
    this.#bucket = undefined;
  }

  async register(message: RegisterRequest): Promise<RegisterResponse> {
    // The secret binds a node id on an HTTP gateway; in a shared bucket it would be public.
    const { node_secret: _secret, ...descriptor } = message;
    this.#descriptor = descriptor;
    const bucket = await this.#openBucket();
    await bucket.put(message.node_id, JSON.stringify(descriptor));
    const { ttl } = await bucket.status();
    return {
      node_id: message.node_id,
      node_secret: "",
      heartbeat_interval_s: this.#options.heartbeatIntervalS,
      lease_s: ttl / 1000,
    };
  }

  async heartbeat(message: HeartbeatRequest): Promise<void> {
    if (!this.#descriptor) throw new Error("heartbeat before register");
    this.#descriptor = {
      ...this.#descriptor,
      snapshot: message.snapshot,
      started_at: message.started_at,
      sequence: message.sequence,
    };
    try {
      await (await this.#openBucket()).put(message.node_id, JSON.stringify(this.#descriptor));
    } catch (err) {
      // NATS lost its store, or the link is down: open the bucket anew and put the whole
      // descriptor again, as after a gateway that forgot the node.
      this.#bucket = undefined;
      throw new RoleMeshError("unknown_node", `heartbeat into ${NODES_BUCKET} failed`, {
        cause: err,
      });
    }
  }

  async deregister(message: DeregisterRequest): Promise<void> {
    await (await this.#openBucket()).delete(message.node_id);
  }

  /** Opens the bucket, creating it with the lease as TTL when no gateway made it yet. */
  #openBucket(): Promise<KV> {
    const { leaseS, heartbeatIntervalS } = this.#options;
    this.#bucket ??= openNodesBucket(
      this.#connection,
      leaseS,
      Math.max(MIN_PUT_TIMEOUT_MS, heartbeatIntervalS * 1000),
    ).catch((err) => {
      this.#bucket = undefined;
      throw err;
    });
    return this.#bucket;
  }
}
