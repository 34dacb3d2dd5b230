import { open, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The llama.cpp source tree that the installed node-llama-cpp carries (SPEC §6.1). */
export interface LlamaCppSource {
  /** A git bundle of the tree: `node-llama-cpp/llama/gitRelease.bundle`. */
  bundle: string;
  /** The full commit the bundle's HEAD points at. */
  commit: string;
  /** The release tag node-llama-cpp records in `llama.cpp.info.json`. */
  tag: string;
  /** The version of the node-llama-cpp package that carries it. */
  nodeLlamaCppVersion: string;
}

/** Thrown when the installed node-llama-cpp carries no usable llama.cpp source. */
export class LlamaCppSourceError extends Error {
  override readonly name = "LlamaCppSourceError";
}

/** Finds the source of the node-llama-cpp this package depends on. */
export async function findLlamaCppSource(): Promise<LlamaCppSource> {
  // node-llama-cpp exports no package.json; its entry point sits in dist/ below the root.
  const root = dirname(dirname(fileURLToPath(import.meta.resolve("node-llama-cpp"))));
  return readLlamaCppSource(root);
}

/** Reads the source description from a node-llama-cpp package root. */
async function readLlamaCppSource(packageRoot: string): Promise<LlamaCppSource> {
  const bundle = join(packageRoot, "llama", "gitRelease.bundle");
  const infoFile = join(packageRoot, "llama", "llama.cpp.info.json");
  let info: { tag?: unknown };
  let pkg: { version?: unknown };
  try {
    info = JSON.parse(await readFile(infoFile, "utf8")) as { tag?: unknown };
    pkg = JSON.parse(await readFile(join(packageRoot, "package.json"), "utf8")) as {
      version?: unknown;
    };
  } catch (err) {
    throw new LlamaCppSourceError(
      `cannot read ${infoFile}: ${(err as Error).message} (reinstall with npm ci)`,
      { cause: err },
    );
  }
  return {
    bundle,
    commit: await bundleHead(bundle),
    tag: typeof info.tag === "string" ? info.tag : "unknown",
    nodeLlamaCppVersion: typeof pkg.version === "string" ? pkg.version : "unknown",
  };
}

/**
 * The commit of a bundle's HEAD, read from its text header (`# v2 git bundle`, then
 * `<sha> <ref>` lines), so that knowing which build matches needs neither git nor a clone.
 */
export async function bundleHead(bundle: string): Promise<string> {
  let header: string;
  try {
    const file = await open(bundle);
    try {
      const buffer = Buffer.alloc(4096);
      const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
      header = buffer.subarray(0, bytesRead).toString("latin1");
    } finally {
      await file.close();
    }
  } catch (err) {
    throw new LlamaCppSourceError(`cannot read ${bundle}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const lines = header.split("\n");
  if (!/^# v[23] git bundle$/.test(lines[0] ?? "")) {
    throw new LlamaCppSourceError(`${bundle} is not a git bundle`);
  }
  const refs = lines.slice(1, lines.indexOf(""));
  const head =
    refs.find((line) => / HEAD$/.test(line)) ?? refs.find((line) => !line.startsWith("@"));
  const commit = head?.split(" ")[0] ?? "";
  if (!/^[0-9a-f]{40}$/.test(commit)) {
    throw new LlamaCppSourceError(`${bundle} names no commit for HEAD`);
  }
  return commit;
}
