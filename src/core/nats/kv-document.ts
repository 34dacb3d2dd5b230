import { EventEmitter } from "node:events";
import { Kvm } from "@nats-io/kv";
import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/transport-node";
import type { Logger } from "../logger.js";
import type { SharedDocument } from "../state/shared-document.js";
import { STATE_BUCKET } from "../../protocol/nats.js";

/** Attempts of one update before it gives up: each lost race means another process wrote. */
const UPDATE_ATTEMPTS = 10;

/**
 * A document that is one key of the `rolemesh_state` bucket (SPEC §8), shared by every
 * gateway: updates are compare-and-set on the key's revision, so two gateways changing it at
 * once both land; a watch tells this process of every new value.
 */
export class KvDocument<T> extends EventEmitter<{ change: [T] }> implements SharedDocument<T> {
  readonly #bucket: KV;
  readonly #key: string;
  readonly #fallback: T;
  readonly #watch: QueuedIterator<KvWatchEntry>;

  private constructor(bucket: KV, key: string, fallback: T, watch: QueuedIterator<KvWatchEntry>) {
    super();
    this.#bucket = bucket;
    this.#key = key;
    this.#fallback = fallback;
    this.#watch = watch;
  }

  static async open<T>(
    connection: NatsConnection,
    key: string,
    fallback: T,
    log: Logger,
  ): Promise<KvDocument<T>> {
    const bucket = await new Kvm(connection).create(STATE_BUCKET, { history: 1 });
    const watch = await bucket.watch({ key, include: "updates" });
    const document = new KvDocument(bucket, key, fallback, watch);
    void (async () => {
      try {
        for await (const entry of watch) {
          document.emit("change", entry.operation === "PUT" ? entry.json<T>() : fallback);
        }
      } catch (err) {
        log.warn({ err, key }, "watching shared state failed");
      }
    })();
    return document;
  }

  async read(): Promise<T> {
    return (await this.#current()).value;
  }

  async update(change: (current: T) => T): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const { value, revision } = await this.#current();
      const next = change(value);
      try {
        if (revision === 0) await this.#bucket.create(this.#key, JSON.stringify(next));
        else await this.#bucket.update(this.#key, JSON.stringify(next), revision);
        return next;
      } catch (err) {
        // Another gateway wrote first: apply the change to its value.
        if (attempt === UPDATE_ATTEMPTS) throw err;
      }
    }
  }

  close(): void {
    this.#watch.stop();
    this.removeAllListeners();
  }

  async #current(): Promise<{ value: T; revision: number }> {
    const entry = await this.#bucket.get(this.#key);
    if (!entry || entry.operation !== "PUT") return { value: this.#fallback, revision: 0 };
    return { value: entry.json<T>(), revision: entry.revision };
  }
}
