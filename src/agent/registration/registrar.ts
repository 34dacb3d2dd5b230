import type { Logger } from "../../core/logger.js";
import { Serial } from "../../core/async.js";
import { RoleMeshError } from "../../core/errors.js";
import type { MessageOrder, NodeSnapshot, RegisterRequest } from "../../protocol/registry.js";
import type { RegistryClient } from "./registry-client.js";

export interface RegistrarOptions {
  client: RegistryClient;
  nodeId: string;
  /** The agent's full descriptor, without node id, ordering fields and snapshot. */
  describe(): Omit<RegisterRequest, keyof MessageOrder | "snapshot" | "node_id">;
  snapshot(): NodeSnapshot;
  log: Logger;
  /** Used until the gateway says otherwise in its registration answer. */
  heartbeatIntervalS: number;
  /** The secret this node id is bound to, from an earlier registration; none the first time. */
  nodeSecret: string | undefined;
  /** Keeps a secret the gateway issued, so the next agent process presents it too. */
  saveNodeSecret(secret: string): Promise<void>;
}

const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30_000;
const NUDGE_DELAY_MS = 100;

/**
 * Keeps an agent registered with its gateway (SPEC §7.2): registers, heartbeats every
 * interval, registers again at once when the gateway forgot the node (`unknown_node`, e.g.
 * after a gateway restart), and backs off with jitter (1 s to 30 s) while the gateway cannot be
 * reached. The agent serves local requests all along; this only reports. `pause()` deregisters
 * until `resume()` (a node going to sleep); `stop()` deregisters for good.
 */
export class Registrar {
  readonly #options: RegistrarOptions;
  /** Orders this agent process's messages (SPEC: a replayed or late one never wins). */
  readonly #startedAt = Date.now();
  #sequence = 0;
  #intervalMs: number;
  #registered = false;
  /** Set by `stop()`, for good. */
  #stopped = false;
  /** Set by `pause()`, until `resume()`. */
  #paused = false;
  /** Set by `nudge()`: the next heartbeat goes out without waiting for the interval. */
  #nudged = false;
  #waitingForInterval = false;
  #shortenSleep: ((atMost: number) => void) | undefined;
  /** The running loop, and how to end it (each loop has its own, so a resumed one is not ended). */
  #loop: { done: Promise<void>; halt: AbortController } | undefined;
  /** Halts (loop ended, then deregistered) and the restarts that wait for them, in turn. */
  readonly #halts = new Serial();
  #resumeTimer: NodeJS.Timeout | undefined;
  #secret: string | undefined;

  constructor(options: RegistrarOptions) {
    this.#options = options;
    this.#intervalMs = options.heartbeatIntervalS * 1000;
    this.#secret = options.nodeSecret;
  }

  get registered(): boolean {
    return this.#registered;
  }

  /** Registers, then heartbeats until `pause()` or `stop()`. */
  start(): void {
    if (this.#stopped || this.#paused || this.#loop) return;
    const halt = new AbortController();
    this.#loop = { done: this.#run(halt.signal), halt };
  }

  /**
   * Sends a heartbeat soon (after NUDGE_DELAY_MS) instead of at the next interval, so a state
   * change (a server starting, becoming ready, stopping) reaches the gateway and its console
   * at once. The short delay lets what follows the change settle (a load releasing its queue
   * turn) and coalesces bursts into one heartbeat; nudges during a backoff after failures do
   * not shorten it.
   */
  nudge(): void {
    if (!this.#registered || this.#nudged) return;
    this.#nudged = true;
    if (this.#waitingForInterval) this.#shortenSleep?.(NUDGE_DELAY_MS);
  }

  /**
   * Stops heartbeating and deregisters, until `resume()`: the gateway routes nothing here
   * meanwhile (`node.sleep`, SPEC §11). Resolves once deregistered (best effort, as `stop()`).
   */
  pause(): Promise<void> {
    this.#paused = true;
    clearTimeout(this.#resumeTimer);
    return this.#halt();
  }

  /**
   * Reports again after `delayMs`: registers first (the gateway forgot the node when it
   * deregistered), then heartbeats. Nothing to do unless paused; a `pause()` meanwhile cancels it.
   */
  resume(delayMs = 0): void {
    clearTimeout(this.#resumeTimer);
    this.#resumeTimer = setTimeout(() => {
      this.#paused = false;
      // After the pause's deregistration, so the register is not overtaken by it.
      void this.#halts.run(async () => this.start());
    }, delayMs).unref();
  }

  /** Stops heartbeating and deregisters (best effort: a gateway that is away lets the lease expire). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#resumeTimer);
    await this.#halt();
  }

  /** Ends the loop, then deregisters if registered; after any earlier halt has finished. */
  #halt(): Promise<void> {
    const loop = this.#loop;
    this.#loop = undefined;
    loop?.halt.abort();
    return this.#halts.run(async () => {
      await loop?.done;
      await this.#deregister();
    });
  }

