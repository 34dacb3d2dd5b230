import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { Deferred, waitFor } from "../../core/async.js";
import { RoleMeshError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import type { SharedDocument } from "../../core/state/shared-document.js";
import type { WakeableState, WakeableStatus, WakeOnLanArgs } from "../../protocol/wakeable.js";
import type { NodeCommands } from "../commands/node-commands.js";
import type { NodeRecord, NodeRegistry } from "../registry/node-registry.js";
import { rankNodes } from "../router/route-picker.js";
import { runAction } from "./wake-actions.js";
import type { SleepAction, WakeableEntries, WakeableEntry } from "./wakeable-entries.js";

/**
 * A wake as every gateway sees it: one record per entry in the shared document `wake-states`
 * (a file, or a key of NATS's state bucket), changed only by compare-and-set updates.
 */
export interface WakeRecord {
  state: "waking" | "awake" | "failed" | "sleeping";
  /** When the state began, ms since the epoch. */
  since: number;
  /** The claim of the gateway that runs the wake or the sleep: only its holder acts. */
  claim?: string;
  /** Why the wake failed. */
  reason?: string;
  /** How long the last successful wake took, in ms: the next one's ETA. */
  last_wake_ms?: number;
}
export type WakeStates = Record<string, WakeRecord>;

/** The gateway keys of wake on demand (SPEC §11). */
export interface WakeSettings {
  /** Wake a sleeping entry when a request needs it (`wake_on_demand`). */
  onDemand: boolean;
  /** How long a request is held for a wake (`wake_max_wait_s`), in ms. */
  maxWaitMs: number;
  /** Requests held at once, beyond which they are answered 503 `waking` (`wake_max_held`). */
  maxHeld: number;
  /** A woken node must register within this (`wake_timeout_s`), in ms. */
  timeoutMs: number;
  /** After a failed wake, how long requests are answered with its reason before another (`wake_cooldown_s`), in ms. */
  cooldownMs: number;
}

export interface WakerOptions {
  entries: WakeableEntries;
  registry: NodeRegistry;
  states: SharedDocument<WakeStates>;
  /** The document's value when the gateway started. */
  initialStates: WakeStates;
  /** For `via_node` magic packets and for putting nodes to sleep. */
  commands: NodeCommands;
  settings: WakeSettings;
  metrics: {
    wakeStarted(id: string): void;
    wakeFailed(id: string): void;
    wakeSeconds(seconds: number): void;
  };
  log: Logger;
}

/** How often held streams are told the wake goes on (an SSE comment). */
export const HOLD_NOTICE_INTERVAL_MS = 5000;
/** How often idle nodes are looked for. */
const IDLE_CHECK_INTERVAL_MS = 1000;
const SENDER = { by: "wakeable" };

/**
 * Wakeable capacity that wakes (SPEC §11). A wake is claimed in the shared document first, so
 * of all the gateways — and of all the requests that want it — one runs the entry's action;
 * every gateway then sees it `waking` until the node registers (`awake`, its duration kept as
 * the next ETA) or `wake_timeout_s` passes (`failed`, with the reason). Requests for a model
 * or role no live node serves are held while an entry that serves it wakes. Idle nodes are put
 * to sleep by one gateway, the same way. Emits `change` whenever the entries' status may have
 * changed.
 */
export class Waker extends EventEmitter<{ change: [] }> {
  readonly #options: WakerOptions;
  #states: WakeStates;
  /** Requests held now, on this gateway. */
  #held = 0;
  /** Settles at the next change: held requests look again then. */
  #changed = new Deferred();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #idleCheck: NodeJS.Timeout;

  constructor(options: WakerOptions) {
    super();
    this.#options = options;
    this.#states = options.initialStates;
    options.states.on("change", (value) => {
      this.#states = value;
      this.#announce();
    });
    options.entries.on("change", () => this.#announce());
    options.registry.on("event", (event) => {
      // A report can change what a node serves (a drained node taking requests again): held
      // requests look again. The entries' status depends only on who is registered.
      if (event.type === "node_updated") {
        if (this.#held > 0) this.#wakeHeld();
        return;
      }
      // In a large fleet nodes come and go all the time: only those an entry becomes count.
      const nodeId =
        event.type === "node_removed"
          ? event.node_id
          : event.type === "node_registered"
            ? event.node.node_id
            : undefined;
      if (nodeId === undefined || !this.#concerns(nodeId)) return;
      this.#announce();
      if (event.type === "node_registered") void this.#completeWakes();
    });
    this.#idleCheck = setInterval(() => void this.#sleepIdleNodes(), IDLE_CHECK_INTERVAL_MS);
    this.#idleCheck.unref();
  }

  /** Requests held now on this gateway, for `/metrics`. */
  get held(): number {
    return this.#held;
  }

  /** Every entry as `/api/status` shows it. */
  status(): WakeableStatus[] {
    return this.#options.entries.list().map((entry) => this.#status(entry));
  }

  /**
   * Wakes entry `id` unless it is awake or waking already (`manual` also ends a failed wake's
   * cooldown); resolves with its status once the wake is claimed, not when it is over.
   */
  async wake(id: string, reason: string, manual = false): Promise<WakeableStatus> {
    const entry = this.#options.entries.get(id);
    if (!entry) throw new RoleMeshError("not_found", `no wakeable entry "${id}"`);
    if (!entry.wake) {
      throw new RoleMeshError("invalid_request", `wakeable entry "${id}" has no wake action`);
    }
    if (!this.#isAwake(entry)) await this.#claimWake(entry, reason, manual);
    return this.#status(entry);
  }

  /**
   * For a request for `name` (a model id or role) that no live node serves: wakes an entry that
   * serves it and holds the request until a live node does. Resolves true once one does, false
   * when nothing wakeable serves the name (or wake on demand is off). Rejects with 503 `waking`
   * (past `wake_max_wait_s`, or too many held) or `no_capacity` (the wake failed, with why).
   * `notice` is called at once and every HOLD_NOTICE_INTERVAL_MS while the request waits.
   */
  async hold(name: string, signal: AbortSignal, notice?: (id: string) => void): Promise<boolean> {
    const { settings } = this.#options;
    if (!settings.onDemand) return false;
    const entry = this.#entryFor(name);
    if (!entry) return false;
    if (this.#held >= settings.maxHeld) {
      throw new RoleMeshError(
        "waking",
        `"${entry.id}" is waking for "${name}" and ${this.#held} requests wait for it already; retry later`,
        { retryAfterS: this.#retryAfterS(entry) },
      );
    }
    this.#held++;
    const heldSince = Date.now();
    const deadline = heldSince + settings.maxWaitMs;
    let notices: NodeJS.Timeout | undefined;
    try {
      await this.#claimWake(entry, `request for ${name}`, false);
      if (notice) {
        notice(entry.id);
        notices = setInterval(() => notice(entry.id), HOLD_NOTICE_INTERVAL_MS);
      }
      for (;;) {
        if (this.#serves(name)) return true;
        const record = this.#states[entry.id];
        if (record?.state === "failed") throw this.#failure(entry, name, record);
        await waitFor(this.#changed.promise, deadline, signal, () => {
          const waited = Math.round((Date.now() - heldSince) / 1000);
          return new RoleMeshError(
            "waking",
            `"${entry.id}" is still waking for "${name}" after ${waited} s; retry later`,
            { retryAfterS: this.#retryAfterS(entry) },
          );
        });
      }
    } finally {
      clearInterval(notices);
      this.#held--;
    }
  }

  close(): void {
    clearInterval(this.#idleCheck);
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  #status(entry: WakeableEntry): WakeableStatus {
    const record = this.#states[entry.id];
    const state = this.#stateOf(entry, record);
    const lastWakeMs = record?.last_wake_ms ?? null;
    const elapsed = record ? Date.now() - record.since : 0;
    return {
      id: entry.id,
      provider: entry.provider,
      description: entry.description,
      vram_mb: entry.vram_mb,
      models: entry.models,
      state,
      node_id: entry.node_id ?? null,
      wake_action: entry.wake ? actionKind(entry.wake) : null,
      since: record ? new Date(record.since).toISOString() : null,
      reason: state === "failed" ? (record?.reason ?? null) : null,
      last_wake_s: lastWakeMs === null ? null : Math.round(lastWakeMs / 100) / 10,
      eta_s:
        state === "waking" && lastWakeMs !== null
          ? Math.max(0, Math.round((lastWakeMs - elapsed) / 1000))
          : null,
      sleep_after_idle_s: entry.sleep_after_idle_s,
    };
  }

  #stateOf(entry: WakeableEntry, record: WakeRecord | undefined): WakeableState {
    if (this.#isAwake(entry)) return "awake";
    if (!record) return entry.state;
    if (record.state === "waking") return this.#isStale(record) ? "failed" : "waking";
    if (record.state === "failed") return "failed";
    // Awake or put to sleep, and not live now: asleep.
    return "sleeping";
  }

  /** A wake whose gateway went away before it could end it. */
  #isStale(record: WakeRecord): boolean {
    return (
      record.state === "waking" && Date.now() - record.since > this.#options.settings.timeoutMs
    );
  }

  /** The node the entry becomes is live; without a `node_id`, a live node serves its models. */
  #isAwake(entry: WakeableEntry): boolean {
    const { registry } = this.#options;
    if (entry.node_id) return registry.get(entry.node_id) !== undefined;
    return entry.models.some((name) => this.#serves(name));
  }

  /** Whether `nodeId` coming or going may change an entry: its node, or any for an entry without one. */
  #concerns(nodeId: string): boolean {
    return this.#options.entries
      .list()
      .some((entry) => entry.node_id === undefined || entry.node_id === nodeId);
  }

  /** A live node that takes requests (not draining) serves the model or role. */
  #serves(name: string): boolean {
    const taking = this.#options.registry.live().filter((record) => !record.snapshot.draining);
    return rankNodes(taking, name, 0).length > 0;
  }

  /** An entry that serves `name` and may be woken: one waking first, then one asleep. */
  #entryFor(name: string): WakeableEntry | undefined {
    const candidates = this.#options.entries
      .list()
      .filter((entry) => entry.wake && entry.models.includes(name) && !this.#isAwake(entry));
    const rank = (entry: WakeableEntry) =>
      ({ waking: 0, sleeping: 1, failed: 2, awake: 3 })[
        this.#stateOf(entry, this.#states[entry.id])
      ];
    return candidates.sort((a, b) => rank(a) - rank(b))[0];
  }

  /**
   * Claims the entry's wake unless it is waking already or (not `manual`) failed within the
   * cooldown, and runs it when this gateway holds the claim. A failed wake within the cooldown
   * rejects with its reason.
   */
  async #claimWake(entry: WakeableEntry, reason: string, manual: boolean): Promise<void> {
    const claim = randomUUID();
    const now = Date.now();
    const { cooldownMs } = this.#options.settings;
    const states = await this.#options.states.update((current) => {
      const record = current[entry.id];
      if (record?.state === "waking" && !this.#isStale(record)) return current;
      if (record?.state === "failed" && !manual && now - record.since < cooldownMs) return current;
      return {
        ...current,
        [entry.id]: { state: "waking", since: now, claim, last_wake_ms: record?.last_wake_ms },
      };
    });
    this.#states = states;
    this.#announce();
    const record = states[entry.id];
    if (record?.claim === claim) {
      void this.#runWake(entry, reason, record);
      return;
    }
    if (record?.state === "failed") throw this.#failure(entry, reason, record);
  }

  async #runWake(entry: WakeableEntry, reason: string, record: WakeRecord): Promise<void> {
    const { log, metrics, settings } = this.#options;
    metrics.wakeStarted(entry.id);
    log.info({ wakeable_id: entry.id, reason }, "waking");
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      const seconds = Math.round(settings.timeoutMs / 1000);
      const node = entry.node_id
        ? `node ${entry.node_id}`
        : `a node serving ${entry.models.join(", ")}`;
      void this.#fail(entry, record.claim!, `${node} did not register within ${seconds} s`);
    }, settings.timeoutMs);
    this.#timers.add(timer);
    try {
      await runAction(entry.wake!, {
        id: entry.id,
        reason,
        wakeOnLanVia: (nodeId, args) => this.#wakeOnLanVia(nodeId, args),
        log,
      });
    } catch (err) {
      clearTimeout(timer);
      this.#timers.delete(timer);
      await this.#fail(entry, record.claim!, (err as Error).message);
      return;
    }
    // It may have registered while the action ran (a fast machine, or a command that waits).
    await this.#completeWakes();
  }

  async #wakeOnLanVia(nodeId: string, args: WakeOnLanArgs): Promise<void> {
    await this.#options.commands.send(nodeId, "node.wol", { ...args }, SENDER);
  }

  /** Ends this gateway's wakes whose node is live now: awake, with how long it took. */
  async #completeWakes(): Promise<void> {
    for (const entry of this.#options.entries.list()) {
      const record = this.#states[entry.id];
      if (record?.state !== "waking" || !this.#isAwake(entry)) continue;
      const now = Date.now();
      const changed = await this.#settle(entry.id, record.claim, {
        state: "awake",
        since: now,
        last_wake_ms: now - record.since,
      });
      if (!changed) continue;
      this.#options.metrics.wakeSeconds((now - record.since) / 1000);
      this.#options.log.info({ wakeable_id: entry.id, wake_ms: now - record.since }, "awake");
      await this.#resumeIfDrained(entry);
    }
  }

  async #fail(entry: WakeableEntry, claim: string, reason: string): Promise<void> {
    const record = this.#states[entry.id];
    const changed = await this.#settle(entry.id, claim, {
      state: "failed",
      since: Date.now(),
      reason,
      last_wake_ms: record?.last_wake_ms,
    });
    if (!changed) return;
    this.#options.metrics.wakeFailed(entry.id);
    this.#options.log.warn({ wakeable_id: entry.id, reason }, "wake failed");
  }

  /**
   * Replaces the entry's record if it still holds `claim` (no other gateway, or later wake,
   * took it over); true when it did.
   */
  async #settle(id: string, claim: string | undefined, next: WakeRecord): Promise<boolean> {
    let changed = false;
    this.#states = await this.#options.states.update((current) => {
      changed = claim !== undefined && current[id]?.claim === claim;
      return changed ? { ...current, [id]: next } : current;
    });
    this.#announce();
    return changed;
  }

  /** A node put to sleep by the gateway's own action was drained first: it takes requests again. */
  async #resumeIfDrained(entry: WakeableEntry): Promise<void> {
    const record = entry.node_id ? this.#options.registry.get(entry.node_id) : undefined;
    if (!record?.snapshot.draining) return;
    await this.#options.commands
      .send(record.nodeId, "node.resume", {}, SENDER)
      .catch((err: unknown) =>
        this.#options.log.warn({ err, node_id: record.nodeId }, "could not resume a woken node"),
      );
  }

  /**
   * Puts each entry's node to sleep once it has had nothing in flight or queued for the
   * entry's `sleep_after_idle_s`, by the node's own clock of its last request (so requests
   * through every gateway count). One gateway claims each sleep.
   */
  async #sleepIdleNodes(): Promise<void> {
    for (const entry of this.#options.entries.list()) {
      if (entry.sleep_after_idle_s <= 0 || !entry.sleep || !entry.node_id) continue;
      const record = this.#options.registry.get(entry.node_id);
      if (!record || record.inFlight > 0 || record.snapshot.draining) continue;
      const idleMs = idleFor(record);
      if (idleMs === null || idleMs < entry.sleep_after_idle_s * 1000) continue;
      await this.#sleep(entry, record).catch((err: unknown) =>
        this.#options.log.warn(
          { wakeable_id: entry.id, err: (err as Error).message },
          "could not put the node to sleep",
        ),
      );
    }
  }

  async #sleep(entry: WakeableEntry, node: NodeRecord): Promise<void> {
    const claim = randomUUID();
    const now = Date.now();
    const registeredAt = node.registeredAt;
    const states = await this.#options.states.update((current) => {
      const record = current[entry.id];
      // Put to sleep already since it registered: another gateway's doing, or ours.
      if (record?.state === "sleeping" && record.since >= registeredAt) return current;
      return {
        ...current,
        [entry.id]: { state: "sleeping", since: now, claim, last_wake_ms: record?.last_wake_ms },
      };
    });
    this.#states = states;
    if (states[entry.id]?.claim !== claim) return;
    this.#announce();
    this.#options.log.info(
      { wakeable_id: entry.id, node_id: node.nodeId, idle_s: entry.sleep_after_idle_s },
      "putting an idle node to sleep",
    );
    try {
      await this.#runSleep(entry, entry.sleep!, node);
    } catch (err) {
      // Still awake (a node busy again refuses with 409): the next idle period tries again.
      await this.#settle(entry.id, claim, {
        state: "awake",
        since: Date.now(),
        last_wake_ms: states[entry.id]?.last_wake_ms,
      });
      throw err;
    }
  }

  async #runSleep(entry: WakeableEntry, sleep: SleepAction, node: NodeRecord): Promise<void> {
    const { commands, log } = this.#options;
    if (sleep === "node") {
      await commands.send(node.nodeId, "node.sleep", {}, SENDER);
      return;
    }
    // Drained first, so no gateway sends it a request while it goes down; resumed when woken.
    await commands.send(node.nodeId, "node.drain", {}, SENDER);
    await runAction(sleep, {
      id: entry.id,
      reason: `idle for ${entry.sleep_after_idle_s} s`,
      wakeOnLanVia: (nodeId, args) => this.#wakeOnLanVia(nodeId, args),
      log,
    });
  }

  #failure(entry: WakeableEntry, name: string, record: WakeRecord): RoleMeshError {
    const retryMs = record.since + this.#options.settings.cooldownMs - Date.now();
    return new RoleMeshError(
      "no_capacity",
      `"${entry.id}" could not be woken for ${name}: ${record.reason ?? "unknown reason"}`,
      { retryAfterS: Math.max(1, Math.ceil(retryMs / 1000)) },
    );
  }

  /** When to come back: the wake's ETA from the last one's duration, else a few seconds. */
  #retryAfterS(entry: WakeableEntry): number {
    return Math.max(1, this.#status(entry).eta_s ?? 5);
  }

  #announce(): void {
    this.#wakeHeld();
    this.emit("change");
  }

  #wakeHeld(): void {
    const changed = this.#changed;
    this.#changed = new Deferred();
    changed.resolve();
  }
}

function actionKind(action: NonNullable<WakeableEntry["wake"]>): WakeableStatus["wake_action"] {
  return "command" in action ? "command" : "webhook" in action ? "webhook" : "wol";
}

/**
 * How long the node has had nothing in flight or queued, by the last activity its devices
 * report; null while it is busy, or when it reports no activity clock (an older agent).
 */
function idleFor(record: NodeRecord): number | null {
  let last = record.registeredAt;
  for (const device of record.snapshot.devices) {
    const { in_flight, pending, last_active_at } = device.queue;
    if (in_flight > 0 || pending > 0) return null;
    if (last_active_at === undefined) return null;
    if (last_active_at !== null) last = Math.max(last, Date.parse(last_active_at));
  }
  return Date.now() - last;
}
