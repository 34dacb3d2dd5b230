import { Command } from "commander";
import { SECRET_ENV } from "../core/config/secret-env.js";
import { ApiClient } from "../core/http/api-client.js";
import type { WakeableStatus, WakeAnswer } from "../protocol/wakeable.js";
import { secretHelp, secretOption } from "./secret-option.js";

const keyHelp = secretHelp("key", "admin key", SECRET_ENV.admin_key);

/** `rolemesh wake ID`: wakes a wakeable entry now (SPEC §11), through a gateway's admin API. */
export function wakeCommand(): Command {
  return new Command("wake")
    .description("wake a wakeable entry now (it is not waited for: see rolemesh status)")
    .argument("<id>", "the wakeable entry's id")
    .option("--gateway <url>", "gateway to ask", "http://127.0.0.1:8080")
    .option("--key <key>", keyHelp.value)
    .option("--key-file <file>", keyHelp.file)
    .option("--json", "print the gateway's answer as JSON")
    .action(
      async (
        id: string,
        options: { gateway: string; key?: string; keyFile?: string; json?: boolean },
      ) => {
        const key =
          secretOption("key", options.key, options.keyFile) ?? process.env[SECRET_ENV.admin_key];
        const { body } = await new ApiClient(options.gateway, key).call<WakeAnswer>(
          "POST",
          `/api/wakeable/${encodeURIComponent(id)}/wake`,
          { timeoutMs: 30_000 },
        );
        console.log(options.json ? JSON.stringify(body, null, 2) : describeWake(body.wakeable));
      },
    );
}

/** One line on an entry after a wake: its state, and what to expect. */
export function describeWake(entry: WakeableStatus): string {
  switch (entry.state) {
    case "awake":
      return `${entry.id}: awake${entry.node_id ? ` (node ${entry.node_id})` : ""}`;
    case "waking": {
      const eta = entry.eta_s === null ? "" : `, expected in about ${entry.eta_s} s`;
      const last = entry.last_wake_s === null ? "" : ` (the last wake took ${entry.last_wake_s} s)`;
      return `${entry.id}: waking${eta}${last}`;
    }
    case "failed":
      return `${entry.id}: failed: ${entry.reason ?? "no reason given"}`;
    case "sleeping":
      return `${entry.id}: sleeping`;
  }
}
