import { EventEmitter } from "node:events";
import { Kvm } from "@nats-io/kv";
import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/transport-node";
import type { Logger } from "../logger.js";
import type { SharedDocument } from "../state/shared-document.js";
import { STATE_BUCKET } from "../../protocol/nats.js";
import { sleep } from "../async.js";
import { whenReconnected } from "./nats-connection.js";

/** Attempts of one update before it gives up: each lost race means another process wrote. */
const UPDATE_ATTEMPTS = 10;

/**
 * A document that is one key of the `rolemesh_state` bucket (SPEC §8), shared by every
 * gateway: updates are compare-and-set on the key's revision, so two gateways changing it at
 * once both land; a watch tells this process of every new value, and every few seconds the
 * value is compared with what listeners were told, so a watch that stalls costs seconds, not
 * the state. After a reconnect the bucket is opened (or created, if NATS lost its store) and
 * watched anew.
 */
export class KvDocument<T> extends EventEmitter<{ change: [T] }> implements SharedDocument<T> {
  readonly #connection: NatsConnection;
  readonly #key: string;
  readonly #fallback: T;
  readonly #log: Logger;
  #bucket: Promise<KV>;
  #watch: QueuedIterator<KvWatchEntry> | undefined;
  /** The revision last told to listeners. */
  #told = -1;
  readonly #resync: NodeJS.Timeout;
  #closed = false;

  private constructor(connection: NatsConnection, key: string, fallback: T, log: Logger) {
    super();
    this.#connection = connection;
    this.#key = key;
    this.#fallback = fallback;
    this.#log = log;
    this.#bucket = this.#open();
    whenReconnected(connection, () => {
      this.#bucket = this.#open();
      this.#watch?.stop();
    });
    // A watch that stalls must not leave this gateway behind for good: compare now and then.
    this.#resync = setInterval(() => void this.#tell().catch(() => undefined), RESYNC_MS);
    this.#resync.unref();
  }

  static async open<T>(
    connection: NatsConnection,
    key: string,
    fallback: T,
    log: Logger,
  ): Promise<KvDocument<T>> {
    const document = new KvDocument(connection, key, fallback, log);
    await document.#bucket;
    void document.#follow();
    return document;
  }

  async read(): Promise<T> {
    return (await this.#current()).value;
  }

  async update(change: (current: T) => T): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const { value, revision } = await this.#current();
      const next = change(value);
      const bucket = await this.#bucket;
      try {
        if (revision === 0) await bucket.create(this.#key, JSON.stringify(next));
        else await bucket.update(this.#key, JSON.stringify(next), revision);
        return next;
      } catch (err) {
        // Another gateway wrote first: apply the change to its value.
        if (attempt === UPDATE_ATTEMPTS) throw err;
      }
    }
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#resync);
    this.#watch?.stop();
    this.removeAllListeners();
  }

  #open(): Promise<KV> {
    const bucket = new Kvm(this.#connection).create(STATE_BUCKET, { history: 1 });
    bucket.catch(() => undefined);
    return bucket;
  }

  /** Hands every new value to `change` listeners; watches again after a reconnect. */
  async #follow(): Promise<void> {
    while (!this.#closed && !this.#connection.isClosed()) {
      try {
        this.#watch = await (await this.#bucket).watch({ key: this.#key, include: "updates" });
        // What changed while nobody watched (a reconnect) is told first.
        await this.#tell();
        for await (const entry of this.#watch) {
          this.#told = entry.revision;
          this.emit("change", entry.operation === "PUT" ? entry.json<T>() : this.#fallback);
        }
      } catch (err) {
        if (!this.#closed) this.#log.warn({ err, key: this.#key }, "watching shared state failed");
        await sleep(REWATCH_DELAY_MS);
      }
    }
  }

  /** Tells listeners the current value, unless they have it already. */
  async #tell(): Promise<void> {
    const { value, revision } = await this.#current();
    if (revision === this.#told) return;
    this.#told = revision;
    this.emit("change", value);
  }

  async #current(): Promise<{ value: T; revision: number }> {
    const entry = await (await this.#bucket).get(this.#key);
    if (!entry || entry.operation !== "PUT") return { value: this.#fallback, revision: 0 };
    return { value: entry.json<T>(), revision: entry.revision };
  }
}

/** Pause before watching again after a watch failed. */
const REWATCH_DELAY_MS = 1000;
/** How often the value is compared with what listeners were told. */
const RESYNC_MS = 5000;
