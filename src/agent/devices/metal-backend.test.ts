import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { capturingLog, standInTool } from "../../../test/helpers/stand-in-tool.js";
import { MetalBackend, parseSystemProfiler, unifiedMemory } from "./metal-backend.js";

const fixture = (path: string) => readFile(new URL(`./fixtures/${path}`, import.meta.url), "utf8");

test("system_profiler: Apple silicon is one unified-memory device", async () => {
  assert.deepEqual(parseSystemProfiler(await fixture("system_profiler/apple-m2-max.json")), {
    ref: { id: "gpu:0", backend: "metal", index: 0, name: "Apple M2 Max (38 cores)" },
    dedicatedMb: undefined,
  });
  assert.deepEqual(unifiedMemory(64 * 1024 ** 3, 20 * 1024 ** 3), {
    vram_total_mb: 65536,
    vram_used_mb: 45056,
    vram_free_mb: 20480,
  });
});

test("system_profiler: the first Metal GPU of an Intel Mac; garbage gives nothing", async () => {
  const gpu = parseSystemProfiler(await fixture("system_profiler/intel-mac-amd.json"));
  assert.equal(gpu?.ref.name, "Intel UHD Graphics 630");
  assert.equal(gpu?.dedicatedMb, 1536);
  assert.equal(parseSystemProfiler("system_profiler: unknown data type"), undefined);
});

test("the backend measures unified memory with sysctl hw.memsize", async () => {
  const systemProfiler = await standInTool("system_profiler", {
    SPDisplaysDataType: await fixture("system_profiler/apple-m2-max.json"),
  });
  const sysctl = await standInTool("sysctl", { "-n": "68719476736\n" });
  const backend = new MetalBackend(capturingLog().log, { systemProfiler, sysctl });
  const devices = await backend.discover();
  assert.equal((await backend.measure(devices)).get("gpu:0")?.vram_total_mb, 65536);
  const { log, lines } = capturingLog();
  assert.deepEqual(
    await new MetalBackend(log, { systemProfiler: "/no/such/tool", sysctl }).discover(),
    [],
  );
  assert.equal(lines.length, 1);
});
