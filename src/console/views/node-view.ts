/** One node in detail: devices, servers, logs, errors, and the operator's commands. */
import type { DeviceInventory } from "../../protocol/inventory.js";
import type { PeerStatus } from "../../protocol/registry.js";
import { ApiError, postJson } from "../api.js";
import { h, render } from "../dom.js";
import type { FleetStore } from "../fleet-store.js";
import { formatAgo, formatBytes } from "../format.js";
import { askForKey } from "./key-dialog.js";
import { splitLines } from "./split-view.js";
import { chips, memoryBar, statePill, utilization } from "./widgets.js";

export class NodeView {
  readonly element = h("div", { class: "node-view" });
  readonly #store: FleetStore;
  #nodeId = "";
  readonly #summary = h("div", { class: "node-summary" });
  readonly #body = h("div", { class: "node-body" });
  readonly #modelSelect = h("select", { id: "command-model", "data-key": "command-model" });
  readonly #deviceSelect = h("select", { id: "command-device", "data-key": "command-device" });
  readonly #drainButton = h("button", { type: "button", id: "command-drain" }, "Drain");
  readonly #result = h("p", { class: "command-result", role: "status", "aria-live": "polite" });
  #busy = false;
  /** Log panels the operator opened or closed, so live redraws keep them that way. */
  readonly #logOpen = new Map<string, boolean>();

  constructor(store: FleetStore) {
    this.#store = store;
    const load = h("button", { type: "button", id: "command-load", class: "primary" }, "Load");
    const unload = h("button", { type: "button", id: "command-unload" }, "Unload");
    load.addEventListener("click", () => {
      const device = this.#deviceSelect.value;
      void this.#command("model.load", {
        model_id: this.#modelSelect.value,
        ...(device ? { device } : {}),
      });
    });
    unload.addEventListener("click", () => {
      void this.#command("model.unload", { model_id: this.#modelSelect.value });
    });
    this.#drainButton.addEventListener("click", () => {
      const draining = this.#store.peers.get(this.#nodeId)?.draining ?? false;
      void this.#command(draining ? "node.resume" : "node.drain", {});
    });
    const actions = h(
      "section",
      { class: "panel actions", "aria-labelledby": "actions-title" },
      h("h2", { id: "actions-title" }, "Commands"),
      h(
        "div",
        { class: "action-row" },
        h("label", { for: "command-model" }, "Model"),
        this.#modelSelect,
        h("label", { for: "command-device" }, "Device"),
        this.#deviceSelect,
        load,
        unload,
        this.#drainButton,
      ),
      this.#result,
    );
    this.element.append(this.#summary, actions, this.#body);
  }

  /** Shows a node (after navigation); commands' last result is cleared. */
  show(nodeId: string): void {
    if (nodeId !== this.#nodeId) this.#result.textContent = "";
    this.#nodeId = nodeId;
    this.update();
  }

  update(): void {
    const node = this.#store.peers.get(this.#nodeId);
    if (!node) {
      render(
        this.#summary,
        h("a", { href: "#/", class: "back" }, "← Fleet"),
        h("h1", {}, this.#nodeId),
        h("p", { class: "empty", "data-gone": "true" }, "This node is not registered (any more)."),
      );
      this.#body.replaceChildren();
      return;
    }
    render(this.#summary, ...summary(this.#store, node));
    this.#fillSelect(
      this.#modelSelect,
      node.models.map((model) => [
        model.id,
        model.loaded_on.length > 0 ? `${model.id} (loaded)` : model.id,
      ]),
    );
    this.#fillSelect(this.#deviceSelect, [
      ["", "auto"],
      ...node.devices.map((device): [string, string] => [device.ref.id, device.ref.id]),
    ]);
    this.#drainButton.textContent = node.draining ? "Resume" : "Drain";
    render(
      this.#body,
      ...node.devices.map((device) => {
        const detail = deviceDetail(device, this.#logOpen.get(device.ref.id));
        const log = detail.querySelector("details");
        log?.addEventListener("toggle", () => this.#logOpen.set(device.ref.id, log.open));
        return detail;
      }),
    );
  }

  /** Replaces options only when they changed, so an open or focused select keeps its choice. */
  #fillSelect(select: HTMLSelectElement, options: [string, string][]): void {
    const current = [...select.options].map((option) => `${option.value}\u0000${option.text}`);
    const next = options.map(([value, text]) => `${value}\u0000${text}`);
    if (current.join("\n") === next.join("\n")) return;
    const chosen = select.value;
    select.replaceChildren(...options.map(([value, text]) => h("option", { value }, text)));
    if (options.some(([value]) => value === chosen)) select.value = chosen;
  }

  async #command(command: string, args: Record<string, unknown>): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    const nodeId = this.#nodeId;
    this.#result.className = "command-result";
    this.#result.textContent = `${command} sent to ${nodeId}…`;
    try {
      for (;;) {
        try {
          await postJson(`/api/nodes/${encodeURIComponent(nodeId)}/commands/${command}`, args);
          this.#result.className = "command-result ok";
          this.#result.textContent = `${command}: done`;
          return;
        } catch (err) {
          if (err instanceof ApiError && err.needsKey && (await askForKey(err.message))) continue;
          throw err;
        }
      }
    } catch (err) {
      this.#result.className = "command-result error";
      this.#result.textContent = `${command} failed: ${(err as Error).message}`;
    } finally {
      this.#busy = false;
    }
  }
}

