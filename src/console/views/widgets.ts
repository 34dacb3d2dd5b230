/** Pieces shared by the console's views. */
import type { DeviceInventory, LiveState } from "../../protocol/inventory.js";
import { h } from "../dom.js";
import { formatMiB } from "../format.js";

/** A shape per state, so the pill reads without colour too. */
const STATE_GLYPH: Record<LiveState, string> = {
  client: "◇",
  standby: "○",
  loading: "◐",
  serving: "●",
};

/** The live-state pill (SPEC §7.4): glyph, colour and the state's own word. */
export function statePill(state: LiveState, draining = false): HTMLElement {
  return h(
    "span",
    { class: `pill state-${state}`, "data-state": state, title: `live state: ${state}` },
    h("span", { "aria-hidden": "true" }, STATE_GLYPH[state]),
    h("span", { class: "pill-label" }, state),
    draining && h("span", { class: "pill-flag" }, "draining"),
  );
}

/**
 * Device memory as one bar: measured use, the agent's reservation for the model it holds, and
 * what is free. The numbers are also in the label and the text below for screen readers.
 */
export function memoryBar(device: DeviceInventory): HTMLElement {
  const metrics = device.metrics;
  if (!metrics || metrics.vram_total_mb <= 0) {
    return h("div", { class: "memory unknown" }, "memory not reported");
  }
  const total = metrics.vram_total_mb;
  const used = Math.min(metrics.vram_used_mb, total);
  // A reservation not yet visible in the measurement (the server is still loading) is shown
  // on top of the measured use.
  const reserved = Math.min(Math.max(0, device.vram_reserved_mb), total - used);
  const free = Math.max(0, metrics.vram_free_mb);
  // Set through CSSOM: the page's Content-Security-Policy refuses inline style attributes.
  const segment = (kind: string, mb: number) => {
    const element = h("span", { class: `bar-${kind}` });
    element.style.width = `${((mb / total) * 100).toFixed(2)}%`;
    return element;
  };
  const label = `${device.ref.backend === "cpu" ? "RAM" : "VRAM"}: ${formatMiB(used)} used, ${formatMiB(device.vram_reserved_mb)} reserved, ${formatMiB(free)} free of ${formatMiB(total)}`;
  return h(
    "div",
    { class: "memory" },
    h(
      "div",
      { class: "bar", role: "img", "aria-label": label },
      segment("used", used),
      segment("reserved", reserved),
    ),
    h(
      "div",
      { class: "bar-legend" },
      h("span", { class: "legend-used" }, `${formatMiB(used)} used`),
      h("span", { class: "legend-reserved" }, `${formatMiB(device.vram_reserved_mb)} reserved`),
      h("span", { class: "legend-free" }, `${formatMiB(free)} free / ${formatMiB(total)}`),
    ),
  );
}

export function utilization(device: DeviceInventory): string {
  const pct = device.metrics?.utilization_pct;
  return pct === undefined ? "util –" : `util ${Math.round(pct)}%`;
}

export function chips(values: string[], kind: string): HTMLElement[] {
  return values.map((value) => h("span", { class: `chip chip-${kind}` }, value));
}

/** A section with a heading; `id` makes it reachable from links and tests. */
export function section(id: string, title: string, ...body: (Node | string)[]): HTMLElement {
  return h(
    "section",
    { id, class: "panel", "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, title),
    ...body,
  );
}
