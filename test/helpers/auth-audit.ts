/**
 * The auth audit shared by test/auth-routes.test.ts and the chaos scenario "auth enumeration".
 * Every route of the agent and of the gateway, listed from their route tables, is called
 * without credentials and with a wrong bearer token: each answers 401 `invalid_api_key` with
 * the error alone, except the public ones, which must hold no fleet data. A sample is called
 * with the right credentials (so the 401s are not those of a broken setup), and the logs of
 * both processes are searched for the secrets.
 */
import { randomBytes } from "node:crypto";
import { AGENT_ROUTES } from "../../src/agent/http/agent-routes.js";
import type { Route, RouteInfo } from "../../src/core/http/route-table.js";
import { CONSOLE_ROUTES } from "../../src/gateway/http/console-assets.js";
import { GATEWAY_ROUTES } from "../../src/gateway/http/gateway-routes.js";
import type { NodeInventory } from "../../src/protocol/inventory.js";
import type { OperationStatus } from "../../src/protocol/operations.js";
import type { StatusResponse } from "../../src/protocol/registry.js";

export const AUDIT_MODEL = "audit-stories";
const KEY_NAME = "audit-client";
const WAKEABLE_ID = "audit-wakeable";
/** Routes known to carry no fleet data: the probe, and the console's static files. */
const PUBLIC_ROUTES = new Set(["GET /healthz", "GET /", "GET /console/:file"]);
/** Shorter values (a host name such as "vm") would match the console's script by chance. */
const MIN_DATA_LENGTH = 6;
const REQUEST_TIMEOUT_MS = 10_000;

export interface ListedRoute {
  method: Route["method"];
  path: string;
  /** `public`, `token` (the agent's auth_token), or the gateway's access kind. */
  access: string;
}

const listed = (route: RouteInfo): ListedRoute => ({
  method: route.method,
  path: route.path,
  access: route.public ? "public" : (route.access ?? "token"),
});

/** Every route of the agent, from its route table (only handlers touch the agent). */
export function agentRouteList(): ListedRoute[] {
  return AGENT_ROUTES.map(listed);
}

/** Every route of the gateway, console files included, from the tables it serves. */
export function gatewayRouteList(): ListedRoute[] {
  return [...GATEWAY_ROUTES, ...CONSOLE_ROUTES].map(listed);
}

export interface AuditSecrets {
  authToken: string;
  joinToken: string;
  adminKey: string;
  clientKey: string;
}

export interface AuditSetup {
  secrets: AuditSecrets;
  nodeId: string;
  gatewayConfig: Record<string, unknown>;
  agentConfig: Record<string, unknown>;
  /** Registers the agent with the gateway, heartbeating every second. */
  agentArgs(gatewayUrl: string): string[];
}

/** Fresh secrets for one run and the configs that set every kind of credential. */
export function auditSetup(model: Record<string, unknown>): AuditSetup {
  const secret = (kind: string) => `${kind}-${randomBytes(16).toString("hex")}`;
  const secrets = {
    authToken: secret("agent-token"),
    joinToken: secret("join-token"),
    adminKey: secret("admin-key"),
    clientKey: secret("client-key"),
  };
  const nodeId = `audit-node-${randomBytes(4).toString("hex")}`;
  return {
    secrets,
    nodeId,
    gatewayConfig: {
      log_level: "debug",
      heartbeat_interval_s: 1,
      join_token: secrets.joinToken,
      admin_key: secrets.adminKey,
      api_keys: [{ name: KEY_NAME, key: secrets.clientKey, models: ["*"] }],
      wakeable: [{ id: WAKEABLE_ID, models: [AUDIT_MODEL] }],
    },
    agentConfig: {
      log_level: "debug",
      node_id: nodeId,
      hostname: `audit-host-${randomBytes(4).toString("hex")}`,
      auth_token: secrets.authToken,
      models: [{ ...model, model_id: AUDIT_MODEL }],
    },
    agentArgs: (gatewayUrl) => [
      "--dispatcher-url",
      gatewayUrl,
      "--join-token",
      secrets.joinToken,
      "--heartbeat-interval",
      "1",
    ],
  };
}

/** What a check found: failures, and how many of them expose data or a secret. */
export class Findings {
  readonly failures: string[] = [];
  leaks = 0;

