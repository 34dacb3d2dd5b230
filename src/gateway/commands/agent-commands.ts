import { request } from "undici";
import { RoleMeshError } from "../../core/errors.js";
import { upstreamFailure } from "../../core/proxy/relay.js";
import type { NodeRecord } from "../registry/node-registry.js";

/** What a command asks of an agent's admin API (SPEC §7.1). */
interface AgentCall {
  path: string;
  body: Record<string, unknown>;
}

const COMMAND_TIMEOUT_MS = 15 * 60_000;

/** Node commands the gateway can send, each as a call to the agent. */
const COMMANDS: Record<string, (args: Record<string, unknown>) => AgentCall> = {
  "model.load": (args) => ({
    path: `/v1/node/models/${encodeURIComponent(modelId(args))}/load`,
    body: typeof args.device === "string" ? { device: args.device } : {},
  }),
  "model.unload": (args) => ({
    path: `/v1/node/models/${encodeURIComponent(modelId(args))}/unload`,
    body: {},
  }),
  "node.drain": () => ({ path: "/v1/node/drain", body: {} }),
  "node.resume": () => ({ path: "/v1/node/resume", body: {} }),
};

export const COMMAND_NAMES = Object.keys(COMMANDS);

/**
 * Sends a command to one node over HTTP, with the node's own bearer token, and returns the
 * agent's answer. Errors keep the agent's code (SPEC §7).
 */
export async function sendCommand(
  record: NodeRecord,
  command: string,
  args: Record<string, unknown>,
): Promise<unknown> {
  const build = COMMANDS[command];
  if (!build) {
    throw new RoleMeshError(
      "invalid_request",
      `unknown command "${command}" (known: ${COMMAND_NAMES.join(", ")})`,
    );
  }
  const call = build(args);
  let answer;
  try {
    answer = await request(`${record.agentUrl}${call.path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(record.authToken ? { authorization: `Bearer ${record.authToken}` } : {}),
      },
      body: JSON.stringify(call.body),
      headersTimeout: COMMAND_TIMEOUT_MS,
      bodyTimeout: COMMAND_TIMEOUT_MS,
    });
  } catch (err) {
    throw new RoleMeshError(
      "upstream_error",
      `node ${record.nodeId} did not answer: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const text = await answer.body.text();
  if (answer.statusCode >= 400) throw upstreamFailure(answer.statusCode, text);
  return JSON.parse(text) as unknown;
}

function modelId(args: Record<string, unknown>): string {
  if (typeof args.model_id !== "string" || args.model_id === "") {
    throw new RoleMeshError("invalid_request", "model_id: expected the id of a model on the node", {
      param: "model_id",
    });
  }
  return args.model_id;
}
