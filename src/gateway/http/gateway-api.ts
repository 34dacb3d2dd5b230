import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../../core/logger.js";
import type { FleetModelEntry, ModelList } from "../../protocol/models.js";
import type { StatusResponse } from "../../protocol/registry.js";
import type { WakeableStatus } from "../../protocol/wakeable.js";
import type { ClientKeys } from "../auth/client-keys.js";
import type { NodeCommands } from "../commands/node-commands.js";
import type { Forwarder } from "../forwarding/forwarder.js";
import type { RegistryService } from "../registry/registry-service.js";
import type { WakeableEntries } from "../wakeable/wakeable-entries.js";

/** Which credentials a gateway route needs. */
export type Access = "join" | "client" | "read" | "admin";

/** What the gateway's HTTP routes need of the gateway: they parse, call this, and answer. */
export interface GatewayApi {
  readonly log: Logger;
  /** Largest OpenAI request body accepted (`max_body_mb`). */
  readonly maxBodyBytes: number;
  readonly registry: RegistryService;
  readonly forwarder: Forwarder;
  readonly commands: NodeCommands;
  readonly keys: ClientKeys;
  readonly wakeable: WakeableEntries;
  status(): StatusResponse;
  /** Every model id and role live in the fleet (`GET /v1/models`). */
  models(): ModelList<FleetModelEntry>;
  wakeableStatus(): WakeableStatus[];
  /** Checks the request's client key may use `name` now: 403 `forbidden`, 429 `rate_limited`. */
  admitClient(req: IncomingMessage, name: string): void;
  /** Who sent an admin request, for the log. */
  adminName(req: IncomingMessage): string;
  /** Keeps an SSE client of `/api/events` until it leaves. */
  addEventClient(res: ServerResponse): void;
}