  fail(what: string): void {
    this.failures.push(what);
  }

  leak(what: string): void {
    this.leaks++;
    this.failures.push(`leak: ${what}`);
  }

  add(other: Findings): void {
    this.failures.push(...other.failures);
    this.leaks += other.leaks;
  }
}

export interface RouteAudit {
  routes: number;
  public: number;
  /** Protected routes that answered 401 `invalid_api_key`, with no data, to every probe. */
  unauthorized: number;
  findings: Findings;
}

/** What the fleet really holds: secrets to present, path parameters, data to look for. */
export interface Known {
  secrets: AuditSecrets;
  /** Path parameter values by the segment before them (`nodes/:id`) or by name (`:op_id`). */
  params: Record<string, string>;
  /** Labelled values no answer without credentials may contain. */
  data: [label: string, value: string][];
}

/** `/api/nodes/:id/commands/:command` with real values; a parameter with none fails loudly. */
export function fillPath(path: string, params: Known["params"]): string {
  const segments = path.split("/");
  return segments
    .map((segment, i) => {
      if (!segment.startsWith(":")) return segment;
      const value = params[`${segments[i - 1]}/${segment}`] ?? params[segment];
      if (value === undefined) throw new Error(`no value for ${segment} of ${path} in the audit`);
      return encodeURIComponent(value);
    })
    .join("/");
}

/** Calls every route without credentials, with a wrong bearer token, and with the wrong kind. */
export async function auditRoutes(
  baseUrl: string,
  routes: ListedRoute[],
  known: Known,
): Promise<RouteAudit> {
  const findings = new Findings();
  let unauthorized = 0;
  for (const route of routes) {
    const isPublic = route.access === "public";
    if (isPublic && !PUBLIC_ROUTES.has(`${route.method} ${route.path}`))
      findings.fail(`${route.method} ${route.path} is public but not known to hold no fleet data`);
    let refused = true;
    for (const probe of probesFor(route.access, known.secrets)) {
      const found = await probeRoute(baseUrl, route, probe, known);
      findings.add(found);
      refused &&= found.failures.length === 0;
    }
    if (!isPublic && refused) unauthorized++;
  }
  const publicCount = routes.filter((route) => route.access === "public").length;
  return { routes: routes.length, public: publicCount, unauthorized, findings };
}

interface Probe {
  label: string;
  headers: Record<string, string>;
}

const SECRET_LABELS: Record<keyof AuditSecrets, string> = {
  authToken: "agent's auth_token",
  joinToken: "join token",
  adminKey: "admin key",
  clientKey: "client key",
};
const SECRET_KEYS = Object.keys(SECRET_LABELS) as (keyof AuditSecrets)[];

/** Which of the fleet's secrets each kind of route accepts; any other must get a 401 too. */
const ACCEPTED: Record<string, (keyof AuditSecrets)[]> = {
  token: ["authToken"],
  join: ["joinToken"],
  // The admin key doubles as a client key with no limits (the console's playground).
  client: ["clientKey", "adminKey"],
  read: ["clientKey", "adminKey"],
  admin: ["adminKey"],
};

/** No credentials, a made-up token, and every secret of the fleet the route does not accept. */
function probesFor(access: string, secrets: AuditSecrets): Probe[] {
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const probes: Probe[] = [
    { label: "no credentials", headers: {} },
    { label: "a wrong bearer token", headers: bearer(`wrong-${randomBytes(16).toString("hex")}`) },
  ];
  if (access === "public") return probes;
  const accepted = ACCEPTED[access];
  if (!accepted) throw new Error(`routes of access "${access}" are unknown to the audit`);
  for (const key of SECRET_KEYS) {
    if (!accepted.includes(key))
      probes.push({ label: `the ${SECRET_LABELS[key]}`, headers: bearer(secrets[key]) });
  }
  return probes;
}

// A body a handler would act on, so a route that skips authorization shows it.
const PROBE_BODY = JSON.stringify({
  model: AUDIT_MODEL,
  model_id: AUDIT_MODEL,
  messages: [{ role: "user", content: "Hi" }],
  prompt: "Hi",
  input: "Hi",
});

/**
 * One call of a route: a public one answers 200, any other 401 with the error alone, and
 * neither names fleet data in its headers or body.
 */
