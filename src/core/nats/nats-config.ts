import { z } from "zod";
import { secretKey } from "../config/secret-env.js";

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
