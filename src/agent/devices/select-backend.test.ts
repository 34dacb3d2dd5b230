import assert from "node:assert/strict";
import { mkdtemp, readFile, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { capturingLog, standInTool } from "../../../test/helpers/stand-in-tool.js";
import { parseConfigText } from "../../core/config/load-config.js";
import { AgentConfigSchema } from "../config/agent-config.js";
import { selectDevices } from "./select-backend.js";

const fixture = (path: string) => readFile(new URL(`./fixtures/${path}`, import.meta.url), "utf8");
const config = (text: string) => parseConfigText(text, "agent.yaml", AgentConfigSchema, {});

/** Runs `work` with PATH holding only the given stand-in tools (plus the shell they need). */
async function withTools<T>(tools: string[], work: () => Promise<T>): Promise<T> {
  const bin = await mkdtemp(join(tmpdir(), "rolemesh-path-"));
  for (const tool of tools) await symlink(tool, join(bin, tool.split("/").pop() ?? ""));
  const saved = process.env.PATH;
  process.env.PATH = `${bin}:/usr/bin:/bin`;
  try {
    return await work();
  } finally {
    process.env.PATH = saved;
  }
}

test("auto probes in SPEC order: cuda before rocm, rocm when there is no nvidia-smi, else the CPU", async () => {
  const nvidiaSmi = await standInTool("nvidia-smi", {
    "--query-gpu=index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu,temperature.gpu,power.draw":
      await fixture("nvidia-smi/one-gpu.csv"),
  });
  const rocmSmi = await standInTool("rocm-smi", {
    "--showproductname": await fixture("rocm-smi/two-gpus.json"),
  });
  const { log, lines } = capturingLog();
  const both = await withTools([nvidiaSmi, rocmSmi], () => selectDevices(config(""), log));
  assert.equal(both.backend.name, "cuda");
  const amd = await withTools([rocmSmi], () => selectDevices(config(""), log));
  assert.equal(amd.backend.name, "rocm");
  assert.deepEqual(
    amd.devices.map((device) => device.id),
    ["gpu:0", "gpu:1"],
  );
  const none = await withTools([], () => selectDevices(config(""), log));
  assert.equal(none.backend.name, "cpu");
  assert.match(
    lines.at(-1) ?? "",
    /backend auto: no GPU found \(tried cuda, rocm, sycl, vulkan\); using the CPU/,
  );
  assert.ok(
    !lines.some((line) => line.includes('"level":40')),
    "missing tools are not warnings while probing",
  );
});

test("devices: narrows to the listed ids; an unknown id names what was found", async () => {
  const rocmSmi = await standInTool("rocm-smi", {
    "--showproductname": await fixture("rocm-smi/two-gpus.json"),
  });
  const { log } = capturingLog();
  const one = await withTools([rocmSmi], () =>
    selectDevices(config("backend: rocm\ndevices: [gpu:1]"), log),
  );
  assert.deepEqual(
    one.devices.map((device) => device.id),
    ["gpu:1"],
  );
  await assert.rejects(
    withTools([rocmSmi], () => selectDevices(config("backend: rocm\ndevices: [gpu:5]"), log)),
    /devices: gpu:5 not found on this host \(the rocm backend found: gpu:0, gpu:1\)/,
  );
});
