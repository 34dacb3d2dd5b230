/**
 * `npm run bench`: every benchmark of issue 8 in one run, side by side, written to
 * bench/results/<date>-<host>.md and .json. `--quick` runs each once and briefly (a smoke
 * test of the harness, not figures to publish).
 */
import { execFileSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, hostname, release, totalmem } from "node:os";
import { join } from "node:path";
import { ROOT, stopAll } from "./lib/cluster.js";
import { writeReport } from "./report.js";
import { prefixAffinity } from "./scenarios/affinity.js";
import { engineSpeed } from "./scenarios/engine.js";
import { failover } from "./scenarios/failover.js";
import { footprint } from "./scenarios/footprint.js";
import { gatewayFailover } from "./scenarios/gateway-failover.js";
import { readiness } from "./scenarios/readiness.js";
import { registryOverNats } from "./scenarios/registry-nats.js";
import { registryScale } from "./scenarios/registry-scale.js";
import { relayCost } from "./scenarios/relay.js";
import { splitInference } from "./scenarios/split.js";
import { streaming, STREAM_SETUP } from "./scenarios/streaming.js";

const quick = process.argv.includes("--quick");
const only = process.argv
  .find((arg) => arg.startsWith("--only="))
  ?.slice(7)
  .split(",");
const want = (name: string) => !only || only.includes(name);

const machine = {
  host: hostname(),
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  memoryGiB: Math.round(totalmem() / 1024 ** 3),
  node: process.version,
  kernel: release(),
  commit: execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT }).toString().trim(),
  date: new Date().toISOString(),
  quick,
};

async function section<T>(name: string, run: () => Promise<T>): Promise<T | undefined> {
  if (!want(name)) return undefined;
  process.stderr.write(`bench: ${name}…\n`);
  const began = performance.now();
  try {
    return await run();
  } finally {
    await stopAll();
    process.stderr.write(
      `bench: ${name} took ${Math.round((performance.now() - began) / 1000)} s\n`,
    );
  }
}

const results = {
  machine,
  relay: await section("relay", () =>
    relayCost({ seconds: quick ? 2 : 5, repeats: quick ? 1 : 3 }),
  ),
  streaming: await section("streaming", async () => ({
    setup: STREAM_SETUP,
    rows: await streaming(quick ? 3 : 10),
  })),
  readiness: await section("readiness", () => readiness(quick ? 2 : 5)),
  failover: await section("failover", () => failover(quick ? 1 : 3)),
  gatewayFailover: await section("gateway-failover", () => gatewayFailover(quick ? 1 : 3)),
  registry: await section("registry", () =>
    registryScale(quick ? [1000] : [1000, 5000, 10_000], quick ? 5 : 15),
  ),
  registryNats: await section("registry-nats", () =>
    registryOverNats(quick ? [1000] : [1000, 5000, 10_000], quick ? 5 : 15),
  ),
  footprint: await section("footprint", () => footprint(quick ? 1 : 5)),
  engine: await section("engine", () => engineSpeed(quick ? 2 : 5)),
  split: await section("split", () =>
    splitInference({ runs: quick ? 2 : 5, repeats: quick ? 1 : 3 }),
  ),
  affinity: await section("affinity", () => prefixAffinity({ runs: quick ? 1 : 3 })),
};

const dir = join(ROOT, "bench/results");
await mkdir(dir, { recursive: true });
// A run of some sections is named after them, so it never replaces a whole run's report.
const sections = only ? `-${only.join("+")}` : "";
const base = join(
  dir,
  `${machine.date.slice(0, 10)}-${machine.host}${sections}${quick ? "-quick" : ""}`,
);
await writeFile(`${base}.json`, JSON.stringify(results, null, 2));
await writeFile(`${base}.md`, writeReport(results));
process.stderr.write(`bench: wrote ${base}.md and .json\n`);
