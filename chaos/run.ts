/**
 * `npm run chaos`: fault scenarios on loopback, each ending in a pass/fail line with figures.
 * By hand, repeated scenarios run for a minute and the soak for 30 minutes; `--duration 2h`
 * sets the soak's length; `--short` is the CI profile (seconds each); `--only=name,…` picks
 * scenarios by the start of their names.
 */
import { stopAll } from "../bench/lib/cluster.js";
import type { RunOptions, Scenario } from "./lib/scenario.js";
import { agentKill } from "./scenarios/agent-kill.js";
import { authEnumeration } from "./scenarios/auth-enumeration.js";
import { diskFull } from "./scenarios/disk-full.js";
import { engineKill } from "./scenarios/engine-kill.js";
import { engineKillLoading } from "./scenarios/engine-kill-loading.js";
import { frozenAgent } from "./scenarios/frozen-agent.js";
import { gatewayKill } from "./scenarios/gateway-kill.js";
import { gatewayRestart } from "./scenarios/gateway-restart.js";
import { hostileInput } from "./scenarios/hostile-input.js";
import { hungLoad } from "./scenarios/hung-load.js";
import { hungUpstream } from "./scenarios/hung-upstream.js";
import { identityConflict } from "./scenarios/identity-conflict.js";
import { natsRestart } from "./scenarios/nats-restart.js";
import { overload } from "./scenarios/overload.js";
import { soak } from "./scenarios/soak.js";

const SCENARIOS: Scenario[] = [
  engineKill,
  engineKillLoading,
  agentKill,
  gatewayRestart,
  hungUpstream,
  overload,
  authEnumeration,
  soak,
  hostileInput,
  hungLoad,
  identityConflict,
  diskFull,
  frozenAgent,
  natsRestart,
  gatewayKill,
];

/** `90s`, `30m`, `2h` or a number of seconds. */
function parseDuration(text: string | undefined): number {
  const match = /^(\d+)(s|m|h)?$/.exec(text ?? "");
  if (!match) throw new Error(`--duration: expected e.g. 90s, 30m or 2h, got "${text}"`);
  return Number(match[1]) * { s: 1, m: 60, h: 3600 }[(match[2] ?? "s") as "s" | "m" | "h"];
}

const argv = process.argv.slice(2);
const short = argv.includes("--short");
const durationIndex = argv.indexOf("--duration");
const options: RunOptions = {
  durationS: short ? 10 : 60,
  soakS: durationIndex >= 0 ? parseDuration(argv[durationIndex + 1]) : short ? 20 : 1800,
};
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
    const outcome = await scenario.run(options);
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
