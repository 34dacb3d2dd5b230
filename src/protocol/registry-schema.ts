/**
 * The registry messages as the gateway accepts them (SPEC §7.2): every field of the wire types,
 * each string and list bounded. Fields the gateway does not know are dropped, as Kubernetes'
 * API server prunes unknown fields: a newer agent still registers with an older gateway, and
 * nothing unchecked is kept. The schemas are built from the types of `registry.ts` and
 * `inventory.ts` (see `objectOf`), so a field added there must be added here.
 */
import { z } from "zod";
import type {
  DeviceInventory,
  DeviceMetrics,
  DeviceRef,
  HostCapabilities,
  ModelInventory,
  QueueInfo,
  ServerFailure,
  ServerInfo,
} from "./inventory.js";
import { LOG_LINE_MAX_CHARS } from "./inventory.js";
import type {
  DeregisterRequest,
  HeartbeatRequest,
  NodeSnapshot,
  RegisterRequest,
} from "./registry.js";
import { NODE_ID_PATTERN } from "./registry.js";
import type { SplitGroupInfo, SplitMember, TunnelEndpoint } from "./split.js";
import { FINGERPRINT_PATTERN, SPLIT_MODES } from "./split.js";

/** Names: host names, versions, model and device ids, roles, timestamps. */
const NAME_MAX = 256;
const PATH_MAX = 4096;
const URL_MAX = 2048;
const SECRET_MAX = 4096;
const MESSAGE_MAX = 2048;
const LABELS_MAX = 64;
const LABEL_KEY_MAX = 128;
const LABEL_VALUE_MAX = 1024;
const DEVICES_MAX = 64;
const MODELS_MAX = 1024;
const ROLES_MAX = 64;
/** The agent keeps 200 lines per device (SPEC §4); heartbeats carry fewer. */
const LOG_LINES_MAX = 200;
/** Most nodes in one split group that a message may list. */
const SPLIT_NODES_MAX = 64;

/** A schema for each field of `T`, optional ones included, and for nothing else. */
type Shape<T> = { [K in keyof T]-?: z.ZodType<T[K]> };

/** An object schema that covers exactly the fields of `T`; unknown fields are dropped. */
function objectOf<T>(shape: Shape<T>): z.ZodType<T> {
  return z.object(shape) as unknown as z.ZodType<T>;
}

const name = z.string().max(NAME_MAX);
const names = (max: number) => z.array(name).max(max);
const logLines = z.array(z.string().max(LOG_LINE_MAX_CHARS)).max(LOG_LINES_MAX);
const liveState = z.enum(["client", "standby", "loading", "serving"]);
const nodeId = z.string().regex(NODE_ID_PATTERN, "letters, digits, . _ and - only, at most 64");

const deviceRef = objectOf<DeviceRef>({
  id: name,
  backend: z.enum(["cuda", "rocm", "metal", "vulkan", "sycl", "cpu"]),
  index: z.number(),
  uuid: name.optional(),
  name,
});

const deviceMetrics = objectOf<DeviceMetrics>({
  vram_total_mb: z.number(),
  vram_used_mb: z.number(),
  vram_free_mb: z.number(),
  utilization_pct: z.number().optional(),
  temperature_c: z.number().optional(),
  power_w: z.number().optional(),
});

const serverInfo = objectOf<ServerInfo>({
  state: z.enum(["stopped", "starting", "ready", "stopping", "failed"]),
  model_id: name.nullable(),
  pid: z.number().nullable(),
  port: z.number().nullable(),
  started_at: name.nullable(),
  ready_at: name.nullable(),
  restarts: z.number(),
  consecutive_failures: z.number(),
  next_attempt_at: name.nullable(),
});

const serverFailure = objectOf<ServerFailure>({
  message: z.string().max(MESSAGE_MAX),
  exit_code: z.number().nullable(),
  signal: name.nullable(),
  stderr_tail: logLines,
  at: name,
});

