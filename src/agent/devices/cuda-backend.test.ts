import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { capturingLog, standInTool } from "../../../test/helpers/stand-in-tool.js";
import { CudaBackend, parseNvidiaSmi } from "./cuda-backend.js";

const fixture = (name: string) =>
  readFile(new URL(`./fixtures/nvidia-smi/${name}`, import.meta.url), "utf8");
const ok = async (name: string) => ({ ok: true as const, stdout: await fixture(name), stderr: "" });

test("one GPU: ref with uuid, metrics in MiB", async () => {
  const { gpus, skipped } = parseNvidiaSmi(await ok("one-gpu.csv"));
  assert.deepEqual(skipped, []);
  assert.deepEqual(gpus, [
    {
      ref: {
        id: "gpu:0",
        backend: "cuda",
        index: 0,
        name: "NVIDIA GeForce RTX 4090",
        uuid: "GPU-8f6c7c1e-3e3a-4b1d-9d6e-2f5c3b2a1e10",
      },
      metrics: {
        vram_total_mb: 24564,
        vram_used_mb: 412,
        vram_free_mb: 23711,
        utilization_pct: 3,
        temperature_c: 34,
        power_w: 21.37,
      },
    },
  ]);
});

test("three GPUs keep their indexes and numbers", async () => {
  const { gpus } = parseNvidiaSmi(await ok("three-gpus.csv"));
  assert.deepEqual(
    gpus.map((gpu) => [gpu.ref.id, gpu.ref.name, gpu.metrics?.vram_free_mb]),
    [
      ["gpu:0", "NVIDIA RTX A6000", 47608],
      ["gpu:1", "NVIDIA RTX A6000", 10620],
      ["gpu:2", "NVIDIA GeForce RTX 3090", 24234],
    ],
  );
});

test("[N/A], [Not Supported] and [Unknown Error] leave the field out", async () => {
  const { gpus } = parseNvidiaSmi(await ok("na-fields.csv"));
  assert.deepEqual(gpus[0]?.metrics, {
    vram_total_mb: 15360,
    vram_used_mb: 0,
    vram_free_mb: 14931,
  });
  assert.deepEqual(gpus[1]?.metrics, {
    vram_total_mb: 40960,
    vram_used_mb: 4,
    vram_free_mb: 40339,
    temperature_c: 33,
  });
});

test("a GPU that fell off the bus is skipped; the others are still reported", async () => {
  const stdout = await fixture("gpu-fell-off-bus.txt");
  const { gpus, skipped } = parseNvidiaSmi({
    ok: false,
    reason: "nvidia-smi exited with code 15",
    stdout,
    stderr: "",
  });
  assert.deepEqual(
    gpus.map((gpu) => gpu.ref.id),
    ["gpu:1"],
  );
  assert.match(skipped[0] ?? "", /Unable to determine the device handle/);
});

test("no driver, or lines with fields missing, give nothing instead of a crash", async () => {
  const noDriver = parseNvidiaSmi({
    ok: false,
    reason: "exit 9",
    stdout: await fixture("no-driver.txt"),
    stderr: "",
  });
  assert.deepEqual(noDriver.gpus, []);
  assert.equal(noDriver.skipped.length, 1);
  assert.deepEqual(parseNvidiaSmi(await ok("missing-fields.csv")).gpus, []);
});

/** A stand-in nvidia-smi printing `output` whatever its arguments, and exiting with `code`. */
const standIn = (output: string, code = 0) =>
  standInTool(
    "nvidia-smi",
    {
      "--query-gpu=index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu,temperature.gpu,power.draw":
        output,
    },
    code,
  );

test("the backend discovers and measures through the tool, by uuid", async () => {
  const { log } = capturingLog();
  const backend = new CudaBackend(log, await standIn(await fixture("three-gpus.csv")));
  const devices = await backend.discover();
  assert.deepEqual(
    devices.map((device) => device.id),
    ["gpu:0", "gpu:1", "gpu:2"],
  );
  const metrics = await backend.measure(devices);
  assert.equal(metrics.get("gpu:1")?.vram_free_mb, 10620);
});

test("a missing or failing tool is one warning and an empty answer", async () => {
  const missing = capturingLog();
  assert.deepEqual(await new CudaBackend(missing.log, "/no/such/nvidia-smi").discover(), []);
  assert.equal(missing.lines.length, 1);
  assert.match(missing.lines[0] ?? "", /nvidia-smi not found/);

  const failing = capturingLog();
  const backend = new CudaBackend(failing.log, await standIn(await fixture("no-driver.txt"), 9));
  assert.deepEqual(await backend.discover(), []);
  assert.match(failing.lines.join("\n"), /exited with code 9/);
});
