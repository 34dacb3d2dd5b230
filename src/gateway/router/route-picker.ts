import type { NodeRecord } from "../registry/node-registry.js";

/** A node to try for a request, and the model id to ask it for. */
export interface RouteChoice {
  record: NodeRecord;
  modelId: string;
}

/**
 * The nodes that serve `name` (a model id or a role), best first (SPEC §7.3): a node with the
 * model loaded and ready and a queue with room, then the least loaded (the gateway's own
 * in-flight count plus the node's reported queue). Ties rotate with `turn`, so equal nodes
 * share the work.
 */
export function rankNodes(nodes: readonly NodeRecord[], name: string, turn: number): RouteChoice[] {
  const choices: (RouteChoice & { ready: boolean; load: number })[] = [];
  for (const record of nodes) {
    const modelId = pickModel(record, name);
    if (!modelId) continue;
    const devices = record.snapshot.devices;
    const queued = devices.reduce(
      (sum, device) => sum + device.queue.in_flight + device.queue.pending,
      0,
    );
    const ready = devices.some(
      (device) =>
        device.server.state === "ready" &&
        device.server.model_id === modelId &&
        device.queue.in_flight + device.queue.pending < device.queue.limit,
    );
    choices.push({ record, modelId, ready, load: record.inFlight + queued });
  }
  const rotated = choices.map((choice, index) => ({
    choice,
    tiebreak:
      (index - (turn % Math.max(1, choices.length)) + choices.length) % Math.max(1, choices.length),
  }));
  rotated.sort(
    (a, b) =>
      Number(b.choice.ready) - Number(a.choice.ready) ||
      a.choice.load - b.choice.load ||
      a.tiebreak - b.tiebreak,
  );
  return rotated.map(({ choice }) => ({ record: choice.record, modelId: choice.modelId }));
}

/** True when a node serves `name`, as a model id or a role. */
export function offers(nodes: readonly NodeRecord[], name: string): boolean {
  return nodes.some((record) => pickModel(record, name) !== undefined);
}

/** The node's model for `name`: that id, else a model with that role, loaded ones first. */
function pickModel(record: NodeRecord, name: string): string | undefined {
  const models = record.snapshot.models;
  if (models.some((model) => model.id === name)) return name;
  const withRole = models.filter((model) => model.roles.includes(name));
  return (withRole.find((model) => model.loaded_on.length > 0) ?? withRole[0])?.id;
}

/** Every model id and role live in the fleet, with how many nodes serve each (`/v1/models`). */
export function fleetModels(
  nodes: readonly NodeRecord[],
): { id: string; kind: "model" | "role"; nodes: string[] }[] {
  const entries = new Map<string, { id: string; kind: "model" | "role"; nodes: Set<string> }>();
  const add = (id: string, kind: "model" | "role", nodeId: string) => {
    const key = `${kind}:${id}`;
    const entry = entries.get(key) ?? { id, kind, nodes: new Set<string>() };
    entry.nodes.add(nodeId);
    entries.set(key, entry);
  };
  for (const record of nodes) {
    for (const model of record.snapshot.models) {
      add(model.id, "model", record.nodeId);
      for (const role of model.roles) add(role, "role", record.nodeId);
    }
  }
  return [...entries.values()]
    .map((entry) => ({ id: entry.id, kind: entry.kind, nodes: [...entry.nodes].sort() }))
    .sort((a, b) => a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id));
}
