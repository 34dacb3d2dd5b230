import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";

/**
 * Resolves a command the way a shell would: a name with a slash is a path, anything else is
 * searched on PATH. Returns null when nothing executable is found.
 */
export function findExecutable(name: string, pathEnv = process.env.PATH ?? ""): string | null {
  const candidates = name.includes("/")
    ? [resolve(name)]
    : pathEnv
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return null;
}
