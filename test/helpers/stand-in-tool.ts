/** Stand-ins for vendor tools (nvidia-smi, rocm-smi, …) in backend tests. */
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { pino } from "pino";
import type { Logger } from "pino";

const dirs: string[] = [];
after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

/**
 * An executable that prints `outputs[i]` for its i-th distinct argument list (by the first
 * argument, or "" for none) and exits with `code`.
 */
export async function standInTool(
  name: string,
  outputs: Record<string, string>,
  code = 0,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `rolemesh-${name}-`));
  dirs.push(dir);
  const cases: string[] = [];
  for (const [firstArg, output] of Object.entries(outputs)) {
    const file = join(dir, `out-${cases.length}`);
    await writeFile(file, output);
    cases.push(`  ${firstArg === "" ? '""' : JSON.stringify(firstArg)}) cat "${file}" ;;`);
  }
  const script = join(dir, name);
  await writeFile(script, `#!/bin/sh\ncase "$1" in\n${cases.join("\n")}\nesac\nexit ${code}\n`);
  await chmod(script, 0o755);
  return script;
}

/** A logger whose lines a test can read. */
export function capturingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = pino({ level: "info" }, { write: (line: string) => lines.push(line) });
  return { log, lines };
}
