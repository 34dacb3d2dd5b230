/**
 * The gateway and its nodes as a star: links coloured and dashed by the node's live state,
 * each node a link to its detail page; split groups' tunnels as dashed curves from host to
 * worker. Scales with its container (viewBox).
 */
import { svg } from "../dom.js";
import type { FleetStore } from "../fleet-store.js";

const SIZE = 360;
const CENTER = SIZE / 2;
const RADIUS = 110;
/** Labels sit outside the ring, clear of the links. */
const LABEL_RADIUS = RADIUS + 34;
/** How far a tunnel's curve bows out, as a share of the distance between its two nodes. */
const TUNNEL_BOW = 0.5;

export function topology(store: FleetStore): SVGElement {
  const nodes = store.nodes();
  const placed = nodes.map((node, i) => {
    // Start at the top and go clockwise; a single node sits straight above.
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, nodes.length);
    const [cos, sin] = [Math.cos(angle), Math.sin(angle)];
    return {
      node,
      x: CENTER + RADIUS * cos,
      y: CENTER + RADIUS * sin,
      labelX: CENTER + LABEL_RADIUS * cos,
      labelY: CENTER + LABEL_RADIUS * sin - 4,
      anchor: cos > 0.3 ? "start" : cos < -0.3 ? "end" : "middle",
    };
  });
  const at = new Map(placed.map((place) => [place.node.node_id, place]));
  const tunnels = store.splitGroups().flatMap((group) =>
    group.links.map((link) => {
      const [host, worker] = [at.get(group.host), at.get(link.node_id)];
      return (
        host &&
        worker &&
        svg(
          "path",
          {
            class: `split-link tunnel-${link.state}`,
            d: tunnelPath(host, worker),
            "data-tunnel": `${group.host}>${link.node_id}`,
          },
          svg("title", {}, `${group.model_id}: ${group.host} → ${link.node_id}, ${link.state}`),
        )
      );
    }),
  );
  return svg(
    "svg",
    {
      class: "topology",
      viewBox: `0 0 ${SIZE} ${SIZE}`,
      role: "img",
      "aria-label": `gateway with ${nodes.length} node${nodes.length === 1 ? "" : "s"}`,
    },
    ...placed.map(({ node, x, y }) =>
      svg("line", {
        class: `link state-${node.state}`,
        x1: CENTER,
        y1: CENTER,
        x2: x.toFixed(1),
        y2: y.toFixed(1),
      }),
    ),
    svg(
      "g",
      { class: "topo-gateway" },
      svg("circle", { cx: CENTER, cy: CENTER, r: 30 }),
      svg("text", { x: CENTER, y: CENTER + 4, "text-anchor": "middle" }, "gateway"),
    ),
    ...tunnels,
    ...placed.map(({ node, x, y, labelX, labelY, anchor }) =>
      svg(
        "a",
        {
          href: `#/nodes/${encodeURIComponent(node.node_id)}`,
          class: `topo-node state-${node.state}`,
          "data-key": `topo-${node.node_id}`,
          "aria-label": `${node.hostname}: ${node.state}`,
        },
        svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 18 }),
        svg(
          "text",
          { x: labelX.toFixed(1), y: labelY.toFixed(1), "text-anchor": anchor },
          node.hostname,
        ),
        svg(
          "text",
          {
            x: labelX.toFixed(1),
            y: (labelY + 13).toFixed(1),
            "text-anchor": anchor,
            class: "topo-state",
          },
          node.state,
        ),
      ),
    ),
  );
}

/**
 * A curve between two nodes of the ring, bowed away from the centre so that it never lies on
 * the gateway's links (two nodes face each other across the centre).
 */
function tunnelPath(from: { x: number; y: number }, to: { x: number; y: number }): string {
  const [midX, midY] = [(from.x + to.x) / 2, (from.y + to.y) / 2];
  let [bowX, bowY] = [(from.y - to.y) * TUNNEL_BOW, (to.x - from.x) * TUNNEL_BOW];
  if ((midX - CENTER) * bowX + (midY - CENTER) * bowY < 0) [bowX, bowY] = [-bowX, -bowY];
  const point = (x: number, y: number) => `${x.toFixed(1)} ${y.toFixed(1)}`;
  return `M ${point(from.x, from.y)} Q ${point(midX + bowX, midY + bowY)} ${point(to.x, to.y)}`;
}
