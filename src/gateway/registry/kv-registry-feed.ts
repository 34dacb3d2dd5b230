import type { KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/transport-node";
import { sleep } from "../../core/async.js";
import type { Logger } from "../../core/logger.js";
import { whenReconnected } from "../../core/nats/nats-connection.js";
import { openNodesBucket } from "../../core/nats/nodes-bucket.js";
import { parseRequest } from "../../core/validation.js";
import { RegisterRequestSchema } from "../../protocol/registry-schema.js";
import type { RegistryService } from "./registry-service.js";

/** Pause before watching again after the watch broke (NATS restarted, its store lost). */
const REWATCH_DELAY_MS = 1000;

/**
 * Feeds the registry from the `rolemesh_nodes` bucket (SPEC §8): every gateway watches it and
 * keeps the live view in memory, so any gateway routes any request. Entries that age out by
 * the bucket's TTL send no event on nats-server 2.9; the registry's own lease (the same TTL)
 * removes those nodes by the gateway's clock.
 */
export class KvRegistryFeed {
  readonly #connection: NatsConnection;
  readonly #service: RegistryService;
  readonly #leaseS: number;
  readonly #log: Logger;
  #watch: QueuedIterator<KvWatchEntry> | undefined;
  #stopped = false;
  /** When the watch last delivered an entry. */
  #lastEntryAt = Date.now();
  readonly #stallCheck: NodeJS.Timeout;
  readonly #observeLag: ((seconds: number) => void) | undefined;
  /** Pause before the next watch; none after a reconnect. */
  #rewatchAt = REWATCH_DELAY_MS;
  readonly #running: Promise<void>;

  constructor(
    connection: NatsConnection,
    service: RegistryService,
    leaseS: number,
    log: Logger,
    /** Told how long each put took to arrive (the bucket stamps it on the server's clock). */
    observeLag?: (seconds: number) => void,
  ) {
    this.#observeLag = observeLag;
    this.#connection = connection;
    this.#service = service;
    this.#leaseS = leaseS;
    this.#log = log;
    this.#running = this.#run();
    // A restarted NATS may have lost the bucket; a watch on it would wait forever.
    whenReconnected(connection, () => {
      this.#rewatchAt = 0;
      this.#watch?.stop();
    });
    // A watch that stalls would let every node's lease run out on this gateway alone: with
    // keys in the bucket and no put seen for two leases, watch again.
    this.#stallCheck = setInterval(() => void this.#rewatchIfStalled(), leaseS * 1000);
    this.#stallCheck.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#stallCheck);
    this.#watch?.stop();
    await this.#running;
  }

  /** Watches the bucket (last values first), and again whenever the watch ends. */
  async #run(): Promise<void> {
    while (!this.#stopped && !this.#connection.isClosed()) {
      try {
        const bucket = await openNodesBucket(this.#connection, this.#leaseS);
        this.#watch = await bucket.watch();
        if (this.#stopped) this.#watch.stop();
        for await (const entry of this.#watch) this.#apply(entry);
      } catch (err) {
        if (!this.#stopped) this.#log.warn({ err }, "watching the nodes bucket failed; retrying");
      }
      if (!this.#stopped) await sleep(this.#rewatchAt);
      this.#rewatchAt = REWATCH_DELAY_MS;
    }
  }

  async #rewatchIfStalled(): Promise<void> {
    if (!this.#watch || Date.now() - this.#lastEntryAt < 2 * this.#leaseS * 1000) return;
    try {
      const { values } = await (await openNodesBucket(this.#connection, this.#leaseS)).status();
      if (values === 0) return;
    } catch {
      return; // NATS is away: the reconnect sets the watch up again
    }
    this.#log.warn("no node put seen for two leases while the bucket has nodes; watching again");
    this.#lastEntryAt = Date.now();
    this.#rewatchAt = 0;
    this.#watch.stop();
  }

  #apply(entry: KvWatchEntry): void {
    this.#lastEntryAt = Date.now();
    try {
      if (entry.operation !== "PUT") return this.#service.deleteFromBucket(entry.key);
      // Last values read at the watch's start are old by nature; only updates tell the lag.
      if (entry.isUpdate) this.#observeLag?.((Date.now() - entry.created.getTime()) / 1000);
      const descriptor = parseRequest(RegisterRequestSchema, entry.json());
      if (descriptor.node_id !== entry.key) {
        throw new Error(`the descriptor names node "${descriptor.node_id}"`);
      }
      this.#service.putFromBucket(descriptor);
    } catch (err) {
      this.#log.warn(
        { node_id: entry.key, err: (err as Error).message },
        "node descriptor from the bucket refused",
      );
    }
  }
}
