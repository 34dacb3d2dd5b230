import { arch, cpus, freemem, hostname, platform, release, totalmem } from "node:os";
import type { HostCapabilities } from "../../protocol/inventory.js";
import { VERSION } from "../../core/version.js";
import { MIB } from "../../core/units.js";

/** What the host offers besides its devices (SPEC §3): the machine's memory, not this process's. */
export function hostCapabilities(engine: string, engineVersion: string | null): HostCapabilities {
  const cpuList = cpus();
  return {
    hostname: hostname(),
    os: platform(),
    os_release: release(),
    arch: arch(),
    cpu_model: cpuList[0]?.model.trim() ?? "unknown",
    cpu_cores: cpuList.length,
    memory_total_mb: Math.round(totalmem() / MIB),
    memory_free_mb: Math.round(freemem() / MIB),
    agent_version: VERSION,
    engine,
    engine_version: engineVersion,
  };
}
