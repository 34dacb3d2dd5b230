/**
 * Wire types of the node inventory (SPEC §3, §7.1), shared by agent and gateway.
 * Field names are snake_case because they are part of the public JSON API.
 */
import type { SplitGroupInfo, SplitMode } from "./split.js";

export type BackendName = "cuda" | "rocm" | "metal" | "vulkan" | "sycl" | "cpu";

/** What one persistent server is pinned to. */
export interface DeviceRef {
  /** `gpu:0`, `gpu:1`, … or `cpu:0`. */
  id: string;
  backend: BackendName;
  /** Index in the backend's own numbering, used for pinning. */
  index: number;
  uuid?: string;
  name: string;
}

/** One measurement of a device. For the CPU, memory is the machine's RAM. */
export interface DeviceMetrics {
  vram_total_mb: number;
  vram_used_mb: number;
  vram_free_mb: number;
  utilization_pct?: number;
  temperature_c?: number;
  power_w?: number;
}

export type ServerState = "stopped" | "starting" | "ready" | "stopping" | "failed";

/** Live state of a node (SPEC §7.4). */
export type LiveState = "client" | "standby" | "loading" | "serving";

export interface HostCapabilities {
  hostname: string;
  os: string;
  os_release: string;
  arch: string;
  cpu_model: string;
  cpu_cores: number;
  memory_total_mb: number;
  memory_free_mb: number;
  agent_version: string;
  engine: string;
  engine_version: string | null;
}

export interface ServerFailure {
  message: string;
  exit_code: number | null;
  signal: string | null;
  /** Last lines of the server's stderr before it failed. */
  stderr_tail: string[];
  at: string;
}

export interface ServerInfo {
  state: ServerState;
  model_id: string | null;
  pid: number | null;
  port: number | null;
  started_at: string | null;
  ready_at: string | null;
  restarts: number;
  consecutive_failures: number;
  /** When the next start may happen after repeated crashes (exponential backoff). */
  next_attempt_at: string | null;
}

export interface QueueInfo {
  in_flight: number;
  pending: number;
  limit: number;
  /**
   * When a request last started or ended on the device (ISO 8601), null before the first:
   * how every gateway tells how long a node has been idle (SPEC §11 idle sleep). Absent from
   * older agents.
   */
  last_active_at?: string | null;
}

/**
 * Longest server output line kept in a log tail, in characters: tails travel in every
 * heartbeat, whose size the gateway bounds. The agent's own log keeps whole lines.
 */
export const LOG_LINE_MAX_CHARS = 512;

export interface DeviceInventory {
  ref: DeviceRef;
  metrics: DeviceMetrics | null;
  /** Memory the agent counts as taken by the model its server holds (estimate). */
  vram_reserved_mb: number;
  server: ServerInfo;
  queue: QueueInfo;
  last_error: ServerFailure | null;
  /** Last lines of the server's output, newest last. */
  log_tail: string[];
}

export interface ModelInventory {
  id: string;
  path: string;
  roles: string[];
  size_bytes: number | null;
  /** Devices whose server has this model (starting or ready). */
  loaded_on: string[];
  /** Whether it may be split across nodes (SPEC §12); absent from older agents: `never`. */
  split?: SplitMode;
  split_max_nodes?: number;
  /** Requests one server of the model runs at once (its slots); absent from older agents. */
  parallel?: number;
}

export interface NodeInventory {
  node_id: string;
  hostname: string;
  state: LiveState;
  /** Refusing new requests while admitted ones finish (drain, or shutting down). */
  draining: boolean;
  capabilities: HostCapabilities;
  backend: BackendName;
  engine: string;
  devices: DeviceInventory[];
  models: ModelInventory[];
  /** Models this node serves with others, as host or worker (SPEC §12). */
  split_groups: SplitGroupInfo[];
}
