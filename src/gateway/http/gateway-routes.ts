import { z } from "zod";
import { RoleMeshError } from "../../core/errors.js";
import { parseRequest } from "../../core/validation.js";
import { clientSignal } from "../../core/http/client-signal.js";
import { parseJsonObject, readBody, readOptionalJsonObject } from "../../core/http/read-body.js";
import { sendJson } from "../../core/http/respond.js";
import type { RequestContext, Route } from "../../core/http/router.js";
import { checkOpenAIRequest, OPENAI_ENDPOINTS } from "../../core/proxy/openai-request.js";
import type { OpenAIEndpoint } from "../../core/proxy/openai-request.js";
import { relay, UpstreamUnreachableError } from "../../core/proxy/relay.js";
import type {
  DeregisterRequest,
  HeartbeatRequest,
  RegisterRequest,
  RegisterResponse,
} from "../../protocol/registry.js";
import { streamEvents } from "../../core/http/sse.js";
import type { EventStream } from "../../core/http/sse.js";
import { keyAllows } from "../auth/client-keys.js";
import { WakeableEntrySchema } from "../wakeable/wakeable-entries.js";
import type { Access, Gateway } from "../gateway.js";
import { leaseSeconds } from "../config/gateway-config.js";
import { fleetModels, rankNodes } from "../router/route-picker.js";
import { MIB } from "../../core/units.js";

/** Registration bodies are descriptors, not prompts: a smaller limit is plenty. */
const REGISTRY_BODY_LIMIT = 2 * MIB;
/** Codes by which a node says "not me, not now": the next node is tried. */
const TRY_ELSEWHERE = new Set(["queue_full", "no_capacity", "shutting_down"]);

type GatewayRoute = Route & { access?: Access };

/** The gateway's HTTP API (SPEC §7.2, §7.3) as a route table. */
export function gatewayRoutes(gateway: Gateway): GatewayRoute[] {
  return [
    {
      method: "GET",
      path: "/healthz",
      public: true,
      handle: ({ res }) => sendJson(res, 200, { status: "ok" }),
    },
    {
      method: "POST",
      path: "/v1/nodes/register",
      access: "join",
      handle: (ctx) => register(gateway, ctx),
    },
    {
      method: "POST",
      path: "/v1/nodes/heartbeat",
      access: "join",
      handle: (ctx) => heartbeat(gateway, ctx),
    },
    {
      method: "POST",
      path: "/v1/nodes/deregister",
      access: "join",
      handle: (ctx) => deregister(gateway, ctx),
    },
    {
      method: "GET",
      path: "/v1/models",
      access: "client",
      handle: ({ res }) => sendJson(res, 200, listModels(gateway)),
    },
    ...OPENAI_ENDPOINTS.map((endpoint): GatewayRoute => ({
      method: "POST",
      path: endpoint,
      access: "client",
      handle: (ctx) => forward(gateway, endpoint, ctx),
    })),
    {
      method: "GET",
      path: "/api/status",
      access: "read",
      handle: ({ res }) => sendJson(res, 200, gateway.status()),
    },
    { method: "GET", path: "/api/events", access: "read", handle: (ctx) => events(gateway, ctx) },
    {
      method: "GET",
      path: "/api/nodes",
      access: "admin",
      handle: ({ res }) => sendJson(res, 200, { nodes: gateway.status().peers }),
    },
    {
      method: "POST",
      path: "/api/nodes/:id/commands/:command",
      access: "admin",
      handle: (ctx) => nodeCommand(gateway, ctx),
    },
    {
      method: "GET",
      path: "/api/operations/:op_id",
      access: "admin",
      handle: (ctx) => operation(gateway, ctx),
    },
    {
      method: "DELETE",
      path: "/api/models/:id",
      access: "admin",
      handle: (ctx) => deleteModel(gateway, ctx),
    },
    {
      method: "GET",
      path: "/api/wakeable",
      access: "admin",
      handle: ({ res }) => sendJson(res, 200, { wakeable: gateway.wakeableStatus() }),
    },
    {
      method: "POST",
      path: "/api/wakeable",
      access: "admin",
      handle: (ctx) => putWakeable(gateway, ctx),
    },
    {
      method: "DELETE",
      path: "/api/wakeable/:id",
      access: "admin",
      handle: (ctx) => deleteWakeable(gateway, ctx),
    },
    {
      method: "GET",
      path: "/api/keys",
      access: "admin",
      handle: ({ res }) => sendJson(res, 200, { keys: gateway.keys.list() }),
    },
    {
      method: "POST",
      path: "/api/keys",
      access: "admin",
      handle: (ctx) => createKey(gateway, ctx),
    },
    {
      method: "DELETE",
      path: "/api/keys/:name",
      access: "admin",
      handle: (ctx) => deleteKey(gateway, ctx),
    },
  ];
}

