import { EventEmitter } from "node:events";
import { z } from "zod";
import { RoleMeshError } from "../../core/errors.js";
import type { SharedDocument } from "../../core/state/shared-document.js";
import { MAC_PATTERN, WOL_DEFAULT_ADDRESS, WOL_DEFAULT_PORT } from "../../core/wake-on-lan.js";
import { NODE_ID_PATTERN } from "../../protocol/registry.js";

const argv = z.array(z.string().min(1)).min(1);
const webhookUrl = z.url({ protocol: /^https?$/ });
/** Headers sent with a webhook, e.g. an API token (`${VAR}` in the config file). */
const headers = z.record(z.string(), z.string()).default({});
const timeoutS = (seconds: number) => z.number().positive().max(3600).default(seconds);

/** Runs argv without a shell; `ROLEMESH_WAKE_ID` names the entry. Must exit 0 in time. */
const CommandActionSchema = z.strictObject({ command: argv, timeout_s: timeoutS(60) });
/** POSTs `{id, reason}`; must answer 2xx in time. */
const WebhookActionSchema = z.strictObject({
  webhook: webhookUrl,
  headers,
  timeout_s: timeoutS(30),
});
/** A Wake-on-LAN magic packet, sent by the gateway or by `via_node` on the sleeping host's LAN. */
const WolActionSchema = z.strictObject({
  wol: z.strictObject({
    mac: z.string().regex(MAC_PATTERN, "a MAC address, aa:bb:cc:dd:ee:ff"),
    address: z.ipv4().default(WOL_DEFAULT_ADDRESS),
    port: z.number().int().min(1).max(65_535).default(WOL_DEFAULT_PORT),
    via_node: z.string().regex(NODE_ID_PATTERN, "a node id").optional(),
  }),
});

export const WakeActionSchema = z.union([
  CommandActionSchema,
  WebhookActionSchema,
  WolActionSchema,
]);
/** How a node is put to sleep: a command or webhook of the gateway's, or the node's own. */
export const SleepActionSchema = z.union([
  z.literal("node"),
  CommandActionSchema,
  WebhookActionSchema,
]);
export type WakeAction = z.output<typeof WakeActionSchema>;
export type SleepAction = z.output<typeof SleepActionSchema>;

/** One wakeable entry, in the config's `wakeable:` list or sent to `POST /api/wakeable`. */
export const WakeableEntrySchema = z
  .strictObject({
    id: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/, "letters, digits, '.', '_' or '-'"),
    provider: z.string().min(1).default("manual"),
    description: z.string().default(""),
    vram_mb: z.number().min(0).default(0),
    /** Model ids or roles it serves once awake: what wake on demand matches requests with. */
    models: z.array(z.string().min(1)).default([]),
    /** Where it starts (before any wake has run). */
    state: z.enum(["sleeping", "waking", "failed"]).default("sleeping"),
    /** The node id it registers with once awake; without one, any node serving its models. */
    node_id: z.string().regex(NODE_ID_PATTERN, "a node id").optional(),
    wake: WakeActionSchema.optional(),
    /** Idle seconds (nothing in flight or queued) after which it is put to sleep; 0 = never. */
    sleep_after_idle_s: z.number().min(0).default(0),
    sleep: SleepActionSchema.optional(),
  })
  .superRefine((entry, ctx) => {
    if (entry.sleep_after_idle_s > 0 && (!entry.sleep || !entry.node_id)) {
      ctx.addIssue({
        code: "custom",
        path: ["sleep_after_idle_s"],
        message:
          "idle sleep needs `sleep` (node, a command or a webhook) and the entry's `node_id`",
      });
    }
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

  /** Every entry, the config's first. */
  list(): WakeableEntry[] {
    return [...this.#entries.values()];
  }

  get(id: string): WakeableEntry | undefined {
    return this.#entries.get(id);
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
