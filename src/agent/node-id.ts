import { randomBytes } from "node:crypto";
import { link, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { writeFileAtomically } from "../core/json-file.js";
import { join } from "node:path";

/**
 * The node id: the configured one, else the one kept in `state_dir/node_id`, else a new one
 * (short host name plus a random suffix) written there so it survives restarts.
 */
export async function resolveNodeId(configured: string, stateDir: string): Promise<string> {
  if (configured) return configured;
  const file = join(stateDir, "node_id");
  const kept = await readKept(file);
  if (kept) return kept;
  // The host name may hold anything; a node id only what NODE_ID_PATTERN allows.
  const host = (hostname().split(".")[0] ?? "").replace(/[^A-Za-z0-9_-]/g, "").slice(0, 50);
  const id = `${host || "node"}-${randomBytes(3).toString("hex")}`;
  await mkdir(stateDir, { recursive: true });
  // Written whole under another name, then linked into place: a crash never leaves an empty
  // node_id, and of two agents starting at once the first link wins and both use its id.
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${id}\n`);
  try {
    await link(temporary, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    // An empty file left by an older agent's crash counts as none.
    if (!(await readKept(file))) await rename(temporary, file);
  } finally {
    await rm(temporary, { force: true });
  }
  return (await readKept(file)) ?? id;
}

async function readKept(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, "utf8")).trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** The secret the gateway bound this node id to (`state_dir/node_secret`), if any yet. */
export async function readNodeSecret(stateDir: string): Promise<string | undefined> {
  try {
    return (await readFile(join(stateDir, "node_secret"), "utf8")).trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Keeps the node's secret, readable by the owner only, replaced whole or not at all. */
export function writeNodeSecret(stateDir: string, secret: string): Promise<void> {
  return writeFileAtomically(join(stateDir, "node_secret"), `${secret}\n`);
}
