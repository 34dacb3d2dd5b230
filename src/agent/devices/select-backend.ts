import type { Logger } from "../../core/logger.js";
import type { AgentConfig } from "../config/agent-config.js";
import type { BackendName, DeviceRef } from "../../protocol/inventory.js";
import type { DeviceBackend } from "./backend.js";
import { CpuBackend } from "./cpu-backend.js";
import { CudaBackend } from "./cuda-backend.js";
import { MetalBackend } from "./metal-backend.js";
import { RocmBackend } from "./rocm-backend.js";
import { SyclBackend } from "./sycl-backend.js";
import { VulkanBackend } from "./vulkan-backend.js";

export interface SelectedDevices {
  backend: DeviceBackend;
  devices: DeviceRef[];
}

type GpuBackendName = Exclude<BackendName, "cpu">;

const GPU_BACKENDS: Record<GpuBackendName, (log: Logger) => DeviceBackend> = {
  cuda: (log) => new CudaBackend(log),
  rocm: (log) => new RocmBackend(log),
  metal: (log) => new MetalBackend(log),
  sycl: (log) => new SyclBackend(log),
  vulkan: (log) => new VulkanBackend(log),
};

/** The order of SPEC §3 for `backend: auto`; metal only exists on macOS. */
const AUTO_ORDER: GpuBackendName[] = ["cuda", "rocm", "metal", "sycl", "vulkan"];

/**
 * Picks the backend named in the config, or for `auto` the first in SPEC order that finds a
 * GPU (else the CPU), and narrows its devices to `devices:` when given. An id in `devices:`
 * that the backend did not find is a config error.
 */
export async function selectDevices(config: AgentConfig, log: Logger): Promise<SelectedDevices> {
  const { backend, devices: found } = await discover(config.backend, log);
  if (config.devices.length === 0) return { backend, devices: found };
  const unknown = config.devices.filter((id) => !found.some((device) => device.id === id));
  if (unknown.length > 0) {
    throw new Error(
      `devices: ${unknown.join(", ")} not found on this host (the ${backend.name} backend found: ${
        found.map((device) => device.id).join(", ") || "none"
      })`,
    );
  }
  return { backend, devices: found.filter((device) => config.devices.includes(device.id)) };
}

async function discover(name: AgentConfig["backend"], log: Logger): Promise<SelectedDevices> {
  if (name === "cpu") return discoverWith(new CpuBackend());
  if (name !== "auto") {
    const selected = await discoverWith(GPU_BACKENDS[name](log));
    if (selected.devices.length === 0)
      log.warn(`backend ${name}: no device found; this node serves nothing`);
    return selected;
  }
  // Probing: a missing tool is expected here, so the candidates stay quiet and one line sums up.
  const quiet = log.child({ probe: true }, { level: "error" });
  const tried: string[] = [];
  for (const candidate of AUTO_ORDER) {
    if (candidate === "metal" && process.platform !== "darwin") continue;
    const make = GPU_BACKENDS[candidate];
    const selected = await discoverWith(make(quiet));
    if (selected.devices.length > 0) {
      log.info(
        { backend: candidate, devices: selected.devices.map((device) => device.id) },
        `backend auto: using ${candidate}`,
      );
      return { backend: make(log), devices: selected.devices };
    }
    tried.push(candidate);
  }
  log.info(`backend auto: no GPU found (tried ${tried.join(", ")}); using the CPU`);
  return discoverWith(new CpuBackend());
}

async function discoverWith(backend: DeviceBackend): Promise<SelectedDevices> {
  return { backend, devices: await backend.discover() };
}
