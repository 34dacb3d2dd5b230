import type { NodeRecord } from "../registry/node-registry.js";
import { affinityOrder } from "./prefix-affinity.js";

/** A node to try for a request, and the model id to ask it for. */
export interface RouteChoice {
  record: NodeRecord;
  modelId: string;
}

/** A node that serves a name, with what ranking reads. */
interface Candidate extends RouteChoice {
  /** The model is ready on one of its devices, whose queue has room. */
  ready: boolean;
  /** The model is loaded (or loading) on one of its devices. */
  loaded: boolean;
  /** The gateway's own in-flight count plus the node's reported queue. */
  load: number;
  /**
   * What the affinity bound compares: the gateway's own in-flight count, exact at once, plus
   * the requests the node reported waiting in its queue (from any gateway). Not its reported
   * in-flight count: that repeats this gateway's own a heartbeat late, and would push a
   * conversation's next turn off its node at the lowest loads.
   */
  boundLoad: number;
  /** Requests its servers of the model run at once: slots per server (0 if not reported). */
  slots: number;
}

/**
 * The nodes that serve `name` (a model id or a role), best first (SPEC §7.3): a node with the
 * model loaded and ready and a queue with room, then the least loaded. Ties rotate with
 * `turn`, so equal nodes share the work.
 */
export function rankNodes(nodes: readonly NodeRecord[], name: string, turn: number): RouteChoice[] {
  return byLeastLoad(candidatesFor(nodes, name), turn).map(toChoice);
}

/**
 * The nodes that serve `name`, in the order to try them for a request whose prompt prefix is
 * `key` (SPEC §13): the nodes that have the model loaded (all that serve it when none has) in
 * the key's ranking under the load bound (prefix-affinity.ts), then the others least loaded
 * first — so affinity never makes a node switch models while another has it. `home` is the
 * key's own node.
 */
export function rankByAffinity(
  nodes: readonly NodeRecord[],
  name: string,
  key: string,
  loadFactor: number,
  turn: number,
): { choices: RouteChoice[]; home: string | undefined } {
  const all = candidatesFor(nodes, name);
  const loaded = all.filter((candidate) => candidate.loaded);
  const pool = loaded.length > 0 ? loaded : all;
  const { order, home } = affinityOrder(
    key,
    pool.map((candidate) => ({
      ...candidate,
      id: candidate.record.nodeId,
      load: candidate.boundLoad,
    })),
    loadFactor,
  );
  const others = byLeastLoad(
    all.filter((candidate) => !pool.includes(candidate)),
    turn,
  );
  return { choices: [...order, ...others].map(toChoice), home: home?.id };
}

function candidatesFor(nodes: readonly NodeRecord[], name: string): Candidate[] {
  const candidates: Candidate[] = [];
  for (const record of nodes) {
    const modelId = pickModel(record, name);
    if (!modelId) continue;
    const devices = record.snapshot.devices;
    const queued = devices.reduce(
      (sum, device) => sum + device.queue.in_flight + device.queue.pending,
      0,
    );
    const pending = devices.reduce((sum, device) => sum + device.queue.pending, 0);
    const holding = devices.filter((device) => device.server.model_id === modelId);
    const ready = holding.some(
      (device) =>
        device.server.state === "ready" &&
        device.queue.in_flight + device.queue.pending < device.queue.limit,
    );
    const loaded = holding.some(
      (device) => device.server.state === "ready" || device.server.state === "starting",
    );
    const parallel = record.snapshot.models.find((model) => model.id === modelId)?.parallel ?? 0;
    const serving = holding.filter((device) => device.server.state === "ready").length;
    candidates.push({
      record,
      modelId,
      ready,
      loaded,
      load: record.inFlight + queued,
      boundLoad: record.inFlight + pending,
      slots: parallel * serving,
    });
  }
  return candidates;
}

function byLeastLoad(candidates: Candidate[], turn: number): Candidate[] {
  const count = Math.max(1, candidates.length);
  return candidates
    .map((candidate, index) => ({
      candidate,
      tiebreak: (index - (turn % count) + candidates.length) % count,
    }))
    .sort(
      (a, b) =>
        Number(b.candidate.ready) - Number(a.candidate.ready) ||
        a.candidate.load - b.candidate.load ||
        a.tiebreak - b.tiebreak,
    )
    .map(({ candidate }) => candidate);
}

const toChoice = ({ record, modelId }: RouteChoice): RouteChoice => ({ record, modelId });

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
