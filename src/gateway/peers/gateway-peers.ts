import { EventEmitter } from "node:events";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "../../core/logger.js";
import { GATEWAY_HEARTBEATS, gatewayHeartbeatSubject } from "../../protocol/nats.js";
import type { GatewayHeartbeat } from "../../protocol/nats.js";
import type { GatewayStatus } from "../../protocol/registry.js";

/** A gateway silent for this many heartbeat intervals is no longer listed. */
const MISSED_HEARTBEATS = 3;

/**
 * The gateways sharing a NATS (SPEC §8 `gateways[]`): this one announces itself every
 * heartbeat interval and lists every gateway heard from within three intervals, itself
 * included, for `/api/status` and the console. Emits `change` when one joins or leaves.
 */
export class GatewayPeers extends EventEmitter<{ change: [] }> {
  readonly #self: GatewayHeartbeat;
  readonly #intervalMs: number;
  readonly #connection: NatsConnection;
  readonly #heard = new Map<string, { heartbeat: GatewayHeartbeat; at: number }>();
  readonly #subscription: Subscription;
  readonly #timer: NodeJS.Timeout;

  constructor(connection: NatsConnection, self: GatewayHeartbeat, intervalS: number, log: Logger) {
    super();
    this.#connection = connection;
    this.#self = self;
    this.#intervalMs = intervalS * 1000;
    this.#subscription = connection.subscribe(GATEWAY_HEARTBEATS, {
      callback: (err, msg) => {
        if (err) return log.warn({ err }, "gateway heartbeats: subscription failed");
        try {
          const heartbeat = msg.json<GatewayHeartbeat>();
          if (typeof heartbeat.id === "string" && typeof heartbeat.url === "string") {
            const joined = !this.#heard.has(heartbeat.id);
            this.#heard.set(heartbeat.id, { heartbeat, at: Date.now() });
            if (joined) this.emit("change");
          }
        } catch {
          // not a gateway's heartbeat
        }
      },
    });
    this.#announce();
    this.#timer = setInterval(() => {
      this.#announce();
      const before = this.#heard.size;
      this.list();
      if (this.#heard.size !== before) this.emit("change");
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Every gateway heard from recently, this one first. */
  list(): GatewayStatus[] {
    const now = Date.now();
    const recent = [...this.#heard.values()].filter(
      (peer) => now - peer.at <= MISSED_HEARTBEATS * this.#intervalMs,
    );
    for (const peer of this.#heard.values()) {
      if (!recent.includes(peer)) this.#heard.delete(peer.heartbeat.id);
    }
    const others = recent
      .filter((peer) => peer.heartbeat.id !== this.#self.id)
      .sort((a, b) => a.heartbeat.id.localeCompare(b.heartbeat.id))
      .map((peer) => gatewayStatus(peer.heartbeat, peer.at));
    return [gatewayStatus(this.#self, now), ...others];
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#subscription.unsubscribe();
  }

  #announce(): void {
    if (this.#connection.isClosed()) return;
    this.#connection.publish(gatewayHeartbeatSubject(this.#self.id), JSON.stringify(this.#self));
  }
}

function gatewayStatus(heartbeat: GatewayHeartbeat, at: number): GatewayStatus {
  return {
    id: heartbeat.id,
    url: heartbeat.url,
    version: heartbeat.version,
    last_seen: new Date(at).toISOString(),
  };
}
