/**
 * `npm run chaos`: fault scenarios on loopback, each ending in a pass/fail line with figures.
 * `--duration 30m` lengthens the repeated ones (a soak); `--short` is the CI profile;
 * `--only=name,…` picks scenarios by the start of their names.
 */
import { stopAll } from "../bench/lib/cluster.js";
import type { Scenario } from "./lib/scenario.js";
import { agentKill } from "./scenarios/agent-kill.js";
import { engineKill } from "./scenarios/engine-kill.js";
import { gatewayRestart } from "./scenarios/gateway-restart.js";
import { hungUpstream } from "./scenarios/hung-upstream.js";

const SCENARIOS: Scenario[] = [engineKill, agentKill, gatewayRestart, hungUpstream];

function durationSeconds(argv: string[]): number {
  const index = argv.indexOf("--duration");
  if (index < 0) return argv.includes("--short") ? 10 : 60;
  const match = /^(\d+)(s|m|h)?$/.exec(argv[index + 1] ?? "");
  if (!match) throw new Error(`--duration: expected e.g. 90s, 30m or 2h, got "${argv[index + 1]}"`);
  return Number(match[1]) * { s: 1, m: 60, h: 3600 }[(match[2] ?? "s") as "s" | "m" | "h"];
}

const argv = process.argv.slice(2);
const durationS = durationSeconds(argv);
const only = argv
  .find((arg) => arg.startsWith("--only="))
  ?.slice(7)
  .split(",");
let failed = 0;
for (const scenario of SCENARIOS) {
  if (only && !only.some((name) => scenario.name.startsWith(name))) continue;
  const began = performance.now();
  let line: string;
  try {
    const outcome = await scenario.run({ durationS });
    const figures = Object.entries(outcome.figures)
      .map(([key, value]) => `${key}=${value}`)
      .join(" ");
    line = `${outcome.pass ? "PASS" : "FAIL"} ${scenario.name}: ${figures}${outcome.reason ? ` — ${outcome.reason}` : ""}`;
    if (!outcome.pass) failed++;
  } catch (err) {
    failed++;
    line = `FAIL ${scenario.name}: ${(err as Error).stack ?? String(err)}`;
  } finally {
    await stopAll();
  }
  console.log(`${line} (${Math.round((performance.now() - began) / 1000)} s)`);
}
process.exitCode = failed > 0 ? 1 : 0;
