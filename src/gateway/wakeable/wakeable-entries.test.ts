import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { test } from "node:test";
import type { SharedDocument } from "../../core/state/shared-document.js";
import { WakeableEntries, WakeableEntrySchema } from "./wakeable-entries.js";
import type { WakeableEntry } from "./wakeable-entries.js";

/**
 * A shared document whose change events have not arrived yet, as over NATS, where they come
 * from a watch some time after the update has been stored.
 */
class LaggingDocument
  extends EventEmitter<{ change: [WakeableEntry[]] }>
  implements SharedDocument<WakeableEntry[]>
{
  #value: WakeableEntry[] = [];

  read() {
    return Promise.resolve(this.#value);
  }

  update(change: (current: WakeableEntry[]) => WakeableEntry[]) {
    this.#value = change(this.#value);
    return Promise.resolve(this.#value);
  }

  close() {}
}

test("an entry stored or deleted is seen at once, before the document's change event", async () => {
  const entries = await WakeableEntries.open(new LaggingDocument(), []);
  await entries.put(WakeableEntrySchema.parse({ id: "spare", vram_mb: 24576 }));
  assert.deepEqual(
    entries.list().map((entry) => entry.id),
    ["spare"],
  );
  assert.equal(await entries.delete("spare"), true);
  assert.deepEqual(entries.list(), []);
});

test("actions: argv, webhook with headers, Wake-on-LAN with its defaults; idle sleep needs a way to sleep", () => {
  const entry = WakeableEntrySchema.parse({
    id: "ws",
    node_id: "ws-node",
    wake: { wol: { mac: "AA:bb:cc:dd:ee:01" } },
    sleep_after_idle_s: 600,
    sleep: "node",
  });
  assert.deepEqual(entry.wake, {
    wol: { mac: "AA:bb:cc:dd:ee:01", address: "255.255.255.255", port: 9 },
  });
  assert.deepEqual(
    WakeableEntrySchema.parse({ id: "vm", wake: { webhook: "https://cloud.example/start" } }).wake,
    { webhook: "https://cloud.example/start", headers: {}, timeout_s: 30 },
  );
  const refused = (input: unknown, path: string) =>
    assert.deepEqual(
      WakeableEntrySchema.safeParse(input).error?.issues.map((issue) => issue.path.join(".")),
      [path],
    );
  refused({ id: "x", wake: { command: "wakeonlan aa:bb" } }, "wake");
  refused({ id: "x", wake: { wol: { mac: "not-a-mac" } } }, "wake.wol.mac");
  refused({ id: "x", node_id: "n", sleep_after_idle_s: 60 }, "sleep_after_idle_s");
  refused({ id: "x", sleep: "node", sleep_after_idle_s: 60 }, "sleep_after_idle_s");
});
