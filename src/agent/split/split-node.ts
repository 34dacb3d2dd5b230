import { z } from "zod";
import type { Logger } from "../../core/logger.js";
import { parseRequest } from "../../core/validation.js";
import type { DeviceMetrics, DeviceRef } from "../../protocol/inventory.js";
import type { LoadResult } from "../../protocol/node-commands.js";
import { NODE_ID_PATTERN } from "../../protocol/registry.js";
import { TunnelEndpointSchema } from "../../protocol/registry-schema.js";
import type {
  SplitGroupInfo,
  SplitHostWorker,
  SplitLeaveAnswer,
  SplitMember,
  SplitWorkerAnswer,
  TunnelEndpoint,
} from "../../protocol/split.js";
import { FINGERPRINT_PATTERN } from "../../protocol/split.js";
import type { ModelEntry } from "../config/agent-config.js";
import { loadTunnelIdentity } from "../tunnel/tunnel-identity.js";
import type { TunnelIdentity } from "../tunnel/tunnel-identity.js";
import { TunnelPeer } from "../tunnel/tunnel-peer.js";
import { TunnelServer } from "../tunnel/tunnel-server.js";
import { TARGET_NAME } from "../tunnel/tunnel-wire.js";
import type { RpcServerSupervisor } from "./rpc-server-supervisor.js";
import { splitServerArgs } from "./split-server-args.js";

/** How long the host waits for a worker's tunnel before the group fails to form. */
const LINK_WAIT_MS = 30_000;

const fingerprint = z.string().regex(FINGERPRINT_PATTERN, "a SHA-256 fingerprint");
const nodeId = z.string().regex(NODE_ID_PATTERN, "a node id");
const modelId = z.string().min(1).max(256);

const WorkerArgsSchema = z.object({
  model_id: modelId,
  host: nodeId,
  host_fingerprint: fingerprint,
});

const LeaveArgsSchema = z.object({ model_id: modelId, host: nodeId });

const HostArgsSchema = z.object({
  model_id: modelId,
  members: z
    .array(z.object({ node_id: nodeId, fraction: z.number().min(0).max(1), free_mb: z.number() }))
    .min(1)
    .max(64),
  workers: z
    .array(
      z.object({
        node_id: nodeId,
        address: z.string().min(1).max(256),
        tunnel: TunnelEndpointSchema,
        targets: z
          .array(
            z.object({
              name: z.string().regex(TARGET_NAME),
              device: z.string().max(64),
              free_mb: z.number(),
            }),
          )
          .min(1)
          .max(64),
      }),
    )
    .max(63),
});

export interface SplitNodeOptions {
  nodeId: string;
  stateDir: string;
  /** Where the tunnel listens: the agent's `listen_host` and `tunnel_port`. */
  listenHost: string;
  tunnelPort: number;
  /** The node's rpc-servers, one per device, for the groups it works for. */
  rpcServers: RpcServerSupervisor;
  devices: readonly DeviceRef[];
  /** The device's latest measurement, for the free memory a worker offers. */
  metrics(deviceId: string): DeviceMetrics | null;
  /** The configured model `modelId` (a node takes part only in groups of models it holds). */
  resolveModel(modelId: string): ModelEntry;
  /** The layers llama.cpp can offload of the model; null when its file does not say. */
  offloadableLayers(modelId: string): number | null;
  /** Restarts the model's server, which then starts with the group's arguments; once ready. */
  restart(modelId: string): Promise<LoadResult>;
  /** Starts the model unless it runs; once ready. */
  load(modelId: string): Promise<LoadResult>;
  /** Stops the model's server, once drained. */
  unload(modelId: string): Promise<void>;
  /** Something the inventory shows changed (a tunnel link's state). */
  onChange(): void;
  log: Logger;
}

/** A group this node hosts: its plan, its links and the server arguments they make. */
interface HostedGroup {
  members: SplitMember[];
  workers: { node_id: string; peer: TunnelPeer }[];
  args: string[];
}

/** A group this node works for: the host allowed to reach its rpc-servers through the tunnel. */
interface WorkedGroup {
  host: string;
  hostFingerprint: string;
  targets: SplitWorkerAnswer["targets"];
}

/**
 * This node's part in split inference (SPEC §12). As a worker it runs rpc-server per device on
 * loopback and lets only the host of its groups reach them, through its tunnel, by name. As a
 * host it links to each worker's tunnel, gives its llama-server a 127.0.0.1 port per worker
 * rpc-server, and restarts the server with `--rpc`, `--tensor-split` and `-ngl` for the plan.
 */
