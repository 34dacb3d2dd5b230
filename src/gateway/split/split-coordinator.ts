import type { Logger } from "../../core/logger.js";
import { RoleMeshError } from "../../core/errors.js";
import { planSplit } from "../../core/split/split-plan.js";
import type { SplitPlan } from "../../core/split/split-plan.js";
import { MIB } from "../../core/units.js";
import type { ModelInventory } from "../../protocol/inventory.js";
import type {
  SplitGroupInfo,
  SplitHostArgs,
  SplitHostWorker,
  SplitWorkerAnswer,
} from "../../protocol/split.js";
import type { NodeCommands } from "../commands/node-commands.js";
import type { NodeRecord, NodeRegistry } from "../registry/node-registry.js";

/** Most nodes in a group when the model does not say (SPEC §12). */
const DEFAULT_MAX_NODES = 4;
const SENDER = { by: "split" };

/**
 * Split inference from the gateway's side (SPEC §12). A request for a model that may be split
 * and that no node serves alone is sent to the host of its group, formed first: each worker is
 * told to start its rpc-servers for the host, then the host to serve with them. The group is
 * what its members report (their `split_groups`), so every gateway sees the same groups and a
 * restarted gateway forms nothing again. A member that leaves makes the group re-form at once
 * on the nodes live then; one that restarted (it no longer reports its part) makes the next
 * request re-form it. Nodes a new plan leaves out, and the workers of a host that left, are
 * told to leave (`split.leave`), so no rpc-server keeps admitting a host it no longer serves.
 */
export class SplitCoordinator {
  readonly #registry: NodeRegistry;
  readonly #commands: NodeCommands;
  readonly #log: Logger;
  /** Formations under way, by model id: concurrent requests wait for the same one. */
  readonly #forming = new Map<string, Promise<void>>();
  /** The candidates (node ids) each model was last planned with, by model id. */
  readonly #plannedWith = new Map<string, string>();

  constructor(registry: NodeRegistry, commands: NodeCommands, log: Logger) {
    this.#registry = registry;
    this.#commands = commands;
    this.#log = log;
    // A member gone: the group re-forms now, not when the next request finds it broken (the
    // host's server would crash against the dead link meanwhile).
    registry.on("event", (event) => {
      if (event.type !== "node_removed") return;
      for (const modelId of this.#groupsWith(event.node_id)) {
        this.host(modelId).catch((err: unknown) =>
          log.warn({ err, model: modelId }, "re-forming a split group failed"),
        );
      }
      // The workers of a host that left serve nobody now.
      for (const record of registry.live()) {
        for (const group of record.snapshot.split_groups ?? []) {
          if (group.role === "worker" && group.host === event.node_id) {
            void this.#leave(record.nodeId, group.model_id, group.host);
          }
        }
      }
    });
  }

  /**
   * The node to send a request for `modelId` to when the model is served split: the host of
   * its group, formed first if need be. Undefined when the model runs on one node as usual.
   */
  async host(modelId: string): Promise<NodeRecord | undefined> {
    const plan = this.plan(modelId);
    if (!plan) return undefined;
    const alone = plan.members.length < 2;
    // A host whose workers are gone serves alone again once it has room: told so first.
    const hosting = () => partOf(this.#registry.get(plan.host), modelId, "host") !== undefined;
    if (alone ? hosting() : !this.#formed(plan)) {
      let forming = this.#forming.get(modelId);
      if (!forming) {
        forming = this.#form(plan).finally(() => this.#forming.delete(modelId));
        this.#forming.set(modelId, forming);
      }
      await forming;
    }
    if (alone) return undefined;
    const host = this.#registry.get(plan.host);
    if (!host) throw new RoleMeshError("no_capacity", `the host of ${modelId}'s group left`);
    return host;
  }

  /**
   * Who serves `modelId`: the group its members report while all of them are live and report
   * their part, else a fresh plan from the registry. Null when the model may not be split,
   * a node serves it alone already, or the nodes that hold it have no room together.
   */
  plan(modelId: string): SplitPlan | null {
    const holders = this.#registry
      .live()
      .filter((record) => record.snapshot.models.some((model) => model.id === modelId));
    const model = holders
      .map((record) => record.snapshot.models.find((entry) => entry.id === modelId)!)
      .find((entry) => entry.split !== undefined && entry.split !== "never");
    if (!model || model.size_bytes === null) return null;
    const candidates = holders.filter(
      (record) => record.tunnel !== undefined && !record.snapshot.draining,
    );
    const candidateIds = candidates
      .map((record) => record.nodeId)
      .sort()
      .join();
    const reported = this.#reportedPlan(modelId);
    // A formed group stays while its candidates do: serving it changed its members' free
    // memory, and a plan made on that would move it for nothing. A node that joins makes the
    // plan anew (one that leaves breaks the group). A restarted gateway adopts groups as they are.
    const plannedWith = this.#plannedWith.get(modelId);
    this.#plannedWith.set(modelId, candidateIds);
    if (reported && (plannedWith === undefined || plannedWith === candidateIds)) return reported;
    // A node serving the model alone keeps it, unless the model is always split.
    if (!reported && model.split !== "always" && holders.some((r) => servesAlone(r, modelId))) {
      return null;
    }
    return planSplit(
      {
        model_id: modelId,
        size_mb: model.size_bytes / MIB,
        split: model.split!,
        split_max_nodes: model.split_max_nodes ?? DEFAULT_MAX_NODES,
      },
      candidates.map((record) => ({ node_id: record.nodeId, free_mb: freeMb(record) })),
    );
  }

  /** The group a live host reports for the model, if every member is live and reports its part. */
  #reportedPlan(modelId: string): SplitPlan | null {
    for (const record of this.#registry.live()) {
      const group = partOf(record, modelId, "host");
      if (!group) continue;
      const plan = { model_id: modelId, host: record.nodeId, members: group.members };
      return this.#formed(plan) ? plan : null;
    }
    return null;
  }

