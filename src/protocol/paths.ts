/**
 * The HTTP endpoints agents and gateways call on each other (SPEC §7.1, §7.2), in one place:
 * the routes that serve them and the clients that call them both read these. `:name` segments
 * are filled with `fillPath`.
 */

/** The agent's node API. */
export const AGENT_PATHS = {
  inventory: "/v1/node/inventory",
  load: "/v1/node/models/:id/load",
  unload: "/v1/node/models/:id/unload",
  install: "/v1/node/models/install",
  model: "/v1/node/models/:id",
  operation: "/v1/node/operations/:op_id",
  drain: "/v1/node/drain",
  resume: "/v1/node/resume",
  stop: "/v1/node/stop",
  sleep: "/v1/node/sleep",
  wakeOnLan: "/v1/node/wol",
  backends: "/v1/node/backends",
  backendInstall: "/v1/node/backends/install",
  backendStop: "/v1/node/backends/stop",
  backendUpgrade: "/v1/node/backends/upgrade",
  backendDelete: "/v1/node/backends/delete",
  splitWorker: "/v1/node/split/worker",
  splitHost: "/v1/node/split/host",
  splitLeave: "/v1/node/split/leave",
} as const;

/** The gateway's registry, called by agents. */
export const REGISTRY_PATHS = {
  register: "/v1/nodes/register",
  heartbeat: "/v1/nodes/heartbeat",
  deregister: "/v1/nodes/deregister",
} as const;

/** A path with its `:name` segments replaced by the URL-encoded values of `params`. */
export function fillPath(template: string, params: Record<string, string> = {}): string {
  return template.replace(/:([a-z_]+)/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`fillPath: no value for :${name} in ${template}`);
    return encodeURIComponent(value);
  });
}
