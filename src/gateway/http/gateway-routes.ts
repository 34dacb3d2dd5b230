import { z } from "zod";
import { RoleMeshError } from "../../core/errors.js";
import { parseRequest } from "../../core/validation.js";
import { clientSignal } from "../../core/http/client-signal.js";
import { parseJsonObject, readBody, readOptionalJsonObject } from "../../core/http/read-body.js";
import { sendJson } from "../../core/http/respond.js";
import type { RequestContext, RouteSpec } from "../../core/http/route-table.js";
import { checkOpenAIRequest, OPENAI_ENDPOINTS } from "../../core/proxy/openai-request.js";
import type { OpenAIEndpoint } from "../../core/proxy/openai-request.js";
import type {
  DeregisterRequest,
  HeartbeatRequest,
  RegisterRequest,
} from "../../protocol/registry.js";
import { streamEvents } from "../../core/http/sse.js";
import type { EventStream } from "../../core/http/sse.js";
import { WakeableEntrySchema } from "../wakeable/wakeable-entries.js";
import { REGISTRY_PATHS } from "../../protocol/paths.js";
import { NODE_ID_PATTERN } from "../../protocol/registry.js";
import type { Access, GatewayApi } from "./gateway-api.js";
import { MIB } from "../../core/units.js";

/** Registration bodies are descriptors, not prompts: a smaller limit is plenty. */
const REGISTRY_BODY_LIMIT = 2 * MIB;
type GatewayRoute = RouteSpec<GatewayApi, Access>;

/** The gateway's HTTP API (SPEC §7.2, §7.3) as a route table: parse, call the gateway, answer. */
export const GATEWAY_ROUTES: readonly GatewayRoute[] = [
  {
    method: "GET",
    path: "/healthz",
    public: true,
    handle: (_gateway, { res }) => sendJson(res, 200, { status: "ok" }),
  },
  {
    method: "POST",
    path: REGISTRY_PATHS.register,
    access: "join",
    handle: register,
  },
  {
    method: "POST",
    path: REGISTRY_PATHS.heartbeat,
    access: "join",
    handle: heartbeat,
  },
  {
    method: "POST",
    path: REGISTRY_PATHS.deregister,
    access: "join",
    handle: deregister,
  },
  {
    method: "GET",
    path: "/v1/models",
    access: "client",
    handle: (gateway, { res }) => sendJson(res, 200, gateway.models()),
  },
  ...OPENAI_ENDPOINTS.map((endpoint): GatewayRoute => ({
    method: "POST",
    path: endpoint,
    access: "client",
    handle: (gateway, ctx) => forward(gateway, endpoint, ctx),
  })),
  {
    method: "GET",
    path: "/api/status",
    access: "read",
    handle: (gateway, { res }) => sendJson(res, 200, gateway.status()),
  },
  {
    method: "GET",
    path: "/api/events",
    access: "read",
    handle: events,
  },
  {
    method: "GET",
    path: "/api/nodes",
    access: "admin",
    handle: (gateway, { res }) => sendJson(res, 200, { nodes: gateway.status().peers }),
  },
  {
    method: "POST",
    path: "/api/nodes/:id/commands/:command",
    access: "admin",
    handle: nodeCommand,
  },
  {
    method: "GET",
    path: "/api/operations/:op_id",
    access: "admin",
    handle: operation,
  },
  {
    method: "DELETE",
    path: "/api/models/:id",
    access: "admin",
    handle: deleteModel,
  },
  {
    method: "GET",
    path: "/api/wakeable",
    access: "admin",
    handle: (gateway, { res }) => sendJson(res, 200, { wakeable: gateway.wakeableStatus() }),
  },
  {
    method: "POST",
    path: "/api/wakeable",
    access: "admin",
    handle: putWakeable,
  },
  {
    method: "DELETE",
    path: "/api/wakeable/:id",
    access: "admin",
    handle: deleteWakeable,
  },
  {
    method: "GET",
    path: "/api/keys",
    access: "admin",
    handle: (gateway, { res }) => sendJson(res, 200, { keys: gateway.keys.list() }),
  },
  {
    method: "POST",
    path: "/api/keys",
    access: "admin",
    handle: createKey,
  },
  {
    method: "DELETE",
    path: "/api/keys/:name",
    access: "admin",
    handle: deleteKey,
  },
];

