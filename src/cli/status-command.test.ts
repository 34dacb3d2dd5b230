import assert from "node:assert/strict";
import { test } from "node:test";
import type { StatusResponse } from "../protocol/registry.js";
import { formatStatus } from "./status-command.js";

test("the fleet table shows node, host, state, device memory, loaded models, queue, last seen", () => {
  const status = {
    gateway: { version: "0.1.0", url: "http://127.0.0.1:8080", started_at: "" },
    node_state: "client",
    node_status: "Client",
    wakeable: [],
    peers: [
      {
        node_id: "gpu-box",
        hostname: "gpu-box.lan",
        state: "serving",
        last_seen: new Date(10_000).toISOString(),
        devices: [
          {
            ref: { id: "gpu:0" },
            metrics: { vram_used_mb: 4096, vram_total_mb: 24576 },
            queue: { in_flight: 1, pending: 2 },
          },
        ],
        models: [
          { id: "qwen", loaded_on: ["gpu:0"] },
          { id: "idle", loaded_on: [] },
        ],
      },
    ],
  } as unknown as StatusResponse;
  assert.equal(
    formatStatus(status, 13_000),
    [
      "gateway http://127.0.0.1:8080 · 1 node · local client",
      "",
      "NODE     HOST         STATE    DEVICES          MODELS  QUEUE  LAST SEEN",
      "gpu-box  gpu-box.lan  serving  gpu:0 4.0/24.0G  qwen    3      3s ago",
    ].join("\n"),
  );
});
