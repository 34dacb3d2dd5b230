/**
 * Devices and placement on a host with several GPUs: a stand-in nvidia-smi on PATH reports
 * three GPUs, and the fake llama-server records the environment it was started with.
 */
import assert from "node:assert/strict";
import { copyFile, readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";
import type { NodeInventory } from "../src/protocol/inventory.js";
import { assertError, postJson, postStream } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import {
  NEEDS_FAKE,
  ROOT,
  STORIES_MODEL,
  startAgent,
  tempDir,
  testModel,
} from "./helpers/launcher.js";

const GPU_TOOLS = join(ROOT, "test/bin/gpu");
const MIB = 1024 * 1024;

/** One line per GPU as `nvidia-smi --query-gpu=… --format=csv,noheader,nounits` prints it. */
function nvidiaSmiCsv(freeMb: number[], totalMb = 24576): string {
  return freeMb
    .map(
      (free, index) =>
        `${index}, GPU-0000000${index}-1111-2222-3333-444455556666, NVIDIA GeForce RTX 3090, ${totalMb}, ${totalMb - free}, ${free}, 0, 40, 30.00`,
    )
    .join("\n");
}

interface ServerStart {
  pid: number;
  argv: string[];
  env: Record<string, string>;
}

async function serverStarts(file: string): Promise<ServerStart[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as ServerStart);
}

const aliasOf = (start: ServerStart) => start.argv[start.argv.indexOf("--alias") + 1];

async function gpuHost(freeMb: number[], config: Record<string, unknown> = {}) {
  const dir = await tempDir();
  const csv = join(dir, "nvidia-smi.csv");
  const record = join(dir, "servers.jsonl");
  await writeFile(csv, nvidiaSmiCsv(freeMb));
  // A model file "too large for every GPU": a real GGUF header, then 40 GiB of sparse nothing.
  const big = join(dir, "big.gguf");
  await copyFile(STORIES_MODEL, big);
  await truncate(big, 40 * 1024 * MIB);
  const agent = await startAgent({
    config: {
      models: [testModel("a"), testModel("b"), testModel("c"), testModel("big", { path: big })],
      ...config,
    },
    env: {
      PATH: `${GPU_TOOLS}:${process.env.PATH}`,
      FAKE_NVIDIA_SMI_FILE: csv,
      FAKE_LLAMA_RECORD: record,
      FAKE_LLAMA_TOKEN_MS: "20",
      // Set on the agent to prove they do not leak into a server pinned to another card.
      CUDA_VISIBLE_DEVICES: "0,1,2",
      HIP_VISIBLE_DEVICES: "0",
      ROCR_VISIBLE_DEVICES: "0",
    },
  });
  return { agent, csv, record };
}

const inventory = (agent: AgentProcess) => agent.json<NodeInventory>("/v1/node/inventory");
const chat = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  messages: [{ role: "user", content: "Once upon a time" }],
  max_tokens: 4,
  ...extra,
});
const deviceOf = async (agent: AgentProcess, model: string) =>
  (await inventory(agent)).models.find((entry) => entry.id === model)?.loaded_on;