async function probeRoute(
  baseUrl: string,
  route: ListedRoute,
  probe: Probe,
  known: Known,
): Promise<Findings> {
  const findings = new Findings();
  const what = `${route.method} ${route.path} (${route.access}, ${probe.label})`;
  const answer = await fetch(`${baseUrl}${fillPath(route.path, known.params)}`, {
    method: route.method,
    headers: { ...probe.headers, "content-type": "application/json" },
    ...(route.method === "GET" ? {} : { body: PROBE_BODY }),
    redirect: "manual",
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  }).catch((err: Error) => err);
  if (answer instanceof Error) {
    findings.fail(`${what}: ${answer.message}`);
    return findings;
  }
  const isPublic = route.access === "public";
  const expected = isPublic ? 200 : 401;
  if (answer.status !== expected) {
    await answer.body?.cancel();
    const report = `${what}: ${answer.status}, expected ${expected}`;
    if (answer.ok) findings.leak(report);
    else findings.fail(report);
    return findings;
  }
  const text = await answer.text();
  const headerText = [...answer.headers].map(([key, value]) => `${key}: ${value}`).join("\n");
  for (const label of dataIn(`${headerText}\n${text}`, known.data))
    findings.leak(`${what}: the answer holds the ${label}`);
  if (!isPublic && !isAuthError(text))
    findings.fail(`${what}: not an OpenAI-shaped invalid_api_key error alone: ${text}`);
  return findings;
}

/** The OpenAI-shaped `invalid_api_key` error of core/errors.ts, with nothing beside it. */
function isAuthError(text: string): boolean {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return false;
  }
  const { error, ...rest } = (body ?? {}) as { error?: Record<string, unknown> };
  if (Object.keys(rest).length > 0 || !error) return false;
  return (
    Object.keys(error).sort().join() === "code,message,param,type" &&
    typeof error.message === "string" &&
    error.type === "authentication_error" &&
    error.code === "invalid_api_key" &&
    error.param === null
  );
}

/** The labels of the values that occur in `text`. */
function dataIn(text: string, data: Known["data"]): string[] {
  return [...new Set(data.filter(([, value]) => text.includes(value)).map(([label]) => label))];
}

function secretData(secrets: AuditSecrets): Known["data"] {
  return SECRET_KEYS.map((key) => [SECRET_LABELS[key], secrets[key]]);
}

/** Log lines that hold a secret, per process. */
export function auditLogs(
  secrets: AuditSecrets,
  logs: Record<string, readonly string[]>,
): Findings {
  const findings = new Findings();
  for (const [process, lines] of Object.entries(logs)) {
    lines.forEach((line, i) => {
      for (const label of dataIn(line, secretData(secrets)))
        findings.leak(`${process} log line ${i + 1} holds the ${label}`);
    });
  }
  return findings;
}

/**
 * The right credentials get answers: the agent registered, a command through the gateway
 * started an operation on it, reads work, and none of them shows a secret. Returns what the
 * fleet holds, for {@link auditRoutes}.
 */
