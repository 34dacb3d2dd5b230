import { EventEmitter, once } from "node:events";
import type { Logger } from "../../core/logger.js";
import { Pool } from "undici";
import { Deferred, Serial, sleep, waitFor } from "../../core/async.js";
import { redactSecrets } from "./redact-secrets.js";
import { RoleMeshError } from "../../core/errors.js";
import { freeLoopbackPort } from "../../core/net.js";
import type {
  DeviceRef,
  ServerFailure,
  ServerInfo,
  ServerState,
} from "../../protocol/inventory.js";
import type { ModelEntry } from "../config/agent-config.js";
import type { Engine } from "../engines/engine.js";
import type { PidRecords } from "./pid-records.js";
import { ManagedProcess } from "../../core/process/managed-process.js";
import { CrashBackoff } from "./crash-backoff.js";
import { failureReport, howItEnded, processInfo } from "./process-info.js";
import { LogTail } from "./log-tail.js";

export interface DeviceSupervisorOptions {
  device: DeviceRef;
  engine: Engine;
  /** Environment that pins the server to this device only; `undefined` removes a variable. */
  pinningEnv: Record<string, string | undefined>;
  pidRecords: PidRecords;
  log: Logger;
  /** `llama_server_probe_interval_s`, in ms. */
  probeIntervalMs: number;
  /** How long a request waits for `model` to become ready (SPEC §4 startup timeout). */
  startupTimeoutMs(model: ModelEntry): number;
  /**
   * A server still loading `model` after this long is hung, not slow: it is killed and counts
   * as a crash (with backoff), as Kubernetes' startup probe gives up on a container.
   */
  loadCeilingMs(model: ModelEntry): number;
  /** Grace between SIGTERM and SIGKILL when stopping a server. */
  stopGraceMs?: number;
  /** Lines of server output kept for the inventory. */
  logTailLines?: number;
}

/** Events: `state` (ServerState) whenever the state changes. */
export interface DeviceSupervisorEvents {
  state: [ServerState];
}

const PORT_RETRIES = 3;
/** A ready server is asked `/health` this often (a tenth of a second at the least)... */
const LIVENESS_INTERVALS = 10;
const LIVENESS_MIN_MS = 1000;
const LIVENESS_MAX_MS = 10_000;
/** ...and recycled after this many answers in a row that did not come, like a liveness probe. */
const LIVENESS_FAILURES = 3;

/**
 * Keeps at most one inference server for one device (SPEC §4): starts it on demand on a free
 * loopback port, decides readiness, reports crashes with backoff, stops it on request.
 * It never decides *whether* to switch models — the scheduler drains the device first.
 */
export class DeviceSupervisor extends EventEmitter<DeviceSupervisorEvents> {
  readonly device: DeviceRef;
  #state: ServerState = "stopped";
  #model: ModelEntry | null = null;
  #process: ManagedProcess | null = null;
  #stopping: ManagedProcess | null = null;
  /** Why the supervisor itself killed the current server (hung), for its failure report. */
  #killedBecause: string | null = null;
  #port: number | null = null;
  #upstream: Pool | null = null;
  #readiness: Deferred | null = null;
  #nudge: Deferred | null = null;
  #readyAt: Date | null = null;
  #lastError: ServerFailure | null = null;
  readonly #backoff = new CrashBackoff();
  #restarts = 0;
  #portRetries = 0;
  #engineVersion: string | null = null;
  /** Start and stop transitions, one at a time: two requests never start two servers. */
  readonly #transitions = new Serial();
  readonly #logTail: LogTail;
  readonly #options: DeviceSupervisorOptions;

  constructor(options: DeviceSupervisorOptions) {
    super();
    this.#options = options;
    this.device = options.device;
    this.#logTail = new LogTail(options.logTailLines ?? 200);
  }

  get state(): ServerState {
    return this.#state;
  }

  /** The model of the server that is starting or ready, if any. */
  get activeModel(): ModelEntry | null {
    return this.#state === "starting" || this.#state === "ready" ? this.#model : null;
  }

  /** When the current server became ready (ms since epoch), or null. */
  get readySince(): number | null {
    return this.#state === "ready" ? (this.#readyAt?.getTime() ?? null) : null;
  }

