/** `GET /metrics`: Prometheus text format whose values match the inventory. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { writeFile } from "node:fs/promises";
import { test } from "node:test";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import type { MetricFamily } from "parse-prometheus-text-format";
import type { NodeInventory } from "../src/protocol/inventory.js";
import { postJson } from "./helpers/http-client.js";
import { NEEDS_FAKE, ROOT, startAgent, tempDir, testModel } from "./helpers/launcher.js";

const MIB = 1024 * 1024;

function value(
  families: MetricFamily[],
  name: string,
  labels: Record<string, string>,
): number | undefined {
  const family = families.find((candidate) => candidate.name === name);
  const sample = family?.metrics.find((metric) =>
    Object.entries(labels).every(([key, wanted]) => metric.labels?.[key] === wanted),
  );
  return sample?.value === undefined ? undefined : Number(sample.value);
}

test("/metrics parses as Prometheus text and matches the inventory", NEEDS_FAKE, async () => {
  const dir = await tempDir();
  const csv = join(dir, "nvidia-smi.csv");
  await writeFile(
    csv,
    [
      "0, GPU-00000000-1111-2222-3333-444455556666, NVIDIA L4, 23034, 1034, 22000, 17, 51, 35.50",
      "1, GPU-00000001-1111-2222-3333-444455556666, NVIDIA L4, 23034, 3034, 20000, [N/A], 48, 30.25",
    ].join("\n"),
  );
  const agent = await startAgent({
    config: { models: [testModel("a")] },
    env: { PATH: `${join(ROOT, "test/bin/gpu")}:${process.env.PATH}`, FAKE_NVIDIA_SMI_FILE: csv },
  });
  const chat = { model: "a", messages: [{ role: "user", content: "hi" }], max_tokens: 3 };
  for (let i = 0; i < 3; i++)
    assert.equal((await postJson(`${agent.url}/v1/chat/completions`, chat)).status, 200);
  assert.equal(
    (await postJson(`${agent.url}/v1/chat/completions`, { ...chat, max_tokens: "x" })).status,
    400,
  );

  const res = await fetch(`${agent.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const families = parsePrometheusTextFormat(await res.text());
  const inventory = (await (await fetch(`${agent.url}/v1/node/inventory`)).json()) as NodeInventory;

  for (const device of inventory.devices) {
    const labels = { device: device.ref.id };
    assert.equal(
      value(families, "rolemesh_device_vram_total_bytes", labels),
      (device.metrics?.vram_total_mb ?? 0) * MIB,
    );
    assert.equal(
      value(families, "rolemesh_device_vram_free_bytes", labels),
      (device.metrics?.vram_free_mb ?? 0) * MIB,
    );
    assert.equal(
      value(families, "rolemesh_device_vram_used_bytes", labels),
      (device.metrics?.vram_used_mb ?? 0) * MIB,
    );
    const reserved = value(families, "rolemesh_device_vram_reserved_bytes", labels) ?? -1;
    assert.equal(Math.round(reserved / MIB), device.vram_reserved_mb);
    assert.equal(
      value(families, "rolemesh_queue_in_flight_requests", labels),
      device.queue.in_flight,
    );
    assert.equal(value(families, "rolemesh_queue_limit_requests", labels), device.queue.limit);
    assert.equal(
      value(families, "rolemesh_server_state", { ...labels, state: device.server.state }),
      1,
    );
    assert.equal(value(families, "rolemesh_server_restarts_total", labels), device.server.restarts);
  }
  const loaded = inventory.devices.find((device) => device.server.model_id === "a");
  assert.ok(loaded && loaded.vram_reserved_mb > 0, "the loaded device has a reservation");
  assert.equal(value(families, "rolemesh_device_utilization_ratio", { device: "gpu:0" }), 0.17);
  assert.equal(
    value(families, "rolemesh_device_utilization_ratio", { device: "gpu:1" }),
    undefined,
    "[N/A] is left out",
  );
  const ok = { endpoint: "/v1/chat/completions", model: "a", status: "200" };
  assert.equal(value(families, "rolemesh_requests_total", ok), 3);
  assert.equal(value(families, "rolemesh_requests_total", { ...ok, model: "", status: "400" }), 1);
  const duration = families.find((family) => family.name === "rolemesh_request_duration_seconds");
  assert.equal(duration?.type, "HISTOGRAM");
  // The parser keeps a histogram's buckets but not its labels; only model "a" had a first token.
  const ttft = families.find((family) => family.name === "rolemesh_time_to_first_token_seconds");
  assert.deepEqual(
    ttft?.metrics.map((metric) => metric.buckets?.["+Inf"]),
    ["3"],
  );
});
