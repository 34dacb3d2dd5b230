import assert from "node:assert/strict";
import { test } from "node:test";
import { parseCompileStep } from "./cmake-progress.js";

test("Makefile progress lines give the percent, the phase and the file", () => {
  assert.deepEqual(
    parseCompileStep("[ 16%] Building CXX object src/CMakeFiles/llama.dir/llama-kv-cache.cpp.o"),
    { phase: "compiling", percent: 16, detail: "llama-kv-cache.cpp" },
  );
  assert.deepEqual(parseCompileStep("[100%] Linking CXX executable ../../bin/llama-server"), {
    phase: "linking",
    percent: 100,
    detail: "llama-server",
  });
});

test("Ninja progress lines are turned into a percent", () => {
  assert.deepEqual(parseCompileStep("[50/200] Building C object ggml/src/ggml.c.o"), {
    phase: "compiling",
    percent: 25,
    detail: "ggml.c",
  });
});

test("any other line is not progress", () => {
  for (const line of [
    "-- Configuring done",
    "/src/ggml.c:12:5: warning: unused variable",
    "[0/0] nothing",
    "",
  ]) {
    assert.equal(parseCompileStep(line), undefined, line);
  }
});
