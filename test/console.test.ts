/**
 * The web console (SPEC §9) in a real browser: Debian's chromium driven by playwright-core,
 * against a gateway and two agents with the embedded engine on stories260K. Only one agent
 * ever loads the model: two inference engines must not run at once on a 2-core machine.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Page } from "playwright-core";
import { REGISTRY_PATHS } from "../src/protocol/paths.js";
import type { SplitGroupInfo } from "../src/protocol/split.js";
import { launchBrowser } from "./helpers/browser.js";
import { postJson } from "./helpers/http-client.js";
import type { AgentProcess } from "./helpers/launcher.js";
import { playedNode } from "./helpers/played-node.js";
import {
  joinArgs,
  ROOT,
  startAgent,
  startGateway,
  stopAgent,
  testModel,
} from "./helpers/launcher.js";

const ADMIN_KEY = "console-admin-key-0123456789";
const HEARTBEAT_S = 1;
const SCREENSHOTS = join(ROOT, "docs/screenshots");
const admin = { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" };

/** The state word shown in a node's pill on the fleet page. */
const pillOf = (nodeId: string) => `[data-node="${nodeId}"] .pill .pill-label`;

/**
 * A script for the page that records, in `window[name]`, every distinct text the element at
 * `selector` shows from now on. Plain JavaScript text: test code compiled by tsx carries
 * helpers that do not exist in the page.
 */
function recordTexts(name: string, selector: string): string {
  return `(() => {
    const seen = (window[${JSON.stringify(name)}] = []);
    const record = () => {
      const text = document.querySelector(${JSON.stringify(selector)})?.textContent;
      if (text && seen[seen.length - 1] !== text) seen.push(text);
    };
    new MutationObserver(record).observe(document.body, {
      subtree: true,
      childList: true,
      characterData: true,
    });
    record();
  })()`;
}