async function readJson<T>(ctx: RequestContext, limit: number, schema: z.ZodType<T>): Promise<T> {
  return parseRequest(schema, parseJsonObject(await readBody(ctx.req, limit)));
}

// Descriptors are checked for the fields routing relies on; the rest is passed through as sent.
const order = {
  node_id: z.string().min(1).max(200),
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

async function register(gateway: Gateway, ctx: RequestContext): Promise<void> {
  const request = await readJson(ctx, REGISTRY_BODY_LIMIT, RegisterSchema);
  gateway.registry.register(request);
  const answer: RegisterResponse = {
    node_id: request.node_id,
    heartbeat_interval_s: gateway.config.heartbeat_interval_s,
    lease_s: leaseSeconds(gateway.config),
  };
  sendJson(ctx.res, 200, answer);
}

async function heartbeat(gateway: Gateway, ctx: RequestContext): Promise<void> {
  const request = await readJson(ctx, REGISTRY_BODY_LIMIT, HeartbeatSchema);
  const outcome = gateway.registry.heartbeat(request);
  if (outcome === "unknown") {
    // The agent registers again at once when it reads this (a gateway restart heals itself).
    throw new RoleMeshError("unknown_node", `node ${request.node_id} is not registered`);
  }
  sendJson(ctx.res, 200, { accepted: outcome === "accepted" });
}

async function deregister(gateway: Gateway, ctx: RequestContext): Promise<void> {
  const request = await readJson(ctx, REGISTRY_BODY_LIMIT, DeregisterSchema);
  sendJson(ctx.res, 200, { removed: gateway.registry.deregister(request) });
}

function listModels(gateway: Gateway) {
  const created = Math.floor(gateway.startedAt.getTime() / 1000);
  return {
    object: "list",
    data: fleetModels(gateway.registry.live()).map((entry) => ({
      id: entry.id,
      object: "model",
      created,
      owned_by: "rolemesh",
      kind: entry.kind,
      node_count: entry.nodes.length,
      nodes: entry.nodes,
    })),
  };
}

/**
 * Routes one OpenAI request: ranks the nodes that serve the model or role, and tries them in
 * turn while a node fails before sending any byte (unreachable, or busy), up to max_attempts.
 */
async function forward(
  gateway: Gateway,
  endpoint: OpenAIEndpoint,
  ctx: RequestContext,
): Promise<void> {
  const { req, res } = ctx;
  const raw = await readBody(req, gateway.config.max_body_mb * MIB);
  const body = parseJsonObject(raw);
  const request = checkOpenAIRequest(endpoint, body);
  if (!request.model)
    throw new RoleMeshError("invalid_request", "'model' is required", { param: "model" });
  const name = request.model;
  checkClientKey(gateway, ctx, name);
  const choices = rankNodes(gateway.registry.live(), name, gateway.nextTurn());
  if (choices.length === 0) {
    throw new RoleMeshError("model_not_found", `no live node offers model or role "${name}"`, {
      param: "model",
    });
  }
  const signal = clientSignal(res);
  let lastFailure: RoleMeshError | undefined;
  let everyNodeFull = true;
  for (const { record, modelId } of choices.slice(0, gateway.config.max_attempts)) {
    const forwarded =
      modelId === name ? raw : Buffer.from(JSON.stringify({ ...body, model: modelId }));
    record.inFlight++;
    try {
      await relay({
        upstream: gateway.poolFor(record.agentUrl),
        path: endpoint,
        body: forwarded,
        res,
        signal,
        deadlineMs: gateway.config.request_timeout_s * 1000,
        requestHeaders: record.authToken ? { authorization: `Bearer ${record.authToken}` } : {},
        responseHeaders: { "x-rolemesh-node": record.nodeId, "x-rolemesh-model": modelId },
      });
      gateway.registry.connectSucceeded(record.nodeId);
      return;
    } catch (err) {
      if (res.headersSent || !(err instanceof RoleMeshError)) throw err;
      const unreachable = err instanceof UpstreamUnreachableError;
      if (unreachable) gateway.registry.connectFailed(record.nodeId);
      else if (!TRY_ELSEWHERE.has(err.code)) throw err;
      // A node that cannot be reached is news; one that is busy is backpressure doing its job,
      // thousands of times a second under overload.
      gateway.log[unreachable ? "warn" : "debug"](
        { node_id: record.nodeId, code: err.code, reason: err.message },
        "trying the next node",
      );
      lastFailure = err;
      everyNodeFull &&= err.code === "queue_full";
    } finally {
      record.inFlight--;
    }
  }
  // Nodes that are only busy give the client the same answer one node would: come back shortly.
  throw new RoleMeshError(
    everyNodeFull ? "queue_full" : "no_capacity",
    `no node could take the request for "${name}" (last: ${lastFailure?.message ?? "none"})`,
    { retryAfterS: lastFailure?.retryAfterS ?? 1 },
  );
}

function checkClientKey(gateway: Gateway, ctx: RequestContext, name: string): void {
  const key = gateway.clientKey(ctx.req);
  if (!key) return;
  if (!keyAllows(key, name)) {
    throw new RoleMeshError("forbidden", `key "${key.name}" may not use "${name}"`, {
      param: "model",
    });
  }
  const verdict = gateway.rateLimiter.take(key.name, key.requests_per_minute);
  if (!verdict.allowed) {
    throw new RoleMeshError(
      "rate_limited",
      `key "${key.name}" is over its limit of ${key.requests_per_minute} requests per minute`,
      { retryAfterS: verdict.retryAfterS },
    );
  }
}

/** `GET /api/events`: the current status, then every registry change, as SSE. */
function events(gateway: Gateway, { res }: RequestContext): void {
  streamEvents(res).send({ type: "status", status: gateway.status() });
  gateway.addEventClient(res);
}

/**
 * `POST /api/nodes/{id}/commands/{command}` (SPEC §10): the node's result (200), or 202 with
 * the `op_id` of long work, followed at `GET /api/operations/{op_id}`.
 */
async function nodeCommand(gateway: Gateway, ctx: RequestContext): Promise<void> {
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
async function operation(gateway: Gateway, { req, res, params }: RequestContext): Promise<void> {
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
async function deleteModel(gateway: Gateway, { req, res, params }: RequestContext): Promise<void> {
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

async function createKey(gateway: Gateway, ctx: RequestContext): Promise<void> {
  const request = await readJson(ctx, MIB, NewKeySchema);
  const { key, info } = await gateway.keys.create(request);
  gateway.log.info({ key_name: info.name, models: info.models }, "client key created");
  sendJson(ctx.res, 201, { ...info, key });
}

async function deleteKey(gateway: Gateway, { res, params }: RequestContext): Promise<void> {
  const name = params.name ?? "";
  if (!(await gateway.keys.delete(name)))
    throw new RoleMeshError("not_found", `no key named "${name}"`);
  gateway.log.info({ key_name: name }, "client key deleted");
  sendJson(res, 200, { deleted: name });
}

async function putWakeable(gateway: Gateway, ctx: RequestContext): Promise<void> {
  const entry = await readJson(ctx, MIB, WakeableEntrySchema);
  await gateway.wakeable.put(entry);
  gateway.log.info({ wakeable_id: entry.id, by: "admin" }, "wakeable entry stored");
  const stored = gateway.wakeableStatus().find((candidate) => candidate.id === entry.id);
  sendJson(ctx.res, 201, stored);
}

async function deleteWakeable(gateway: Gateway, { res, params }: RequestContext): Promise<void> {
  const id = params.id ?? "";
  if (!(await gateway.wakeable.delete(id)))
    throw new RoleMeshError("not_found", `no wakeable entry "${id}"`);
  gateway.log.info({ wakeable_id: id, by: "admin" }, "wakeable entry deleted");
  sendJson(res, 200, { deleted: id });
}
