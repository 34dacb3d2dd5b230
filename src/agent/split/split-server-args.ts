import type { BackendName } from "../../protocol/inventory.js";

/** One rpc-server of a worker as the host's server reaches it. */
export interface RpcTarget {
  /** The 127.0.0.1 port of the tunnel that leads to it. */
  localPort: number;
  /** Its share of the model's layers, 0..1. */
  fraction: number;
}

export interface SplitServerInput {
  targets: readonly RpcTarget[];
  /** The host's own share, 0..1. */
  hostFraction: number;
  /** The backend of the host's device: the CPU is no offload device of llama.cpp. */
  hostBackend: BackendName;
  /** Layers llama.cpp can offload (`<arch>.block_count` + the output layer); null: unknown. */
  layers: number | null;
}

/** Offloads every layer, whatever the model has. */
const ALL_LAYERS = 999;

/**
 * llama-server arguments that spread a model over the host and its workers' rpc-servers
 * (SPEC §12). llama.cpp puts RPC devices before local GPUs and splits offloaded layers among
 * those devices by `--tensor-split`; layers not offloaded (`-ngl`) stay on the host's CPU. So a
 * GPU host lists its own share last, and a CPU host keeps its share by offloading fewer layers.
 */
export function splitServerArgs(input: SplitServerInput): string[] {
  const rpc = input.targets.map((target) => `127.0.0.1:${target.localPort}`).join(",");
  const shares = input.targets.map((target) => target.fraction);
  if (input.hostBackend !== "cpu") {
    return [
      "--rpc",
      rpc,
      "--tensor-split",
      ratios([...shares, input.hostFraction]),
      "-ngl",
      String(ALL_LAYERS),
    ];
  }
  const offloaded =
    input.layers === null
      ? ALL_LAYERS
      : Math.max(1, Math.round(input.layers * (1 - input.hostFraction)));
  return ["--rpc", rpc, "--tensor-split", ratios(shares), "-ngl", String(offloaded)];
}

const ratios = (shares: number[]) => shares.map((share) => Number(share.toFixed(4))).join(",");
