/**
 * Split inference (SPEC §12): one model served by several nodes over llama.cpp RPC, through an
 * encrypted tunnel between agents. Wire types shared by agents, gateways and the console.
 */

/** Whether a model may be split: `auto` only when no single node has room for it. */
export const SPLIT_MODES = ["never", "auto", "always"] as const;
export type SplitMode = (typeof SPLIT_MODES)[number];

/**
 * Where an agent's tunnel answers, as it registers it. Peers dial the host of its `agent_url`
 * on `port` and accept only the certificate whose SHA-256 fingerprint is `fingerprint`
 * (`AA:BB:…`, as `X509Certificate.fingerprint256` writes it): keys are pinned through the
 * registry, never sent as a shared password.
 */
/** A certificate's SHA-256 fingerprint as `X509Certificate.fingerprint256` writes it. */
export const FINGERPRINT_PATTERN = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;

export interface TunnelEndpoint {
  port: number;
  fingerprint: string;
}

/** A tunnel link's state, seen from the host that dials it. */
export type TunnelState = "connecting" | "connected" | "failed";

/** One participant of a split group as the inventory shows it. */
export interface SplitMember {
  node_id: string;
  /** The share of the model's layers it holds, 0..1; the fractions of a group add up to 1. */
  fraction: number;
  /** Free memory the plan counted for it, in MiB. */
  free_mb: number;
}

/** A model served by several nodes, as the inventory and `/api/status` show it. */
export interface SplitGroupInfo {
  model_id: string;
  /** This node's part: the host runs llama-server, a worker runs rpc-server. */
  role: "host" | "worker";
  host: string;
  /** The host first, then the workers. */
  members: SplitMember[];
  /** The host's tunnel links to each worker (empty on a worker). */
  links: { node_id: string; state: TunnelState; bytes_sent: number; bytes_received: number }[];
}

/** `split.worker`: serve the model's layers the host will send, for that host only. */
export interface SplitWorkerArgs {
  model_id: string;
  /** The group's host: the only peer whose tunnel reaches this worker's rpc-servers for it. */
  host: string;
  host_fingerprint: string;
}

/** What a worker offers the host: one rpc-server per device, reached by name over the tunnel. */
export interface SplitWorkerAnswer {
  node_id: string;
  targets: { name: string; device: string; free_mb: number }[];
}

/**
 * `split.leave`: this node is no longer part of `host`'s group for the model (the group
 * dissolved, or re-formed without it, or its host left). A worker of that host stops admitting
 * it; the host itself (`host` is this node) stops serving the model with its old workers.
 */
export interface SplitLeaveArgs {
  model_id: string;
  host: string;
}

/** Whether the node had that part (a second `split.leave` is a no-op). */
export interface SplitLeaveAnswer {
  model_id: string;
  left: boolean;
}

/** One worker as the host is told of it. */
export interface SplitHostWorker {
  node_id: string;
  /** Where its tunnel answers: the host of its agent URL, and its registered endpoint. */
  address: string;
  tunnel: TunnelEndpoint;
  targets: SplitWorkerAnswer["targets"];
}

/**
 * `split.host`: serve the model with these workers — the host's server restarts with them
 * (a group with no workers serves alone). Answered once the server is ready.
 */
export interface SplitHostArgs {
  model_id: string;
  /** The plan's members, the host first (their fractions). */
  members: SplitMember[];
  workers: SplitHostWorker[];
}
