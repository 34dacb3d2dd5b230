import { createHash, randomBytes } from "node:crypto";
import { join } from "node:path";
import { secretsEqual } from "../../core/http/bearer.js";
import { readJsonFile, writeJsonFile } from "../../core/json-file.js";
import type { Logger } from "../../core/logger.js";

/** What a registration's `node_secret` says about who sends it. */
export type IdentityVerdict =
  /** The node id is bound to this secret. */
  | { kind: "same"; secret: string }
  /** The node id was bound to nobody (or to an agent that is gone): bound to `secret` now. */
  | { kind: "bound"; secret: string }
  /** The node id is bound to another secret. */
  | { kind: "other" };

/**
 * Binds each node id to the secret of the agent that first registered it (SPEC §7.2), so no
 * other process can take over a live node's record — its URL, its token, its traffic. Secrets
 * are issued by the gateway (or kept from the agent's state dir), stored here as SHA-256 only,
 * in `state_dir/node-identities.json`, so a restarted gateway still knows them.
 *
 * At most `maxBindings` are kept: beyond, the oldest binding of a node that is not live goes.
 * That loses nothing a live node relies on — the id of a node that is gone may be taken anyway.
 */
export class NodeIdentities {
  readonly #file: string;
  readonly #hashes: Map<string, string>;
  readonly #maxBindings: number;
  readonly #log: Logger;

  private constructor(file: string, hashes: Map<string, string>, maxBindings: number, log: Logger) {
    this.#file = file;
    this.#hashes = hashes;
    this.#maxBindings = maxBindings;
    this.#log = log;
  }

  static async open(stateDir: string, maxBindings: number, log: Logger): Promise<NodeIdentities> {
    const file = join(stateDir, "node-identities.json");
    const stored = await readJsonFile<Record<string, string>>(file, {});
    return new NodeIdentities(file, new Map(Object.entries(stored)), maxBindings, log);
  }

  /**
   * Checks `presented` for `nodeId`. An unknown id is bound to it (or to a new secret when the
   * agent has none yet); so is a known one whose agent is gone (not `isLive`) — the id may move
   * to a reinstalled machine once its previous agent stopped.
   */
  check(
    nodeId: string,
    presented: string | undefined,
    isLive: (nodeId: string) => boolean,
  ): IdentityVerdict {
    const hash = this.#hashes.get(nodeId);
    if (hash !== undefined && presented !== undefined && secretsEqual(digest(presented), hash)) {
      return { kind: "same", secret: presented };
    }
    if (hash !== undefined && isLive(nodeId)) return { kind: "other" };
    const secret = presented ?? randomBytes(24).toString("hex");
    // Bound anew, so it counts as the newest binding.
    this.#hashes.delete(nodeId);
    this.#hashes.set(nodeId, digest(secret));
    this.#evictBeyondLimit((id) => id === nodeId || isLive(id));
    this.#persist();
    return { kind: "bound", secret };
  }

  /** True when `presented` is the secret `nodeId` is bound to, or the id is bound to none. */
  matches(nodeId: string, presented: string | undefined): boolean {
    const hash = this.#hashes.get(nodeId);
    return hash === undefined || (presented !== undefined && secretsEqual(digest(presented), hash));
  }

  /** Forgets the oldest bindings but those to `keep` while there are too many. */
  #evictBeyondLimit(keep: (nodeId: string) => boolean): void {
    for (const nodeId of this.#hashes.keys()) {
      if (this.#hashes.size <= this.#maxBindings) return;
      if (!keep(nodeId)) this.#hashes.delete(nodeId);
    }
  }

  /** Stores the bindings; writeJsonFile keeps concurrent writes in order. */
  #persist(): void {
    writeJsonFile(this.#file, Object.fromEntries(this.#hashes)).catch((err: unknown) =>
      this.#log.error({ err }, "could not store node identities"),
    );
  }
}

const digest = (secret: string) => createHash("sha256").update(secret).digest("hex");