  /** The models of the groups live hosts report with `nodeId` among their members. */
  #groupsWith(nodeId: string): string[] {
    return this.#registry
      .live()
      .flatMap((record) => record.snapshot.split_groups ?? [])
      .filter(
        (group) =>
          group.role === "host" && group.members.some((member) => member.node_id === nodeId),
      )
      .map((group) => group.model_id);
  }

  /** Every member reports its part of the plan: the host its workers, each worker its host. */
  #formed(plan: SplitPlan): boolean {
    const part = (nodeId: string, role: SplitGroupInfo["role"]) => {
      const group = partOf(this.#registry.get(nodeId), plan.model_id, role);
      return group?.host === plan.host ? group : undefined;
    };
    const ids = plan.members.map((member) => member.node_id).join();
    const host = part(plan.host, "host");
    return (
      host !== undefined &&
      host.members.map((member) => member.node_id).join() === ids &&
      plan.members.slice(1).every((member) => part(member.node_id, "worker") !== undefined)
    );
  }

  async #form(plan: SplitPlan): Promise<void> {
    const host = this.#member(plan.host);
    this.#log.info(
      { model: plan.model_id, host: plan.host, members: plan.members },
      "forming split group",
    );
    // The old group goes first: its host's server holds memory the new plan counts on.
    await Promise.all(
      this.#leftOut(plan).map(({ nodeId, host }) => this.#leave(nodeId, plan.model_id, host)),
    );
    const workers = await Promise.all(
      plan.members.slice(1).map(async ({ node_id }): Promise<SplitHostWorker> => {
        const answer = await this.#commands.send(
          node_id,
          "split.worker",
          { model_id: plan.model_id, host: plan.host, host_fingerprint: host.tunnel!.fingerprint },
          SENDER,
        );
        const worker = this.#member(node_id);
        return {
          node_id,
          address: new URL(worker.agentUrl).hostname,
          tunnel: worker.tunnel!,
          targets: (answer.body as SplitWorkerAnswer).targets,
        };
      }),
    );
    const args: SplitHostArgs = { model_id: plan.model_id, members: plan.members, workers };
    await this.#commands.send(plan.host, "split.host", { ...args }, SENDER);
  }

  /**
   * The parts live nodes report in the model's groups that `plan` does not keep: a host other
   * than the plan's, and a worker that the plan does not make one (for a worker it keeps,
   * `split.worker` replaces the part).
   */
  #leftOut(plan: SplitPlan): { nodeId: string; host: string }[] {
    const workers = new Set(plan.members.slice(1).map((member) => member.node_id));
    return this.#registry.live().flatMap((record) => {
      const hosting = partOf(record, plan.model_id, "host");
      const working = partOf(record, plan.model_id, "worker");
      const parts = [];
      if (hosting && record.nodeId !== plan.host) parts.push(hosting.host);
      if (working && !workers.has(record.nodeId)) parts.push(working.host);
      return parts.map((host) => ({ nodeId: record.nodeId, host }));
    });
  }

  /** Tells `nodeId` to leave `host`'s group for the model; a failure is only logged. */
  async #leave(nodeId: string, modelId: string, host: string): Promise<void> {
    try {
      await this.#commands.send(nodeId, "split.leave", { model_id: modelId, host }, SENDER);
    } catch (err) {
      this.#log.warn({ err, node: nodeId, model: modelId, host }, "split.leave failed");
    }
  }

  #member(nodeId: string): NodeRecord {
    const record = this.#registry.get(nodeId);
    if (!record?.tunnel) {
      throw new RoleMeshError("no_capacity", `node ${nodeId} left before its split group formed`);
    }
    return record;
  }
}

/** The part `record` reports in the model's group: its host, or a worker of it. */
function partOf(
  record: NodeRecord | undefined,
  modelId: string,
  role: SplitGroupInfo["role"],
): SplitGroupInfo | undefined {
  return record?.snapshot.split_groups?.find(
    (group) => group.model_id === modelId && group.role === role,
  );
}

/** Serves the model on its own devices, not as the host of a group. */
function servesAlone(record: NodeRecord, modelId: string): boolean {
  const model: ModelInventory | undefined = record.snapshot.models.find(
    (entry) => entry.id === modelId,
  );
  const hosting = record.snapshot.split_groups?.some((group) => group.model_id === modelId);
  return (model?.loaded_on.length ?? 0) > 0 && !hosting;
}

/** The most free memory of one of the node's devices, in MiB. */
function freeMb(record: NodeRecord): number {
  return Math.max(0, ...record.snapshot.devices.map((device) => device.metrics?.vram_free_mb ?? 0));
}