export async function auditAuthorized(
  setup: AuditSetup,
  agentUrl: string,
  gatewayUrl: string,
): Promise<{ findings: Findings; known: Known }> {
  const { secrets, nodeId } = setup;
  const findings = new Findings();
  const noSecrets = (what: string, text: string) => {
    for (const label of dataIn(text, secretData(secrets)))
      findings.leak(`${what}: the answer holds the ${label}`);
  };
  /** One call that must answer `expected`; returns the body. */
  const call = async (
    url: string,
    secret: string,
    expected = 200,
    body?: unknown,
  ): Promise<string> => {
    const method = body === undefined ? "GET" : "POST";
    const answer = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const text = await answer.text();
    const what = `${method} ${new URL(url).pathname}`;
    if (answer.status !== expected)
      findings.fail(`${what} with credentials: ${answer.status}, expected ${expected}: ${text}`);
    noSecrets(what, text);
    return text;
  };
  const agent = (path: string) => call(`${agentUrl}${path}`, secrets.authToken);
  const admin = (path: string, expected?: number, body?: unknown) =>
    call(`${gatewayUrl}${path}`, secrets.adminKey, expected, body);
  const client = (path: string, body?: unknown) =>
    call(`${gatewayUrl}${path}`, secrets.clientKey, 200, body);

  await until(async () => {
    const { peers } = JSON.parse(await admin("/api/status")) as StatusResponse;
    return peers.some((peer) => peer.node_id === nodeId);
  }, "the agent to register with the gateway");

  // An operation both processes know, so `:op_id` routes are probed with a real one.
  const command = `/api/nodes/${nodeId}/commands/backend.install`;
  const { op_id: opId } = JSON.parse(await admin(command, 202, { model_id: AUDIT_MODEL })) as {
    op_id: string;
  };
  await until(async () => {
    const operation = JSON.parse(await agent(`/v1/node/operations/${opId}`)) as OperationStatus;
    return operation.state !== "running";
  }, `operation ${opId} to finish`);
  const operation = JSON.parse(await admin(`/api/operations/${opId}`)) as OperationStatus;
  if (operation.state !== "succeeded") findings.fail(`backend.install ${operation.state}`);

  const inventory = JSON.parse(await agent("/v1/node/inventory")) as NodeInventory;
  if (inventory.node_id !== nodeId) findings.fail(`the inventory names ${inventory.node_id}`);
  if (!(await agent("/v1/models")).includes(AUDIT_MODEL))
    findings.fail("the agent's /v1/models lacks the model");
  const status = JSON.parse(await admin("/api/status")) as StatusResponse;
  await client("/api/status");
  await admin("/api/nodes");
  if (!(await admin("/api/keys")).includes(KEY_NAME))
    findings.fail("/api/keys lacks the configured key");
  if (!(await client("/v1/models")).includes(AUDIT_MODEL))
    findings.fail("the gateway's /v1/models lacks the model");
  // Through the gateway, which presents the agent's token on the way.
  await client("/v1/chat/completions", {
    model: AUDIT_MODEL,
    messages: [{ role: "user", content: "Hi" }],
    max_tokens: 2,
  });
  noSecrets("GET /api/events", await firstEvent(`${gatewayUrl}/api/events`, secrets.adminKey));

  const peer = status.peers.find((candidate) => candidate.node_id === nodeId);
  const logLines = inventory.devices.flatMap((device) => device.log_tail);
  if (logLines.length === 0) findings.fail("the agent's servers logged nothing to look for");
  const data: Known["data"] = [
    ...secretData(secrets),
    ["node id", nodeId],
    ["agent's host name", inventory.hostname],
    ["reported host name", peer?.hostname ?? ""],
    ["agent URL", peer?.agent_url ?? ""],
    ["key name", KEY_NAME],
    ["model id", AUDIT_MODEL],
    ...inventory.models.map((model): [string, string] => ["model path", model.path]),
    ...logLines.map((line): [string, string] => ["server log line", line.trim()]),
  ];
  return {
    findings,
    known: {
      secrets,
      params: {
        "nodes/:id": nodeId,
        "models/:id": AUDIT_MODEL,
        "wakeable/:id": WAKEABLE_ID,
        ":op_id": opId,
        ":command": "backend.list",
        ":name": KEY_NAME,
        ":file": "app.js",
      },
      data: data.filter(([, value]) => value.length >= MIN_DATA_LENGTH),
    },
  };
}

/** The first server-sent event of `url`, then the stream is left. */
async function firstEvent(url: string, key: string): Promise<string> {
  const controller = new AbortController();
  const answer = await fetch(url, {
    headers: { authorization: `Bearer ${key}` },
    signal: controller.signal,
  });
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of answer.body ?? []) {
    text += decoder.decode(chunk as Uint8Array, { stream: true });
    if (text.includes("\n\n")) break;
  }
  controller.abort();
  return text;
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface FleetAudit {
  agent: RouteAudit;
  gateway: RouteAudit;
  authorized: Findings;
}

/** The whole audit of a running agent (registered) and gateway made from {@link auditSetup}. */
export async function auditFleet(
  setup: AuditSetup,
  agentUrl: string,
  gatewayUrl: string,
): Promise<FleetAudit> {
  const { findings, known } = await auditAuthorized(setup, agentUrl, gatewayUrl);
  return {
    agent: await auditRoutes(agentUrl, agentRouteList(), known),
    gateway: await auditRoutes(gatewayUrl, await gatewayRouteList(), known),
    authorized: findings,
  };
}
