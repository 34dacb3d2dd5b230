import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../../core/logger.js";
import type { FleetModelEntry, ModelList } from "../../protocol/models.js";
import type { StatusResponse } from "../../protocol/registry.js";
import type { WakeableStatus } from "../../protocol/wakeable.js";
import type { ClientKeys } from "../auth/client-keys.js";
import type { NodeCommands } from "../commands/node-commands.js";
import type { Forwarder } from "../forwarding/forwarder.js";
import type { GatewayMetrics, RequestRecord } from "../metrics/gateway-metrics.js";
import type { RegistryService } from "../registry/registry-service.js";
import type { WakeableEntries } from "../wakeable/wakeable-entries.js";
import type { Waker } from "../wakeable/waker.js";

/** Which credentials a gateway route needs. */
export type Access = "join" | "client" | "read" | "admin";

/** How an OpenAI request ended, as its route saw it; `name` is the model asked for, if read. */
export type RequestEnd = Omit<RequestRecord, "model" | "key"> & { name: string | undefined };

/** What the gateway's HTTP routes need of the gateway: they parse, call this, and answer. */
export interface GatewayApi {
  readonly log: Logger;
  /** Largest OpenAI request body accepted (`max_body_mb`). */
  readonly maxBodyBytes: number;
  /** Largest register or heartbeat body accepted (`max_descriptor_kb`). */
  readonly maxDescriptorBytes: number;
  readonly metrics: GatewayMetrics;
  readonly registry: RegistryService;
  /** The registry is the NATS bucket (SPEC §8): agents register there, not over HTTP. */
  readonly registryOverNats: boolean;
  readonly forwarder: Forwarder;
  readonly commands: NodeCommands;
  readonly keys: ClientKeys;
  readonly wakeable: WakeableEntries;
  readonly waker: Waker;
  /** The whole status, as the admin reads it. */
  status(): StatusResponse;
  /** The status as the sender of `req` may read it: a client key sees no server output. */
  statusFor(req: IncomingMessage): StatusResponse;
  /** Every model id and role live in the fleet (`GET /v1/models`). */
  models(): ModelList<FleetModelEntry>;
  wakeableStatus(): WakeableStatus[];
  /** Checks the request's client key may use `name` now: 403 `forbidden`, 429 `rate_limited`. */
  admitClient(req: IncomingMessage, name: string): void;
  /** Who sent an admin request, for the log. */
  adminName(req: IncomingMessage): string;
  /**
   * Admits an OpenAI request as work a shutdown waits for (503 `shutting_down` once it began);
   * call the function it returns when the request ends.
   */
  admitRequest(): () => void;
  /** Counts an OpenAI request that ended in the metrics. */
  observeRequest(req: IncomingMessage, end: RequestEnd): void;
  /**
   * Starts an SSE client of `/api/events` with the current status and keeps it until it
   * leaves; 503 `queue_full` when too many are open.
   */
  addEventClient(req: IncomingMessage, res: ServerResponse): void;
}
