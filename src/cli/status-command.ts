import { Command } from "commander";
import type { PeerStatus, StatusResponse } from "../protocol/registry.js";
import type { SplitGroupInfo } from "../protocol/split.js";
import type { WakeableStatus } from "../protocol/wakeable.js";
import { SECRET_ENV } from "../core/config/secret-env.js";
import { GIB, KIB, MIB } from "../core/units.js";
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

/**
 * The status as aligned text tables: one row per node, then one per split group (SPEC §12)
 * and one per wakeable entry (SPEC §11) when there are any.
 */
export function formatStatus(status: StatusResponse, now = Date.now()): string {
  const header = ["NODE", "HOST", "STATE", "DEVICES", "MODELS", "QUEUE", "LAST SEEN"];
  const rows = status.peers.map((peer) => row(peer, now));
  const summary = `gateway ${status.gateway.url} · ${plural(status.peers.length, "node")} · local ${status.node_state}`;
  const lines = [summary, "", textTable(header, rows)];
  // The host's report: only it knows the tunnel links. A gateway older than split inference
  // sends no `split_groups`.
  const groups = status.peers.flatMap((peer) =>
    (peer.split_groups ?? []).filter((group) => group.role === "host"),
  );
  if (groups.length > 0) {
    lines.push(
      "",
      plural(groups.length, "split group"),
      "",
      textTable(["MODEL", "HOST", "MEMBERS", "LINKS"], groups.map(splitRow)),
    );
  }
  // A gateway older than wakes sends entries without state details.
  const wakeable = status.wakeable ?? [];
  if (wakeable.length > 0) {
    lines.push(
      "",
      `${wakeable.length} wakeable ${wakeable.length === 1 ? "entry" : "entries"}`,
      "",
      textTable(
        ["WAKEABLE", "STATE", "NODE", "MODELS", "LAST WAKE", "NOTE"],
        wakeable.map(wakeableRow),
      ),
    );
  }
  return lines.join("\n");
}

function wakeableRow(entry: WakeableStatus): string[] {
  const note =
    entry.state === "failed"
      ? (entry.reason ?? "")
      : entry.state === "waking" && entry.eta_s !== null && entry.eta_s !== undefined
        ? `expected in ${entry.eta_s} s`
        : "";
  return [
    entry.id,
    entry.state,
    entry.node_id ?? "-",
    entry.models.join(", ") || "-",
    entry.last_wake_s === null || entry.last_wake_s === undefined ? "-" : `${entry.last_wake_s} s`,
    note || "-",
  ];
}

/** `node-a 60%, node-b 40%` and `node-b connected ↑1.5M ↓2.0K` (sent, received). */
function splitRow(group: SplitGroupInfo): string[] {
  const members = group.members.map(
    (member) => `${member.node_id} ${Math.round(member.fraction * 100)}%`,
  );
  const links = group.links.map(
    (link) =>
      `${link.node_id} ${link.state} ↑${bytes(link.bytes_sent)} ↓${bytes(link.bytes_received)}`,
  );
  return [group.model_id, group.host, members.join(", "), links.join(", ") || "-"];
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
const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? "" : "s"}`;

/** Traffic in the table's compact units, as the device memory column writes `G`. */
function bytes(count: number): string {
  if (count >= GIB) return `${(count / GIB).toFixed(1)}G`;
  if (count >= MIB) return `${(count / MIB).toFixed(1)}M`;
  if (count >= KIB) return `${(count / KIB).toFixed(1)}K`;
  return `${count}B`;
}
