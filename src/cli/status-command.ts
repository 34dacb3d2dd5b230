import { Command } from "commander";
import type { PeerStatus, StatusResponse } from "../protocol/registry.js";
import { SECRET_ENV } from "../core/config/secret-env.js";
import { ApiClient } from "../core/http/api-client.js";
import { secretHelp, secretOption } from "./secret-option.js";
import { textTable } from "./text-table.js";

const keyHelp = secretHelp("key", "client or admin key", SECRET_ENV.admin_key);

/** `rolemesh status`: the fleet as a table, from a gateway's `/api/status`. */
export function statusCommand(): Command {
  return new Command("status")
    .description("show the fleet: nodes, states, devices, models, queues")
    .option("--gateway <url>", "gateway to ask", "http://127.0.0.1:8080")
    .option("--key <key>", keyHelp.value)
    .option("--key-file <file>", keyHelp.file)
    .option("--json", "print the raw status JSON")
    .action(
      async (options: { gateway: string; key?: string; keyFile?: string; json?: boolean }) => {
        const key =
          secretOption("key", options.key, options.keyFile) ?? process.env[SECRET_ENV.admin_key];
        const { body: status } = await new ApiClient(options.gateway, key).call<StatusResponse>(
          "GET",
          "/api/status",
          { timeoutMs: 10_000 },
        );
        console.log(options.json ? JSON.stringify(status, null, 2) : formatStatus(status));
      },
    );
}

/** The status as an aligned text table, one row per node. */
export function formatStatus(status: StatusResponse, now = Date.now()): string {
  const header = ["NODE", "HOST", "STATE", "DEVICES", "MODELS", "QUEUE", "LAST SEEN"];
  const rows = status.peers.map((peer) => row(peer, now));
  const summary = `gateway ${status.gateway.url} · ${status.peers.length} node${status.peers.length === 1 ? "" : "s"} · local ${status.node_state}`;
  return [summary, "", textTable(header, rows)].join("\n");
}

function row(peer: PeerStatus, now: number): string[] {
  const devices = peer.devices
    .map((device) => {
      const metrics = device.metrics;
      const memory = metrics ? ` ${gib(metrics.vram_used_mb)}/${gib(metrics.vram_total_mb)}G` : "";
      return `${device.ref.id}${memory}`;
    })
    .join(", ");
  const loaded = peer.models.filter((model) => model.loaded_on.length > 0).map((model) => model.id);
  const queue = peer.devices.reduce(
    (sum, device) => sum + device.queue.in_flight + device.queue.pending,
    0,
  );
  const seen = Math.max(0, Math.round((now - Date.parse(peer.last_seen)) / 1000));
  return [
    peer.node_id,
    peer.hostname,
    peer.state,
    devices || "-",
    loaded.join(", ") || "-",
    String(queue),
    `${seen}s ago`,
  ];
}

const gib = (mb: number) => (mb / 1024).toFixed(1);
