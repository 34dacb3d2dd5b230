import type { Pool } from "undici";
import type { ModelEntry } from "../config/agent-config.js";
import type { ProbeAnswer, Readiness } from "./engine.js";

/**
 * Readiness of llama-server and of servers shaped like it (the embedded engine): `/health` 200
 * and `/v1/models` listing the model id the server was started with (`--alias`), so a server of
 * another model that took the port is never taken for ours. While loading, llama-server answers
 * every endpoint 503 "Loading model".
 */
export const llamaServerReadiness: Readiness = {
  async probe(pool: Pool, model: ModelEntry): Promise<ProbeAnswer> {
    if ((await getJson(pool, "/health")) === undefined) return { ready: false };
    const list = (await getJson(pool, "/v1/models")) as { data?: { id?: unknown }[] } | undefined;
    if (!list) return { ready: false };
    const ids = (list.data ?? []).map((entry) => String(entry.id));
    return ids.includes(model.model_id) ? { ready: true } : { ready: false, otherModels: ids };
  },

  async buildInfo(pool: Pool): Promise<string | null> {
    const props = (await getJson(pool, "/props")) as { build_info?: unknown } | undefined;
    return typeof props?.build_info === "string" ? props.build_info : null;
  },

  readyLine: /listening on|model loaded|server is listening/i,
  portConflictLine: /couldn't bind|address already in use|EADDRINUSE/i,
};

/** The JSON body of a 200 answer to a short GET, or undefined for anything else. */
async function getJson(pool: Pool, path: string): Promise<unknown> {
  try {
    const answer = await pool.request({
      method: "GET",
      path,
      headersTimeout: 2000,
      bodyTimeout: 2000,
    });
    if (answer.statusCode === 200) return await answer.body.json();
    await answer.body.dump();
  } catch {
    // not up yet, or not answering: the caller treats it as "no"
  }
  return undefined;
}
