import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { capturingLog, standInTool } from "../../../test/helpers/stand-in-tool.js";
import { parseVulkanHeaps, parseVulkanSummary, VulkanBackend } from "./vulkan-backend.js";

const fixture = (path: string) => readFile(new URL(`./fixtures/${path}`, import.meta.url), "utf8");

test("vulkaninfo --summary: GPUs with their Vulkan index and UUID; llvmpipe is not a GPU", async () => {
  assert.deepEqual(
    parseVulkanSummary(await fixture("vulkaninfo/summary-two-gpus-and-llvmpipe.txt")),
    [
      {
        id: "gpu:0",
        backend: "vulkan",
        index: 0,
        name: "NVIDIA GeForce RTX 4090",
        uuid: "8f6c7c1e-3e3a-4b1d-9d6e-2f5c3b2a1e10",
      },
      {
        id: "gpu:1",
        backend: "vulkan",
        index: 1,
        name: "AMD Radeon RX 6800 (RADV NAVI21)",
        uuid: "00000000-0300-0000-0000-000000000000",
      },
    ],
  );
  assert.deepEqual(parseVulkanSummary(await fixture("vulkaninfo/no-driver.txt")), []);
});

test("vulkaninfo: device-local heaps give total, and budget minus usage gives free", async () => {
  const heaps = parseVulkanHeaps(await fixture("vulkaninfo/full-heaps.txt"));
  assert.deepEqual(heaps.get(0), { vram_total_mb: 24564, vram_used_mb: 1140, vram_free_mb: 23424 });
  // Two device-local heaps (15 GiB VRAM and 1 GiB BAR) add up; 1 GiB of the first is in use.
  assert.deepEqual(heaps.get(1), { vram_total_mb: 16384, vram_used_mb: 1600, vram_free_mb: 14784 });
});

test("the backend discovers and measures; a missing tool is one line and nothing", async () => {
  const vulkaninfo = await standInTool("vulkaninfo", {
    "--summary": await fixture("vulkaninfo/summary-two-gpus-and-llvmpipe.txt"),
    "": await fixture("vulkaninfo/full-heaps.txt"),
  });
  const backend = new VulkanBackend(capturingLog().log, vulkaninfo);
  const devices = await backend.discover();
  assert.equal((await backend.measure(devices)).get("gpu:1")?.vram_total_mb, 16384);
  const { log, lines } = capturingLog();
  assert.deepEqual(await new VulkanBackend(log, "/no/such/vulkaninfo").discover(), []);
  assert.equal(lines.length, 1);
});