async function readJson<T>(ctx: RequestContext, limit: number, schema: z.ZodType<T>): Promise<T> {
  return parseRequest(schema, parseJsonObject(await readBody(ctx.req, limit)));
}

// Descriptors are checked for the fields routing relies on; the rest is passed through as sent.
const order = {
  node_id: z.string().regex(NODE_ID_PATTERN, "letters, digits, . _ and - only, at most 64"),
  started_at: z.number(),
  sequence: z.int().min(0),
};
const snapshot = z.looseObject({
  state: z.enum(["client", "standby", "loading", "serving"]),
  devices: z.array(z.looseObject({ queue: z.looseObject({}), server: z.looseObject({}) })),
  models: z.array(
    z.looseObject({ id: z.string(), roles: z.array(z.string()), loaded_on: z.array(z.string()) }),
  ),
});
const RegisterSchema = z.looseObject({
  ...order,
  hostname: z.string(),
  agent_url: z.url({ protocol: /^https?$/ }),
  version: z.string(),
  capabilities: z.looseObject({}),
  labels: z.record(z.string(), z.string()),
  auth_token: z.string().optional(),
  snapshot,
}) as unknown as z.ZodType<RegisterRequest>;
const HeartbeatSchema = z.looseObject({
  ...order,
  snapshot,
}) as unknown as z.ZodType<HeartbeatRequest>;
const DeregisterSchema = z.looseObject(order) as unknown as z.ZodType<DeregisterRequest>;

async function register(gateway: GatewayApi, ctx: RequestContext): Promise<void> {
  const request = await readJson(ctx, REGISTRY_BODY_LIMIT, RegisterSchema);
  sendJson(ctx.res, 200, gateway.registry.register(request, ctx.req.socket.remoteAddress));
}

async function heartbeat(gateway: GatewayApi, ctx: RequestContext): Promise<void> {
  const request = await readJson(ctx, REGISTRY_BODY_LIMIT, HeartbeatSchema);
  sendJson(ctx.res, 200, gateway.registry.heartbeat(request));
}

async function deregister(gateway: GatewayApi, ctx: RequestContext): Promise<void> {
  const request = await readJson(ctx, REGISTRY_BODY_LIMIT, DeregisterSchema);
  sendJson(ctx.res, 200, gateway.registry.deregister(request));
}

/** An OpenAI request: read and check it, admit the client's key, hand it to the forwarder. */
async function forward(
  gateway: GatewayApi,
  endpoint: OpenAIEndpoint,
  ctx: RequestContext,
): Promise<void> {
  const { req, res } = ctx;
  const raw = await readBody(req, gateway.maxBodyBytes);
  const body = parseJsonObject(raw);
  const request = checkOpenAIRequest(endpoint, body);
  if (!request.model)
    throw new RoleMeshError("invalid_request", "'model' is required", { param: "model" });
  gateway.admitClient(req, request.model);
  await gateway.forwarder.forward(
    { endpoint, name: request.model, raw, body },
    res,
    clientSignal(res),
  );
}

/** `GET /api/events`: the current status, then every registry change, as SSE. */
function events(gateway: GatewayApi, { res }: RequestContext): void {
  streamEvents(res).send({ type: "status", status: gateway.status() });
  gateway.addEventClient(res);
}

/**
 * `POST /api/nodes/{id}/commands/{command}` (SPEC §10): the node's result (200), or 202 with
 * the `op_id` of long work, followed at `GET /api/operations/{op_id}`.
 */
