import assert from "node:assert/strict";
import { test } from "node:test";
import { AffinityMemory, affinityKey, affinityOrder } from "./prefix-affinity.js";
import type { AffinityCandidate } from "./prefix-affinity.js";

const chat = (system: string, ...turns: string[]) => ({
  messages: [
    { role: "system", content: system },
    ...turns.map((content, i) => ({ role: i % 2 ? "assistant" : "user", content })),
  ],
});

test("a conversation keeps its key turn after turn; its system prompt, tools, first question and model make it", () => {
  const key = (body: Record<string, unknown>, name = "m") =>
    affinityKey("/v1/chat/completions", body, name);
  const first = key(chat("You are terse.", "Hi"));
  assert.equal(key(chat("You are terse.", "Hi", "Hello!", "And then?")), first);
  assert.notEqual(key(chat("You are verbose.", "Hi")), first);
  assert.notEqual(key(chat("You are terse.", "Hey")), first);
  assert.notEqual(key(chat("You are terse.", "Hi"), "other-model"), first);
  assert.notEqual(key({ ...chat("You are terse.", "Hi"), tools: [{ type: "function" }] }), first);

  const prompt = "p".repeat(1024);
  const completion = (text: string) => affinityKey("/v1/completions", { prompt: text }, "m");
  assert.equal(completion(`${prompt}one ending`), completion(`${prompt}another`));
  assert.notEqual(completion(`x${prompt}`), completion(prompt));
  assert.equal(completion(prompt), affinityKey("/v1/completions", { prompt: [prompt] }, "m"));
  assert.equal(affinityKey("/v1/embeddings", { input: "text" }, "m"), undefined);
});

const nodes = (...ids: string[]) => ids.map((id) => ({ id, load: 0, slots: 0 }));
const keys = Array.from({ length: 2000 }, (_, i) => `key-${i}`);
const homes = (candidates: AffinityCandidate[]) =>
  new Map(keys.map((key) => [key, affinityOrder(key, candidates, 1.25).order[0]!.id]));

test("keys spread over the nodes; a node that leaves moves only its own keys, one that joins takes only keys", () => {
  const four = homes(nodes("a", "b", "c", "d"));
  for (const id of ["a", "b", "c", "d"]) {
    const share = [...four.values()].filter((home) => home === id).length / keys.length;
    assert.ok(share > 0.18 && share < 0.32, `${id} holds ${share}`);
  }
  const three = homes(nodes("a", "b", "d"));
  for (const key of keys) {
    if (four.get(key) !== "c") assert.equal(three.get(key), four.get(key), key);
  }
  const five = homes(nodes("a", "b", "c", "d", "e"));
  for (const key of keys) {
    if (five.get(key) !== "e") assert.equal(five.get(key), four.get(key), key);
  }
});

test("a key's node above the load bound passes it on down the key's ranking", () => {
  const key = "hot prefix";
  const idle = nodes("a", "b", "c", "d");
  const { order, home } = affinityOrder(key, idle, 1.25);
  assert.equal(order[0], home);
  const next = order[1];
  // The mean with this request is (5 + 1) / 4: the bound is ceil(1.25 × 1.5) = 2.
  const loaded = idle.map((node) => (node === home ? { ...node, load: 5 } : node));
  const spilled = affinityOrder(key, loaded, 1.25);
  assert.equal(spilled.home!.id, home!.id);
  assert.equal(spilled.order[0]!.id, next!.id, "overflow: the next node of the key's ranking");
  assert.deepEqual(
    spilled.order.map((node) => node.id).sort(),
    ["a", "b", "c", "d"],
    "every node stays in the order, for retries",
  );
  assert.equal(spilled.order[1]!.id, home!.id, "then the key's own node");
  // Within the bound, the key stays home: all at 2, the bound is ceil(1.25 × 9 / 4) = 3.
  const busy = idle.map((node) => ({ ...node, load: 2 }));
  assert.equal(affinityOrder(key, busy, 1.25).order[0]!.id, home!.id);
});

test("the memory tells a repeat to the same node (hit) from a first visit (miss), forgetting the oldest", () => {
  const memory = new AffinityMemory(2);
  assert.equal(memory.sent("k1", "a"), false);
  assert.equal(memory.sent("k1", "a"), true);
  assert.equal(memory.sent("k1", "b"), false);
  memory.sent("k2", "a");
  memory.sent("k3", "a");
  assert.equal(memory.sent("k1", "b"), false, "k1 was forgotten");
});

test("a node with a free slot keeps its key whatever the mean; a full one passes it on at the bound", () => {
  const key = "a conversation";
  const idle = nodes("a", "b", "c", "d").map((node) => ({ ...node, slots: 2 }));
  const home = affinityOrder(key, idle, 1.25).home!;
  // One request in flight, on its node: the bound is ceil(1.25 × 2 / 4) = 1, but a slot is free.
  const busy = idle.map((node) => (node === home ? { ...node, load: 1 } : node));
  assert.equal(
    affinityOrder(key, busy, 1.25).order[0],
    busy.find((n) => n.id === home.id),
  );
  const full = idle.map((node) => (node === home ? { ...node, load: 2 } : node));
  assert.notEqual(affinityOrder(key, full, 1.25).order[0]!.id, home.id);
});
