import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";

/**
 * The node id: the configured one, else the one kept in `state_dir/node_id`, else a new one
 * (short host name plus a random suffix) written there so it survives restarts.
 */
export async function resolveNodeId(configured: string, stateDir: string): Promise<string> {
  if (configured) return configured;
  const file = join(stateDir, "node_id");
  try {
    const kept = (await readFile(file, "utf8")).trim();
    if (kept) return kept;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const id = `${hostname().split(".")[0] || "node"}-${randomBytes(3).toString("hex")}`;
  await mkdir(stateDir, { recursive: true });
  await writeFile(file, `${id}\n`, { flag: "wx" }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== "EEXIST") throw err;
  });
  return (await readFile(file, "utf8")).trim();
}
