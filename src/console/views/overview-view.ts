/** The fleet at a glance: nodes, topology, models and roles, split groups, wakeable capacity. */
import type { PeerStatus } from "../../protocol/registry.js";
import type { WakeableStatus } from "../../protocol/wakeable.js";
import { ApiError, postJson } from "../api.js";
import { h } from "../dom.js";
import type { FleetStore } from "../fleet-store.js";
import { formatAgo, formatMiB } from "../format.js";
import { askForKey } from "./key-dialog.js";
import { splitGroupList } from "./split-view.js";
import { topology } from "./topology.js";
import { chips, memoryBar, section, statePill, utilization } from "./widgets.js";

export function overview(store: FleetStore): HTMLElement[] {
  const nodes = store.nodes();
  const views = [
    section(
      "fleet",
      `Nodes (${nodes.length})`,
      nodes.length === 0
        ? h(
            "p",
            { class: "empty" },
            "No node is registered yet. Start one with ",
            h("code", {}, "rolemesh agent --dispatcher-url <this gateway>"),
            ".",
          )
        : h(
            "ul",
            { class: "node-grid", role: "list" },
            nodes.map((node) => nodeCard(store, node)),
          ),
    ),
    section("topology", "Topology", topology(store)),
    section("models", "Models and roles", modelsTable(store)),
  ];
  // Shown only when some node hosts a model with others (SPEC §12).
  const splitGroups = store.splitGroups();
  if (splitGroups.length > 0) {
    views.push(
      section("split-groups", `Split groups (${splitGroups.length})`, splitGroupList(splitGroups)),
    );
  }
  // Shown when several gateways share the fleet over NATS (SPEC §8).
  if (store.gateways.length > 1) {
    views.push(section("gateways", `Gateways (${store.gateways.length})`, gatewayList(store)));
  }
  // Shown only when there is something to wake (SPEC §11).
  if (store.wakeable.length > 0) {
    views.push(section("wakeable", "Wakeable capacity", wakeableList(store.wakeable)));
  }
  return views;
}

function gatewayList(store: FleetStore): HTMLElement {
  return h(
    "ul",
    { class: "gateway-list", role: "list" },
    store.gateways.map((gateway, i) =>
      h(
        "li",
        { "data-gateway": gateway.id },
        h("strong", {}, gateway.id),
        " ",
        h("span", { class: "muted" }, gateway.url),
        " ",
        h("span", { class: "muted" }, i === 0 ? "serves this page" : `v${gateway.version}`),
      ),
    ),
  );
}

function nodeCard(store: FleetStore, node: PeerStatus): HTMLElement {
  const queued = node.devices.reduce((sum, d) => sum + d.queue.in_flight + d.queue.pending, 0);
  const limit = node.devices.reduce((sum, d) => sum + d.queue.limit, 0);
  const loaded = node.models.filter((model) => model.loaded_on.length > 0);
  return h(
    "li",
    { class: `node-card state-${node.state}`, "data-node": node.node_id },
    h(
      "a",
      {
        class: "node-link",
        href: `#/nodes/${encodeURIComponent(node.node_id)}`,
        "data-key": `node-${node.node_id}`,
      },
      h("span", { class: "node-host" }, node.hostname),
      h("span", { class: "node-id" }, node.node_id),
    ),
    statePill(node.state, node.draining),
    Object.keys(node.labels).length > 0 &&
      h(
        "div",
        { class: "labels" },
        chips(
          Object.entries(node.labels).map(([key, value]) => `${key}=${value}`),
          "label",
        ),
      ),
    h(
      "ul",
      { class: "devices", role: "list" },
      node.devices.map((device) =>
        h(
          "li",
          { class: "device" },
          h(
            "div",
            { class: "device-head" },
            h("strong", {}, device.ref.id),
            h("span", { class: "muted" }, device.ref.name),
            h("span", { class: "muted" }, utilization(device)),
          ),
          memoryBar(device),
        ),
      ),
    ),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Loaded"),
      h(
        "dd",
        { class: "loaded-models" },
        loaded.length === 0
          ? "none"
          : chips(
              loaded.map((model) => model.id),
              "model",
            ),
      ),
      h("dt", {}, "Queue"),
      h("dd", { class: "queue" }, `${queued} / ${limit}`),
      h("dt", {}, "Heartbeat"),
      h("dd", { "data-since": node.node_id }, formatAgo(store.sinceHeartbeat(node.node_id))),
    ),
  );
}

