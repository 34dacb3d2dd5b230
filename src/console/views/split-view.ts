/** Split groups (SPEC §12): a model served by several nodes, its members' shares and tunnels. */
import type { PeerStatus } from "../../protocol/registry.js";
import type { SplitGroupInfo, TunnelState } from "../../protocol/split.js";
import { h } from "../dom.js";
import { formatBytes } from "../format.js";

/** A shape per state, as the live-state pills have, so the pill reads without colour too. */
const TUNNEL_GLYPH: Record<TunnelState, string> = {
  connecting: "◐",
  connected: "●",
  failed: "✕",
};

/** Groups as their hosts report them: members with their shares, the host's tunnel links. */
export function splitGroupList(groups: SplitGroupInfo[]): HTMLElement {
  return h("ul", { class: "split-list", role: "list" }, groups.map(splitGroup));
}

/** One line per group the node takes part in, for its detail page; none when it takes none. */
export function splitLines(node: PeerStatus): HTMLElement[] {
  return node.split_groups.map((group) => {
    const attributes = { class: "split-line", "data-split-group": group.model_id };
    const model = h("strong", {}, group.model_id);
    if (group.role === "worker") {
      return h("div", attributes, "worker for ", model, " on host ", nodeLink(group.host));
    }
    const workers = group.members.filter((member) => member.node_id !== group.host);
    return workers.length === 0
      ? h("div", attributes, "hosts ", model, " alone")
      : h(
          "div",
          attributes,
          "hosts ",
          model,
          " with ",
          workers.flatMap((member, i) => [i > 0 && ", ", nodeLink(member.node_id)]),
        );
  });
}

function splitGroup(group: SplitGroupInfo): HTMLElement {
  const links = new Map(group.links.map((link) => [link.node_id, link]));
  return h(
    "li",
    { class: "split-group", "data-split-group": group.model_id },
    h(
      "div",
      { class: "split-head" },
      h("strong", {}, group.model_id),
      h("span", { class: "muted" }, `${group.members.length} nodes · host`),
      nodeLink(group.host),
    ),
    h(
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
            ["Node", "Part", "Layers", "Tunnel", "Sent", "Received"].map((title) =>
              h("th", { scope: "col" }, title),
            ),
          ),
        ),
        h(
          "tbody",
          {},
          group.members.map((member) => {
            const host = member.node_id === group.host;
            // The host does not tunnel to itself; a worker without a link is not dialled yet.
            const link = links.get(member.node_id);
            return h(
              "tr",
              { "data-split-member": member.node_id },
              h("th", { scope: "row" }, nodeLink(member.node_id)),
              h("td", {}, host ? "host" : "worker"),
              h("td", { class: "split-fraction" }, fractionBar(member.fraction)),
              h("td", {}, link ? tunnelPill(link.state) : h("span", { class: "muted" }, "—")),
              h("td", { class: "split-sent" }, link ? formatBytes(link.bytes_sent) : "—"),
              h("td", { class: "split-received" }, link ? formatBytes(link.bytes_received) : "—"),
            );
          }),
        ),
      ),
    ),
  );
}

/** The share as a percentage, and a short bar of it (its width set through CSSOM: CSP). */
function fractionBar(fraction: number): (HTMLElement | string)[] {
  const percent = `${Math.round(fraction * 100)}%`;
  const filled = h("span", { class: "bar-used" });
  filled.style.width = `${(fraction * 100).toFixed(2)}%`;
  return [
    h("span", { class: "split-percent" }, percent),
    h(
      "span",
      { class: "bar split-bar", role: "img", "aria-label": `${percent} of the layers` },
      filled,
    ),
  ];
}

function tunnelPill(state: TunnelState): HTMLElement {
  return h(
    "span",
    { class: `pill tunnel-${state}`, "data-tunnel-state": state, title: `tunnel: ${state}` },
    h("span", { "aria-hidden": "true" }, TUNNEL_GLYPH[state]),
    h("span", { class: "pill-label" }, state),
  );
}

function nodeLink(nodeId: string): HTMLElement {
  return h("a", { href: `#/nodes/${encodeURIComponent(nodeId)}`, class: "split-node" }, nodeId);
}
