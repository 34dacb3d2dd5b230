import { clientSignal } from "../../core/http/client-signal.js";
import { reportProcessing } from "../../core/http/processing.js";
import { parseJsonObject, readBody, readOptionalJsonObject } from "../../core/http/read-body.js";
import { sendJson } from "../../core/http/respond.js";
import type { RequestContext, RouteSpec } from "../../core/http/route-table.js";
import { checkOpenAIRequest, OPENAI_ENDPOINTS } from "../../core/proxy/openai-request.js";
import type { OpenAIEndpoint } from "../../core/proxy/openai-request.js";
import { AGENT_PATHS } from "../../protocol/paths.js";
import type { AgentApi } from "./agent-api.js";
import { deviceArg } from "./arguments.js";
import { NODE_ADMIN_ROUTES } from "./node-admin-routes.js";

type AgentRoute = RouteSpec<AgentApi>;

/** The agent's HTTP API (SPEC §7.1) as a route table: parse, call the agent, answer. */
export const AGENT_ROUTES: readonly AgentRoute[] = [
  {
    method: "GET",
    path: "/healthz",
    public: true,
    handle: (_agent, { res }) => sendJson(res, 200, { status: "ok" }),
  },
  { method: "GET", path: "/metrics", handle: (agent, ctx) => serveMetrics(agent, ctx) },
  {
    method: "GET",
    path: "/v1/models",
    handle: (agent, { res }) => sendJson(res, 200, agent.models()),
  },
  ...OPENAI_ENDPOINTS.map((endpoint): AgentRoute => ({
    method: "POST",
    path: endpoint,
    handle: (agent, ctx) => serveOpenAI(agent, endpoint, ctx),
  })),
  {
    method: "GET",
    path: AGENT_PATHS.inventory,
    handle: (agent, { res }) => sendJson(res, 200, agent.inventory()),
  },
  {
    method: "POST",
    path: AGENT_PATHS.load,
    handle: loadModel,
  },
  {
    method: "POST",
    path: AGENT_PATHS.drain,
    handle: (agent, { res }) => sendJson(res, 200, agent.drain()),
  },
  {
    method: "POST",
    path: AGENT_PATHS.resume,
    handle: (agent, { res }) => sendJson(res, 200, agent.resume()),
  },
  {
    method: "POST",
    path: AGENT_PATHS.unload,
    handle: async (agent, { res, params }) =>
      sendJson(res, 200, await agent.unload(params.id ?? "", clientSignal(res))),
  },
  ...NODE_ADMIN_ROUTES,
];

/** An OpenAI request: counted and admitted, read and checked, then served. */
async function serveOpenAI(
  agent: AgentApi,
  endpoint: OpenAIEndpoint,
  { req, res }: RequestContext,
): Promise<void> {
  const request = agent.inference.begin(endpoint, res);
  // Queued, loading a model or generating an unstreamed answer, it sends nothing for a while.
  reportProcessing(req, res);
  const raw = await readBody(req, agent.maxBodyBytes);
  const { model } = checkOpenAIRequest(endpoint, parseJsonObject(raw));
  await request.serve(raw, model);
}

async function serveMetrics(agent: AgentApi, { res }: RequestContext): Promise<void> {
  const { contentType, text } = await agent.scrapeMetrics();
  res.writeHead(200, { "Content-Type": contentType });
  res.end(text);
}

/** `POST /v1/node/models/{id}/load` with optional `{device}`: answers once the server is ready. */
async function loadModel(agent: AgentApi, { req, res, params }: RequestContext): Promise<void> {
  const body = await readOptionalJsonObject(req, agent.maxBodyBytes);
  sendJson(res, 200, await agent.load(params.id ?? "", deviceArg(body), clientSignal(res)));
}
