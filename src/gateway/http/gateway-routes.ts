import { z } from "zod";
import { RoleMeshError, toRoleMeshError } from "../../core/errors.js";
import { sendMetrics } from "../../core/metrics.js";
import { parseRequest } from "../../core/validation.js";
import { ClientGoneError, clientSignal } from "../../core/http/client-signal.js";
import { parseJsonObject, readBody, readOptionalJsonObject } from "../../core/http/read-body.js";
import { sendJson } from "../../core/http/respond.js";
import type { RequestContext, RouteSpec } from "../../core/http/route-table.js";
import { checkOpenAIRequest, OPENAI_ENDPOINTS } from "../../core/proxy/openai-request.js";
import type { OpenAIEndpoint } from "../../core/proxy/openai-request.js";
import { streamEvents } from "../../core/http/sse.js";
import type { EventStream } from "../../core/http/sse.js";
import { WakeableEntrySchema } from "../wakeable/wakeable-entries.js";
import { REGISTRY_PATHS } from "../../protocol/paths.js";
import type { WakeAnswer } from "../../protocol/wakeable.js";
import {
  DeregisterRequestSchema,
  HeartbeatRequestSchema,
  RegisterRequestSchema,
} from "../../protocol/registry-schema.js";
import type { RegistryMessage } from "../registry/registry-service.js";
import type { Access, GatewayApi } from "./gateway-api.js";
import { MIB } from "../../core/units.js";

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
    // Per-key and per-node figures are the admin's: a Prometheus scraper presents the admin key.
    method: "GET",
    path: "/metrics",
    access: "admin",
    handle: (gateway, { res }) => sendMetrics(res, gateway.metrics.registry),
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
    handle: (gateway, { req, res }) => sendJson(res, 200, gateway.statusFor(req)),
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
    path: "/api/operations/:op_id",
    access: "admin",
    handle: async (gateway, { req, res, params }) => {
      const answer = await gateway.commands.cancel(params.op_id ?? "", {
        by: gateway.adminName(req),
      });
      sendJson(res, answer.status, answer.body);
    },
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
    method: "POST",
    path: "/api/wakeable/:id/wake",
    access: "admin",
    handle: wakeNow,
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

async function register(gateway: GatewayApi, ctx: RequestContext): Promise<void> {
  const request = await readDescriptor(gateway, ctx, "register", RegisterRequestSchema);
  sendJson(ctx.res, 200, gateway.registry.register(request, ctx.req.socket.remoteAddress));
}

async function heartbeat(gateway: GatewayApi, ctx: RequestContext): Promise<void> {
  const request = await readDescriptor(gateway, ctx, "heartbeat", HeartbeatRequestSchema);
  sendJson(ctx.res, 200, gateway.registry.heartbeat(request));
}

async function deregister(gateway: GatewayApi, ctx: RequestContext): Promise<void> {
  const request = await readDescriptor(gateway, ctx, "deregister", DeregisterRequestSchema);
  sendJson(ctx.res, 200, gateway.registry.deregister(request));
}

/**
 * A registry message's body, within `max_descriptor_kb` and its schema (unknown fields
 * dropped, every string and list bounded). A body refused here counts in the metrics as the
 * registry's own refusals do.
 */
async function readDescriptor<T>(
  gateway: GatewayApi,
  ctx: RequestContext,
  message: RegistryMessage,
  schema: z.ZodType<T>,
): Promise<T> {
  try {
    if (gateway.registryOverNats) {
      // Registered here, a node would exist on this gateway alone: the fleet's registry is NATS.
      throw new RoleMeshError(
        "invalid_request",
        "this gateway keeps its registry in NATS: give the agent nats_url instead of dispatcher_base_url",
      );
    }
    return await readJson(ctx, gateway.maxDescriptorBytes, schema);
  } catch (err) {
    gateway.metrics.observeRegistryMessage(message, toRoleMeshError(err).code);
    throw err;
  }
}

/**
 * An OpenAI request: read and check it, admit the client's key, hand it to the forwarder;
 * counted in the metrics however it ends.
 */
async function forward(
  gateway: GatewayApi,
  endpoint: OpenAIEndpoint,
  ctx: RequestContext,
): Promise<void> {
  const { req, res } = ctx;
  const started = performance.now();
  const signal = clientSignal(res);
  let name: string | undefined;
  let outcome = "ok";
  let leave: (() => void) | undefined;
  try {
    leave = gateway.admitRequest();
    const raw = await readBody(req, gateway.maxBodyBytes);
    const body = parseJsonObject(raw);
    const request = checkOpenAIRequest(endpoint, body);
    if (!request.model)
      throw new RoleMeshError("invalid_request", "'model' is required", { param: "model" });
    name = request.model;
    gateway.admitClient(req, name);
    const result = await gateway.forwarder.forward({ endpoint, name, raw, body }, res, signal);
    if (!result.complete) outcome = signal.aborted ? "aborted" : "upstream_error";
  } catch (err) {
    outcome =
      err instanceof ClientGoneError || signal.aborted ? "aborted" : toRoleMeshError(err).code;
    throw err;
  } finally {
    leave?.();
    const seconds = (performance.now() - started) / 1000;
    gateway.observeRequest(req, { endpoint, name, outcome, seconds });
  }
}

/**
 * `GET /api/events`: the current status, then every registry change, as SSE (503 when
 * `max_event_clients` streams are open).
 */
function events(gateway: GatewayApi, { req, res }: RequestContext): void {
  gateway.addEventClient(req, res);
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

/** `POST /api/wakeable/{id}/wake`: starts the wake (202), unless it is awake or waking. */
async function wakeNow(gateway: GatewayApi, { req, res, params }: RequestContext): Promise<void> {
  const by = gateway.adminName(req);
  const wakeable = await gateway.waker.wake(params.id ?? "", `manual (${by})`, true);
  const answer: WakeAnswer = { wakeable };
  sendJson(res, 202, answer);
}

async function deleteWakeable(gateway: GatewayApi, { res, params }: RequestContext): Promise<void> {
  const id = params.id ?? "";
  if (!(await gateway.wakeable.delete(id)))
    throw new RoleMeshError("not_found", `no wakeable entry "${id}"`);
  gateway.log.info({ wakeable_id: id, by: "admin" }, "wakeable entry deleted");
  sendJson(res, 200, { deleted: id });
}
