import { EventEmitter, once } from "node:events";
import { join } from "node:path";
import { Serial, sleep, waitFor } from "../../core/async.js";
import { RoleMeshError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { freeLoopbackPort, loopbackPortAccepts } from "../../core/net.js";
import { ManagedProcess } from "../../core/process/managed-process.js";
import type { ExitStatus } from "../../core/process/managed-process.js";
import type {
  BackendName,
  DeviceRef,
  ServerFailure,
  ServerInfo,
  ServerState,
} from "../../protocol/inventory.js";
import { pinningEnv } from "../devices/pinning.js";
import { CrashBackoff } from "../supervisor/crash-backoff.js";
import { LogTail } from "../supervisor/log-tail.js";
import { failureReport, howItEnded, processInfo } from "../supervisor/process-info.js";
import { PidRecords } from "../supervisor/pid-records.js";

/**
 * The only address rpc-server is ever given. It has no authentication ("never expose the RPC
 * server to an open network"): peers reach it through the agents' tunnel, never directly.
 */
const RPC_HOST = "127.0.0.1";

/**
 * ggml's name of the device rpc-server serves. Pinning leaves one device of its backend
 * visible, which ggml numbers 0; without `-d` rpc-server would take every accelerator it sees
 * (BLAS included) and the CPU only when there is none.
 */
const GGML_DEVICE: Record<BackendName, string> = {
  cpu: "CPU",
  cuda: "CUDA0",
  rocm: "ROCm0",
  vulkan: "Vulkan0",
  sycl: "SYCL0",
  metal: "MTL0",
};

/** rpc-server could not bind its port (it then exits with code 0). */
const PORT_CONFLICT = /Failed to create server socket/;
const PORT_RETRIES = 3;
const DEFAULT_START_TIMEOUT_MS = 30_000;
const DEFAULT_PROBE_INTERVAL_MS = 100;

export interface RpcServerSupervisorOptions {
  /** The rpc-server program (`findRpcServer`). */
  bin: string;
  /** The agent's state dir: pid records go to `servers/`, the `-c` cache to `rpc-cache/`. */
  stateDir: string;
  /** rpc-server's `-t`: threads for the CPU device. */
  threads: number;
  /**
   * `rpc_cache`: rpc-server's `-c`, which keeps tensors the host sent in files, so a restarted
   * host sends only their hashes. Kept under the state dir through LLAMA_CACHE, the one way
   * rpc-server lets the folder be chosen (it appends `rpc/`).
   */
  cache: boolean;
  log: Logger;
  /** An rpc-server not listening this long after it started is hung: killed, as a crash. */
  startTimeoutMs?: number;
  /** How often a starting rpc-server's port is tried. */
  probeIntervalMs?: number;
  /** Grace between SIGTERM and SIGKILL when stopping one. */
  stopGraceMs?: number;
  /** Lines of output kept for the inventory. */
  logTailLines?: number;
}

/** One device's rpc-server as the inventory shows it. */
export interface RpcServerInfo extends Omit<ServerInfo, "model_id"> {
  device: string;
  last_error: ServerFailure | null;
  /** Last lines of its output, newest last. */
  log_tail: string[];
}

/** Events: `state` whenever one device's rpc-server changes state. */
export interface RpcServerSupervisorEvents {
  state: [device: string, state: ServerState];
}

/**
 * Keeps one llama.cpp rpc-server per device for split inference (SPEC §12), each on a free
 * 127.0.0.1 port, pinned to its device, in its own process group, with a pid record that a
 * restarted agent reaps; one that dies while wanted is started again after a crash backoff.
 *
 * This rpc-server has no memory limit option (older ones had `-m`): it offers its device's
 * free memory, and the host's `--tensor-split` decides how much of it the model takes.
 */
export class RpcServerSupervisor extends EventEmitter<RpcServerSupervisorEvents> {
  readonly #servers = new Map<string, DeviceRpcServer>();
  readonly #options: RpcServerSupervisorOptions;
  readonly #pidRecords: PidRecords;

  constructor(options: RpcServerSupervisorOptions) {
    super();
    this.#options = options;
    this.#pidRecords = new PidRecords(options.stateDir, "rpc-server");
  }

  /**
   * The port of `device`'s rpc-server once it accepts connections, starting it if needed.
   * Rejects with 502 `upstream_error` when the start it waited on failed, 503 `no_capacity`
   * when none can be ready within the start timeout (crash backoff) or it is stopped meanwhile.
   */
  ensure(device: DeviceRef, signal?: AbortSignal): Promise<{ port: number }> {
    let server = this.#servers.get(device.id);
    if (!server) {
      server = new DeviceRpcServer(device, this.#options, this.#pidRecords);
      server.on("state", (state) => this.emit("state", device.id, state));
      this.#servers.set(device.id, server);
    }
    return server.ensure(signal);
  }

  /** Stops `device`'s rpc-server (no restart) and waits until it is gone. */
  async stop(deviceId: string): Promise<void> {
    await this.#servers.get(deviceId)?.stop();
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#servers.values()].map((server) => server.stop()));
  }

  /** Every device that has had an rpc-server, in the order they were first asked for. */
  info(): RpcServerInfo[] {
    return [...this.#servers.values()].map((server) => server.info());
  }
}

/** rpc-server's arguments for `device` on `port`. */
export function rpcServerArgs(
  device: DeviceRef,
  port: number,
  options: Pick<RpcServerSupervisorOptions, "threads" | "cache">,
): string[] {
  return [
    "-H",
    RPC_HOST,
    "-p",
    String(port),
    "-t",
    String(options.threads),
    "-d",
    GGML_DEVICE[device.backend],
    ...(options.cache ? ["-c"] : []),
  ];
}

/** The rpc-server of one device. */
class DeviceRpcServer extends EventEmitter<{ state: [ServerState] }> {
  readonly #device: DeviceRef;
  readonly #options: RpcServerSupervisorOptions;
  readonly #pidRecords: PidRecords;
  readonly #log: Logger;
  // It starts in milliseconds and a worker that dies once in a while should be back at once:
  // only crashes within 10 s of each other count as a loop.
  readonly #backoff = new CrashBackoff({ stableRunMs: 10_000 });
  readonly #logTail: LogTail;
  #state: ServerState = "stopped";
  /** Whether it should run: set by `ensure`, cleared by `stop`; a crash restarts it only if so. */
  #wanted = false;
  /** Counts stops, so a caller waiting across one fails instead of starting it again. */
  #stops = 0;
  #process: ManagedProcess | null = null;
  #stopping: ManagedProcess | null = null;
  #port: number | null = null;
  #readyAt: Date | null = null;
  #restartTimer: NodeJS.Timeout | undefined;
  #restarts = 0;
  #portRetries = 0;
  /** Why the supervisor itself killed the current process (hung), for its failure report. */
  #killedBecause: string | null = null;
  #lastError: ServerFailure | null = null;
  /** Start and stop transitions, one at a time: two requests never start two servers. */
  readonly #transitions = new Serial();

  constructor(device: DeviceRef, options: RpcServerSupervisorOptions, pidRecords: PidRecords) {
    super();
    this.#device = device;
    this.#options = options;
    this.#pidRecords = pidRecords;
    this.#log = options.log.child({ device: device.id, server: "rpc-server" });
    this.#logTail = new LogTail(options.logTailLines ?? 200);
  }

  async ensure(signal?: AbortSignal): Promise<{ port: number }> {
    const timeoutMs = this.#options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const stops = this.#stops;
    this.#wanted = true;
    // Set once this call saw a start: if that start fails, so does the call (no second try).
    let waitedOnStart = false;
    for (;;) {
      signal?.throwIfAborted();
      if (this.#stops !== stops) {
        throw new RoleMeshError("no_capacity", `the rpc-server on ${this.#device.id} was stopped`);
      }
      if (this.#state === "ready" && this.#port !== null) return { port: this.#port };
      if (this.#state === "failed" && waitedOnStart) {
        throw new RoleMeshError(
          "upstream_error",
          this.#lastError?.message ?? `the rpc-server on ${this.#device.id} failed`,
        );
      }
      if (this.#state === "starting") waitedOnStart = true;
      const waitMs = this.#state === "failed" ? this.#backoff.remainingMs() : 0;
      if (Date.now() + waitMs > deadline) {
        throw new RoleMeshError(
          "no_capacity",
          `the rpc-server on ${this.#device.id} crashed ${this.#backoff.consecutiveFailures} times in a row; ` +
            `next start in ${Math.ceil(waitMs / 1000)} s`,
          { retryAfterS: waitMs / 1000 },
        );
      }
      if (this.#state === "stopped") {
        await this.#transitions.run(() => this.#startIfIdle());
        continue;
      }
      // Starting, stopping, or failed and waiting out its backoff (its restart timer moves it on).
      const waited = new AbortController();
      try {
        await waitFor(once(this, "state", { signal: waited.signal }), deadline, signal, () =>
          this.#notReady(timeoutMs),
        );
      } finally {
        waited.abort();
      }
    }
  }

  async stop(): Promise<void> {
    this.#wanted = false;
    this.#stops++;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    // At once, so no caller is handed the port of a server about to go.
    if (this.#state !== "stopped") this.#setState("stopping");
    await this.#transitions.run(() => this.#stopCurrent());
  }

  info(): RpcServerInfo {
    return {
      device: this.#device.id,
      ...processInfo({
        state: this.#state,
        process: this.#process,
        port: this.#port,
        readyAt: this.#readyAt,
        restarts: this.#restarts,
        backoff: this.#backoff,
      }),
      last_error: this.#lastError,
      log_tail: [...this.#logTail.lines],
    };
  }

  async #startIfIdle(): Promise<void> {
    if (!this.#wanted || this.#process || this.#state === "failed") return;
    this.#portRetries = 0;
    await this.#spawn();
  }

  async #restartAfterBackoff(): Promise<void> {
    this.#restartTimer = undefined;
    if (!this.#wanted || this.#process || this.#state !== "failed") return;
    this.#restarts++;
    await this.#spawn();
  }

  async #spawn(): Promise<void> {
    const port = await freeLoopbackPort();
    if (!this.#wanted) return;
    const args = rpcServerArgs(this.#device, port, this.#options);
    const env = {
      ...pinningEnv(this.#device),
      ...(this.#options.cache ? { LLAMA_CACHE: join(this.#options.stateDir, "rpc-cache") } : {}),
    };
    let portTaken = false;
    const proc = new ManagedProcess({ command: this.#options.bin, args, env }, (stream, line) => {
      if (PORT_CONFLICT.test(line)) portTaken = true;
      this.#onOutput(stream, line);
    });
    this.#process = proc;
    this.#port = port;
    this.#readyAt = null;
    this.#setState("starting");
    this.#log.info(
      { server_pid: proc.pid, port, command: this.#options.bin, args },
      "rpc-server starting",
    );
    void proc.exited.then((status) => this.#onExit(proc, status, portTaken));
    // Probed from the start: a failure to record the pid must not leave it unwatched.
    void this.#probeUntilListening(proc, port);
    await this.#pidRecords
      .record(
        proc.pid,
        { args, device: this.#device.id, model_id: null, port },
        () => this.#process === proc,
      )
      .catch((err: unknown) =>
        this.#log.error(
          { err: (err as Error).message },
          "could not record the rpc-server's pid; an agent that crashes now may leave it behind",
        ),
      );
  }

  /**
   * Ready once its port accepts a connection. Its own "endpoint" line cannot tell: rpc-server
   * writes to a pipe through stdio's buffer, flushed only when it accepts its first client.
   */
  async #probeUntilListening(proc: ManagedProcess, port: number): Promise<void> {
    const timeoutMs = this.#options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    const intervalMs = this.#options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    const current = () => this.#process === proc && this.#state === "starting";
    while (current()) {
      const listening = await loopbackPortAccepts(port);
      if (!current()) return;
      if (listening) {
        this.#readyAt = new Date();
        this.#portRetries = 0;
        this.#setState("ready");
        this.#log.info(
          { server_pid: proc.pid, port, start_ms: Date.now() - proc.startedAt.getTime() },
          "rpc-server ready",
        );
        return;
      }
      if (Date.now() - proc.startedAt.getTime() > timeoutMs) {
        this.#killedBecause = `was not listening after ${Math.round(timeoutMs / 1000)} s`;
        this.#log.error({ server_pid: proc.pid }, `the rpc-server ${this.#killedBecause}`);
        void proc.stop(1000);
        return;
      }
      await sleep(intervalMs);
    }
  }

  #onOutput(stream: "stdout" | "stderr", line: string): void {
    this.#logTail.push(line);
    this.#log.info({ src: "rpc-server", stream }, line);
  }

  #onExit(proc: ManagedProcess, status: ExitStatus, portTaken: boolean): void {
    if (this.#process !== proc) return;
    const wasStarting = this.#state === "starting";
    this.#process = null;
    void this.#pidRecords.remove(this.#device.id);
    if (this.#stopping === proc || !this.#wanted) {
      this.#stopping = null;
      this.#log.info({ server_pid: proc.pid, ...status }, "rpc-server stopped");
      this.#setState("stopped");
      return;
    }
    if (wasStarting && portTaken && this.#portRetries < PORT_RETRIES) {
      // Another process took the port between our check and its bind: not a crash.
      this.#portRetries++;
      this.#log.warn(
        { port: this.#port },
        "rpc-server could not bind its port; retrying on another",
      );
      void this.#transitions.run(() => this.#spawn());
      return;
    }
    const backoffMs = this.#backoff.crashed(Date.now() - proc.startedAt.getTime());
    const how = howItEnded(status, this.#killedBecause);
    this.#killedBecause = null;
    const tail = this.#logTail.lines.slice(-20);
    const message = `the rpc-server on ${this.#device.id} ${how}${wasStarting ? " while starting" : ""}`;
    this.#lastError = failureReport(message, status, tail);
    this.#log.error(
      { server_pid: proc.pid, ...status, backoff_ms: backoffMs, stderr_tail: tail.slice(-5) },
      message,
    );
    this.#restartTimer = setTimeout(
      () => void this.#transitions.run(() => this.#restartAfterBackoff()),
      backoffMs,
    );
    // The agent's own servers keep it alive; a pending restart alone must not.
    this.#restartTimer.unref();
    this.#setState("failed");
  }

  async #stopCurrent(): Promise<void> {
    const proc = this.#process;
    if (!proc) {
      this.#setState("stopped");
      return;
    }
    this.#stopping = proc;
    this.#setState("stopping");
    await proc.stop(this.#options.stopGraceMs ?? 5000);
  }

  #setState(state: ServerState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.emit("state", state);
  }

  #notReady(timeoutMs: number): RoleMeshError {
    return new RoleMeshError(
      "no_capacity",
      `the rpc-server on ${this.#device.id} is not ready after ${Math.round(timeoutMs / 1000)} s`,
      { retryAfterS: Math.max(1, Math.min(30, timeoutMs / 2000)) },
    );
  }
}
