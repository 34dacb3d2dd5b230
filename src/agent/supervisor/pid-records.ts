import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../../core/logger.js";
import { readIdentity } from "../../core/process/process-identity.js";
import { killGroup, waitForExit } from "../../core/process/process-group.js";

/** What the agent writes down about each server it starts, to stop it after a crash of its own. */
export interface PidRecord {
  pid: number;
  start_time: string;
  /** Arguments the server was started with; they survive wrappers that exec the real binary. */
  args: string;
  device: string;
  /** The model a llama-server holds; null for servers that hold none (rpc-server). */
  model_id: string | null;
  port: number;
  agent_pid: number;
  recorded_at: string;
}

/** What a caller tells of a process it just started; the rest of its record is looked up. */
export type StartedProcess = Pick<PidRecord, "device" | "model_id" | "port"> & {
  args: readonly string[];
};

/**
 * Pid records under `state_dir/servers/`, one file per device and kind of server, replaced
 * atomically: `<device>.json` for llama-server, `<kind>.<device>.json` for another kind
 * (rpc-server). Every kind shares the folder, so the one reap at agent start stops them all.
 */
export class PidRecords {
  readonly #dir: string;
  readonly #prefix: string;

  constructor(stateDir: string, kind?: string) {
    this.#dir = join(stateDir, "servers");
    // The dot never appears in a device's part of the name, so kinds cannot collide.
    this.#prefix = kind ? `${kind}.` : "";
  }

  /**
   * Records a process just started, with what tells it from a later process given the same pid.
   * Nothing is written when it is gone already or `current()` says another one replaced it.
   */
  async record(pid: number, started: StartedProcess, current: () => boolean): Promise<void> {
    if (pid <= 0) return;
    const identity = await readIdentity(pid);
    if (!identity || !current()) return;
    await this.write({
      ...started,
      pid,
      start_time: identity.startTime,
      args: started.args.join(" "),
      agent_pid: process.pid,
      recorded_at: new Date().toISOString(),
    });
  }

  async write(record: PidRecord): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    const file = this.#file(record.device);
    // Owner only: the arguments may hold secrets (llama-server's --api-key).
    await writeFile(`${file}.tmp`, JSON.stringify(record, null, 2), { mode: 0o600 });
    await rename(`${file}.tmp`, file);
  }

  async remove(device: string): Promise<void> {
    await rm(this.#file(device), { force: true });
  }

  /**
   * Stops servers that an earlier agent left running (it was killed before it could stop
   * them). A recorded pid now used by an unrelated process is left alone.
   */
  async reapLeftovers(log: Logger, graceMs = 5000): Promise<number> {
    let names: string[];
    try {
      names = (await readdir(this.#dir)).filter((name) => name.endsWith(".json"));
    } catch {
      return 0;
    }
    let reaped = 0;
    for (const name of names) {
      const file = join(this.#dir, name);
      const record = await readRecord(file);
      if (record && (await isSameProcess(record))) {
        log.warn(
          { server_pid: record.pid, device: record.device, model: record.model_id },
          "stopping a server left behind by an earlier agent",
        );
        killGroup(record.pid, "SIGTERM");
        if (!(await waitForExit(record.pid, graceMs))) {
          killGroup(record.pid, "SIGKILL");
          await waitForExit(record.pid, graceMs);
        }
        reaped++;
      } else if (record) {
        log.info(
          { server_pid: record.pid, device: record.device },
          "recorded server is gone; forgetting its record",
        );
      }
      await rm(file, { force: true });
    }
    return reaped;
  }

  #file(device: string): string {
    return join(this.#dir, `${this.#prefix}${device.replace(/[^A-Za-z0-9_-]/g, "_")}.json`);
  }
}

async function readRecord(file: string): Promise<PidRecord | null> {
  try {
    const record = JSON.parse(await readFile(file, "utf8")) as PidRecord;
    return Number.isInteger(record.pid) && record.pid > 1 ? record : null;
  } catch {
    return null;
  }
}

async function isSameProcess(record: PidRecord): Promise<boolean> {
  const live = await readIdentity(record.pid);
  return (
    live !== null && live.startTime === record.start_time && live.commandLine.endsWith(record.args)
  );
}
