import type { SplitMember, SplitMode } from "../../protocol/split.js";

/**
 * A node runs a model alone when its free memory is at least this many times the model's size
 * (the weights plus room for the KV cache and compute buffers; mesh-llm uses the same margin).
 */
export const ROOM_FACTOR = 1.1;

/** A model as planning sees it. */
export interface SplitModel {
  model_id: string;
  size_mb: number;
  split: SplitMode;
  /** Most nodes in one group, the host included (`split_max_nodes`). */
  split_max_nodes: number;
}

/** A node that holds the model file, with the free memory it reports. */
export interface SplitCandidate {
  node_id: string;
  free_mb: number;
}

/** Who serves a model: the host alone, or the host and its workers. */
export interface SplitPlan {
  model_id: string;
  host: string;
  /** The host first, then the workers, largest free memory first. */
  members: SplitMember[];
}

/**
 * The plan for `model` over `candidates` (SPEC §12), the same wherever it is computed from the
 * same registry. The host is the candidate with the most free memory (ties: the lowest node id).
 * It runs alone when it has room (free ≥ 1.1 × size) and the model may run alone; otherwise
 * workers join, largest free memory first, until the group has room or `split_max_nodes` is
 * reached (`always` takes at least one worker). Each member's fraction is its share of the
 * group's free memory. Null when there is no candidate or the group still has no room.
 */
export function planSplit(
  model: SplitModel,
  candidates: readonly SplitCandidate[],
): SplitPlan | null {
  const ranked = [...candidates].sort(
    (a, b) => b.free_mb - a.free_mb || (a.node_id < b.node_id ? -1 : 1),
  );
  const host = ranked[0];
  if (!host) return null;
  const need = model.size_mb * ROOM_FACTOR;
  const alone = model.split === "never" || (model.split === "auto" && host.free_mb >= need);
  const group = [host];
  let room = host.free_mb;
  for (const candidate of ranked.slice(1)) {
    if (alone || group.length >= model.split_max_nodes) break;
    if (room >= need && (model.split !== "always" || group.length > 1)) break;
    group.push(candidate);
    room += candidate.free_mb;
  }
  if (!alone && room < need) return null;
  return {
    model_id: model.model_id,
    host: host.node_id,
    members: group.map((member) => ({
      node_id: member.node_id,
      free_mb: member.free_mb,
      fraction: room > 0 ? round(member.free_mb / room) : 1 / group.length,
    })),
  };
}

const round = (value: number) => Math.round(value * 10_000) / 10_000;
