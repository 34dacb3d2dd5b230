import { RoleMeshError } from "../../core/errors.js";
import { readOptionalJsonObject } from "../../core/http/read-body.js";
import { sendJson } from "../../core/http/respond.js";
import { streamEvents } from "../../core/http/sse.js";
import type { RequestContext, Route } from "../../core/http/router.js";
import type { OperationStatus } from "../../protocol/operations.js";
import type { NodeAgent } from "../node-agent.js";
import type { Operation } from "../operations/operations.js";
import { MIB } from "../../core/units.js";

/**
 * The agent's side of node commands (SPEC §7.1 admin, §10): model install and delete,
 * operations with progress, backends (the per-device servers), and stop.
 */
export function nodeAdminRoutes(agent: NodeAgent): Route[] {
  return [
    {
      method: "POST",
      path: "/v1/node/models/install",
      handle: async ({ req, res }) => {
        const answer = agent.modelManager.install(await readJson(req));
        sendJson(res, "op_id" in answer ? 202 : 200, answer);
      },
    },
    {
      method: "DELETE",
      path: "/v1/node/models/:id",
      handle: async ({ res, params }) =>
        sendJson(res, 200, await agent.modelManager.delete(params.id ?? "")),
    },
    {
      method: "GET",
      path: "/v1/node/operations/:op_id",
      handle: (ctx) => showOperation(agent, ctx),
    },
    {
      method: "POST",
      path: "/v1/node/stop",
      handle: ({ res }) => {
        sendJson(res, 202, { node_id: agent.nodeId, stopping: true });
        res.once("finish", () => agent.requestStop());
      },
    },
    {
      method: "GET",
      path: "/v1/node/backends",
      handle: ({ res }) => sendJson(res, 200, backends(agent)),
    },
    {
      method: "POST",
      path: "/v1/node/backends/install",
      handle: async ({ req, res }) => installBackend(agent, await readJson(req), res),
    },
    {
      method: "POST",
      path: "/v1/node/backends/stop",
      handle: async ({ req, res }) => {
        const body = await readJson(req);
        const modelId = optionalModelId(body);
        const devices = serversOf(agent, modelId);
        // Fire-and-forget (SPEC §10): each server stops once its device has drained.
        void Promise.all(
          (modelId ? [modelId] : runningModels(agent)).map((id) => agent.unload(id)),
        ).catch((err: unknown) => agent.log.warn({ err }, "backend.stop failed"));
        sendJson(res, 202, { stopping: devices });
      },
    },
    {
      method: "POST",
      path: "/v1/node/backends/upgrade",
      handle: async ({ res }) => sendJson(res, 200, { stopped: await stopAll(agent) }),
    },
    {
      method: "POST",
      path: "/v1/node/backends/delete",
      handle: async ({ res }) =>
        sendJson(res, 200, {
          stopped: await stopAll(agent),
          // The agent runs engines it finds (llama-server on PATH, the bundled embedded one);
          // it never installed their files, so it removes none.
          removed_files: [],
        }),
    },
  ];
}

const readJson = (req: RequestContext["req"]) => readOptionalJsonObject(req, MIB);

/** `GET /v1/node/operations/{op_id}`: the status, or with `Accept: text/event-stream` every change until done. */
function showOperation(agent: NodeAgent, { req, res, params }: RequestContext): void {
  const operation = agent.operations.get(params.op_id ?? "");
  if (!operation) throw new RoleMeshError("not_found", `no operation "${params.op_id}"`);
  if (!String(req.headers.accept ?? "").includes("text/event-stream")) {
    sendJson(res, 200, operation.status());
    return;
  }
  streamOperation(operation, res);
}

/** Streams an operation's status as SSE: now, on every change, and ends when it is done. */
function streamOperation(operation: Operation, res: RequestContext["res"]): void {
  const events = streamEvents(res);
  const send = (status: OperationStatus) => {
    events.send(status);
    if (status.state !== "running") {
      operation.off("change", send);
      events.end();
    }
  };
  operation.on("change", send);
  res.once("close", () => operation.off("change", send));
  send(operation.status());
}

/** The servers of the node, one per device (`backend.list`). */
function backends(agent: NodeAgent) {
  return {
    node_id: agent.nodeId,
    engine: agent.inventory().engine,
    backends: agent.scheduler.devices.map((device) => {
      const server = device.supervisor.info();
      return {
        device: device.ref.id,
        ...server,
        address: server.port ? `http://127.0.0.1:${server.port}` : null,
      };
    }),
  };
}

/**
 * `backend.install`: a server for the model, ready. Answers at once with its address when one
 * runs already; otherwise starts it as an operation (a repeat joins it).
 */
function installBackend(
  agent: NodeAgent,
  body: Record<string, unknown>,
  res: RequestContext["res"],
): void {
  const modelId = optionalModelId(body);
  if (!modelId) {
    throw new RoleMeshError("invalid_request", "model_id: expected the id of a model on the node", {
      param: "model_id",
    });
  }
  const model = agent.resolveModel(modelId);
  const device = deviceArg(body);
  const ready = backends(agent).backends.find(
    (server) =>
      server.model_id === model.model_id &&
      server.state === "ready" &&
      (device === undefined || server.device === device),
  );
  if (ready) {
    sendJson(res, 200, ready);
    return;
  }
  const started = agent.operations.start(
    "backend.install",
    `backend.install:${model.model_id}:${device ?? "auto"}`,
    async (operation) => {
      operation.report({ phase: "starting server" });
      const loaded = await agent.load(model.model_id, device);
      const port = loaded.server.port;
      return { ...loaded, address: port ? `http://127.0.0.1:${port}` : null };
    },
  );
  sendJson(res, 202, started);
}

function optionalModelId(body: Record<string, unknown>): string | undefined {
  if (body.model_id === undefined) return undefined;
  if (typeof body.model_id !== "string" || body.model_id === "") {
    throw new RoleMeshError("invalid_request", "model_id: expected a model id", {
      param: "model_id",
    });
  }
  return body.model_id;
}

function runningModels(agent: NodeAgent): string[] {
  const ids = agent.scheduler.devices.map((device) => device.supervisor.activeModel?.model_id);
  return [...new Set(ids.filter((id): id is string => id !== undefined))];
}

function serversOf(agent: NodeAgent, modelId: string | undefined): string[] {
  return agent.scheduler.devices
    .filter((device) => {
      const active = device.supervisor.activeModel?.model_id;
      return active !== undefined && (modelId === undefined || active === modelId);
    })
    .map((device) => device.ref.id);
}

async function stopAll(agent: NodeAgent): Promise<string[]> {
  const devices = serversOf(agent, undefined);
  await Promise.all(runningModels(agent).map((id) => agent.unload(id)));
  return devices;
}

/** The optional `device` argument of load commands. */
export function deviceArg(body: Record<string, unknown>): string | undefined {
  if (body.device !== undefined && typeof body.device !== "string") {
    throw new RoleMeshError("invalid_request", 'device: expected a device id such as "gpu:0"', {
      param: "device",
    });
  }
  return body.device;
}