const queueInfo = objectOf<QueueInfo>({
  in_flight: z.number(),
  pending: z.number(),
  last_active_at: z.string().max(64).nullable().optional(),
  limit: z.number(),
});

const deviceInventory = objectOf<DeviceInventory>({
  ref: deviceRef,
  metrics: deviceMetrics.nullable(),
  vram_reserved_mb: z.number(),
  server: serverInfo,
  queue: queueInfo,
  last_error: serverFailure.nullable(),
  log_tail: logLines,
});

const modelInventory = objectOf<ModelInventory>({
  id: name,
  path: z.string().max(PATH_MAX),
  roles: names(ROLES_MAX),
  size_bytes: z.number().nullable(),
  loaded_on: names(DEVICES_MAX),
  split: z.enum(SPLIT_MODES).optional(),
  split_max_nodes: z.int().min(1).max(SPLIT_NODES_MAX).optional(),
  parallel: z.int().min(1).max(1024).optional(),
});

const splitGroup = objectOf<SplitGroupInfo>({
  model_id: name,
  role: z.enum(["host", "worker"]),
  host: nodeId,
  members: z
    .array(
      objectOf<SplitMember>({
        node_id: nodeId,
        fraction: z.number().min(0).max(1),
        free_mb: z.number(),
      }),
    )
    .max(SPLIT_NODES_MAX),
  links: z
    .array(
      objectOf<SplitGroupInfo["links"][number]>({
        node_id: nodeId,
        state: z.enum(["connecting", "connected", "failed"]),
        bytes_sent: z.number(),
        bytes_received: z.number(),
      }),
    )
    .max(SPLIT_NODES_MAX),
});

const snapshot = objectOf<NodeSnapshot>({
  state: liveState,
  draining: z.boolean().optional(),
  devices: z.array(deviceInventory).max(DEVICES_MAX),
  models: z.array(modelInventory).max(MODELS_MAX),
  split_groups: z.array(splitGroup).max(MODELS_MAX).optional(),
});

/** A node's tunnel as it registers it; `split.host` arguments carry the same. */
export const TunnelEndpointSchema = objectOf<TunnelEndpoint>({
  port: z.int().min(1).max(65535),
  fingerprint: z.string().regex(FINGERPRINT_PATTERN, "a SHA-256 fingerprint"),
});

const capabilities = objectOf<HostCapabilities>({
  hostname: name,
  os: name,
  os_release: name,
  arch: name,
  cpu_model: name,
  cpu_cores: z.number(),
  memory_total_mb: z.number(),
  memory_free_mb: z.number(),
  agent_version: name,
  engine: name,
  engine_version: name.nullable(),
});

const labels = z
  .record(z.string().max(LABEL_KEY_MAX), z.string().max(LABEL_VALUE_MAX))
  .refine((value) => Object.keys(value).length <= LABELS_MAX, `at most ${LABELS_MAX} labels`);

const startedAt = z.number();
const sequence = z.int().min(0);
const nodeSecret = z.string().max(SECRET_MAX).optional();

export const RegisterRequestSchema = objectOf<RegisterRequest>({
  node_id: nodeId,
  started_at: startedAt,
  sequence,
  node_secret: nodeSecret,
  hostname: name,
  agent_url: z.url({ protocol: /^https?$/ }).max(URL_MAX),
  version: name,
  capabilities,
  labels,
  auth_token: z.string().max(SECRET_MAX).optional(),
  tunnel: TunnelEndpointSchema.optional(),
  snapshot,
});

export const HeartbeatRequestSchema = objectOf<HeartbeatRequest>({
  node_id: nodeId,
  started_at: startedAt,
  sequence,
  node_secret: nodeSecret,
  snapshot,
});

export const DeregisterRequestSchema = objectOf<DeregisterRequest>({
  node_id: nodeId,
  started_at: startedAt,
  sequence,
  node_secret: nodeSecret,
});
