import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { capturingLog, standInTool } from "../../../test/helpers/stand-in-tool.js";
import {
  parseSyclLs,
  parseXpuSmiDiscovery,
  parseXpuSmiStats,
  SyclBackend,
} from "./sycl-backend.js";

const fixture = (path: string) => readFile(new URL(`./fixtures/${path}`, import.meta.url), "utf8");

test("sycl-ls: Level Zero GPUs only, current and older formats", async () => {
  assert.deepEqual(parseSyclLs(await fixture("sycl-ls/arc-and-cpu.txt")), [
    { id: "gpu:0", backend: "sycl", index: 0, name: "Intel(R) Arc(TM) A770 Graphics" },
    { id: "gpu:1", backend: "sycl", index: 1, name: "Intel(R) UHD Graphics 770" },
  ]);
  assert.deepEqual(
    parseSyclLs(await fixture("sycl-ls/old-format.txt")).map((device) => [device.id, device.name]),
    [
      ["gpu:0", "Intel(R) Data Center GPU Max 1550"],
      ["gpu:1", "Intel(R) Data Center GPU Max 1550"],
    ],
  );
  assert.deepEqual(parseSyclLs(await fixture("sycl-ls/cpu-only.txt")), []);
});

test("xpu-smi: total from discovery, used and readings from stats; N/A and missing memory", async () => {
  const totals = parseXpuSmiDiscovery(await fixture("xpu-smi/discovery.json"));
  assert.deepEqual([...totals], [[0, 16288]]);
  assert.deepEqual(parseXpuSmiStats(await fixture("xpu-smi/stats-0.json"), totals.get(0)), {
    vram_total_mb: 16288,
    vram_used_mb: 1204,
    vram_free_mb: 15084,
    utilization_pct: 4,
    temperature_c: 47,
    power_w: 38,
  });
  assert.equal(parseXpuSmiStats(await fixture("xpu-smi/stats-no-memory.json"), 1000), null);
  assert.equal(parseXpuSmiStats("not json", 1000), null);
});

test("the backend measures through xpu-smi; without it devices are found and memory is unknown", async () => {
  const syclLs = await standInTool("sycl-ls", { "": await fixture("sycl-ls/arc-and-cpu.txt") });
  const xpuSmi = await standInTool("xpu-smi", {
    discovery: await fixture("xpu-smi/discovery.json"),
    stats: await fixture("xpu-smi/stats-0.json"),
  });
  const backend = new SyclBackend(capturingLog().log, { syclLs, xpuSmi });
  const devices = await backend.discover();
  const measured = await backend.measure(devices);
  assert.equal(measured.get("gpu:0")?.vram_free_mb, 15084);
  assert.equal(measured.has("gpu:1"), false, "no total memory for the iGPU");

  const withoutXpuSmi = new SyclBackend(capturingLog().log, { syclLs, xpuSmi: "/no/such/xpu-smi" });
  assert.equal((await withoutXpuSmi.measure(devices)).size, 0);

  const { log, lines } = capturingLog();
  assert.deepEqual(
    await new SyclBackend(log, { syclLs: "/no/such/sycl-ls", xpuSmi }).discover(),
    [],
  );
  assert.equal(lines.length, 1);
});
