import assert from "node:assert/strict";
import { test } from "node:test";
import type { BackendName } from "../../protocol/inventory.js";
import { pinningEnv } from "./pinning.js";

const device = (backend: BackendName, index: number) => ({
  id: `gpu:${index}`,
  backend,
  index,
  name: "x",
});

/** The variables a server would see set, once its agent's own environment is overridden. */
const visible = (backend: BackendName, index: number) =>
  Object.fromEntries(
    Object.entries(pinningEnv(device(backend, index))).filter(([, value]) => value !== undefined),
  );

test("each vendor's server gets only its own variable; the others are removed", () => {
  assert.deepEqual(visible("cuda", 2), {
    CUDA_DEVICE_ORDER: "PCI_BUS_ID",
    CUDA_VISIBLE_DEVICES: "2",
  });
  // ROCm also reads CUDA_VISIBLE_DEVICES: a ROCm server must not inherit one meant for an NVIDIA card.
  assert.deepEqual(visible("rocm", 1), { HIP_VISIBLE_DEVICES: "1" });
  assert.equal(
    "CUDA_VISIBLE_DEVICES" in pinningEnv(device("rocm", 1)),
    true,
    "listed, to be removed",
  );
  assert.deepEqual(visible("sycl", 0), { ONEAPI_DEVICE_SELECTOR: "level_zero:0" });
  assert.deepEqual(visible("vulkan", 3), { GGML_VK_VISIBLE_DEVICES: "3" });
  assert.deepEqual(visible("metal", 0), {});
});

test("the CPU device hides every GPU", () => {
  assert.deepEqual(visible("cpu", 0), {
    CUDA_VISIBLE_DEVICES: "",
    HIP_VISIBLE_DEVICES: "-1",
    GGML_VK_VISIBLE_DEVICES: "",
  });
});
