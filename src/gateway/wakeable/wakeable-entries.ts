import { EventEmitter } from "node:events";
import { join } from "node:path";
import { z } from "zod";
import { RoleMeshError } from "../../core/errors.js";
import { readJsonFile, writeJsonFile } from "../../core/json-file.js";
import type { WakeableStatus } from "../../protocol/wakeable.js";

/** One wakeable entry, in the config's `wakeable:` list or sent to `POST /api/wakeable`. */
export const WakeableEntrySchema = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, "letters, digits, '.', '_' or '-'"),
  provider: z.string().min(1).default("manual"),
  description: z.string().default(""),
  vram_mb: z.number().min(0).default(0),
  models: z.array(z.string().min(1)).default([]),
  state: z.enum(["sleeping", "waking", "failed"]).default("sleeping"),
  node_id: z.string().min(1).optional(),
  /** How to wake it: a command (argv) or a webhook URL that receives a POST. */
  wake: z
    .union([
      z.strictObject({ command: z.array(z.string()).min(1) }),
      z.strictObject({ webhook: z.url({ protocol: /^https?$/ }) }),
    ])
    .optional(),
});

export type WakeableEntry = z.output<typeof WakeableEntrySchema>;

interface HeldEntry extends WakeableEntry {
  source: "config" | "store";
}

/**
 * Wakeable entries (SPEC §11): the config's, plus those added through the admin API and kept
 * in `state_dir/wakeable.json`. Emits `change` after every change, for live views.
 */
export class WakeableEntries extends EventEmitter<{ change: [] }> {
  readonly #entries = new Map<string, HeldEntry>();
  readonly #file: string;

  private constructor(file: string) {
    super();
    this.#file = file;
  }

  static async open(
    stateDir: string,
    configured: readonly WakeableEntry[],
  ): Promise<WakeableEntries> {
    const entries = new WakeableEntries(join(stateDir, "wakeable.json"));
    for (const entry of await readJsonFile<WakeableEntry[]>(entries.#file, [])) {
      entries.#entries.set(entry.id, { ...entry, source: "store" });
    }
    // The config wins over a stored entry of the same id.
    for (const entry of configured) entries.#entries.set(entry.id, { ...entry, source: "config" });
    return entries;
  }

  /** Every entry as shown to readers; `isLive` tells whether a node id is registered now. */
  status(isLive: (nodeId: string) => boolean): WakeableStatus[] {
    return [...this.#entries.values()].map((entry) => ({
      id: entry.id,
      provider: entry.provider,
      description: entry.description,
      vram_mb: entry.vram_mb,
      models: entry.models,
      state: entry.node_id && isLive(entry.node_id) ? "awake" : entry.state,
      node_id: entry.node_id ?? null,
      wake_action: entry.wake ? ("command" in entry.wake ? "command" : "webhook") : null,
    }));
  }

  /** Adds or replaces a stored entry. */
  async put(entry: WakeableEntry): Promise<void> {
    if (this.#entries.get(entry.id)?.source === "config") throw fromConfig(entry.id);
    this.#entries.set(entry.id, { ...entry, source: "store" });
    await this.#save();
  }

  async delete(id: string): Promise<boolean> {
    const found = this.#entries.get(id);
    if (!found) return false;
    if (found.source === "config") throw fromConfig(id);
    this.#entries.delete(id);
    await this.#save();
    return true;
  }

  async #save(): Promise<void> {
    const stored = [...this.#entries.values()]
      .filter((entry) => entry.source === "store")
      .map(({ source: _source, ...entry }) => entry);
    await writeJsonFile(this.#file, stored);
    this.emit("change");
  }
}

function fromConfig(id: string): RoleMeshError {
  return new RoleMeshError(
    "invalid_request",
    `wakeable entry "${id}" comes from the config file; change it there`,
  );
}