async function nodeCommand(gateway: GatewayApi, ctx: RequestContext): Promise<void> {
  const command = ctx.params.command ?? "";
  const args = await readOptionalJsonObject(ctx.req, MIB);
  const answer = await gateway.commands.send(ctx.params.id ?? "", command, args, {
    by: gateway.adminName(ctx.req),
  });
  const body =
    answer.status === 202
      ? { node_id: answer.node_id, command, ...(answer.body as object) }
      : { node_id: answer.node_id, command, result: answer.body };
  sendJson(ctx.res, answer.status, body);
}

/** `GET /api/operations/{op_id}`: the status, or with `Accept: text/event-stream` every change. */
async function operation(gateway: GatewayApi, { req, res, params }: RequestContext): Promise<void> {
  const opId = params.op_id ?? "";
  if (!String(req.headers.accept ?? "").includes("text/event-stream")) {
    sendJson(res, 200, await gateway.commands.operation(opId));
    return;
  }
  // The stream starts with the first status, so an unknown operation is still a plain 404.
  let events: EventStream | undefined;
  try {
    await gateway.commands.follow(
      opId,
      (status) => {
        events ??= streamEvents(res);
        events.send(status);
      },
      clientSignal(res),
    );
  } finally {
    events?.end();
  }
}

/** `DELETE /api/models/{id}`: `model.delete` on every node that has the model. */
async function deleteModel(
  gateway: GatewayApi,
  { req, res, params }: RequestContext,
): Promise<void> {
  const modelId = params.id ?? "";
  const results = await gateway.commands.deleteEverywhere(modelId, {
    by: gateway.adminName(req),
  });
  const failed = results.filter((result) => result.status >= 400);
  if (failed.length === 0) {
    sendJson(res, 200, { model_id: modelId, results });
    return;
  }
  const error = new RoleMeshError(
    "upstream_error",
    `model "${modelId}" was not deleted on ${failed.map((result) => result.node_id).join(", ")}`,
  );
  sendJson(res, error.status, { ...error.toBody(), model_id: modelId, results });
}

const NewKeySchema = z.strictObject({
  name: z.string().min(1).max(100),
  models: z.array(z.string().min(1)).optional(),
  requests_per_minute: z.int().min(0).optional(),
});

async function createKey(gateway: GatewayApi, ctx: RequestContext): Promise<void> {
  const request = await readJson(ctx, MIB, NewKeySchema);
  const { key, info } = await gateway.keys.create(request);
  gateway.log.info({ key_name: info.name, models: info.models }, "client key created");
  sendJson(ctx.res, 201, { ...info, key });
}

async function deleteKey(gateway: GatewayApi, { res, params }: RequestContext): Promise<void> {
  const name = params.name ?? "";
  if (!(await gateway.keys.delete(name)))
    throw new RoleMeshError("not_found", `no key named "${name}"`);
  gateway.log.info({ key_name: name }, "client key deleted");
  sendJson(res, 200, { deleted: name });
}

async function putWakeable(gateway: GatewayApi, ctx: RequestContext): Promise<void> {
  const entry = await readJson(ctx, MIB, WakeableEntrySchema);
  await gateway.wakeable.put(entry);
  gateway.log.info({ wakeable_id: entry.id, by: "admin" }, "wakeable entry stored");
  const stored = gateway.wakeableStatus().find((candidate) => candidate.id === entry.id);
  sendJson(ctx.res, 201, stored);
}

async function deleteWakeable(gateway: GatewayApi, { res, params }: RequestContext): Promise<void> {
  const id = params.id ?? "";
  if (!(await gateway.wakeable.delete(id)))
    throw new RoleMeshError("not_found", `no wakeable entry "${id}"`);
  gateway.log.info({ wakeable_id: id, by: "admin" }, "wakeable entry deleted");
  sendJson(res, 200, { deleted: id });
}