describe("web console in chromium", () => {
  let gateway: AgentProcess;
  let nodeA: AgentProcess;
  let nodeB: AgentProcess;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    gateway = await startGateway({
      config: { admin_key: ADMIN_KEY, heartbeat_interval_s: HEARTBEAT_S },
    });
    const agent = (nodeId: string, hostname: string, labels: Record<string, string>) =>
      startAgent({
        config: {
          engine: "embedded",
          node_id: nodeId,
          hostname,
          labels,
          models: [testModel("stories", { roles: ["chat"] })],
        },
        args: joinArgs(gateway, { heartbeatS: HEARTBEAT_S }),
      });
    nodeA = await agent("node-a", "alpha", { rack: "r1" });
    nodeB = await agent("node-b", "beta", { rack: "r2" });

    const browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("pageerror", (err) => pageErrors.push(err.message));
    await page.goto(gateway.url);
    // The gateway has an admin key, so the console asks for it once (its first call was
    // answered 401) and keeps it for the tab.
    await page.locator("#key-input").fill(ADMIN_KEY);
    await page.locator("#key-input").press("Enter");
    await page.locator('#connection[data-connection="live"]').waitFor();
    page.on("console", (message) => {
      if (message.type() === "error") pageErrors.push(message.text());
    });
  });

  after(async () => {
    await stopAgent(nodeA);
    await stopAgent(nodeB);
    await stopAgent(gateway);
  });

  test("both nodes are listed with their states, hosts, labels and devices", async () => {
    await page.locator(pillOf("node-a")).waitFor();
    await page.locator(pillOf("node-b")).waitFor();
    assert.equal(await page.locator(pillOf("node-a")).textContent(), "standby");
    assert.equal(await page.locator(pillOf("node-b")).textContent(), "standby");
    const card = page.locator('[data-node="node-a"]');
    assert.match((await card.textContent()) ?? "", /alpha/);
    assert.match((await card.textContent()) ?? "", /rack=r1/);
    assert.match((await card.locator(".device").textContent()) ?? "", /cpu:0/);
    assert.equal(await card.locator(".bar[role=img]").count(), 1);
    assert.equal(await page.locator("#topology a.topo-node").count(), 2);
    assert.match(
      (await page.locator('#models tr[data-model="stories"]').textContent()) ?? "",
      /chat/,
    );
  });

  test("a model loaded through the API shows loading, then serving, without reload", async () => {
    // Every state the pill shows is recorded in the page, so a short `loading` is not missed.
    await page.evaluate(recordTexts("seenStates", pillOf("node-a")));
    const navigations: string[] = [];
    page.on("framenavigated", (frame) => navigations.push(frame.url()));

    const loading = fetch(`${gateway.url}/api/nodes/node-a/commands/model.load`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({ model_id: "stories" }),
    });
    await page.locator(pillOf("node-a"), { hasText: /^loading$/ }).waitFor({ timeout: 2000 });
    const answer = await loading;
    assert.equal(answer.status, 200, await answer.text());
    await page.locator(pillOf("node-a"), { hasText: /^serving$/ }).waitFor({ timeout: 2000 });
    const seen = await page.evaluate<string[]>("window.seenStates");
    assert.deepEqual(seen, ["standby", "loading", "serving"]);
    assert.deepEqual(navigations, [], "the page was not reloaded");
    assert.match(
      (await page.locator('[data-node="node-a"] .loaded-models').textContent()) ?? "",
      /stories/,
    );
    await page.screenshot({ path: join(SCREENSHOTS, "overview.png") });
  });

  test("the node detail shows servers, logs and runs commands with the admin key", async () => {
    // Keyboard only: tab to the node's link and open it.
    await page.locator('[data-node="node-a"] .node-link').focus();
    await page.keyboard.press("Enter");
    await page.waitForURL(/#\/nodes\/node-a$/);
    const device = page.locator('[data-device="cpu:0"]');
    await device.locator(".server-ready").waitFor();
    assert.match((await device.locator(".server-pid").textContent()) ?? "", /^\d+$/);
    assert.ok((await device.locator(".log-tail pre").textContent())?.trim());

    await page.locator("#command-drain").click();
    await page.locator(".pill-flag", { hasText: "draining" }).waitFor();
    assert.equal(await page.locator("#command-drain").textContent(), "Resume");
    await page.locator("#command-drain").click();
    await page.locator(".pill-flag").waitFor({ state: "detached" });
    assert.match((await page.locator(".command-result").textContent()) ?? "", /node.resume: done/);
    await page.screenshot({ path: join(SCREENSHOTS, "node-detail.png"), fullPage: true });
  });

  test("the chat playground streams from the model and names the node", async () => {
    await page.locator('nav a[data-page="chat"]').click();
    await page.locator("#chat-model").selectOption("stories");
    await page.locator("#chat-max-tokens").fill("24");
    // Every text the answer shows is recorded: streaming means it grew in several steps.
    await page.evaluate(recordTexts("answerSteps", ".bubble.assistant .bubble-text"));
    await page.locator("#chat-prompt").fill("Once upon a time");
    await page.locator("#chat-prompt").press("Enter");
    const answer = page.locator(".bubble.assistant");
    await answer.and(page.locator(":not(.streaming)")).waitFor({ timeout: 60_000 });
    assert.equal(await answer.getAttribute("data-node"), "node-a");
    const stats = (await page.locator(".chat-stats").textContent()) ?? "";
    assert.match(stats, /node node-a/);
    assert.match(stats, /tokens\/s/);
    const steps = await page.evaluate<string[]>("window.answerSteps");
    assert.ok(steps.length > 1, `the answer arrived in ${steps.length} step(s)`);
    assert.ok((steps.at(-1) ?? "").length > 0);
  });

  test("the wakeable section is absent with no entries and present with one, its Wake button wakes it", async () => {
    await page.locator('nav a[data-page="overview"]').click();
    await page.locator("#fleet").waitFor();
    assert.equal(await page.locator("#wakeable").count(), 0);
    const added = await fetch(`${gateway.url}/api/wakeable`, {
      method: "POST",
      headers: admin,
      body: JSON.stringify({
        id: "big-box",
        provider: "wol",
        description: "workstation under the desk",
        vram_mb: 24576,
        node_id: "big-box",
        models: ["stories"],
        wake: { command: ["true"] },
      }),
    });
    assert.equal(added.status, 201, await added.text());
    await page.locator('#wakeable [data-wakeable="big-box"]').waitFor({ timeout: 2000 });
    assert.match((await page.locator("#wakeable").textContent()) ?? "", /sleeping/);
    // Its node never comes here: it stays waking, and the button goes until it is asleep again.
    await page.locator('[data-wake="big-box"]').click();
    await page.locator("#wakeable .wake-pill.wake-waking").waitFor({ timeout: 5000 });
    assert.equal(await page.locator('[data-wake="big-box"]').count(), 0);
    const removed = await fetch(`${gateway.url}/api/wakeable/big-box`, {
      method: "DELETE",
      headers: admin,
    });
    assert.equal(removed.status, 200);
    await page.locator("#wakeable").waitFor({ state: "detached", timeout: 2000 });
  });

  test("a split group shows its members, their shares, the tunnel link and its bytes", async () => {
    const members = [
      { node_id: "split-host", fraction: 0.6, free_mb: 12_000 },
      { node_id: "split-worker", fraction: 0.4, free_mb: 8000 },
    ];
    const group = (role: SplitGroupInfo["role"], links: SplitGroupInfo["links"]) => ({
      model_id: "big-model",
      role,
      host: "split-host",
      members,
      links,
    });
    const link = {
      node_id: "split-worker",
      state: "connected" as const,
      bytes_sent: 3 * 1024 * 1024,
      bytes_received: 2048,
    };
    const played = [
      playedNode("split-host", Date.now(), {
        snapshot: {
          state: "serving",
          devices: [],
          models: [],
          split_groups: [group("host", [link])],
        },
      }),
      playedNode("split-worker", Date.now(), {
        snapshot: {
          state: "standby",
          devices: [],
          models: [],
          split_groups: [group("worker", [])],
        },
      }),
    ];
    const send = (path: string, sequence: number) =>
      Promise.all(
        played.map(async (node) => {
          const answer = await postJson(`${gateway.url}${path}`, { ...node, sequence });
          assert.equal(answer.status, 200, answer.text);
        }),
      );
    await send(REGISTRY_PATHS.register, 1);
    // The played nodes heartbeat like agents: their lease is only a few seconds.
    let sequence = 1;
    let beat = Promise.resolve<unknown>(undefined);
    const beating = setInterval(() => {
      beat = beat.then(() => send(REGISTRY_PATHS.heartbeat, ++sequence));
    }, HEARTBEAT_S * 1000);
    try {
      const entry = page.locator('#split-groups [data-split-group="big-model"]');
      await entry.waitFor({ timeout: 5000 });
      const host = entry.locator('[data-split-member="split-host"]');
      const worker = entry.locator('[data-split-member="split-worker"]');
      // Part, layers, tunnel, sent, received; the host has no tunnel to itself.
      assert.deepEqual(await host.locator("td").allTextContents(), ["host", "60%", "—", "—", "—"]);
      assert.deepEqual(await worker.locator("td").allTextContents(), [
        "worker",
        "40%",
        "●connected",
        "3 MiB",
        "2 KiB",
      ]);
      assert.equal(
        await worker.locator("[data-tunnel-state]").getAttribute("data-tunnel-state"),
        "connected",
      );
      assert.equal(await worker.locator("a").getAttribute("href"), "#/nodes/split-worker");
      assert.equal(
        await page.locator('#topology [data-tunnel="split-host>split-worker"]').count(),
        1,
      );

      await worker.locator("a").click();
      await page.waitForURL(/#\/nodes\/split-worker$/);
      assert.equal(
        await page.locator('.split-line[data-split-group="big-model"]').textContent(),
        "worker for big-model on host split-host",
      );
      await page.locator('nav a[data-page="overview"]').click();
    } finally {
      clearInterval(beating);
      await beat;
      await send(REGISTRY_PATHS.deregister, sequence + 1);
    }
    await page.locator("#split-groups").waitFor({ state: "detached", timeout: 2000 });
  });

  test("works at 400 px wide: one column, nothing wider than the screen", async () => {
    await page.setViewportSize({ width: 400, height: 900 });
    await page.locator("#fleet").waitFor();
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth");
    assert.ok(overflow <= 400, `the page is ${overflow} px wide at 400 px`);
    await page.screenshot({ path: join(SCREENSHOTS, "overview-narrow.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  test("an agent killed leaves the live list within its lease", async () => {
    nodeB.signal("SIGKILL");
    await nodeB.exited;
    const leaseMs = 3 * HEARTBEAT_S * 1000;
    // The lease, plus the gateway's 1 s sweep and a little for delivery.
    await page
      .locator('[data-node="node-b"]')
      .waitFor({ state: "detached", timeout: leaseMs + 2000 });
    assert.equal(await page.locator('[data-node="node-a"]').count(), 1);
    assert.deepEqual(pageErrors, []);
  });
});
