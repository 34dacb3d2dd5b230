import { rename, rm, stat } from "node:fs/promises";
import { readJsonFile, writeJsonFile } from "../../core/json-file.js";

/** What the bytes of a `.part` file are the start of, kept beside it in `<name>.part.json`. */
interface PartRecord {
  /** The URL without its query string: a signed URL's signature may change between tries. */
  source: string;
  /** What `If-Range` carries on a resume: a strong ETag, else Last-Modified. */
  validator: string | null;
  /** The whole file's size, when the answer that started the file said it. */
  total_bytes: number | null;
}

/**
 * A download in progress: `<target>.part` and the record of where its bytes came from. Bytes
 * are resumed only from the same source and only with a validator for `If-Range`, so a source
 * that changed answers with the whole file instead of the rest of another one.
 */
export class PartFile {
  readonly path: string;
  readonly #recordPath: string;
  readonly #source: string;
  #record: PartRecord | null = null;
  #bytes = 0;

  private constructor(target: string, source: string) {
    this.path = `${target}.part`;
    this.#recordPath = `${target}.part.json`;
    this.#source = source;
  }

  /** The `.part` of `target` as an earlier try left it, if any. */
  static async open(target: string, source: string): Promise<PartFile> {
    const part = new PartFile(target, source);
    part.#record = await readJsonFile<PartRecord | null>(part.#recordPath, null);
    await part.measure();
    return part;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** False for bytes that no record ties to this source with a validator: no prefix to trust. */
  get resumable(): boolean {
    return (
      this.#bytes === 0 ||
      (this.#record?.source === this.#source && this.#record.validator !== null)
    );
  }

  /** The headers that ask for the rest of the file (none when it starts from zero). */
  resumeHeaders(): Record<string, string> {
    const validator = this.#record?.validator;
    if (this.#bytes === 0 || !validator) return {};
    return { range: `bytes=${this.#bytes}-`, "if-range": validator };
  }

  /** True when a 206 answer continues these bytes: it starts where they end, of the same whole. */
  continuedBy(start: number, total: number | null): boolean {
    const known = this.#record?.total_bytes ?? null;
    return start === this.#bytes && (total === null || known === null || total === known);
  }

  /** Starts over for a full answer: an empty file, and what that answer said of itself. */
  async restart(validator: string | null, total: number | null): Promise<void> {
    // The old bytes go first: a crash in between must not leave them under the new record.
    await rm(this.path, { force: true });
    this.#bytes = 0;
    this.#record = { source: this.#source, validator, total_bytes: total };
    await writeJsonFile(this.#recordPath, this.#record);
  }

  /** Reads the size again, once a write has settled. */
  async measure(): Promise<void> {
    try {
      this.#bytes = (await stat(this.path)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      this.#bytes = 0;
    }
  }

  /** Moves the finished file into place. */
  async finish(target: string): Promise<void> {
    await rename(this.path, target);
    await rm(this.#recordPath, { force: true });
  }

  async discard(): Promise<void> {
    await rm(this.path, { force: true });
    await rm(this.#recordPath, { force: true });
    this.#bytes = 0;
    this.#record = null;
  }
}
