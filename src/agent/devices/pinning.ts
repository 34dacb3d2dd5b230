import type { DeviceRef } from "../../protocol/inventory.js";

/**
 * Variables through which GPU runtimes pick their devices. A server is given its own device
 * and every other vendor's variable is removed, so nothing meant for another card leaks in:
 * ROCm, for one, also honours CUDA_VISIBLE_DEVICES.
 */
const VISIBILITY_VARIABLES = [
  "CUDA_VISIBLE_DEVICES",
  "CUDA_DEVICE_ORDER",
  "HIP_VISIBLE_DEVICES",
  "ROCR_VISIBLE_DEVICES",
  "GPU_DEVICE_ORDINAL",
  "ONEAPI_DEVICE_SELECTOR",
  "ZE_AFFINITY_MASK",
  "GGML_VK_VISIBLE_DEVICES",
] as const;

/** Environment changes for a server pinned to `device`; `undefined` removes a variable. */
export function pinningEnv(device: DeviceRef): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = Object.fromEntries(
    VISIBILITY_VARIABLES.map((name) => [name, undefined]),
  );
  const index = String(device.index);
  switch (device.backend) {
    case "cuda":
      // nvidia-smi numbers GPUs in PCI bus order; CUDA's default order is "fastest first".
      env.CUDA_DEVICE_ORDER = "PCI_BUS_ID";
      env.CUDA_VISIBLE_DEVICES = index;
      break;
    case "rocm":
      env.HIP_VISIBLE_DEVICES = index;
      break;
    case "sycl":
      env.ONEAPI_DEVICE_SELECTOR = `level_zero:${index}`;
      break;
    case "vulkan":
      env.GGML_VK_VISIBLE_DEVICES = index;
      break;
    case "cpu":
      // A GPU-enabled build must not find a GPU when it serves the CPU device.
      env.CUDA_VISIBLE_DEVICES = "";
      env.HIP_VISIBLE_DEVICES = "-1";
      env.GGML_VK_VISIBLE_DEVICES = "";
      break;
    case "metal":
      break; // one device, nothing to choose
  }
  return env;
}