  async #deregister(): Promise<void> {
    if (!this.#registered) return;
    // Whatever the gateway answers, the next message is a register.
    this.#registered = false;
    try {
      await this.#options.client.deregister({
        node_id: this.#options.nodeId,
        ...this.#credential(),
        ...this.#order(),
      });
      this.#options.log.info("deregistered from the gateway");
    } catch (err) {
      this.#options.log.warn(
        { err: (err as Error).message },
        "could not deregister; the gateway's lease will expire",
      );
    }
  }

  async #run(halt: AbortSignal): Promise<void> {
    let failures = 0;
    while (!halt.aborted) {
      try {
        this.#nudged = false;
        if (this.#registered) await this.#heartbeat();
        else await this.#register();
        failures = 0;
        this.#waitingForInterval = true;
        await this.#sleep(this.#nudged ? NUDGE_DELAY_MS : this.#intervalMs, halt);
        this.#waitingForInterval = false;
      } catch (err) {
        if (err instanceof RoleMeshError && err.code === "unknown_node") {
          this.#options.log.info("the gateway does not know this node; registering again");
          this.#registered = false;
          continue;
        }
        failures++;
        const delay = backoff(failures, this.#intervalMs);
        if (err instanceof RoleMeshError && err.code === "conflict") {
          // Another agent holds this node id: not a network blip, an operator's mistake (two
          // agents with one node_id, or a copied state dir). Said loudly, every attempt.
          this.#registered = false;
          this.#options.log.error(
            { node_id: this.#options.nodeId, retry_in_ms: delay },
            `the gateway refuses this agent: ${err.message}`,
          );
          await this.#sleep(delay, halt);
          continue;
        }
        this.#options.log.warn(
          { err: (err as Error).message, retry_in_ms: delay },
          this.#registered ? "heartbeat failed" : "registration failed",
        );
        await this.#sleep(delay, halt);
      }
    }
  }

  async #register(): Promise<void> {
    const answer = await this.#options.client.register({
      node_id: this.#options.nodeId,
      ...this.#options.describe(),
      snapshot: this.#options.snapshot(),
      ...this.#credential(),
      ...this.#order(),
    });
    if (answer.node_secret && answer.node_secret !== this.#secret) {
      this.#secret = answer.node_secret;
      await this.#options.saveNodeSecret(answer.node_secret);
    }
    this.#registered = true;
    this.#intervalMs = answer.heartbeat_interval_s * 1000;
    this.#options.log.info(
      { heartbeat_interval_s: answer.heartbeat_interval_s, lease_s: answer.lease_s },
      "registered with the gateway",
    );
  }

  async #heartbeat(): Promise<void> {
    await this.#options.client.heartbeat({
      node_id: this.#options.nodeId,
      snapshot: this.#options.snapshot(),
      ...this.#credential(),
      ...this.#order(),
    });
  }

  #credential(): { node_secret?: string } {
    return this.#secret ? { node_secret: this.#secret } : {};
  }

  #order(): MessageOrder {
    return { started_at: this.#startedAt, sequence: ++this.#sequence };
  }

  /** Waits `ms`, or less: until `halt` fires, or as `nudge()` shortens it. */
  #sleep(ms: number, halt: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (halt.aborted) {
        resolve();
        return;
      }
      let timer = setTimeout(done, ms);
      const startedAt = Date.now();
      function done() {
        clearTimeout(timer);
        halt.removeEventListener("abort", done);
        resolve();
      }
      halt.addEventListener("abort", done, { once: true });
      this.#shortenSleep = (atMost) => {
        const left = ms - (Date.now() - startedAt);
        if (left <= atMost) return;
        clearTimeout(timer);
        timer = setTimeout(done, atMost);
      };
    });
  }
}

/**
 * Exponential backoff from 1 s to 30 s with jitter, so a fleet does not retry in step. It
 * never waits longer than one heartbeat interval (nor less than 1 s): retrying no faster than
 * heartbeats costs the gateway nothing extra, and a restarted gateway sees every node again
 * within one interval of coming back.
 */
function backoff(failures: number, intervalMs: number): number {
  const cap = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, intervalMs));
  const ceiling = Math.min(cap, MIN_BACKOFF_MS * 2 ** (failures - 1));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}
