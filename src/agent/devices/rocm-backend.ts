import type { Logger } from "../../core/logger.js";
import type { DeviceMetrics, DeviceRef } from "../../protocol/inventory.js";
import type { DeviceBackend } from "./backend.js";
import {
  bytesToMib,
  memoryMetrics,
  numberOrUndefined,
  optionalMetrics,
  parseJson,
} from "./parse-helpers.js";
import { runTool } from "./run-tool.js";

export const ROCM_SMI_ARGS = [
  "--showproductname",
  "--showmeminfo",
  "vram",
  "--showuse",
  "--showtemp",
  "--json",
];
export const AMD_SMI_ARGS = ["metric", "--usage", "--mem-usage", "--temperature", "--json"];
export const AMD_SMI_STATIC_ARGS = ["static", "--asic", "--json"];

export interface AmdGpu {
  ref: DeviceRef;
  metrics: DeviceMetrics | null;
}

/** AMD GPUs through `rocm-smi`, or `amd-smi` where rocm-smi is missing or fails (SPEC §3). */
export class RocmBackend implements DeviceBackend {
  readonly name = "rocm" as const;

  constructor(
    private readonly log: Logger,
    private readonly commands = { rocmSmi: "rocm-smi", amdSmi: "amd-smi" },
  ) {}

  async discover(): Promise<DeviceRef[]> {
    return (await this.#query()).map((gpu) => gpu.ref);
  }

  async measure(devices: readonly DeviceRef[]): Promise<Map<string, DeviceMetrics>> {
    const measured = new Map<string, DeviceMetrics>();
    for (const gpu of await this.#query()) {
      const known = devices.find((device) => device.index === gpu.ref.index);
      if (known && gpu.metrics) measured.set(known.id, gpu.metrics);
    }
    return measured;
  }

  async #query(): Promise<AmdGpu[]> {
    const rocm = await runTool(this.commands.rocmSmi, ROCM_SMI_ARGS);
    const fromRocm = parseRocmSmi(rocm.stdout);
    if (fromRocm.length > 0) return fromRocm;
    const metric = await runTool(this.commands.amdSmi, AMD_SMI_ARGS);
    const fromAmd = parseAmdSmi(
      metric.stdout,
      (await runTool(this.commands.amdSmi, AMD_SMI_STATIC_ARGS)).stdout,
    );
    if (fromAmd.length === 0) {
      const reasons = [rocm, metric].map((result) =>
        result.ok ? "no GPU in its output" : result.reason,
      );
      this.log.warn(
        { tools: [this.commands.rocmSmi, this.commands.amdSmi] },
        `rocm: ${reasons.join("; ")}`,
      );
    }
    return fromAmd;
  }
}

/**
 * Parses `rocm-smi … --json`: one `cardN` object per GPU with string values; key names changed
 * case between ROCm releases ("Card series" / "Card Series"), and absent readings are "N/A".
 */
export function parseRocmSmi(stdout: string): AmdGpu[] {
  const json = parseJson(stdout);
  if (!json || typeof json !== "object") return [];
  const gpus: AmdGpu[] = [];
  for (const [key, value] of Object.entries(json as Record<string, unknown>)) {
    const card = /^card(\d+)$/.exec(key);
    if (!card || !value || typeof value !== "object") continue;
    const fields = lowerCaseKeys(value as Record<string, unknown>);
    const index = Number(card[1]);
    const name =
      [fields["card series"], fields["card model"], fields["device name"]].find(
        (text): text is string => typeof text === "string" && text.trim() !== "" && text !== "N/A",
      ) ?? `AMD GPU ${index}`;
    const ref: DeviceRef = { id: `gpu:${index}`, backend: "rocm", index, name };
    const uniqueId = fields["unique id"];
    if (typeof uniqueId === "string" && uniqueId !== "N/A") ref.uuid = uniqueId;
    const total = numberOrUndefined(fields["vram total memory (b)"]);
    const used = numberOrUndefined(fields["vram total used memory (b)"]);
    const metrics: DeviceMetrics | null =
      total === undefined || used === undefined
        ? null
        : {
            vram_total_mb: bytesToMib(total),
            vram_used_mb: bytesToMib(used),
            vram_free_mb: bytesToMib(total - used),
            ...optionalMetrics({
              utilization_pct: numberOrUndefined(fields["gpu use (%)"]),
              temperature_c:
                numberOrUndefined(fields["temperature (sensor edge) (c)"]) ??
                numberOrUndefined(fields["temperature (sensor junction) (c)"]),
            }),
          };
    gpus.push({ ref, metrics });
  }
  return gpus.sort((a, b) => a.ref.index - b.ref.index);
}

interface AmdSmiValue {
  value?: unknown;
  unit?: unknown;
}

/**
 * Parses `amd-smi metric --usage --mem-usage --temperature --json` (a list with one entry per
 * GPU, readings as `{value, unit}`; older releases print bare numbers or "N/A"), with names
 * from `amd-smi static --asic --json`.
 */
export function parseAmdSmi(metricStdout: string, staticStdout: string): AmdGpu[] {
  const metrics = asList(parseJson(metricStdout));
  const names = new Map(
    asList(parseJson(staticStdout)).map((entry) => [
      numberOrUndefined(entry.gpu),
      (entry.asic as { market_name?: unknown } | undefined)?.market_name,
    ]),
  );
  const gpus: AmdGpu[] = [];
  for (const entry of metrics) {
    const index = numberOrUndefined(entry.gpu);
    if (index === undefined) continue;
    const name = names.get(index);
    const ref: DeviceRef = {
      id: `gpu:${index}`,
      backend: "rocm",
      index,
      name: typeof name === "string" && name !== "N/A" ? name : `AMD GPU ${index}`,
    };
    const memory = (entry.mem_usage ?? {}) as Record<string, unknown>;
    const total = mebibytes(memory.total_vram);
    const used = mebibytes(memory.used_vram);
    const free =
      mebibytes(memory.free_vram) ??
      (total !== undefined && used !== undefined ? total - used : undefined);
    const usage = (entry.usage ?? {}) as Record<string, unknown>;
    const temperature = (entry.temperature ?? {}) as Record<string, unknown>;
    gpus.push({
      ref,
      metrics: memoryMetrics(
        { total, used, free },
        {
          utilization_pct: reading(usage.gfx_activity),
          temperature_c: reading(temperature.edge) ?? reading(temperature.hotspot),
        },
      ),
    });
  }
  return gpus;
}

function reading(value: unknown): number | undefined {
  return numberOrUndefined(
    value && typeof value === "object" ? (value as AmdSmiValue).value : value,
  );
}

/** amd-smi memory readings in MiB; it reports MB (meaning MiB) unless the unit says GB. */
function mebibytes(value: unknown): number | undefined {
  const amount = reading(value);
  const unit =
    value && typeof value === "object" ? String((value as AmdSmiValue).unit ?? "MB") : "MB";
  if (amount === undefined) return undefined;
  return unit.toUpperCase().startsWith("G") ? amount * 1024 : amount;
}

function asList(json: unknown): Record<string, unknown>[] {
  return Array.isArray(json)
    ? json.filter((entry): entry is Record<string, unknown> => !!entry && typeof entry === "object")
    : [];
}

function lowerCaseKeys(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(fields).map(([key, value]) => [key.toLowerCase(), value]),
  );
}