  get engineVersion(): string | null {
    return this.#engineVersion;
  }

  get lastError(): ServerFailure | null {
    return this.#lastError;
  }

  get logTail(): readonly string[] {
    return this.#logTail.lines;
  }

  /**
   * Resolves with a connection pool to a ready server of `model`, starting or switching the
   * server as needed. Rejects with 503 `model_loading_timeout` when the model is not ready in
   * time (the server keeps loading), 502 `upstream_error` when it dies while loading.
   */
  async ensure(model: ModelEntry, signal?: AbortSignal): Promise<Pool> {
    const timeoutMs = this.#options.startupTimeoutMs(model);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      signal?.throwIfAborted();
      if (this.#serves(model, "ready") && this.#upstream) return this.#upstream;
      // Wait for the server this call found starting, or the one it starts itself: if that one
      // dies (even before this call got to wait), the request fails with it instead of
      // starting yet another server — a server that crashes while loading is a 502.
      const readiness =
        this.#serves(model, "starting") && this.#readiness
          ? this.#readiness
          : await this.#transitions.run(() => this.#startIfNeeded(model, deadline, signal));
      if (readiness) {
        await waitFor(readiness.promise, deadline, signal, () =>
          this.#loadingTimeout(model, timeoutMs),
        );
      }
    }
  }

  /**
   * A request to `upstream` completed. The server has shown it can serve, so a later crash
   * starts a fresh backoff series: backoff is for servers that cannot serve, not for one that
   * something else kills now and then (the OOM killer, an operator).
   */
  served(upstream: Pool): void {
    if (upstream === this.#upstream) this.#backoff.succeeded();
  }

  /** Stops the server (if any) and waits until it is gone. */
  stop(): Promise<void> {
    return this.#transitions.run(() => this.#stopCurrent());
  }

  info(): ServerInfo {
    const model = this.#state === "stopped" && !this.#process ? null : this.#model;
    return {
      model_id: model?.model_id ?? null,
      ...processInfo({
        state: this.#state,
        process: this.#process,
        port: this.#port,
        readyAt: this.#readyAt,
        restarts: this.#restarts,
        backoff: this.#backoff,
      }),
    };
  }

  /**
   * Whether `model` starts as the last server did. Backoff is for a server that keeps failing;
   * one started with other arguments (a split group re-formed without a dead worker) is new.
   */
  #sameLaunch(model: ModelEntry): boolean {
    return (
      this.#model?.model_id === model.model_id &&
      this.#model.args.join("\0") === model.args.join("\0")
    );
  }