export class SplitNode {
  readonly #options: SplitNodeOptions;
  readonly #identity: TunnelIdentity;
  readonly #tunnel: TunnelServer;
  readonly #hosting = new Map<string, HostedGroup>();
  readonly #working = new Map<string, WorkedGroup>();
  /** Links to workers' tunnels, by address, port and fingerprint; shared by groups. */
  readonly #peers = new Map<string, TunnelPeer>();

  private constructor(options: SplitNodeOptions, identity: TunnelIdentity) {
    this.#options = options;
    this.#identity = identity;
    this.#tunnel = new TunnelServer({
      identity,
      host: options.listenHost,
      port: options.tunnelPort,
      isAllowed: (peer) => this.#workingFor(peer).length > 0,
      resolveTarget: (name, peer) => this.#targetPort(name, peer),
      log: options.log,
    });
  }

  /** Loads (or creates) the node's tunnel identity and opens its tunnel. */
  static async start(options: SplitNodeOptions): Promise<SplitNode> {
    const node = new SplitNode(options, await loadTunnelIdentity(options.stateDir));
    await node.#tunnel.start();
    options.log.info(
      {
        host: options.listenHost,
        port: node.#tunnel.port,
        fingerprint: node.#identity.fingerprint,
      },
      "split tunnel listening",
    );
    return node;
  }

  /** What the node registers: where peers dial its tunnel and the certificate they pin. */
  endpoint(): TunnelEndpoint {
    return { port: this.#tunnel.port, fingerprint: this.#identity.fingerprint };
  }

  /** The model as its server starts: with the group's arguments when this node hosts one. */
  launchModel(model: ModelEntry): ModelEntry {
    const group = this.#hosting.get(model.model_id);
    return group ? { ...model, args: [...model.args, ...group.args] } : model;
  }

  /** The groups this node takes part in, for the inventory. */
  groups(): SplitGroupInfo[] {
    const { nodeId } = this.#options;
    const hosted = [...this.#hosting].map(([model_id, group]): SplitGroupInfo => ({
      model_id,
      role: "host",
      host: nodeId,
      members: group.members,
      links: group.workers.map(({ node_id, peer }) => ({
        node_id,
        state: peer.state,
        bytes_sent: peer.bytesSent,
        bytes_received: peer.bytesReceived,
      })),
    }));
    const worked = [...this.#working].map(([model_id, group]): SplitGroupInfo => ({
      model_id,
      role: "worker",
      host: group.host,
      members: [],
      links: [],
    }));
    return [...hosted, ...worked];
  }

  /** `split.worker`: starts an rpc-server per device and lets the host reach them. */
  async worker(raw: unknown): Promise<SplitWorkerAnswer> {
    const args = parseRequest(WorkerArgsSchema, raw);
    this.#options.resolveModel(args.model_id);
    const targets = await Promise.all(
      this.#options.devices.map(async (device) => {
        await this.#options.rpcServers.ensure(device);
        return {
          name: targetName(device),
          device: device.id,
          free_mb: this.#options.metrics(device.id)?.vram_free_mb ?? 0,
        };
      }),
    );
    this.#working.set(args.model_id, {
      host: args.host,
      hostFingerprint: args.host_fingerprint,
      targets,
    });
    // A host this node no longer works for loses its sessions now.
    this.#tunnel.recheckPeers();
    this.#options.onChange();
    return { node_id: this.#options.nodeId, targets };
  }

  /**
   * `split.host`: links to every worker, then serves the model with them — restarting its server
   * when the arguments changed — and answers once the server is ready.
   */
  async host(raw: unknown): Promise<LoadResult> {
    const args = parseRequest(HostArgsSchema, raw);
    const model = this.#options.resolveModel(args.model_id);
    if (args.workers.length === 0) return this.#serveAlone(args.model_id);
    const hostFraction = args.members[0]?.fraction ?? 1;
    const fractionOf = (nodeId: string) =>
      args.members.find((member) => member.node_id === nodeId)?.fraction ?? 0;
    const workers = args.workers.map((worker) => ({ worker, peer: this.#peerFor(worker) }));
    await Promise.all(workers.map(({ peer }) => peer.ready(LINK_WAIT_MS)));
    const targets = [];
    for (const { worker, peer } of workers) {
      const free = worker.targets.reduce((sum, target) => sum + Math.max(0, target.free_mb), 0);
      for (const target of worker.targets) {
        const share = free > 0 ? Math.max(0, target.free_mb) / free : 1 / worker.targets.length;
        targets.push({
          localPort: await peer.openLocal(target.name),
          fraction: fractionOf(worker.node_id) * share,
        });
      }
    }
    const serverArgs = splitServerArgs({
      targets,
      hostFraction,
      hostBackend: this.#options.devices[0]?.backend ?? "cpu",
      layers: this.#options.offloadableLayers(model.model_id),
    });
    const before = this.#hosting.get(args.model_id);
    this.#hosting.set(args.model_id, {
      members: args.members,
      workers: workers.map(({ worker, peer }) => ({ node_id: worker.node_id, peer })),
      args: serverArgs,
    });
    await this.#closeUnusedPeers();
    this.#options.onChange();
    this.#options.log.info(
      {
        model: args.model_id,
        workers: args.workers.map((worker) => worker.node_id),
        args: serverArgs,
      },
      "hosting split group",
    );
    return before?.args.join(" ") === serverArgs.join(" ")
      ? this.#options.load(args.model_id)
      : this.#options.restart(args.model_id);
  }

  /** A group without workers: the model's server restarts as a plain one. */
  async #serveAlone(modelId: string): Promise<LoadResult> {
    if (!this.#hosting.delete(modelId)) return this.#options.load(modelId);
    await this.#closeUnusedPeers();
    this.#options.onChange();
    this.#options.log.info(
      { model: modelId },
      "serving alone again: the split group has no workers",
    );
    return this.#options.restart(modelId);
  }

  /**
   * `split.leave`: this node is no longer part of `host`'s group for the model. A worker stops
   * admitting that host, and stops its rpc-servers once it works for no group; the host itself
   * stops the model's server (its layers are on workers it no longer has) and drops the links.
   */
  async leave(raw: unknown): Promise<SplitLeaveAnswer> {
    const { model_id, host } = parseRequest(LeaveArgsSchema, raw);
    let left = false;
    if (host === this.#options.nodeId && this.#hosting.delete(model_id)) {
      left = true;
      // Before the links go: llama-server aborts when a worker's connection breaks under it.
      await this.#options.unload(model_id);
      await this.#closeUnusedPeers();
    }
    if (this.#working.get(model_id)?.host === host) {
      left = true;
      this.#working.delete(model_id);
      this.#tunnel.recheckPeers();
      if (this.#working.size === 0) await this.#options.rpcServers.stopAll();
    }
    if (left) {
      this.#options.onChange();
      this.#options.log.info({ model: model_id, host }, "left the split group");
    }
    return { model_id, left };
  }

  /** Closes the tunnel, every link, and stops the rpc-servers. */
  async close(): Promise<void> {
    await Promise.all([...this.#peers.values()].map((peer) => peer.close()));
    this.#peers.clear();
    await this.#tunnel.close();
    await this.#options.rpcServers.stopAll();
  }

  #workingFor(fingerprint: string): WorkedGroup[] {
    return [...this.#working.values()].filter((group) => group.hostFingerprint === fingerprint);
  }

  /** The port of the rpc-server a target names, if the peer hosts a group this node works for. */
  #targetPort(name: string, peer: string): number | undefined {
    const target = this.#workingFor(peer)
      .flatMap((group) => group.targets)
      .find((entry) => entry.name === name);
    if (!target) return undefined;
    const server = this.#options.rpcServers
      .info()
      .find((info) => info.device === target.device && info.state === "ready");
    return server?.port ?? undefined;
  }

  #peerFor(worker: SplitHostWorker): TunnelPeer {
    const key = `${worker.address}:${worker.tunnel.port}/${worker.tunnel.fingerprint}`;
    let peer = this.#peers.get(key);
    if (!peer) {
      peer = new TunnelPeer({
        identity: this.#identity,
        host: worker.address,
        port: worker.tunnel.port,
        fingerprint: worker.tunnel.fingerprint,
        log: this.#options.log.child({ peer: worker.node_id }),
      });
      peer.on("state", () => this.#options.onChange());
      peer.start();
      this.#peers.set(key, peer);
    }
    return peer;
  }

  async #closeUnusedPeers(): Promise<void> {
    const used = new Set(
      [...this.#hosting.values()].flatMap((group) => group.workers.map((worker) => worker.peer)),
    );
    for (const [key, peer] of this.#peers) {
      if (used.has(peer)) continue;
      this.#peers.delete(key);
      await peer.close();
    }
  }
}

/** The tunnel's name for the rpc-server of a device: `rpc-gpu-0`. */
const targetName = (device: DeviceRef) => `rpc-${device.id.replace(/[^A-Za-z0-9]/g, "-")}`;
