import assert from "node:assert/strict";
import { test } from "node:test";
import { splitServerArgs } from "./split-server-args.js";

const targets = [
  { localPort: 4001, fraction: 0.3 },
  { localPort: 4002, fraction: 0.2 },
];

test("a CPU host keeps its share by offloading only the workers' layers", () => {
  assert.deepEqual(splitServerArgs({ targets, hostFraction: 0.5, hostBackend: "cpu", layers: 6 }), [
    "--rpc",
    "127.0.0.1:4001,127.0.0.1:4002",
    "--tensor-split",
    "0.3,0.2",
    "-ngl",
    "3",
  ]);
  assert.deepEqual(
    splitServerArgs({ targets, hostFraction: 0.5, hostBackend: "cpu", layers: null }).slice(-1),
    ["999"],
  );
});

test("a GPU host offloads everything and lists its own share after the RPC devices", () => {
  assert.deepEqual(
    splitServerArgs({ targets, hostFraction: 0.5, hostBackend: "cuda", layers: 6 }),
    ["--rpc", "127.0.0.1:4001,127.0.0.1:4002", "--tensor-split", "0.3,0.2,0.5", "-ngl", "999"],
  );
});
