/**
 * The RoleMesh web console (SPEC §9): one page, live from `/api/events`, with hash routes
 * `#/` (fleet), `#/nodes/<id>` (node detail) and `#/chat` (playground).
 */
import { ApiError, call, readJsonEvents } from "../api.js";
import { h, render } from "../dom.js";
import { FleetStore } from "../fleet-store.js";
import type { Connection } from "../fleet-store.js";
import { formatAgo } from "../format.js";
import type { RegistryEvent } from "../../protocol/registry.js";
import { ChatView } from "../views/chat-view.js";
import { askForKey } from "../views/key-dialog.js";
import { NodeView } from "../views/node-view.js";
import { overview } from "../views/overview-view.js";
import { statePill } from "../views/widgets.js";

const store = new FleetStore();
const main = document.getElementById("main")!;
const overviewView = h("div", { class: "overview" });
const nodeView = new NodeView(store);
const chatView = new ChatView(store);
const connection = document.getElementById("connection")!;
const gatewayState = document.getElementById("gateway-state")!;

type Route = { page: "overview" } | { page: "node"; nodeId: string } | { page: "chat" };

function currentRoute(): Route {
  const hash = location.hash.replace(/^#\/?/, "");
  if (hash.startsWith("nodes/")) return { page: "node", nodeId: decodeURIComponent(hash.slice(6)) };
  if (hash === "chat") return { page: "chat" };
  return { page: "overview" };
}

/** Shows the page the address names; called on navigation. */
function navigate(): void {
  const route = currentRoute();
  for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    const active = link.dataset.page === (route.page === "node" ? "overview" : route.page);
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (route.page === "node") {
    nodeView.show(route.nodeId);
    main.replaceChildren(nodeView.element);
  } else if (route.page === "chat") {
    chatView.update();
    main.replaceChildren(chatView.element);
  } else {
    render(overviewView, ...overview(store));
    main.replaceChildren(overviewView);
  }
  document.title = `RoleMesh · ${route.page === "node" ? route.nodeId : route.page}`;
}

/** Redraws the visible page from the store (on every event). */
function refresh(): void {
  const route = currentRoute();
  if (route.page === "node") nodeView.update();
  else if (route.page === "chat") chatView.update();
  else render(overviewView, ...overview(store));
  showConnection(store.connection);
  gatewayState.replaceChildren(statePill(store.gatewayState));
}

const CONNECTION_TEXT: Record<Connection, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  "needs-key": "key needed",
};

function showConnection(state: Connection): void {
  connection.textContent = CONNECTION_TEXT[state];
  connection.dataset.connection = state;
}

/**
 * Follows `/api/events` for as long as the page is open: on any break it reconnects with a
 * growing delay (1 s to 10 s), and the first event of each connection is the whole status,
 * so nothing missed in between is lost.
 */
async function followEvents(): Promise<never> {
  let delay = 1000;
  for (;;) {
    try {
      const response = await call("/api/events", { headers: { accept: "text/event-stream" } });
      delay = 1000;
      store.setConnection("live");
      await readJsonEvents(response, (event) => store.apply(event as RegistryEvent));
    } catch (err) {
      if (err instanceof ApiError && err.needsKey) {
        store.setConnection("needs-key");
        if (await askForKey(`This gateway needs a key to show its fleet: ${err.message}`)) continue;
      }
    }
    store.setConnection("reconnecting");
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(10_000, delay * 2);
  }
}

/** Only the "… ago" texts change every second; nothing else is redrawn for them. */
function tickHeartbeatAges(): void {
  for (const element of document.querySelectorAll<HTMLElement>("[data-since]")) {
    element.textContent = formatAgo(store.sinceHeartbeat(element.dataset.since ?? ""));
  }
}

// The skip link moves focus without touching the hash, which names the page.
document.querySelector(".skip")!.addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
document.getElementById("key-button")!.addEventListener("click", () => {
  void askForKey("Commands (load, unload, drain) need the gateway's admin key.");
});
store.subscribe(refresh);
window.addEventListener("hashchange", navigate);
setInterval(tickHeartbeatAges, 1000);
navigate();
refresh();
void followEvents();
