/**
 * Long node commands (SPEC §10): an operation with an id, progress and a final state,
 * readable at `GET /v1/node/operations/{op_id}` (agent) and `GET /api/operations/{op_id}`
 * (gateway), as JSON or as SSE, and cancelled by `DELETE` on the same paths.
 */
import type { ErrorBody } from "./errors.js";

/** `cancelled`: stopped on request (`DELETE` on the operation); what it wrote so far is kept. */
export type OperationState = "running" | "succeeded" | "failed" | "cancelled";

export interface OperationProgress {
  /** What the operation is doing now, e.g. `checking`, `downloading`, `verifying`, `done`. */
  phase: string;
  bytes: number;
  total_bytes: number | null;
  percent: number | null;
  /** Seconds left at the recent rate; null until it can be told. */
  eta_s: number | null;
}

export interface OperationStatus {
  op_id: string;
  command: string;
  node_id: string;
  state: OperationState;
  progress: OperationProgress;
  /** What the command produced, once succeeded. */
  result: unknown;
  error: ErrorBody["error"] | null;
  started_at: string;
  finished_at: string | null;
}

/** The answer to a command that started (or joined) long work. */
export interface OperationStarted {
  op_id: string;
  /** True when the same work was already running and this call joined it. */
  joined: boolean;
}
