import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * What tells one process from another that later got the same pid: the start time
 * (clock ticks since boot on Linux, `ps` lstart elsewhere) and the command line.
 */
export interface ProcessIdentity {
  pid: number;
  startTime: string;
  commandLine: string;
}

/** The identity of a live process, or null when there is none (zombies count as gone). */
export async function readIdentity(pid: number): Promise<ProcessIdentity | null> {
  if (process.platform === "linux") return readProcIdentity(pid);
  try {
    const { stdout } = await run("ps", ["-o", "lstart=,state=,args=", "-p", String(pid)]);
    const match = /^(\w{3}\s+\w{3}\s+\d+\s+[\d:]+\s+\d{4})\s+(\S+)\s+(.*)$/.exec(stdout.trim());
    if (!match || match[2]?.startsWith("Z")) return null;
    return { pid, startTime: match[1] ?? "", commandLine: match[3] ?? "" };
  } catch {
    return null;
  }
}

async function readProcIdentity(pid: number): Promise<ProcessIdentity | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name in field 2 may hold spaces and parentheses: parse after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" || fields[0] === "X") return null;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8");
    return {
      pid,
      startTime: fields[19] ?? "",
      commandLine: cmdline.replace(/\0$/, "").split("\0").join(" "),
    };
  } catch {
    return null;
  }
}
