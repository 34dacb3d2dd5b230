/**
 * Routing by prompt prefix (SPEC §13): requests that share a prefix go to the node whose
 * server's prompt cache holds it. Rendezvous hashing (highest random weight) ranks the nodes for
 * each key — the same ranking on every gateway with no coordination, and a node that leaves
 * moves only its own keys — and a load bound (as in consistent hashing with bounded loads,
 * Mirrokni et al. 2018; KubeAI's PrefixHash) passes a key on down its ranking while its node
 * holds more than `loadFactor` × the mean load and has no free slot. The slot exception matters
 * at low load, where the bound alone would split a node's conversations across the fleet
 * although the node could run them all at once.
 */
import { createHash } from "node:crypto";
import type { OpenAIEndpoint } from "../../core/proxy/openai-request.js";

/** How much of a completion prompt makes its key: enough to tell shared preambles apart. */
export const COMPLETION_PREFIX_CHARS = 1024;

/** What a request's answer says of its routing (`x-rolemesh-affinity`). */
export type AffinityOutcome = "hit" | "miss" | "overflow";

/**
 * The prefix key of a request: the model asked for, then for chat the leading system (and
 * developer) messages, the tools and the first user message; for completions the prompt's first
 * COMPLETION_PREFIX_CHARS characters. Undefined for what has no prompt to cache (embeddings).
 */
export function affinityKey(
  endpoint: OpenAIEndpoint,
  body: Record<string, unknown>,
  name: string,
): string | undefined {
  let prefix: unknown;
  if (endpoint === "/v1/chat/completions") {
    const messages = Array.isArray(body.messages) ? (body.messages as unknown[]) : [];
    const role = (message: unknown) => (message as { role?: unknown } | null)?.role;
    const leading = [];
    for (const message of messages) {
      if (role(message) !== "system" && role(message) !== "developer") break;
      leading.push(message);
    }
    const firstUser = messages.find((message) => role(message) === "user");
    prefix = [leading, body.tools ?? null, firstUser ?? null];
  } else if (endpoint === "/v1/completions") {
    const prompt = Array.isArray(body.prompt) ? body.prompt[0] : body.prompt;
    if (typeof prompt !== "string") return undefined;
    prefix = prompt.slice(0, COMPLETION_PREFIX_CHARS);
  } else {
    return undefined;
  }
  return createHash("sha256")
    .update(JSON.stringify([name, prefix]))
    .digest("base64url");
}

/** A node that may take a request, as the affinity ranking sees it. */
export interface AffinityCandidate {
  /** What the ranking hashes: the node id, the same on every gateway. */
  id: string;
  /** Requests it holds now (in flight and queued); the bound compares these. */
  load: number;
  /**
   * Requests it runs at once (its servers' slots for the model): below that it takes the key
   * whatever the mean, since it answers no later than an idle node would.
   */
  slots: number;
}

/**
 * The candidates in the order to try them for `key`: the first in rendezvous order whose load
 * stays within `loadFactor` × the mean (counting this request) first, then the rest in
 * rendezvous order. `home` is the key's own node, the first in rendezvous order.
 */
export function affinityOrder<T extends AffinityCandidate>(
  key: string,
  candidates: readonly T[],
  loadFactor: number,
): { order: T[]; home: T | undefined } {
  const ranked = candidates
    .map((candidate) => ({ candidate, weight: weight(key, candidate.id) }))
    .sort((a, b) => (a.weight < b.weight ? 1 : a.weight > b.weight ? -1 : 0))
    .map(({ candidate }) => candidate);
  const total = candidates.reduce((sum, candidate) => sum + candidate.load, 0) + 1;
  const bound = Math.ceil((loadFactor * total) / Math.max(1, candidates.length));
  const within = ranked.findIndex(
    (candidate) => candidate.load < candidate.slots || candidate.load + 1 <= bound,
  );
  const home = ranked[0];
  if (within <= 0) return { order: ranked, home };
  return {
    order: [ranked[within]!, ...ranked.slice(0, within), ...ranked.slice(within + 1)],
    home,
  };
}

/** The rendezvous weight of `id` for `key`: 64 bits of SHA-256 over both. */
function weight(key: string, id: string): bigint {
  return createHash("sha256").update(key).update("\u0000").update(id).digest().readBigUInt64BE();
}

/**
 * The nodes this gateway last sent each key to, oldest forgotten first: an answer from the
 * node a key went to last is a `hit` (its prompt is likely still cached), from its own node
 * but new to it a `miss`.
 */
export class AffinityMemory {
  readonly #capacity: number;
  readonly #nodeOf = new Map<string, string>();

  constructor(capacity = 100_000) {
    this.#capacity = capacity;
  }

  /** Records that `key` went to `nodeId`; whether it went there last time too. */
  sent(key: string, nodeId: string): boolean {
    const last = this.#nodeOf.get(key);
    this.#nodeOf.delete(key);
    this.#nodeOf.set(key, nodeId);
    if (this.#nodeOf.size > this.#capacity) {
      this.#nodeOf.delete(this.#nodeOf.keys().next().value!);
    }
    return last === nodeId;
  }
}
