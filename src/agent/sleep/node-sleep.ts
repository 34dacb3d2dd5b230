import { RoleMeshError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { ManagedProcess } from "../../core/process/managed-process.js";
import type { ExitStatus } from "../../core/process/managed-process.js";

export interface NodeSleepOptions {
  nodeId: string;
  /** `sleep_command`: argv, run without a shell; empty when the node cannot be put to sleep. */
  command: readonly string[];
  /** What the node is still doing, one phrase each (`gpu:0: 1 in flight, 0 queued`); none when idle. */
  busyWith(): string[];
  /** Deregisters and stops heartbeating, so no gateway routes to a machine about to suspend. */
  pauseRegistration(): Promise<void>;
  /** Registers again after `delayMs`. */
  resumeRegistration(delayMs: number): void;
  /**
   * How long after a sleep command that succeeded the node registers again: one heartbeat
   * interval. A machine that suspends does so well before; once it resumes, the timer runs on.
   */
  resumeDelayMs: number;
  log: Logger;
}

/**
 * `node.sleep` (SPEC §11): puts the machine to sleep with its `sleep_command`, only when it
 * has nothing in flight or queued. The node leaves the gateway first and comes back by
 * registering again, as after a restart.
 */
export class NodeSleep {
  readonly #options: NodeSleepOptions;
  /** From an accepted `node.sleep` until its command has ended. */
  #going = false;

  constructor(options: NodeSleepOptions) {
    this.#options = options;
  }

  /**
   * Checks the node may go to sleep now and holds it for that: 400 `invalid_request` without
   * a `sleep_command`, 409 `conflict` while anything runs or waits or a sleep is under way.
   * Answers the function that goes to sleep, to call once the command's answer is out (a
   * suspended machine answers nothing).
   */
  prepare(): () => void {
    const { nodeId, command } = this.#options;
    if (command.length === 0) {
      throw new RoleMeshError(
        "invalid_request",
        `node ${nodeId} cannot be put to sleep: its config sets no sleep_command (e.g. ["systemctl", "suspend"])`,
      );
    }
    if (this.#going) {
      throw new RoleMeshError("conflict", `node ${nodeId} is already going to sleep`);
    }
    const busy = this.#options.busyWith();
    if (busy.length > 0) {
      throw new RoleMeshError(
        "conflict",
        `node ${nodeId} is busy (${busy.join("; ")}); it sleeps only with nothing in flight or queued`,
      );
    }
    this.#going = true;
    return () => void this.#goToSleep();
  }

  async #goToSleep(): Promise<void> {
    const { log } = this.#options;
    let resumeDelayMs = 0;
    try {
      await this.#options.pauseRegistration();
      log.info("deregistered; going to sleep: running sleep_command");
      const status = await this.#run();
      if (status.code === 0) {
        resumeDelayMs = this.#options.resumeDelayMs;
        log.info({ register_in_ms: resumeDelayMs }, "sleep_command succeeded");
      } else {
        // The machine stays up: it reports again at once, and the gateway can route to it.
        const how = status.signal ? `was killed by ${status.signal}` : `exited with ${status.code}`;
        log.error({ ...status }, `sleep_command ${how}; the node stays awake`);
      }
    } finally {
      this.#going = false;
      this.#options.resumeRegistration(resumeDelayMs);
    }
  }

  /** Runs the command in its own process group (spawn failures are exit code 127). */
  #run(): Promise<ExitStatus> {
    const [command, ...args] = this.#options.command as [string, ...string[]];
    const log = this.#options.log.child({ sleep_command: command });
    const child = new ManagedProcess(
      { command, args, env: { ROLEMESH_NODE_ID: this.#options.nodeId } },
      (stream, line) => log.info({ stream }, line),
    );
    return child.exited;
  }
}