  #serves(model: ModelEntry, state: ServerState): boolean {
    return this.#state === state && this.#model?.model_id === model.model_id;
  }

  /**
   * Resolves once the server is not `ready` any more (its exit was noticed), or after
   * `timeoutMs`: for a caller whose connection was refused by a server that looked ready.
   */
  async settled(timeoutMs: number): Promise<void> {
    if (this.#state !== "ready") return;
    try {
      await once(this, "state", { signal: AbortSignal.timeout(timeoutMs) });
    } catch {
      // still "ready" after the grace: the caller's retry will tell
    }
  }

  /** Starts a server for `model` unless one is ready or starting; its readiness, if started. */
  async #startIfNeeded(
    model: ModelEntry,
    deadline: number,
    signal?: AbortSignal,
  ): Promise<Deferred | undefined> {
    if (this.#serves(model, "ready")) return undefined;
    if (this.#serves(model, "starting")) return this.#readiness ?? undefined;
    if (this.#process) await this.#stopCurrent();
    const backoffMs = this.#backoff.remainingMs();
    if (backoffMs > 0 && this.#sameLaunch(model)) {
      if (Date.now() + backoffMs > deadline) {
        throw new RoleMeshError(
          "no_capacity",
          `the server for ${model.model_id} on ${this.device.id} crashed ${this.#backoff.consecutiveFailures} times in a row; ` +
            `next start attempt in ${Math.ceil(backoffMs / 1000)} s`,
          { retryAfterS: backoffMs / 1000 },
        );
      }
      this.#options.log.info(
        { device: this.device.id, model: model.model_id, backoff_ms: backoffMs },
        "waiting out crash backoff",
      );
      await waitFor(
        sleep(backoffMs),
        deadline,
        signal,
        // The deadline can fire a moment before the backoff's own timer: still the backoff.
        () =>
          new RoleMeshError("no_capacity", "backoff outlasted the deadline", {
            retryAfterS: Math.max(1, this.#backoff.remainingMs() / 1000),
          }),
      );
    }
    if (!this.#sameLaunch(model)) {
      this.#backoff.reset();
    } else if (this.#state === "failed") {
      this.#restarts++;
    }
    this.#model = model;
    const readiness = new Deferred();
    this.#readiness = readiness;
    this.#portRetries = 0;
    await this.#spawn(model);
    return readiness;
  }

  async #spawn(model: ModelEntry): Promise<void> {
    const port = await freeLoopbackPort();
    const spec = await this.#options.engine.launch(model, port, this.device);
    const log = this.#options.log.child({ device: this.device.id, model: model.model_id });
    const proc = new ManagedProcess(
      { ...spec, env: { ...spec.env, ...this.#options.pinningEnv } },
      (stream, line) => this.#onOutput(log, stream, line),
    );
    this.#process = proc;
    this.#port = port;
    this.#upstream = new Pool(`http://127.0.0.1:${port}`, {
      // Generations can run for many minutes; the agent keeps its own deadlines.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    this.#readyAt = null;
    this.#setState("starting");
    log.info(
      { server_pid: proc.pid, port, command: spec.command, args: redactSecrets(spec.args) },
      "server starting",
    );
    void proc.exited.then((status) => this.#onExit(proc, model, status));
    // Probed from the start: nothing below (a full disk for the pid record) may leave a server
    // running that nobody watches.
    void this.#probeUntilReady(proc, model, this.#upstream, log);
    await this.#options.pidRecords
      .record(
        proc.pid,
        { args: spec.args, device: this.device.id, model_id: model.model_id, port },
        () => this.#process === proc,
      )
      .catch((err: unknown) =>
        log.error(
          { err: (err as Error).message },
          "could not record the server's pid; an agent that crashes now may leave it behind",
        ),
      );
  }

  async #probeUntilReady(
    proc: ManagedProcess,
    model: ModelEntry,
    pool: Pool,
    log: Logger,
  ): Promise<void> {
    let reportedMismatch = false;
    const ceilingMs = this.#options.loadCeilingMs(model);
    while (this.#process === proc && this.#state === "starting") {
      const answer = await this.#options.engine.readiness.probe(pool, model);
      if (this.#process !== proc || this.#state !== "starting") return;
      if (!answer.ready && Date.now() - proc.startedAt.getTime() > ceilingMs) {
        this.#kill(proc, log, `was not ready after ${Math.round(ceilingMs / 1000)} s of loading`);
        return;
      }
      if (answer.ready) {
        this.#readyAt = new Date();
        this.#setState("ready");
        this.#readiness?.resolve();
        log.info(
          {
            server_pid: proc.pid,
            port: this.#port,
            load_ms: Date.now() - proc.startedAt.getTime(),
          },
          "server ready",
        );
        this.#engineVersion ??= await this.#options.engine.readiness.buildInfo(pool);
        void this.#watchWhileReady(proc, model, pool, log);
        return;
      }
      if (answer.otherModels && !reportedMismatch) {
        reportedMismatch = true;
        log.warn(
          { reported: answer.otherModels },
          `the server on port ${this.#port} reports ${answer.otherModels.join(", ")} instead of ${model.model_id}; not ready`,
        );
      }
      this.#nudge = new Deferred();
      await Promise.race([sleep(this.#options.probeIntervalMs), this.#nudge.promise]);
    }
  }

  /**
   * Keeps asking a ready server whether it still answers: one that stopped (deadlocked, stopped
   * by a signal, swapping to death) would otherwise hold every request for request_timeout_s.
   * After LIVENESS_FAILURES misses in a row it is killed and restarts like a crashed one.
   */
  async #watchWhileReady(proc: ManagedProcess, model: ModelEntry, pool: Pool, log: Logger) {
    const intervalMs = Math.min(
      LIVENESS_MAX_MS,
      Math.max(LIVENESS_MIN_MS, LIVENESS_INTERVALS * this.#options.probeIntervalMs),
    );
    let misses = 0;
    while (this.#process === proc && this.#state === "ready") {
      await sleep(intervalMs);
      if (this.#process !== proc || this.#state !== "ready") return;
      const answer = await this.#options.engine.readiness.probe(pool, model);
      misses = answer.ready ? 0 : misses + 1;
      if (misses >= LIVENESS_FAILURES) {
        this.#kill(proc, log, `stopped answering its health probe (${misses} times in a row)`);
        return;
      }
    }
  }

  /** Kills a hung server; its exit is then reported as a failure, with `reason`. */
  #kill(proc: ManagedProcess, log: Logger, reason: string): void {
    this.#killedBecause = reason;
    log.error({ server_pid: proc.pid }, `the server ${reason}; killing it`);
    // A hung process may ignore SIGTERM: a short grace, then SIGKILL.
    void proc.stop(1000);
  }

  #onOutput(log: Logger, stream: "stdout" | "stderr", line: string): void {
    this.#logTail.push(line);
    log.info({ src: "server", stream }, line);
    // The server says it is up: probe now instead of at the next interval.
    if (this.#options.engine.readiness.readyLine.test(line)) this.#nudge?.resolve();
  }

  #onExit(
    proc: ManagedProcess,
    model: ModelEntry,
    status: { code: number | null; signal: NodeJS.Signals | null },
  ): void {
    if (this.#process !== proc) return;
    const wasStarting = this.#state === "starting";
    this.#process = null;
    this.#upstream?.destroy().catch(() => undefined);
    this.#upstream = null;
    void this.#options.pidRecords.remove(this.device.id);
    const log = this.#options.log.child({ device: this.device.id, model: model.model_id });
    if (this.#stopping === proc) {
      this.#stopping = null;
      log.info({ server_pid: proc.pid, ...status }, "server stopped");
      this.#setState("stopped");
      return;
    }
    const tail = this.#logTail.lines.slice(-20);
    if (
      wasStarting &&
      this.#portRetries < PORT_RETRIES &&
      tail.some((line) => this.#options.engine.readiness.portConflictLine.test(line))
    ) {
      // Another process took the port between our check and the server's bind: not a crash.
      this.#portRetries++;
      log.warn({ port: this.#port }, "server could not bind its port; retrying on another");
      void this.#spawn(model);
      return;
    }
    const backoffMs = this.#backoff.crashed(Date.now() - proc.startedAt.getTime());
    const how =
      howItEnded(status, this.#killedBecause) +
      (wasStarting && this.#killedBecause === null ? " while loading" : "");
    this.#killedBecause = null;
    const message = `the server for ${model.model_id} on ${this.device.id} ${how}`;
    this.#lastError = failureReport(message, status, tail);
    log.error(
      { server_pid: proc.pid, ...status, backoff_ms: backoffMs, stderr_tail: tail.slice(-5) },
      message,
    );
    this.#setState("failed");
    this.#readiness?.reject(
      new RoleMeshError("upstream_error", `${message}: ${tail.at(-1) ?? "no output"}`),
    );
  }

  async #stopCurrent(): Promise<void> {
    const proc = this.#process;
    if (!proc) {
      if (this.#state !== "failed") this.#setState("stopped");
      return;
    }
    this.#stopping = proc;
    this.#setState("stopping");
    this.#readiness?.reject(
      new RoleMeshError("no_capacity", `the server on ${this.device.id} was stopped`),
    );
    await proc.stop(this.#options.stopGraceMs ?? 5000);
  }

  #setState(state: ServerState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit("state", state);
  }

  #loadingTimeout(model: ModelEntry, timeoutMs: number): RoleMeshError {
    return new RoleMeshError(
      "model_loading_timeout",
      `model ${model.model_id} is still loading on ${this.device.id} after ${Math.round(timeoutMs / 1000)} s; retry later`,
      { retryAfterS: Math.max(1, Math.min(30, timeoutMs / 2000)) },
    );
  }
}
