import { EventEmitter } from "node:events";
import { z } from "zod";
import { RoleMeshError } from "../../core/errors.js";
import type { SharedDocument } from "../../core/state/shared-document.js";
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

/**
 * Wakeable entries (SPEC §11): the config's, plus those added through the admin API and kept
 * in a shared document — `state_dir/wakeable.json`, or the NATS state bucket every gateway
 * reads (SPEC §8). Emits `change` after every change, another gateway's included.
 */
export class WakeableEntries extends EventEmitter<{ change: [] }> {
  readonly #configured: WakeableEntry[];
  readonly #document: SharedDocument<WakeableEntry[]>;
  #entries = new Map<string, WakeableEntry>();

  private constructor(configured: WakeableEntry[], document: SharedDocument<WakeableEntry[]>) {
    super();
    this.#configured = configured;
    this.#document = document;
    document.on("change", (stored) => {
      this.#index(stored);
      this.emit("change");
    });
  }

  static async open(
    document: SharedDocument<WakeableEntry[]>,
    configured: readonly WakeableEntry[],
  ): Promise<WakeableEntries> {
    const entries = new WakeableEntries([...configured], document);
    entries.#index(await document.read());
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
    if (this.#fromConfig(entry.id)) throw fromConfig(entry.id);
    // Indexed now: over NATS the document's own change event comes later, and the caller
    // reads the entry back at once.
    this.#index(
      await this.#document.update((stored) => [
        ...stored.filter((held) => held.id !== entry.id),
        entry,
      ]),
    );
  }

  async delete(id: string): Promise<boolean> {
    if (this.#fromConfig(id)) throw fromConfig(id);
    let found = false;
    this.#index(
      await this.#document.update((stored) => {
        found = stored.some((held) => held.id === id);
        return stored.filter((held) => held.id !== id);
      }),
    );
    return found;
  }

  #fromConfig(id: string): boolean {
    return this.#configured.some((entry) => entry.id === id);
  }

  /** The config's entries win over a stored entry of the same id. */
  #index(stored: WakeableEntry[]): void {
    this.#entries = new Map([...stored, ...this.#configured].map((entry) => [entry.id, entry]));
  }
}

function fromConfig(id: string): RoleMeshError {
  return new RoleMeshError(
    "invalid_request",
    `wakeable entry "${id}" comes from the config file; change it there`,
  );
}
