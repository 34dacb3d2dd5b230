import assert from "node:assert/strict";
import { test } from "node:test";
import type { PeerStatus, StatusResponse } from "../protocol/registry.js";
import type { SplitGroupInfo } from "../protocol/split.js";
import type { WakeableStatus } from "../protocol/wakeable.js";
import { formatStatus } from "./status-command.js";
import { describeWake } from "./wake-command.js";

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

test("split groups follow the nodes as their own table: members' shares, links' state and bytes", () => {
  const members = [
    { node_id: "gpu-box", fraction: 0.6, free_mb: 12_000 },
    { node_id: "laptop", fraction: 0.4, free_mb: 8000 },
  ];
  const peer = (node_id: string, split_groups: SplitGroupInfo[]) =>
    ({
      node_id,
      hostname: node_id,
      state: "serving",
      last_seen: "",
      devices: [],
      models: [],
      split_groups,
    }) as unknown as PeerStatus;
  const status = {
    gateway: { url: "http://127.0.0.1:8080" },
    node_state: "client",
    peers: [
      peer("gpu-box", [
        {
          model_id: "llama-70b",
          role: "host",
          host: "gpu-box",
          members,
          links: [
            { node_id: "laptop", state: "connected", bytes_sent: 1_572_864, bytes_received: 2048 },
          ],
        },
      ]),
      // The worker's own report of the same group is not listed again.
      peer("laptop", [
        { model_id: "llama-70b", role: "worker", host: "gpu-box", members, links: [] },
      ]),
    ],
  } as unknown as StatusResponse;
  const [, splitTable] = formatStatus(status, 0).split("\n\n1 split group\n\n");
  assert.equal(
    splitTable,
    [
      "MODEL      HOST     MEMBERS                  LINKS",
      "llama-70b  gpu-box  gpu-box 60%, laptop 40%  laptop connected ↑1.5M ↓2.0K",
    ].join("\n"),
  );
});

test("wakeable entries follow as their own table: state, node, models, last wake, ETA or reason", () => {
  const entry = (fields: Partial<WakeableStatus>): WakeableStatus => ({
    id: "ws",
    provider: "wol",
    description: "",
    vram_mb: 0,
    models: ["llama-70b", "chat"],
    state: "sleeping",
    node_id: "ws-4090",
    wake_action: "wol",
    since: null,
    reason: null,
    last_wake_s: null,
    eta_s: null,
    sleep_after_idle_s: 0,
    ...fields,
  });
  const status = {
    gateway: { url: "http://127.0.0.1:8080" },
    node_state: "client",
    peers: [],
    wakeable: [
      entry({ state: "waking", last_wake_s: 42.5, eta_s: 30 }),
      entry({ id: "vm", node_id: null, models: [], state: "failed", reason: "answered 500" }),
    ],
  } as unknown as StatusResponse;
  const [, table] = formatStatus(status, 0).split("\n\n2 wakeable entries\n\n");
  assert.equal(
    table,
    [
      "WAKEABLE  STATE   NODE     MODELS           LAST WAKE  NOTE",
      "ws        waking  ws-4090  llama-70b, chat  42.5 s     expected in 30 s",
      "vm        failed  -        -                -          answered 500",
    ].join("\n"),
  );
  assert.equal(
    describeWake(entry({ state: "waking", last_wake_s: 42.5, eta_s: 30 })),
    "ws: waking, expected in about 30 s (the last wake took 42.5 s)",
  );
  assert.equal(describeWake(entry({ state: "awake" })), "ws: awake (node ws-4090)");
  assert.equal(describeWake(entry({ state: "failed", reason: "no node" })), "ws: failed: no node");
});
