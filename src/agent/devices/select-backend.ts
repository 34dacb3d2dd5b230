import type { Logger } from "pino";
import type { AgentConfig } from "../agent-config.js";
import type { DeviceRef } from "../../protocol/inventory.js";
import type { DeviceBackend } from "./backend.js";
import { CpuBackend } from "./cpu-backend.js";

export interface SelectedDevices {
  backend: DeviceBackend;
  devices: DeviceRef[];
}

/**
 * Picks the backend named in the config (`auto`: the first that finds a device, else the CPU)
 * and narrows its devices to `devices:` when given.
 */
export async function selectDevices(config: AgentConfig, log: Logger): Promise<SelectedDevices> {
  const backend = createBackend(config.backend, log);
  const found = await backend.discover();
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

function createBackend(name: AgentConfig["backend"], log: Logger): DeviceBackend {
  if (name === "cpu") return new CpuBackend();
  if (name === "auto") {
    log.info("backend auto: no GPU backend in this version, using the cpu backend");
    return new CpuBackend();
  }
  throw new Error(`backend: "${name}" is not supported by this version (use auto or cpu)`);
}
