import { basename } from "node:path";
import { z } from "zod";
import { AgentConfigSchema } from "../agent/config/agent-config.js";
import type { AgentConfig } from "../agent/config/agent-config.js";
import { ConfigError } from "../core/config/config-error.js";
import { formatPath, loadConfigFile, parseConfigText } from "../core/config/load-config.js";
import { GatewayConfigSchema } from "../gateway/config/gateway-config.js";

/** `rolemesh up`'s file: a `gateway:` and an `agent:` section, either may be left out (SPEC §2.1). */
export const UpConfigSchema = z.strictObject({
  gateway: GatewayConfigSchema.prefault({}),
  agent: AgentConfigSchema.prefault({}),
});

export type ConfigKind = "agent" | "gateway" | "up";

export const SCHEMAS = {
  agent: AgentConfigSchema,
  gateway: GatewayConfigSchema,
  up: UpConfigSchema,
} as const;

/** Reads a config file of `kind`, or the defaults when no file is given. */
export function readConfig<K extends ConfigKind>(
  kind: K,
  file: string | undefined,
): z.output<(typeof SCHEMAS)[K]> {
  const schema = SCHEMAS[kind] as z.ZodType;
  return (
    file ? loadConfigFile(file, schema) : parseConfigText("", "(defaults)", schema)
  ) as z.output<(typeof SCHEMAS)[K]>;
}

/** Applies command-line overrides to a config and validates the result again. */
export function withOverrides<S extends z.ZodType>(
  schema: S,
  config: z.output<S>,
  overrides: object,
): z.output<S> {
  const result = schema.safeParse({ ...(config as object), ...overrides });
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => ({
      file: "(command line)",
      path: formatPath(issue.path),
      message: issue.message,
    })),
  );
}

/** Agent flags that override the file for quick starts (issue: `--listen`, `--model`, …). */
export interface AgentFlags {
  dispatcherUrl?: string;
  nats?: string;
  joinToken?: string;
  nodeId?: string;
  hostname?: string;
  heartbeatInterval?: string;
  listen?: string;
  model?: string[];
}

export function agentOverrides(
  config: AgentConfig,
  flags: AgentFlags,
): Partial<Record<keyof AgentConfig, unknown>> {
  const overrides: Partial<Record<keyof AgentConfig, unknown>> = {};
  if (flags.dispatcherUrl !== undefined) overrides.dispatcher_base_url = flags.dispatcherUrl;
  if (flags.nats !== undefined) overrides.nats_url = flags.nats;
  if (flags.joinToken !== undefined) overrides.join_token = flags.joinToken;
  if (flags.nodeId !== undefined) overrides.node_id = flags.nodeId;
  if (flags.hostname !== undefined) overrides.hostname = flags.hostname;
  if (flags.heartbeatInterval !== undefined)
    overrides.heartbeat_interval_s = Number(flags.heartbeatInterval);
  if (flags.listen !== undefined) Object.assign(overrides, listenOverrides(flags.listen));
  if (flags.model?.length) overrides.models = [...config.models, ...flags.model.map(modelFromFlag)];
  return overrides;
}

/** `HOST:PORT`, `:PORT` or `PORT` as `listen_host` / `listen_port`. */
export function listenOverrides(listen: string): { listen_host?: string; listen_port: number } {
  const match = /^(?:(\[[^\]]+\]|[^:]*):)?(\d+)$/.exec(listen);
  if (!match)
    throw new ConfigError([
      { file: "(command line)", path: "--listen", message: `expected HOST:PORT, got "${listen}"` },
    ]);
  const host = match[1]?.replace(/^\[|\]$/g, "");
  return { ...(host ? { listen_host: host } : {}), listen_port: Number(match[2]) };
}

/** `--model PATH[:ID[:ROLE,…]]`: the id defaults to the file name without `.gguf`. */
export function modelFromFlag(value: string): { model_id: string; path: string; roles: string[] } {
  const [path = "", id, roles] = value.split(":");
  return {
    path,
    model_id: id || basename(path).replace(/\.gguf$/i, ""),
    roles: roles ? roles.split(",").filter(Boolean) : [],
  };
}

export const collect = (value: string, previous: string[] = []) => [...previous, value];
