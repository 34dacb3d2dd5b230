import assert from "node:assert/strict";
import { test } from "node:test";
import { createLogger } from "../../core/logger.js";
import { MIB } from "../../core/units.js";
import type { SplitGroupInfo } from "../../protocol/split.js";
import { playedDevice, playedNode } from "../../../test/helpers/played-node.js";
import type { NodeCommands } from "../commands/node-commands.js";
import { NodeRegistry } from "../registry/node-registry.js";
import { SplitCoordinator } from "./split-coordinator.js";

const FINGERPRINT = Array.from({ length: 32 }, () => "AB").join(":");

/**
 * A node holding `big` (split: always) with `freeMb` on its one device, and the split groups
 * it reports; sequence numbers grow so every call is a newer message.
 */
let sequence = 1;
function holder(
  nodeId: string,
  freeMb: number,
  groups: SplitGroupInfo[] = [],
  model: { split?: "auto" | "always"; loaded_on?: string[] } = {},
) {
  return playedNode(nodeId, 1, {
    sequence: sequence++,
    agent_url: `http://127.0.0.1:9/${nodeId}`,
    tunnel: { port: 8091, fingerprint: FINGERPRINT },
    snapshot: {
      state: "standby",
      devices: [
        playedDevice(null, {
          metrics: { vram_total_mb: 16_000, vram_used_mb: 16_000 - freeMb, vram_free_mb: freeMb },
        }),
      ],
      models: [
        {
          id: "big",
          path: "/m/big.gguf",
          roles: [],
          size_bytes: 1000 * MIB,
          loaded_on: [],
          split: "always",
          split_max_nodes: 4,
          ...model,
        },
      ],
      split_groups: groups,
    },
  });
}

/** The commands the coordinator sends, answered as agents would. */
function recordingCommands() {
  const sent: string[] = [];
  const commands = {
    send: (nodeId: string, command: string, args: Record<string, unknown>) => {
      const detail =
        command === "split.host"
          ? ` ${JSON.stringify((args.workers as { node_id: string }[]).map((worker) => worker.node_id))}`
          : command === "split.leave"
            ? ` (of ${String(args.host)})`
            : "";
      sent.push(`${command} ${nodeId}${detail}`);
      const body =
        command === "split.worker"
          ? { node_id: nodeId, targets: [{ name: "rpc-cpu-0", device: "cpu:0", free_mb: 1 }] }
          : {};
      return Promise.resolve({ node_id: nodeId, status: 200, body });
    },
  };
  return { sent, commands: commands as unknown as NodeCommands };
}

const hostGroup = (host: string, workers: string[]): SplitGroupInfo => ({
  model_id: "big",
  role: "host",
  host,
  members: [host, ...workers].map((node_id) => ({
    node_id,
    fraction: 1 / (workers.length + 1),
    free_mb: 0,
  })),
  links: [],
});
const workerGroup = (host: string): SplitGroupInfo => ({
  model_id: "big",
  role: "worker",
  host,
  members: [],
  links: [],
});

test("a group is formed once, on the nodes with most memory, and then adopted as reported", async () => {
  const registry = new NodeRegistry({ leaseMs: 60_000 });
  registry.register(holder("a", 3000));
  registry.register(holder("b", 5000));
  const { sent, commands } = recordingCommands();
  const coordinator = new SplitCoordinator(registry, commands, createLogger("silent"));
  assert.equal((await coordinator.host("big"))?.nodeId, "b");
  assert.deepEqual(sent, ["split.worker a", 'split.host b ["a"]']);

  // The members report their parts (their free memory changed by serving): nothing more sent.
  registry.register(holder("b", 100, [hostGroup("b", ["a"])]));
  registry.register(holder("a", 4000, [workerGroup("b")]));
  assert.equal((await coordinator.host("big"))?.nodeId, "b");
  assert.equal(sent.length, 2);
  // Another gateway, or this one restarted, adopts the group as it is.
  const other = recordingCommands();
  assert.equal(
    (await new SplitCoordinator(registry, other.commands, createLogger("silent")).host("big"))
      ?.nodeId,
    "b",
  );
  assert.deepEqual(other.sent, []);
});

test("a node that joins makes the plan anew; a worker that leaves leaves the host alone at once", async () => {
  const registry = new NodeRegistry({ leaseMs: 60_000 });
  registry.register(holder("b", 5000, [hostGroup("b", ["a"])]));
  registry.register(holder("a", 3000, [workerGroup("b")]));
  const { sent, commands } = recordingCommands();
  const coordinator = new SplitCoordinator(registry, commands, createLogger("silent"));
  await coordinator.host("big");
  assert.deepEqual(sent, []);

  registry.register(holder("c", 9000));
  assert.equal((await coordinator.host("big"))?.nodeId, "c");
  // The old group leaves first: its host, and its worker the new plan does not keep.
  assert.deepEqual(sent, [
    "split.leave b (of b)",
    "split.leave a (of b)",
    "split.worker b",
    'split.host c ["b"]',
  ]);

  sent.length = 0;
  registry.register(holder("c", 9000, [hostGroup("c", ["b"])]));
  registry.register(holder("b", 5000, [workerGroup("c")]));
  // Not a member: nothing to re-form.
  registry.deregister({
    node_id: "a",
    started_at: 1,
    sequence: sequence++,
    node_secret: "a-secret-0123456789",
  });
  registry.deregister({
    node_id: "b",
    started_at: 1,
    sequence: sequence++,
    node_secret: "b-secret-0123456789",
  });
  await new Promise(setImmediate); // the forming's first step
  assert.deepEqual(sent, ["split.host c []"], "re-formed as soon as the worker left");
  registry.register(holder("c", 9000));
  assert.equal(await coordinator.host("big"), undefined, "alone: routed as usual");
  assert.deepEqual(sent, ["split.host c []"], "once");
});

test("the workers of a host that left are told to leave its group", async () => {
  const registry = new NodeRegistry({ leaseMs: 60_000 });
  registry.register(holder("b", 5000, [hostGroup("b", ["a"])]));
  registry.register(holder("a", 3000, [workerGroup("b")]));
  const { sent, commands } = recordingCommands();
  new SplitCoordinator(registry, commands, createLogger("silent"));
  registry.deregister({
    node_id: "b",
    started_at: 1,
    sequence: sequence++,
    node_secret: "b-secret-0123456789",
  });
  assert.deepEqual(sent, ["split.leave a (of b)"]);
});

test("a node serving the model alone keeps it, unless the model is always split", async () => {
  const registry = new NodeRegistry({ leaseMs: 60_000 });
  // Neither has room for its 1000 MiB alone, yet `a` serves it (part of it from the CPU).
  const alone = { loaded_on: ["cpu:0"] };
  registry.register(holder("a", 600, [], { split: "auto", ...alone }));
  registry.register(holder("b", 700, [], { split: "auto" }));
  const { sent, commands } = recordingCommands();
  const coordinator = new SplitCoordinator(registry, commands, createLogger("silent"));
  assert.equal(await coordinator.host("big"), undefined);
  assert.deepEqual(sent, []);

  registry.register(holder("a", 600, [], alone));
  registry.register(holder("b", 700));
  assert.equal((await coordinator.host("big"))?.nodeId, "b");
  assert.deepEqual(sent, ["split.worker a", 'split.host b ["a"]']);
});
