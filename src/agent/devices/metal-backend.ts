import { freemem } from "node:os";
import type { Logger } from "../../core/logger.js";
import type { DeviceMetrics, DeviceRef } from "../../protocol/inventory.js";
import type { DeviceBackend } from "./backend.js";
import { bytesToMib, numberOrUndefined, parseJson } from "./parse-helpers.js";
import { runTool } from "./run-tool.js";

interface MetalGpu {
  ref: DeviceRef;
  /** Dedicated VRAM of a discrete card in MiB; undefined for unified memory (Apple silicon). */
  dedicatedMb: number | undefined;
}

/**
 * The Mac's GPU through `system_profiler SPDisplaysDataType -json` (SPEC §3): one device,
 * `gpu:0`, the first GPU with Metal support. Apple silicon shares system memory with the GPU,
 * so memory is `sysctl hw.memsize` and the machine's free memory.
 */
export class MetalBackend implements DeviceBackend {
  readonly name = "metal" as const;

  constructor(
    private readonly log: Logger,
    private readonly commands = { systemProfiler: "system_profiler", sysctl: "sysctl" },
  ) {}

  async discover(): Promise<DeviceRef[]> {
    const gpu = await this.#gpu();
    return gpu ? [gpu.ref] : [];
  }

  async measure(devices: readonly DeviceRef[]): Promise<Map<string, DeviceMetrics>> {
    const measured = new Map<string, DeviceMetrics>();
    const device = devices[0];
    if (!device) return measured;
    const gpu = await this.#gpu();
    if (gpu?.dedicatedMb !== undefined) {
      // macOS reports no usage of a discrete card's VRAM; its size is all that is known.
      measured.set(device.id, {
        vram_total_mb: gpu.dedicatedMb,
        vram_used_mb: 0,
        vram_free_mb: gpu.dedicatedMb,
      });
      return measured;
    }
    const result = await runTool(this.commands.sysctl, ["-n", "hw.memsize"]);
    const totalBytes = numberOrUndefined(result.stdout);
    if (totalBytes === undefined) {
      this.log.warn(
        { tool: this.commands.sysctl },
        `metal: ${result.ok ? "unexpected hw.memsize" : result.reason}`,
      );
      return measured;
    }
    measured.set(device.id, unifiedMemory(totalBytes, freemem()));
    return measured;
  }

  async #gpu(): Promise<MetalGpu | undefined> {
    const result = await runTool(this.commands.systemProfiler, ["SPDisplaysDataType", "-json"]);
    const gpu = parseSystemProfiler(result.stdout);
    if (!gpu)
      this.log.warn(
        { tool: this.commands.systemProfiler },
        `metal: ${result.ok ? "no Metal GPU listed" : result.reason}`,
      );
    return gpu;
  }
}

/** The first Metal-capable GPU in `system_profiler SPDisplaysDataType -json`. */
export function parseSystemProfiler(stdout: string): MetalGpu | undefined {
  const json = parseJson(stdout) as { SPDisplaysDataType?: Record<string, unknown>[] } | undefined;
  const gpu = (json?.SPDisplaysDataType ?? []).find(
    (entry) => entry.spdisplays_mtlgpufamilysupport !== undefined,
  );
  if (!gpu) return undefined;
  const model =
    typeof gpu.sppci_model === "string" ? gpu.sppci_model : String(gpu._name ?? "Metal GPU");
  const cores = typeof gpu.sppci_cores === "string" ? ` (${gpu.sppci_cores} cores)` : "";
  return {
    ref: { id: "gpu:0", backend: "metal", index: 0, name: `${model}${cores}` },
    dedicatedMb: vramMb(gpu.spdisplays_vram ?? gpu.spdisplays_vram_shared),
  };
}

/** "8 GB" or "1536 MB" as MiB; undefined when absent (unified memory). */
function vramMb(text: unknown): number | undefined {
  if (typeof text !== "string") return undefined;
  const match = /^([\d.]+)\s*(GB|MB)$/i.exec(text.trim());
  if (!match) return undefined;
  const amount = Number(match[1]);
  return match[2]?.toUpperCase() === "GB" ? amount * 1024 : amount;
}

export function unifiedMemory(totalBytes: number, freeBytes: number): DeviceMetrics {
  const total = bytesToMib(totalBytes);
  const free = bytesToMib(freeBytes);
  return { vram_total_mb: total, vram_used_mb: total - free, vram_free_mb: free };
}
