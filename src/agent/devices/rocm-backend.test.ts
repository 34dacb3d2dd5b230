import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { capturingLog, standInTool } from "../../../test/helpers/stand-in-tool.js";
import { parseAmdSmi, parseRocmSmi, RocmBackend } from "./rocm-backend.js";

const fixture = (path: string) => readFile(new URL(`./fixtures/${path}`, import.meta.url), "utf8");

test("rocm-smi: two GPUs, bytes to MiB, names and readings", async () => {
  const gpus = parseRocmSmi(await fixture("rocm-smi/two-gpus.json"));
  assert.deepEqual(
    gpus.map((gpu) => [gpu.ref.id, gpu.ref.name, gpu.metrics]),
    [
      [
        "gpu:0",
        "Navi 31 [Radeon RX 7900 XT/7900 XTX]",
        {
          vram_total_mb: 24560,
          vram_used_mb: 1168,
          vram_free_mb: 23392,
          utilization_pct: 3,
          temperature_c: 38,
        },
      ],
      [
        "gpu:1",
        "Instinct MI210",
        {
          vram_total_mb: 65520,
          vram_used_mb: 58368,
          vram_free_mb: 7152,
          utilization_pct: 97,
          temperature_c: 29,
        },
      ],
    ],
  );
});

test("rocm-smi: ROCm 6 key spelling, N/A readings, a card without memory figures", async () => {
  const [first, second] = parseRocmSmi(await fixture("rocm-smi/rocm6-na-fields.json"));
  assert.equal(first?.ref.name, "AMD Radeon RX 6800");
  assert.equal(first?.ref.uuid, "0x7d5c1b2a9e3f4a10");
  assert.deepEqual(first?.metrics, {
    vram_total_mb: 16368,
    vram_used_mb: 12,
    vram_free_mb: 16356,
    temperature_c: 52,
  });
  assert.equal(second?.ref.name, "AMD GPU 1");
  assert.equal(second?.metrics, null);
});

test("rocm-smi: an error message instead of JSON gives nothing", async () => {
  assert.deepEqual(parseRocmSmi(await fixture("rocm-smi/no-driver.txt")), []);
  assert.deepEqual(parseRocmSmi(""), []);
});

test("amd-smi: {value, unit} readings, names from static, all-N/A GPU without metrics", async () => {
  const gpus = parseAmdSmi(
    await fixture("amd-smi/metric.json"),
    await fixture("amd-smi/static.json"),
  );
  assert.deepEqual(gpus[0], {
    ref: { id: "gpu:0", backend: "rocm", index: 0, name: "AMD Instinct MI300X" },
    metrics: {
      vram_total_mb: 196592,
      vram_used_mb: 283,
      vram_free_mb: 196309,
      utilization_pct: 12,
      temperature_c: 41,
    },
  });
  assert.deepEqual(gpus[1], {
    ref: { id: "gpu:1", backend: "rocm", index: 1, name: "AMD GPU 1" },
    metrics: null,
  });
});

test("the backend uses rocm-smi, falls back to amd-smi, and logs one line when both fail", async () => {
  const rocmSmi = await standInTool("rocm-smi", {
    "--showproductname": await fixture("rocm-smi/two-gpus.json"),
  });
  const backend = new RocmBackend(capturingLog().log, { rocmSmi, amdSmi: "/no/such/amd-smi" });
  const devices = await backend.discover();
  assert.deepEqual(
    devices.map((device) => device.id),
    ["gpu:0", "gpu:1"],
  );
  assert.equal((await backend.measure(devices)).get("gpu:1")?.vram_free_mb, 7152);

  const amdSmi = await standInTool("amd-smi", {
    metric: await fixture("amd-smi/metric.json"),
    static: await fixture("amd-smi/static.json"),
  });
  const fallback = new RocmBackend(capturingLog().log, { rocmSmi: "/no/such/rocm-smi", amdSmi });
  assert.equal((await fallback.discover())[0]?.name, "AMD Instinct MI300X");

  const { log, lines } = capturingLog();
  const broken = await standInTool(
    "rocm-smi",
    { "--showproductname": await fixture("rocm-smi/no-driver.txt") },
    2,
  );
  assert.deepEqual(
    await new RocmBackend(log, { rocmSmi: broken, amdSmi: "/no/such/amd-smi" }).discover(),
    [],
  );
  assert.equal(lines.length, 1);
  assert.match(
    lines[0] ?? "",
    /rocm: \S*rocm-smi exited with code 2; \/no\/such\/amd-smi not found/,
  );
});
