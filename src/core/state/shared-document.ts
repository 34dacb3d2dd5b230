import { EventEmitter } from "node:events";
import { Serial } from "../async.js";
import { readJsonFile, writeJsonFile } from "../json-file.js";

/**
 * A JSON document of state that every gateway must answer alike (client keys, wakeable
 * entries): a file of one gateway's own, or a key of the NATS `rolemesh_state` bucket shared
 * by all (SPEC §8). Changes are made by `update`, which applies a change to the latest value
 * and retries it when another process changed the document meanwhile; `change` tells of every
 * new value, another process's included.
 */
export interface SharedDocument<T> extends EventEmitter<{ change: [T] }> {
  read(): Promise<T>;
  /** Applies `change` to the latest value and stores the result; `change` may throw to refuse. */
  update(change: (current: T) => T): Promise<T>;
  close(): void;
}

/** A document in a JSON file, replaced atomically; writes from this process are queued. */
export class JsonFileDocument<T>
  extends EventEmitter<{ change: [T] }>
  implements SharedDocument<T>
{
  readonly #file: string;
  readonly #fallback: T;
  /** Updates one after another, so none works on a value another is replacing. */
  readonly #updates = new Serial();

  constructor(file: string, fallback: T) {
    super();
    this.#file = file;
    this.#fallback = fallback;
  }

  read(): Promise<T> {
    return readJsonFile(this.#file, this.#fallback);
  }

  update(change: (current: T) => T): Promise<T> {
    return this.#updates.run(async () => {
      const value = change(await this.read());
      await writeJsonFile(this.#file, value);
      this.emit("change", value);
      return value;
    });
  }

  close(): void {
    this.removeAllListeners();
  }
}
