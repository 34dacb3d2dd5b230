import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Reads a JSON file written by `writeJsonFile`; `fallback` when it does not exist yet. */
export async function readJsonFile<T>(file: string, fallback: T): Promise<T> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return fallback;
    throw err;
  }
}

/** Writes to one file in flight at a time, per file, in the order they were asked for. */
const queues = new Map<string, Promise<void>>();

/** Replaces a JSON file as `writeFileAtomically` does. */
export function writeJsonFile(file: string, value: unknown): Promise<void> {
  return writeFileAtomically(file, JSON.stringify(value, null, 2));
}

/**
 * Replaces a file atomically, so a crash leaves the old or the new content, never half of one:
 * written under a temporary name of its own, flushed to disk, renamed over the file, and the
 * folder flushed so the rename itself survives a power cut. Writes to one file are queued, so
 * two that finish together never interleave or lose one another. Readable by the owner only:
 * stores hold secrets.
 */
export function writeFileAtomically(file: string, text: string): Promise<void> {
  const previous = queues.get(file) ?? Promise.resolve();
  const write = previous.catch(() => undefined).then(() => replace(file, text));
  queues.set(file, write);
  void write
    .catch(() => undefined)
    .finally(() => {
      if (queues.get(file) === write) queues.delete(file);
    });
  return write;
}

async function replace(file: string, text: string): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const temporary = join(dir, `.${basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const handle = await open(temporary, "wx", 0o600);
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
  const folder = await open(dir, "r");
  try {
    await folder.sync();
  } finally {
    await folder.close();
  }
}
