import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { NODES_BUCKET } from "../../protocol/nats.js";

/**
 * The nodes bucket: created with `leaseS` as its TTL, or the existing one as it is. Its calls
 * give up after `timeoutMs` (a put waits for JetStream's acknowledgement): a heartbeat stuck
 * on a NATS that restarted must fail and be sent again well within the lease.
 */
export async function openNodesBucket(
  connection: NatsConnection,
  leaseS: number,
  timeoutMs = 5000,
): Promise<KV> {
  const kvm = new Kvm(jetstream(connection, { timeout: timeoutMs }));
  try {
    return await kvm.create(NODES_BUCKET, { ttl: leaseS * 1000, history: 1 });
  } catch {
    // Created by another process with other settings: use it as it is.
    return await kvm.open(NODES_BUCKET);
  }
}
