import assert from "node:assert/strict";
import { test } from "node:test";
import type { PlacementCandidate } from "./placement.js";
import { place } from "./placement.js";

const GIB = 1024 ** 3;
const device = (
  name: string,
  view: Partial<PlacementCandidate> = {},
): PlacementCandidate & { name: string } => ({
  name,
  holdsModel: false,
  pressure: 0,
  busyWithModel: false,
  freeBytes: 8 * GIB,
  fits: true,
  ...view,
});

test("a device that has the model wins, the least pressed of them, even over a free one", () => {
  const chosen = place([
    device("empty", { freeBytes: 80 * GIB }),
    device("holding-busy", { holdsModel: true, pressure: 2, busyWithModel: true }),
    device("holding-idle", { holdsModel: true, pressure: 1, busyWithModel: true }),
  ]);
  assert.equal(chosen?.name, "holding-idle");
});

test("otherwise idle before busy, empty before one that must evict, then the most free memory", () => {
  assert.equal(
    place([device("busy", { pressure: 1, freeBytes: 80 * GIB }), device("idle")])?.name,
    "idle",
  );
  assert.equal(
    place([device("evicts", { busyWithModel: true, freeBytes: 80 * GIB }), device("empty")])?.name,
    "empty",
  );
  assert.equal(
    place([device("small", { freeBytes: 4 * GIB }), device("large", { freeBytes: 24 * GIB })])
      ?.name,
    "large",
  );
  assert.equal(
    place([
      device("busier", { pressure: 2, freeBytes: 8 * GIB }),
      device("busy", { pressure: 1, freeBytes: 8 * GIB }),
    ])?.name,
    "busy",
  );
});

test("a device where the model does not fit is never chosen; none fits is undefined", () => {
  assert.equal(
    place([device("roomy", { fits: false, freeBytes: 80 * GIB }), device("fits")])?.name,
    "fits",
  );
  assert.equal(place([device("a", { fits: false }), device("b", { fits: false })]), undefined);
  assert.equal(place([]), undefined);
});

test("equal devices keep their order", () => {
  assert.equal(place([device("first"), device("second")])?.name, "first");
});
