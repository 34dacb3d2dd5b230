import { clientSignal } from "../../core/http/client-signal.js";
import { parseJsonObject, readBody, readOptionalJsonObject } from "../../core/http/read-body.js";
import { sendJson } from "../../core/http/respond.js";
import type { RequestContext, Route } from "../../core/http/router.js";
import { checkOpenAIRequest, OPENAI_ENDPOINTS } from "../../core/proxy/openai-request.js";
import type { OpenAIEndpoint } from "../../core/proxy/openai-request.js";
import { relay, UpstreamUnreachableError } from "../../core/proxy/relay.js";
import type { NodeAgent } from "../node-agent.js";
import { deviceArg, nodeAdminRoutes } from "./node-admin-routes.js";
import { MIB } from "../../core/units.js";

/** The agent's HTTP API (SPEC §7.1) as a route table. */
export function agentRoutes(agent: NodeAgent): Route[] {
  return [
    {
      method: "GET",
      path: "/healthz",
      public: true,
      handle: ({ res }) => sendJson(res, 200, { status: "ok" }),
    },
    { method: "GET", path: "/metrics", handle: (ctx) => serveMetrics(agent, ctx) },
    {
      method: "GET",
      path: "/v1/models",
      handle: ({ res }) => sendJson(res, 200, listModels(agent)),
    },
    ...OPENAI_ENDPOINTS.map((endpoint): Route => ({
      method: "POST",
      path: endpoint,
      handle: (ctx) => serveOpenAI(agent, endpoint, ctx),
    })),
    {
      method: "GET",
      path: "/v1/node/inventory",
      handle: ({ res }) => sendJson(res, 200, agent.inventory()),
    },
    { method: "POST", path: "/v1/node/models/:id/load", handle: (ctx) => loadModel(agent, ctx) },
    {
      method: "POST",
      path: "/v1/node/drain",
      handle: ({ res }) => {
        agent.drain();
        sendJson(res, 200, drainState(agent));
      },
    },
    {
      method: "POST",
      path: "/v1/node/resume",
      handle: ({ res }) => {
        agent.resume();
        sendJson(res, 200, drainState(agent));
      },
    },
    {
      method: "POST",
      path: "/v1/node/models/:id/unload",
      handle: (ctx) => unloadModel(agent, ctx),
    },
    ...nodeAdminRoutes(agent),
  ];
}

function listModels(agent: NodeAgent) {
  const created = Math.floor(Date.now() / 1000);
  return {
    object: "list",
    data: agent.config.models.map((model) => {
      const devices = agent.scheduler.devicesWith(model.model_id);
      return {
        id: model.model_id,
        object: "model",
        created,
        owned_by: "rolemesh",
        roles: model.roles,
        loaded_on: devices.map((device) => device.ref.id),
        state: devices.some((device) => device.supervisor.state === "ready")
          ? "ready"
          : devices.length > 0
            ? "loading"
            : "stopped",
      };
    }),
  };
}

/** Validate, pick a device, wait for a turn and a ready server, relay. */
async function serveOpenAI(
  agent: NodeAgent,
  endpoint: OpenAIEndpoint,
  { req, res }: RequestContext,
): Promise<void> {
  const started = performance.now();
  let modelId = "";
  let firstByteAt: number | undefined;
  res.once("close", () => {
    const status = res.writableFinished ? String(res.statusCode) : "aborted";
    const seconds = (at: number) => (at - started) / 1000;
    const firstByte = firstByteAt === undefined ? undefined : seconds(firstByteAt);
    agent.metrics.observeRequest(endpoint, modelId, status, seconds(performance.now()), firstByte);
  });
  agent.refuseWhileDraining();
  const raw = await readBody(req, agent.config.max_body_mb * MIB);
  const request = checkOpenAIRequest(endpoint, parseJsonObject(raw));
  const model = agent.resolveModel(request.model);
  modelId = model.model_id;
  const device = await agent.chooseDevice(model);
  const signal = clientSignal(res);
  // A server killed a moment ago can still look ready until its exit is noticed: a request
  // it never received waits for that and is served by the restarted server. One it did
  // receive is not sent again: it may be what crashed the server.
  for (let attempt = 1; ; attempt++) {
    let reservation;
    try {
      reservation = await agent.scheduler.reserve(device, model, signal);
    } catch (err) {
      if (signal.aborted) return; // the client left while queued; nobody to answer
      throw err;
    }
    try {
      const result = await relay({
        upstream: reservation.upstream,
        path: endpoint,
        body: raw,
        res,
        signal,
        deadlineMs: agent.config.request_timeout_s * 1000,
        responseHeaders: { "x-rolemesh-node": agent.nodeId, "x-rolemesh-model": model.model_id },
      });
      firstByteAt = result.firstByteAt;
      if (result.complete) device.supervisor.served(reservation.upstream);
      return;
    } catch (err) {
      const retry =
        attempt === 1 &&
        err instanceof UpstreamUnreachableError &&
        err.neverSent &&
        !res.headersSent;
      if (!retry || signal.aborted) throw err;
      agent.log.warn(
        { device: device.ref.id, err: err.message },
        "server unreachable; retrying once",
      );
      await device.supervisor.settled(SERVER_EXIT_GRACE_MS);
    } finally {
      reservation.lease.release();
    }
  }
}

/** How long a refused request waits for the supervisor to notice its server's exit. */
const SERVER_EXIT_GRACE_MS = 2000;

async function serveMetrics(agent: NodeAgent, { res }: RequestContext): Promise<void> {
  const text = await agent.metrics.text();
  res.writeHead(200, { "Content-Type": agent.metrics.contentType });
  res.end(text);
}

/** Whether the node takes requests, and what it still has in hand. */
function drainState(agent: NodeAgent) {
  const queues = agent.scheduler.devices.map((device) => device.queue.info());
  return {
    node_id: agent.nodeId,
    draining: agent.draining,
    in_flight: queues.reduce((sum, queue) => sum + queue.in_flight, 0),
    pending: queues.reduce((sum, queue) => sum + queue.pending, 0),
  };
}

/** `POST /v1/node/models/{id}/load` with optional `{device}`: answers once the server is ready. */
async function loadModel(agent: NodeAgent, { req, res, params }: RequestContext): Promise<void> {
  // agent.load refuses while the node drains.
  const body = await readOptionalJsonObject(req, agent.config.max_body_mb * MIB);
  sendJson(res, 200, await agent.load(params.id ?? "", deviceArg(body), clientSignal(res)));
}

/** `POST /v1/node/models/{id}/unload`: waits for each holding device to drain, then stops its server. */
async function unloadModel(agent: NodeAgent, { res, params }: RequestContext): Promise<void> {
  const model = agent.resolveModel(params.id);
  const unloadedFrom = await agent.unload(model.model_id, clientSignal(res));
  sendJson(res, 200, { model_id: model.model_id, unloaded_from: unloadedFrom });
}
