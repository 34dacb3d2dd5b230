import { homedir } from "node:os";
import { resolve } from "node:path";

/** Expands a leading `~` the way a shell would, for paths users write in YAML. */
export function expandHome(path: string): string {
  if (path === "~") return homedir();
  if (path.startsWith("~/")) return resolve(homedir(), path.slice(2));
  return path;
}
