import { z } from "zod";
import { RoleMeshError } from "../../core/errors.js";
import { readOptionalJsonObject } from "../../core/http/read-body.js";
import { sendJson } from "../../core/http/respond.js";
import { streamEvents } from "../../core/http/sse.js";
import type { RequestContext, RouteSpec } from "../../core/http/route-table.js";
import { MIB } from "../../core/units.js";
import { parseRequest } from "../../core/validation.js";
import {
  MAC_PATTERN,
  sendMagicPacket,
  WOL_DEFAULT_ADDRESS,
  WOL_DEFAULT_PORT,
} from "../../core/wake-on-lan.js";
import type { OperationStatus } from "../../protocol/operations.js";
import type { WakeOnLanArgs } from "../../protocol/wakeable.js";
import type { Operation } from "../operations/operations.js";
import { AGENT_PATHS } from "../../protocol/paths.js";
import type { AgentApi } from "./agent-api.js";
import { deviceArg, modelIdArg } from "./arguments.js";

/** Command arguments are small: a megabyte is plenty. */
const readArguments = (req: RequestContext["req"]) => readOptionalJsonObject(req, MIB);

/** `node.wol`: the packet an awake node sends on its LAN for a sleeping machine (SPEC §11). */
const WakeOnLanArgsSchema: z.ZodType<WakeOnLanArgs> = z.strictObject({
  mac: z.string().regex(MAC_PATTERN, "expected a MAC address such as aa:bb:cc:dd:ee:ff"),
  address: z.ipv4().default(WOL_DEFAULT_ADDRESS),
  port: z.int().min(1).max(65_535).default(WOL_DEFAULT_PORT),
});

/**
 * The agent's side of node commands (SPEC §7.1 admin, §10, §11): model install and delete,
 * operations with progress, backends (the per-device servers), stop, sleep and Wake-on-LAN.
 */
export const NODE_ADMIN_ROUTES: readonly RouteSpec<AgentApi>[] = [
  {
    method: "POST",
    path: AGENT_PATHS.install,
    handle: async (agent, { req, res }) => {
      const answer = await agent.modelManager.install(await readArguments(req));
      sendJson(res, "op_id" in answer ? 202 : 200, answer);
    },
  },
  {
    method: "DELETE",
    path: AGENT_PATHS.model,
    handle: async (agent, { res, params }) =>
      sendJson(res, 200, await agent.modelManager.delete(params.id ?? "")),
  },
  {
    method: "GET",
    path: AGENT_PATHS.operation,
    handle: showOperation,
  },
  {
    method: "DELETE",
    path: AGENT_PATHS.operation,
    handle: cancelOperation,
  },
  {
    method: "POST",
    path: AGENT_PATHS.splitWorker,
    handle: async (agent, { req, res }) =>
      sendJson(res, 200, await agent.split.worker(await readArguments(req))),
  },
  {
    method: "POST",
    path: AGENT_PATHS.splitHost,
    handle: async (agent, { req, res }) =>
      sendJson(res, 200, await agent.split.host(await readArguments(req))),
  },
  {
    method: "POST",
    path: AGENT_PATHS.splitLeave,
    handle: async (agent, { req, res }) =>
      sendJson(res, 200, await agent.split.leave(await readArguments(req))),
  },
  {
    method: "POST",
    path: AGENT_PATHS.stop,
    handle: (agent, { res }) => {
      sendJson(res, 202, { node_id: agent.nodeId, stopping: true });
      res.once("finish", () => agent.requestStop());
    },
  },
  {
    method: "POST",
    path: AGENT_PATHS.sleep,
    handle: (agent, { res }) => {
      const goToSleep = agent.sleep.prepare();
      sendJson(res, 202, { node_id: agent.nodeId, sleeping: true });
      // A suspended machine sends nothing: the answer goes out first. Once accepted, the
      // sleep happens even if the caller has left.
      res.once("close", goToSleep);
    },
  },
  {
    method: "POST",
    path: AGENT_PATHS.wakeOnLan,
    handle: async (agent, { req, res }) => {
      const sent = parseRequest(WakeOnLanArgsSchema, await readArguments(req));
      await sendMagicPacket(sent);
      sendJson(res, 200, { node_id: agent.nodeId, sent });
    },
  },
  {
    method: "GET",
    path: AGENT_PATHS.backends,
    handle: (agent, { res }) => sendJson(res, 200, agent.backends.list()),
  },
  {
    method: "POST",
    path: AGENT_PATHS.backendInstall,
    handle: async (agent, { req, res }) => {
      const body = await readArguments(req);
      const modelId = modelIdArg(body);
      if (!modelId) {
        throw new RoleMeshError(
          "invalid_request",
          "model_id: expected the id of a model on the node",
          { param: "model_id" },
        );
      }
      const answer = agent.backends.install(modelId, deviceArg(body));
      sendJson(res, "op_id" in answer ? 202 : 200, answer);
    },
  },
  {
    method: "POST",
    path: AGENT_PATHS.backendStop,
    handle: async (agent, { req, res }) => {
      const modelId = modelIdArg(await readArguments(req));
      sendJson(res, 202, { stopping: agent.backends.stop(modelId) });
    },
  },
  {
    method: "POST",
    path: AGENT_PATHS.backendUpgrade,
    handle: async (agent, { res }) =>
      sendJson(res, 200, { stopped: await agent.backends.stopAll() }),
  },
  {
    method: "POST",
    path: AGENT_PATHS.backendDelete,
    handle: async (agent, { res }) =>
      sendJson(res, 200, {
        stopped: await agent.backends.stopAll(),
        // The agent runs engines it finds (llama-server on PATH, the bundled embedded one);
        // it never installed their files, so it removes none.
        removed_files: [],
      }),
  },
];

/** How long a cancel waits for the work to stop before it answers 202 (stopping). */
const CANCEL_WAIT_MS = 30_000;

function operationOf(agent: AgentApi, params: RequestContext["params"]): Operation {
  const operation = agent.operations.get(params.op_id ?? "");
  if (!operation) throw new RoleMeshError("not_found", `no operation "${params.op_id}"`);
  return operation;
}

/**
 * `DELETE /v1/node/operations/{op_id}`: cancels; answers 200 once the work has stopped (so the
 * same install can start again at once), or 202 while it is still stopping. An operation that
 * has ended already answers 200 with its final state.
 */
async function cancelOperation(agent: AgentApi, { res, params }: RequestContext): Promise<void> {
  const operation = operationOf(agent, params);
  operation.cancel();
  const ended = await operation.ended(CANCEL_WAIT_MS);
  sendJson(res, ended ? 200 : 202, operation.status());
}

/** `GET /v1/node/operations/{op_id}`: the status, or with `Accept: text/event-stream` every change until done. */
function showOperation(agent: AgentApi, { req, res, params }: RequestContext): void {
  const operation = operationOf(agent, params);
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
