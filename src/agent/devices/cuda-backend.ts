import type { Logger } from "../../core/logger.js";
import type { DeviceMetrics, DeviceRef } from "../../protocol/inventory.js";
import type { DeviceBackend } from "./backend.js";
import { memoryMetrics, numberOrUndefined } from "./parse-helpers.js";
import { runTool } from "./run-tool.js";
import type { ToolResult } from "./run-tool.js";

export const NVIDIA_SMI_ARGS = [
  "--query-gpu=index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu,temperature.gpu,power.draw",
  "--format=csv,noheader,nounits",
] as const;

export interface NvidiaGpu {
  ref: DeviceRef;
  metrics: DeviceMetrics | null;
}

/** NVIDIA GPUs through `nvidia-smi` (SPEC §3). */
export class CudaBackend implements DeviceBackend {
  readonly name = "cuda" as const;

  constructor(
    private readonly log: Logger,
    private readonly command = "nvidia-smi",
  ) {}

  async discover(): Promise<DeviceRef[]> {
    return (await this.#query()).map((gpu) => gpu.ref);
  }

  async measure(devices: readonly DeviceRef[]): Promise<Map<string, DeviceMetrics>> {
    const measured = new Map<string, DeviceMetrics>();
    for (const gpu of await this.#query()) {
      const known = devices.find((device) => sameGpu(device, gpu.ref));
      if (known && gpu.metrics) measured.set(known.id, gpu.metrics);
    }
    return measured;
  }

  async #query(): Promise<NvidiaGpu[]> {
    const result = await runTool(this.command, NVIDIA_SMI_ARGS);
    const { gpus, skipped } = parseNvidiaSmi(result);
    if (!result.ok) {
      const said = skipped[0] ? ` (${skipped[0]})` : "";
      this.log.warn({ tool: this.command, found: gpus.length }, `cuda: ${result.reason}${said}`);
    } else if (skipped.length > 0) {
      this.log.warn(
        { tool: this.command, lines: skipped },
        "cuda: nvidia-smi printed lines that are not GPUs",
      );
    }
    return gpus;
  }
}

/** A GPU keeps its id only while it keeps its UUID: a card that vanished is not mistaken for the next. */
function sameGpu(known: DeviceRef, found: DeviceRef): boolean {
  return known.uuid && found.uuid ? known.uuid === found.uuid : known.index === found.index;
}

/**
 * Parses `nvidia-smi --query-gpu=… --format=csv,noheader,nounits`. Lines that do not parse
 * (a GPU that fell off the bus prints an error line in place of its values) are returned as
 * `skipped`; the others are used even when the tool exited non-zero.
 */
export function parseNvidiaSmi(result: ToolResult): { gpus: NvidiaGpu[]; skipped: string[] } {
  const gpus: NvidiaGpu[] = [];
  const skipped: string[] = [];
  for (const line of result.stdout.split("\n").map((text) => text.trim())) {
    if (!line) continue;
    const fields = line.split(",").map((field) => field.trim());
    if (fields.length < 9) {
      skipped.push(line);
      continue;
    }
    // A name with a comma in it spreads over several fields: the last six are numbers.
    const numbers = fields.slice(-6);
    const [indexText, uuid] = fields;
    const name = fields.slice(2, -6).join(", ");
    const index = Number(indexText);
    if (!Number.isInteger(index) || index < 0) {
      skipped.push(line);
      continue;
    }
    const [total, used, free, utilization, temperature, power] = numbers.map(numberOrUndefined);
    const ref: DeviceRef = { id: `gpu:${index}`, backend: "cuda", index, name };
    if (uuid && uuid.startsWith("GPU-")) ref.uuid = uuid;
    const metrics = memoryMetrics(
      { total, used, free },
      { utilization_pct: utilization, temperature_c: temperature, power_w: power },
    );
    gpus.push({ ref, metrics });
  }
  return { gpus, skipped };
}
