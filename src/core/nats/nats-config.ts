import { z } from "zod";
import { secretKey } from "../config/secret-env.js";
import { isLoopbackHost } from "../net.js";

/**
 * The NATS keys agents and gateways share (SPEC §8). Empty `nats_url`: no NATS, the control
 * plane is HTTP (and in process for `rolemesh up`).
 */
export const NATS_CONFIG_KEYS = {
  /** One URL or a list (`nats://host:4222`, `tls://…`); the client tries them all. */
  nats_url: z.union([z.string(), z.array(z.string().min(1)).min(1)]).default(""),
  nats_user: z.string().default(""),
  nats_password: secretKey("nats_password"),
  nats_token: secretKey("nats_token"),
  /** A `.creds` file (JWT and NKey seed) as `nsc` writes it. */
  nats_creds: z.string().default(""),
  /** CA certificate that signs the server's TLS certificate. */
  nats_tls_ca: z.string().default(""),
};

/** What `connectNats` reads of a config. */
export interface NatsConfig {
  nats_url: string | string[];
  nats_user: string;
  nats_password: string;
  nats_token: string;
  nats_creds: string;
  nats_tls_ca: string;
}

/** The servers of `nats_url`, none when NATS is off. */
export function natsServers(config: Pick<NatsConfig, "nats_url">): string[] {
  return (Array.isArray(config.nats_url) ? config.nats_url : [config.nats_url]).filter(Boolean);
}

/**
 * With NATS, whoever can publish on it can register nodes and send them commands, so once
 * anything listens off loopback — this process, or the NATS server itself — a NATS credential
 * is required, unless `allow_insecure` says a firewall protects the fleet (SPEC §2.2, §8).
 */
export function checkNatsCredentials(
  config: NatsConfig & { listen_host: string; allow_insecure: boolean },
  ctx: z.core.$RefinementCtx,
): void {
  const servers = natsServers(config);
  if (servers.length === 0 || config.allow_insecure) return;
  if (config.nats_user || config.nats_token || config.nats_creds) return;
  const exposed = [
    ...(isLoopbackHost(config.listen_host) ? [] : [`listen_host ${config.listen_host}`]),
    ...servers.filter((server) => !isLoopbackHost(hostOf(server))),
  ];
  if (exposed.length === 0) return;
  ctx.addIssue({
    code: "custom",
    path: ["nats_url"],
    message:
      `${exposed.join(", ")} is not on loopback and no NATS credential is set: anyone who can ` +
      "reach NATS could register nodes and command them. Set nats_user/nats_password, " +
      "nats_token or nats_creds (see configs/nats-server.conf), or allow_insecure: true if a " +
      "firewall protects the fleet",
  });
}

/** The host of a NATS URL (`nats://h:4222`, or a bare `h:4222`). */
function hostOf(server: string): string {
  try {
    return new URL(server.includes("://") ? server : `nats://${server}`).hostname.replace(
      /^\[|\]$/g,
      "",
    );
  } catch {
    return server;
  }
}
