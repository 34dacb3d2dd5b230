import type { z } from "zod";
import { isLoopbackHost } from "../net.js";

export interface BindingRule {
  listen_host: string;
  allow_insecure: boolean;
  /** The key holding the secret that protects a non-loopback address, and its value. */
  secretKey: string;
  secret: string;
  /** Its environment variable, named in the message. */
  envVariable: string;
  /** What could happen without it, for the message. */
  risk: string;
}

/**
 * SPEC §2.2: a server on a non-loopback address refuses to start without its secret, unless
 * `allow_insecure` says a firewall protects it. Reported on the secret's key.
 */
export function checkBinding(rule: BindingRule, ctx: z.core.$RefinementCtx): void {
  if (isLoopbackHost(rule.listen_host) || rule.secret !== "" || rule.allow_insecure) return;
  ctx.addIssue({
    code: "custom",
    path: [rule.secretKey],
    message:
      `listen_host ${rule.listen_host} is not a loopback address and ${rule.secretKey} is empty: ${rule.risk}. ` +
      `Set ${rule.secretKey} (or ${rule.envVariable}), or set allow_insecure: true if a firewall protects it`,
  });
}
