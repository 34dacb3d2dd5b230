import assert from "node:assert/strict";
import { test } from "node:test";
import { isWholeReference, MissingVariableError, substitute } from "./env-substitution.js";

test("substitutes ${VAR} and ${VAR:-default}", () => {
  const env = { A: "one", EMPTY: "" };
  assert.equal(substitute("${A}-${B:-two}", env), "one-two");
  assert.equal(substitute("${EMPTY:-fallback}", env), "fallback");
  assert.equal(substitute("[${EMPTY}]", env), "[]");
  assert.equal(substitute("${B:-}", env), "");
  assert.equal(substitute("cost: $${A}", env), "cost: ${A}");
});

test("an unset variable without default is an error naming it", () => {
  assert.throws(
    () => substitute("${MISSING}", {}),
    (err: unknown) => {
      assert.ok(err instanceof MissingVariableError);
      assert.equal(err.variable, "MISSING");
      return true;
    },
  );
});

test("recognizes a value that is one reference only", () => {
  assert.ok(isWholeReference("${PORT:-8090}"));
  assert.ok(!isWholeReference("port-${PORT}"));
});