function summary(store: FleetStore, node: PeerStatus): (Node | string)[] {
  const caps = node.capabilities;
  return [
    h("a", { href: "#/", class: "back" }, "← Fleet"),
    h("h1", {}, node.hostname, " ", statePill(node.state, node.draining)),
    h(
      "dl",
      { class: "facts wide" },
      h("dt", {}, "Node id"),
      h("dd", {}, node.node_id),
      h("dt", {}, "Agent"),
      h("dd", {}, node.agent_url),
      h("dt", {}, "Version"),
      h("dd", {}, node.version),
      h("dt", {}, "Engine"),
      h("dd", {}, `${caps.engine}${caps.engine_version ? ` ${caps.engine_version}` : ""}`),
      h("dt", {}, "Host"),
      h(
        "dd",
        {},
        `${caps.os} ${caps.arch} · ${caps.cpu_cores} cores · ${formatBytes(caps.memory_total_mb * 1024 * 1024)} RAM`,
      ),
      h("dt", {}, "Labels"),
      h(
        "dd",
        {},
        Object.keys(node.labels).length === 0
          ? "none"
          : chips(
              Object.entries(node.labels).map(([k, v]) => `${k}=${v}`),
              "label",
            ),
      ),
      h("dt", {}, "Heartbeat"),
      h("dd", { "data-since": node.node_id }, formatAgo(store.sinceHeartbeat(node.node_id))),
      h("dt", {}, "Models"),
      h(
        "dd",
        {},
        node.models.length === 0
          ? "none configured"
          : node.models.map((model) =>
              h(
                "span",
                { class: `chip chip-model ${model.loaded_on.length > 0 ? "loaded" : ""}` },
                model.id,
                model.roles.length > 0 ? ` (${model.roles.join(", ")})` : "",
              ),
            ),
      ),
      node.split_groups.length > 0 && h("dt", {}, "Split"),
      node.split_groups.length > 0 && h("dd", { class: "split-lines" }, splitLines(node)),
    ),
  ];
}

function deviceDetail(device: DeviceInventory, logOpen: boolean | undefined): HTMLElement {
  const server = device.server;
  const error = device.last_error;
  return h(
    "section",
    {
      class: "panel device-detail",
      "data-device": device.ref.id,
      "aria-label": `device ${device.ref.id}`,
    },
    h(
      "h2",
      {},
      `${device.ref.id} · ${device.ref.name}`,
      h("span", { class: "muted" }, ` ${device.ref.backend} · ${utilization(device)}`),
    ),
    memoryBar(device),
    h(
      "dl",
      { class: "facts wide server" },
      h("dt", {}, "Server"),
      h("dd", { class: `server-state server-${server.state}` }, server.state),
      h("dt", {}, "Model"),
      h("dd", {}, server.model_id ?? "—"),
      h("dt", {}, "PID"),
      h("dd", { class: "server-pid" }, server.pid ?? "—"),
      h("dt", {}, "Port"),
      h("dd", {}, server.port ?? "—"),
      h("dt", {}, "Restarts"),
      h(
        "dd",
        {},
        `${server.restarts}${server.next_attempt_at ? ` · next try ${new Date(server.next_attempt_at).toLocaleTimeString()}` : ""}`,
      ),
      h("dt", {}, "Queue"),
      h(
        "dd",
        {},
        `${device.queue.in_flight} running · ${device.queue.pending} waiting · limit ${device.queue.limit}`,
      ),
    ),
    error &&
      h(
        "div",
        { class: "last-error", role: "note" },
        h("h3", {}, `Last error · ${new Date(error.at).toLocaleString()}`),
        h(
          "p",
          {},
          error.message,
          error.exit_code !== null ? ` (exit ${error.exit_code})` : "",
          error.signal ? ` (${error.signal})` : "",
        ),
        error.stderr_tail.length > 0 && h("pre", {}, error.stderr_tail.join("\n")),
      ),
    h(
      "details",
      { class: "log-tail", open: logOpen ?? device.log_tail.length > 0 },
      h("summary", {}, `Server log (last ${device.log_tail.length} lines)`),
      h(
        "pre",
        { tabindex: 0 },
        device.log_tail.length > 0 ? device.log_tail.join("\n") : "no output yet",
      ),
    ),
  );
}