describe("placement on three GPUs", NEEDS_FAKE, () => {
  test("most free VRAM first, pinned to that GPU only; another model while busy goes elsewhere; no_capacity when too large", async () => {
    const { agent, record } = await gpuHost([8000, 20000, 12000]);
    const first = await inventory(agent);
    assert.equal(first.backend, "cuda", "backend auto found the GPUs through nvidia-smi");
    assert.deepEqual(
      first.devices.map((device) => [device.ref.id, device.metrics?.vram_free_mb]),
      [
        ["gpu:0", 8000],
        ["gpu:1", 20000],
        ["gpu:2", 12000],
      ],
    );

    // A lands on gpu:1, the GPU with the most free VRAM, and its server sees only that GPU.
    assert.equal((await postJson(`${agent.url}/v1/chat/completions`, chat("a"))).status, 200);
    assert.deepEqual(await deviceOf(agent, "a"), ["gpu:1"]);
    const [startA] = await serverStarts(record);
    assert.equal(startA?.env.CUDA_VISIBLE_DEVICES, "1");
    assert.equal(startA?.env.CUDA_DEVICE_ORDER, "PCI_BUS_ID");
    for (const leaked of [
      "HIP_VISIBLE_DEVICES",
      "ROCR_VISIBLE_DEVICES",
      "GGML_VK_VISIBLE_DEVICES",
    ]) {
      assert.equal(startA?.env[leaked], undefined, `${leaked} must not reach a CUDA server`);
    }

    // While A is busy, B lands on another GPU; both serve at once.
    let bDevice: string[] | undefined;
    const busyA = postStream(
      `${agent.url}/v1/chat/completions`,
      chat("a", { stream: true, max_tokens: 40 }),
      {
        onEvent: async (_event, index) => {
          if (index !== 1) return;
          const answer = await postJson(`${agent.url}/v1/chat/completions`, chat("b"));
          assert.equal(answer.status, 200, answer.text);
          bDevice = await deviceOf(agent, "b");
        },
      },
    );
    assert.equal(
      (await busyA).events.at(-1),
      "[DONE]",
      "A's stream was not disturbed by B's start",
    );
    assert.deepEqual(bDevice, ["gpu:2"]);
    const startB = (await serverStarts(record)).find((start) => aliasOf(start) === "b");
    assert.equal(startB?.env.CUDA_VISIBLE_DEVICES, "2");

    // A second request for A goes to A's GPU: no new server.
    assert.equal((await postJson(`${agent.url}/v1/chat/completions`, chat("a"))).status, 200);
    assert.deepEqual(await deviceOf(agent, "a"), ["gpu:1"]);
    assert.equal((await serverStarts(record)).filter((start) => aliasOf(start) === "a").length, 1);

    // 40 GiB fits on no 24 GiB card: a clear 503 naming the devices and the numbers.
    const big = await postJson<{ error: { message: string } }>(
      `${agent.url}/v1/chat/completions`,
      chat("big"),
    );
    assertError(big, 503, "no_capacity");
    assert.match(big.body.error.message, /model big fits on no device/);
    assert.match(
      big.body.error.message,
      /gpu:0 can offer \d+ MiB of 24576 MiB \(needs 41\d{3} MiB/,
    );
    const pinned = await postJson<{ error: { message: string } }>(
      `${agent.url}/v1/node/models/big/load`,
      {
        device: "gpu:0",
      },
    );
    assertError(pinned, 503, "no_capacity");
    assert.match(pinned.body.error.message, /model big does not fit: gpu:0 can offer/);
    const after = await inventory(agent);
    assert.ok(
      (after.devices[1]?.vram_reserved_mb ?? 0) > 0,
      "the agent counts what A reserves on gpu:1",
    );
  });

  test("VRAM taken by a foreign process changes the choice", async () => {
    const { agent, csv } = await gpuHost([20000, 12000, 4000]);
    // Something outside RoleMesh now takes 18 GB of gpu:0; the placement measures again first.
    await writeFile(csv, nvidiaSmiCsv([2000, 12000, 4000]));
    assert.equal((await postJson(`${agent.url}/v1/chat/completions`, chat("c"))).status, 200);
    assert.deepEqual(await deviceOf(agent, "c"), ["gpu:1"]);
  });

  test('devices: ["gpu:1"] keeps the agent off the other GPUs', async () => {
    const { agent, record } = await gpuHost([20000, 8000, 12000], { devices: ["gpu:1"] });
    assert.deepEqual(
      (await inventory(agent)).devices.map((device) => device.ref.id),
      ["gpu:1"],
    );
    assert.equal((await postJson(`${agent.url}/v1/chat/completions`, chat("a"))).status, 200);
    assert.deepEqual(await deviceOf(agent, "a"), ["gpu:1"]);
    const [start] = await serverStarts(record);
    assert.equal(start?.env.CUDA_VISIBLE_DEVICES, "1");
  });

  test("an unknown id in devices: is a config error naming what was found", async () => {
    const dir = await tempDir();
    const csv = join(dir, "nvidia-smi.csv");
    await writeFile(csv, nvidiaSmiCsv([1000, 1000]));
    const agent = await startAgent({
      config: { devices: ["gpu:7"] },
      env: { PATH: `${GPU_TOOLS}:${process.env.PATH}`, FAKE_NVIDIA_SMI_FILE: csv },
      expectExit: true,
    });
    assert.notEqual((await agent.exited).code, 0);
    assert.match(
      agent.output.join("\n"),
      /devices: gpu:7 not found on this host \(the cuda backend found: gpu:0, gpu:1\)/,
    );
  });
});

describe("backend auto without GPU tools", NEEDS_FAKE, () => {
  test("falls back to the CPU with one log line, and the CPU server offloads nothing", async () => {
    const dir = await tempDir();
    const record = join(dir, "servers.jsonl");
    const agent = await startAgent({
      config: { models: [testModel("a")] },
      env: { FAKE_LLAMA_RECORD: record },
    });
    const found = await inventory(agent);
    assert.equal(found.backend, "cpu");
    assert.equal(
      agent.output.filter((line) => line.includes("backend auto")).length,
      1,
      "one line says why the CPU was chosen",
    );
    assert.equal((await postJson(`${agent.url}/v1/chat/completions`, chat("a"))).status, 200);
    const [start] = await serverStarts(record);
    assert.equal(start?.argv[start.argv.indexOf("-ngl") + 1], "0");
    assert.equal(start?.env.CUDA_VISIBLE_DEVICES, "");
  });
});