function modelsTable(store: FleetStore): HTMLElement {
  const models = store.models();
  if (models.length === 0) return h("p", { class: "empty" }, "No model is configured on any node.");
  const roles = store.roles();
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Model"),
          h("th", { scope: "col" }, "Roles"),
          h("th", { scope: "col" }, "Nodes"),
        ),
      ),
      h(
        "tbody",
        {},
        models.map((model) =>
          h(
            "tr",
            { "data-model": model.id },
            h("th", { scope: "row" }, model.id),
            h(
              "td",
              {},
              model.roles.length === 0
                ? h("span", { class: "muted" }, "—")
                : chips(model.roles, "role"),
            ),
            h(
              "td",
              {},
              model.nodes.map((node) =>
                h(
                  "a",
                  {
                    class: `chip chip-node ${node.loadedOn.length > 0 ? "loaded" : ""}`,
                    href: `#/nodes/${encodeURIComponent(node.nodeId)}`,
                    title:
                      node.loadedOn.length > 0
                        ? `loaded on ${node.loadedOn.join(", ")}`
                        : "configured, not loaded",
                  },
                  node.hostname,
                  node.loadedOn.length > 0 ? ` · ${node.loadedOn.join(", ")}` : "",
                ),
              ),
            ),
          ),
        ),
      ),
    ),
    roles.size > 0 &&
      h(
        "p",
        { class: "roles-line" },
        "Roles: ",
        [...roles].map(([role, ids]) =>
          h(
            "span",
            { class: "chip chip-role", title: `served by ${ids.join(", ")}` },
            `${role} → ${ids.join(", ")}`,
          ),
        ),
      ),
  );
}

function wakeableList(entries: WakeableStatus[]): HTMLElement {
  return h(
    "ul",
    { class: "wakeable-list", role: "list" },
    entries.map((entry) =>
      h(
        "li",
        { class: `wakeable wake-${entry.state}`, "data-wakeable": entry.id },
        h("strong", {}, entry.id),
        h("span", { class: `pill wake-pill wake-${entry.state}` }, entry.state),
        h("span", { class: "muted" }, entry.provider),
        entry.description && h("span", {}, entry.description),
        entry.vram_mb > 0 && h("span", {}, `${formatMiB(entry.vram_mb)} VRAM`),
        entry.models.length > 0 && h("span", {}, chips(entry.models, "model")),
        wakeNote(entry),
        entry.wake_action && (entry.state === "sleeping" || entry.state === "failed")
          ? wakeButton(entry.id)
          : false,
      ),
    ),
  );
}

/** What to expect of a wake: its ETA while waking, why it failed, how long the last took. */
function wakeNote(entry: WakeableStatus): HTMLElement | false {
  const text =
    entry.state === "failed"
      ? entry.reason
      : entry.state === "waking" && entry.eta_s !== null
        ? `expected in about ${entry.eta_s} s`
        : entry.last_wake_s !== null
          ? `last wake took ${entry.last_wake_s} s`
          : null;
  return text ? h("span", { class: "wake-note muted" }, text) : false;
}

/** Wakes the entry now (`POST /api/wakeable/{id}/wake`); its state then follows the events. */
function wakeButton(id: string): HTMLElement {
  const button = h("button", { type: "button", class: "wake-button", "data-wake": id }, "Wake");
  button.addEventListener("click", () => {
    button.disabled = true;
    void wake(id).catch((err: unknown) => {
      button.disabled = false;
      button.title = `wake failed: ${(err as Error).message}`;
    });
  });
  return button;
}

async function wake(id: string): Promise<void> {
  for (;;) {
    try {
      await postJson(`/api/wakeable/${encodeURIComponent(id)}/wake`, {});
      return;
    } catch (err) {
      if (err instanceof ApiError && err.needsKey && (await askForKey(err.message))) continue;
      throw err;
    }
  }
}
