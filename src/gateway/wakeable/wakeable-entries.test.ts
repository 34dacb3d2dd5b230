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
    entries.status(() => false).map((entry) => entry.id),
    ["spare"],
  );
  assert.equal(await entries.delete("spare"), true);
  assert.deepEqual(
    entries.status(() => false),
    [],
  );
});
