import { readIdentity } from "./process-identity.js";

/** Signals a whole process group (the server and anything it started); a gone group is fine. */
export function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** Polls until the process is gone (or a zombie); false when it outlived `timeoutMs`. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await readIdentity(pid)) === null) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return (await readIdentity(pid)) === null;
}
