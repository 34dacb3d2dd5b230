import { request } from "undici";
import { ManagedProcess } from "../../core/process/managed-process.js";
import { sendMagicPacket } from "../../core/wake-on-lan.js";
import type { Logger } from "../../core/logger.js";
import type { WakeOnLanArgs } from "../../protocol/wakeable.js";
import type { SleepAction, WakeAction } from "./wakeable-entries.js";

/** What an action needs besides its own settings. */
export interface ActionContext {
  /** The wakeable entry's id: `ROLEMESH_WAKE_ID` for a command, `id` for a webhook. */
  id: string;
  /** Why it runs, e.g. `request for llama-70b` or `manual`; sent to a webhook. */
  reason: string;
  /** Sends a magic packet from an awake node (`via_node`). */
  wakeOnLanVia(nodeId: string, args: WakeOnLanArgs): Promise<void>;
  log: Logger;
}

/** A wake or sleep action that did not do its job, with the reason to show. */
export class WakeActionError extends Error {
  override readonly name = "WakeActionError";
}

/** How much of a command's output or a webhook's answer a failure quotes. */
const QUOTED_CHARS = 300;

/**
 * Runs a wake or sleep action of the gateway's (SPEC §11) and resolves once it did its part:
 * a command that exited 0, a webhook that answered 2xx, a magic packet sent. Rejects with a
 * WakeActionError saying why otherwise. Commands run without a shell; webhook headers (they
 * may carry credentials) are never logged.
 */
export async function runAction(
  action: WakeAction | Exclude<SleepAction, "node">,
  context: ActionContext,
): Promise<void> {
  if ("command" in action) return runCommand(action.command, action.timeout_s, context);
  if ("webhook" in action) return callWebhook(action, context);
  const { via_node, ...packet } = action.wol;
  try {
    if (via_node) await context.wakeOnLanVia(via_node, packet);
    else await sendMagicPacket(packet);
  } catch (err) {
    const from = via_node ? ` through node ${via_node}` : "";
    throw new WakeActionError(`the magic packet could not be sent${from}: ${message(err)}`);
  }
}

async function runCommand(argv: string[], timeoutS: number, context: ActionContext): Promise<void> {
  const [command, ...args] = argv as [string, ...string[]];
  const output: string[] = [];
  const log = context.log.child({ wakeable_id: context.id, command });
  const proc = new ManagedProcess(
    { command, args, env: { ROLEMESH_WAKE_ID: context.id } },
    (stream, line) => {
      output.push(line);
      log.info({ stream }, line);
    },
  );
  let timedOut = false;
  // A command that hangs is stopped with everything it started (its process group).
  const timer = setTimeout(() => {
    timedOut = true;
    void proc.stop(2000);
  }, timeoutS * 1000);
  const status = await proc.exited.finally(() => clearTimeout(timer));
  if (timedOut) throw new WakeActionError(`${command} did not finish within ${timeoutS} s`);
  if (status.code === 0) return;
  const how = status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
  const said = output.join("\n").slice(-QUOTED_CHARS);
  throw new WakeActionError(`${command} ${how}${said ? `: ${said}` : ""}`);
}

async function callWebhook(
  action: { webhook: string; headers: Record<string, string>; timeout_s: number },
  context: ActionContext,
): Promise<void> {
  const host = new URL(action.webhook).host;
  let status: number;
  let text: string;
  try {
    const answer = await request(action.webhook, {
      method: "POST",
      headers: { ...action.headers, "content-type": "application/json" },
      body: JSON.stringify({ id: context.id, reason: context.reason }),
      signal: AbortSignal.timeout(action.timeout_s * 1000),
    });
    status = answer.statusCode;
    text = await answer.body.text();
  } catch (err) {
    throw new WakeActionError(`the webhook at ${host} did not answer: ${message(err)}`);
  }
  if (status < 200 || status > 299) {
    const said = text.trim().slice(0, QUOTED_CHARS);
    throw new WakeActionError(
      `the webhook at ${host} answered ${status}${said ? `: ${said}` : ""}`,
    );
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
