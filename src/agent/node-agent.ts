import type { Server } from "node:http";
import { once } from "node:events";
import { mkdir } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import type { AddressInfo } from "node:net";
import { RoleMeshError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { bearerToken, secretsEqual } from "../core/http/bearer.js";
import { bindRoutes, requestListener, RouteTable } from "../core/http/route-table.js";
import { createApiServer } from "../core/http/server.js";
import { isLocalHostHeader, isLoopbackHost, loopbackUrl } from "../core/net.js";
import type { DeviceMetrics, DeviceRef, LiveState, NodeInventory } from "../protocol/inventory.js";
import type { AgentModelEntry, ModelList } from "../protocol/models.js";
import type { AgentConfig, ModelEntry } from "./config/agent-config.js";
import { expandHome } from "../core/paths.js";
import type { DeviceBackend } from "./devices/backend.js";
import { pinningEnv } from "./devices/pinning.js";
import { selectDevices } from "./devices/select-backend.js";
import type { Engine } from "./engines/engine.js";
import { chooseEngine, engineFor } from "./engines/select-engine.js";
import { Backends } from "./backends/backends.js";
import type { AgentApi } from "./http/agent-api.js";
import type { DrainState, LoadResult, UnloadResult } from "../protocol/node-commands.js";
import { AGENT_ROUTES } from "./http/agent-routes.js";
import { InferenceService } from "./inference/inference-service.js";
import { agentModels, liveState, nodeInventory } from "./inventory/inventory.js";
import type { InventorySource } from "./inventory/inventory.js";
import { readNodeSecret, resolveNodeId, writeNodeSecret } from "./node-id.js";
import { AgentMetrics } from "./metrics/agent-metrics.js";
import { ModelCatalog } from "./models/model-catalog.js";
import { DeviceQueue } from "./scheduler/device-queue.js";
import { Device } from "./scheduler/device.js";
import { Scheduler } from "./scheduler/scheduler.js";
import { DeviceSupervisor } from "./supervisor/device-supervisor.js";
import { startupTimeoutMs } from "./supervisor/startup-timeout.js";
import { PidRecords } from "./supervisor/pid-records.js";
import { Registrar } from "./registration/registrar.js";
import { ModelManager } from "./models/model-manager.js";
import { Operations } from "./operations/operations.js";
import { HttpRegistryClient } from "./registration/registry-client.js";
import { KvRegistryClient } from "./nats/kv-registry-client.js";
import { NatsCommands } from "./nats/nats-commands.js";
import { natsServers } from "../core/nats/nats-config.js";
import { connectNats, whenReconnected } from "../core/nats/nats-connection.js";
import { LEASE_HEARTBEATS } from "../protocol/registry.js";
import { nodeInboxPrefix } from "../protocol/nats.js";
import type { RegistryClient } from "./registration/registry-client.js";
import { VERSION } from "../core/version.js";
import type { NatsConnection } from "@nats-io/transport-node";
import { GIB, MIB } from "../core/units.js";
import { availableParallelism } from "node:os";
import { findRpcServer } from "./split/find-rpc-server.js";
import { RpcServerSupervisor } from "./split/rpc-server-supervisor.js";
import { SplitNode } from "./split/split-node.js";
import { NodeSleep } from "./sleep/node-sleep.js";
import { offloadableLayers } from "./models/memory-estimate.js";

/** A load this many startup timeouts long is a hung one (`llama_server_load_ceiling_s: 0`). */
const LOAD_CEILING_TIMEOUTS = 10;

export interface NodeAgentOptions {
  /** Registers with this client instead of HTTP to `dispatcher_base_url` (`rolemesh up`). */
  registryClient?: RegistryClient;
}

function firstExternalIPv4(): string {
  for (const addresses of Object.values(networkInterfaces())) {
    const found = addresses?.find((address) => address.family === "IPv4" && !address.internal);
    if (found) return found.address;
  }
  return "127.0.0.1";
}

/**
 * The node agent (SPEC §4, §5, §7.1): one supervised server per device, a queue per device,
 * and the HTTP API in front of them. It wires the rooms together and owns the node's
 * lifecycle: start, drain, registration, shutdown.
 */
export class NodeAgent implements AgentApi {
  readonly nodeId: string;
  readonly config: AgentConfig;
  readonly maxBodyBytes: number;
  readonly scheduler: Scheduler;
  readonly log: Logger;
  readonly inference: InferenceService;
  readonly backends: Backends;
  readonly sleep: NodeSleep;
  readonly #backend: DeviceBackend;
  readonly #engine: Engine;
  readonly #server: Server;
  readonly #catalog: ModelCatalog;
  readonly #metrics: AgentMetrics;
  #measuring: Promise<void> | undefined;
  #metricsTimer: NodeJS.Timeout | undefined;
  #shutdown: Promise<void> | undefined;
  #draining = false;
  #registrar: Registrar | undefined;
  /** The connection to NATS when the registry is there (SPEC §8). */
  #nats: NatsConnection | undefined;
  #natsCommands: NatsCommands | undefined;
  #modelManager: ModelManager | undefined;
  /** Its part in split inference (SPEC §12); none with the embedded engine or no rpc-server. */
  #split: SplitNode | undefined;
  readonly operations: Operations;
  /** Resolves when a `node.stop` command asked the agent to deregister and exit. */
  readonly stopRequested: Promise<void>;
  #requestStop: () => void = () => {};
  /** The live state last reported to the gateway (a change is reported at once). */
  #reportedState: LiveState | undefined;
  /** Set while shutdown waits for the queues to empty; called on every queue change. */
  #whenIdle: (() => void) | undefined;

  private constructor(parts: {
    nodeId: string;
    config: AgentConfig;
    log: Logger;
    backend: DeviceBackend;
    engine: Engine;
    refs: DeviceRef[];
    metrics: Map<string, DeviceMetrics>;
    pidRecords: PidRecords;
    catalog: ModelCatalog;
  }) {
    const { config, log, engine, backend } = parts;
    this.nodeId = parts.nodeId;
    this.config = config;
    this.maxBodyBytes = config.max_body_mb * MIB;
    this.log = log;
    this.#backend = backend;
    this.#engine = engine;
    this.#catalog = parts.catalog;
    this.operations = new Operations(parts.nodeId);
    this.stopRequested = new Promise((resolve) => (this.#requestStop = resolve));
    const startupTimeout = (model: ModelEntry) =>
      startupTimeoutMs(
        config.llama_server_startup_timeout_s,
        config.llama_server_startup_timeout_per_gib_s,
        parts.catalog.get(model.model_id)?.sizeBytes ?? null,
      );
    const devices = parts.refs.map((ref) => {
      const supervisor = new DeviceSupervisor({
        device: ref,
        engine,
        pinningEnv: pinningEnv(ref),
        pidRecords: parts.pidRecords,
        log,
        probeIntervalMs: config.llama_server_probe_interval_s * 1000,
        startupTimeoutMs: (model) => startupTimeout(model),
        loadCeilingMs: (model) =>
          config.llama_server_load_ceiling_s > 0
            ? config.llama_server_load_ceiling_s * 1000
            : LOAD_CEILING_TIMEOUTS * startupTimeout(model),
      });
      const queue = new DeviceQueue(config.max_pending_requests_per_device, () => {
        this.#whenIdle?.();
        this.#noticeLiveState();
      });
      return new Device({ ref, supervisor, queue, metrics: parts.metrics.get(ref.id) ?? null });
    });
    this.scheduler = new Scheduler(devices, (model, device) =>
      this.#catalog.estimate(model, device),
    );
    this.#metrics = new AgentMetrics(this.scheduler);
    this.inference = new InferenceService({
      nodeId: this.nodeId,
      metrics: this.#metrics,
      requestTimeoutMs: config.request_timeout_s * 1000,
      log,
      admit: () => this.#refuseWhileDraining(),
      resolveModel: (name) => this.#resolveModel(name),
      chooseDevice: (model) => this.#chooseDevice(model),
    });
    this.backends = new Backends({
      nodeId: this.nodeId,
      engine: engine.name,
      scheduler: this.scheduler,
      operations: this.operations,
      log,
      resolveModel: (name) => this.#resolveModel(name),
      load: (name, device, signal) => this.load(name, device, signal),
      unload: (modelId) => this.#unloadFrom(modelId),
    });
    this.sleep = new NodeSleep({
      nodeId: this.nodeId,
      command: config.sleep_command,
      busyWith: () => this.#busyWith(),
      pauseRegistration: () => this.#registrar?.pause() ?? Promise.resolve(),
      resumeRegistration: (delayMs) => this.#registrar?.resume(delayMs),
      resumeDelayMs: config.heartbeat_interval_s * 1000,
      log: log.child({ component: "sleep" }),
    });
    const routes = new RouteTable(bindRoutes(AGENT_ROUTES, this));
    this.#server = createApiServer(
      requestListener({
        routes,
        authorize: (req) => this.#authorize(bearerToken(req)),
        // Without a token, being on loopback is the agent's only protection.
        ...(isLoopbackHost(config.listen_host) && !config.auth_token
          ? { hostAllowed: (host: string) => isLocalHostHeader(host, config.listen_host) }
          : {}),
        onUnexpected: (err, req) =>
          this.log.error({ err, method: req.method, url: req.url }, "request failed"),
      }),
    );
  }

  /** Starts an agent: reaps servers left by an earlier run, finds devices, listens. */
  static async start(
    config: AgentConfig,
    log: Logger,
    options: NodeAgentOptions = {},
  ): Promise<NodeAgent> {
    const stateDir = expandHome(config.state_dir);
    await mkdir(stateDir, { recursive: true });
    const nodeId = await resolveNodeId(config.node_id, stateDir);
    const pidRecords = new PidRecords(stateDir);
    const reaped = await pidRecords.reapLeftovers(log);
    if (reaped > 0) log.warn({ reaped }, "stopped servers left behind by an earlier agent");

    const { backend, devices: refs } = await selectDevices(config, log);
    const choice = await chooseEngine(config, backend.name);
    const engine = engineFor(choice, config);
    const catalog = await ModelCatalog.load(config.models, log);
    const metrics = await backend.measure(refs);
    const agent = new NodeAgent({
      nodeId,
      config,
      log,
      backend,
      engine,
      refs,
      metrics,
      pidRecords,
      catalog,
    });
    agent.#modelManager = await ModelManager.open({
      stateDir,
      models: config.models,
      catalog,
      operations: agent.operations,
      ...(config.max_download_gb > 0 ? { maxDownloadBytes: config.max_download_gb * GIB } : {}),
      log,
      unload: (modelId) => agent.#unloadFrom(modelId),
      onChange: () => agent.#registrar?.nudge(),
    });
    if (choice.engine === "llama-server") agent.#split = await agent.#startSplit(stateDir);
    await agent.#listen();
    agent.#metricsTimer = setInterval(
      () => void agent.refreshMetrics(),
      config.metrics_interval_s * 1000,
    ).unref();
    log.info(
      {
        node_id: nodeId,
        url: agent.url,
        backend: backend.name,
        devices: refs.map((ref) => ref.id),
        engine: engine.name,
        ...(choice.engine === "llama-server"
          ? { llama_server: choice.bin, found: choice.found }
          : { engine_reason: choice.reason }),
        models: config.models.map((model) => model.model_id),
      },
      "node agent listening",
    );
    // Registered only now that it can answer requests.
    const client = options.registryClient ?? (await agent.#registryClient());
    if (client) agent.#startRegistrar(client, stateDir, await readNodeSecret(stateDir));
    return agent;
  }

  /**
   * Opens the node's tunnel and readies its rpc-servers for split inference (SPEC §12); none
   * when no rpc-server is found (the node then only serves models alone).
   */
  async #startSplit(stateDir: string): Promise<SplitNode | undefined> {
    const { config } = this;
    let bin: string;
    try {
      bin = await findRpcServer(config.rpc_server_bin, this.#backend.name);
    } catch (err) {
      this.log.info({ reason: (err as Error).message }, "split inference off: no rpc-server");
      return undefined;
    }
    const log = this.log.child({ component: "split" });
    try {
      return await SplitNode.start({
        nodeId: this.nodeId,
        stateDir,
        listenHost: config.listen_host,
        tunnelPort: config.tunnel_port,
        rpcServers: new RpcServerSupervisor({
          bin,
          stateDir,
          // The models' thread count where one is set (tests keep ggml to one thread).
          threads:
            config.models.find((model) => model.threads > 0)?.threads ?? availableParallelism(),
          cache: config.rpc_cache,
          log,
        }),
        devices: this.scheduler.devices.map((device) => device.ref),
        metrics: (deviceId) => this.scheduler.device(deviceId).metrics,
        resolveModel: (modelId) => this.#configuredModel(modelId),
        offloadableLayers: (modelId) =>
          offloadableLayers(this.#catalog.get(modelId)?.header ?? null),
        restart: async (modelId) => {
          await this.#unloadFrom(modelId);
          return this.load(modelId, undefined);
        },
        load: (modelId) => this.load(modelId, undefined),
        unload: async (modelId) => void (await this.#unloadFrom(modelId)),
        onChange: () => this.#registrar?.nudge(),
        log,
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
      // Split inference is an extra: a taken port turns it off, not the node.
      this.log.warn(
        { port: config.tunnel_port },
        "split inference off: tunnel_port is taken (set another, or 0 for any free port)",
      );
      return undefined;
    }
  }

  /**
   * Over NATS when `nats_url` is set (SPEC §8: no `dispatcher_base_url` needed), else HTTP to
   * the gateway, else none (a standalone agent).
   */
  async #registryClient(): Promise<RegistryClient | undefined> {
    const { config } = this;
    if (natsServers(config).length > 0) {
      const log = this.log.child({ component: "nats" });
      this.#nats = await connectNats(
        config,
        `rolemesh-agent ${this.nodeId}`,
        log,
        nodeInboxPrefix(this.nodeId),
      );
      const client = new KvRegistryClient(this.#nats, {
        heartbeatIntervalS: config.heartbeat_interval_s,
        leaseS: LEASE_HEARTBEATS * config.heartbeat_interval_s,
      });
      this.#natsCommands = new NatsCommands(this.#nats, {
        nodeId: this.nodeId,
        localUrl: loopbackUrl(this.url),
        authToken: config.auth_token,
        operations: this.operations,
        log,
      });
      // Put the node's key again at once: a NATS that restarted may have lost it.
      whenReconnected(this.#nats, () => {
        client.reopen();
        this.#registrar?.nudge();
      });
      return client;
    }
    if (config.dispatcher_base_url) {
      return new HttpRegistryClient(config.dispatcher_base_url, config.join_token);
    }
    return undefined;
  }

  #startRegistrar(client: RegistryClient, stateDir: string, nodeSecret: string | undefined): void {
    this.#registrar = new Registrar({
      client,
      nodeId: this.nodeId,
      log: this.log.child({ component: "registrar" }),
      heartbeatIntervalS: this.config.heartbeat_interval_s,
      nodeSecret,
      saveNodeSecret: (secret) => writeNodeSecret(stateDir, secret),
      describe: () => {
        const capabilities = this.inventory().capabilities;
        return {
          hostname: this.config.hostname || capabilities.hostname,
          agent_url: this.advertisedUrl,
          version: VERSION,
          capabilities,
          labels: this.config.labels,
          ...(this.config.auth_token ? { auth_token: this.config.auth_token } : {}),
          ...(this.#split ? { tunnel: this.#split.endpoint() } : {}),
        };
      },
      snapshot: () => {
        const { state, draining, devices, models, split_groups } = this.inventory();
        // The heartbeat carries only the newest log lines; the full tail is in the inventory.
        return {
          state,
          draining,
          models,
          split_groups,
          devices: devices.map((device) => ({ ...device, log_tail: device.log_tail.slice(-20) })),
        };
      },
    });
    // A server changing state is news for the gateway (and its console) now, not at the next
    // heartbeat; so is a queue change that turns the node's live state.
    for (const device of this.scheduler.devices) {
      device.onServerState(() => {
        this.#reportedState = this.liveState();
        this.#registrar?.nudge();
      });
    }
    this.#reportedState = this.liveState();
    this.#registrar.start();
  }

  #noticeLiveState(): void {
    if (!this.#registrar) return;
    const state = this.liveState();
    if (state === this.#reportedState) return;
    this.#reportedState = state;
    this.#registrar.nudge();
  }

  /**
   * Where a gateway reaches this agent: `advertise_url`, else the listen address — for a
   * wildcard address, the machine's first non-internal IPv4 address.
   */
  get advertisedUrl(): string {
    if (this.config.advertise_url) return this.config.advertise_url.replace(/\/+$/, "");
    const { port } = this.#server.address() as AddressInfo;
    const host = this.config.listen_host;
    const wildcard = host === "0.0.0.0" || host === "::" || host === "[::]";
    const address = wildcard ? firstExternalIPv4() : host;
    return `http://${address.includes(":") ? `[${address}]` : address}:${port}`;
  }

  /** Where the agent answers, e.g. `http://127.0.0.1:8090`. */
  get url(): string {
    const address = this.#server.address() as AddressInfo;
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}`;
  }

  /**
   * Stops taking new requests (503 `shutting_down`, so a gateway tries the next node) while
   * admitted ones finish; the node stays up and registered until `resume()`.
   */
  drain(): DrainState {
    if (!this.#draining) {
      this.log.info("draining: new requests are refused, admitted ones finish");
      this.#draining = true;
      this.#registrar?.nudge();
    }
    return this.#drainState();
  }

  /** New work is refused with 503 `shutting_down` while the node drains or stops. */
  #refuseWhileDraining(): void {
    if (this.#draining) {
      throw new RoleMeshError(
        "shutting_down",
        "this node is shutting down; send the request elsewhere",
        { retryAfterS: 1 },
      );
    }
  }

  /** Takes requests again after `drain()`. A shutdown in progress cannot be resumed. */
  resume(): DrainState {
    if (this.#draining) {
      if (this.#shutdown) {
        throw new RoleMeshError("shutting_down", "the node is shutting down and cannot resume");
      }
      this.log.info("resumed: taking requests again");
      this.#draining = false;
      this.#registrar?.nudge();
    }
    return this.#drainState();
  }

  /** What keeps the node from sleeping: requests on its devices, and long commands. */
  #busyWith(): string[] {
    const devices = this.scheduler.devices
      .filter((device) => device.pressure > 0)
      .map((device) => {
        const { in_flight, pending } = device.queueInfo();
        return `${device.id}: ${in_flight} in flight, ${pending} queued`;
      });
    const operations = this.operations
      .running()
      .map((operation) => `${operation.command} ${operation.op_id} running`);
    return [...devices, ...operations];
  }

  #drainState(): DrainState {
    const queues = this.scheduler.devices.map((device) => device.queueInfo());
    return {
      node_id: this.nodeId,
      draining: this.#draining,
      in_flight: queues.reduce((sum, queue) => sum + queue.in_flight, 0),
      pending: queues.reduce((sum, queue) => sum + queue.pending, 0),
    };
  }

  /** Installed models (SPEC §10); set once the agent has started. */
  get modelManager(): ModelManager {
    if (!this.#modelManager) throw new Error("the agent has not started");
    return this.#modelManager;
  }

  /** `name` (a model id or role) stops on every device that holds it (SPEC §7.1 unload). */
  async unload(name: string, signal?: AbortSignal): Promise<UnloadResult> {
    const model = this.#resolveModel(name);
    return {
      model_id: model.model_id,
      unloaded_from: await this.#unloadFrom(model.model_id, signal),
    };
  }

  /**
   * Stops every server holding `modelId`, each once its device has drained (requests already
   * admitted finish first). Answers the devices it was unloaded from.
   */
  async #unloadFrom(modelId: string, signal?: AbortSignal): Promise<string[]> {
    const devices = this.scheduler.devicesWith(modelId);
    await Promise.all(devices.map((device) => device.unload(modelId, signal)));
    return devices.map((device) => device.id);
  }

  /**
   * Starts `name` (a model id or role) on `deviceId` or the device the scheduler picks, and
   * resolves once its server is ready (SPEC §7.1 load).
   */
  async load(
    name: string,
    deviceId: string | undefined,
    signal?: AbortSignal,
  ): Promise<LoadResult> {
    this.#refuseWhileDraining();
    const model = this.#resolveModel(name);
    const device = deviceId ? this.scheduler.device(deviceId) : await this.#chooseDevice(model);
    this.scheduler.assertFits(model, device);
    const reservation = await device.reserve(model, signal);
    reservation.lease.release();
    return { model_id: model.model_id, device: device.id, server: device.server() };
  }

  /** `node.stop`: the CLI shuts the agent down as on SIGTERM (deregister, stop, exit 0). */
  requestStop(): void {
    this.log.info("stop requested through the API");
    this.#requestStop();
  }

  /**
   * The configured model named by `name` as its server starts: with the arguments of the split
   * group it hosts, if any (SPEC §12).
   */
  #resolveModel(name: string | undefined): ModelEntry {
    const model = this.#configuredModel(name);
    return this.#split?.launchModel(model) ?? model;
  }

  /** `split.worker`, `split.host` and `split.leave` (SPEC §12). */
  get split(): SplitNode {
    if (!this.#split) {
      throw new RoleMeshError(
        "invalid_request",
        `node ${this.nodeId} takes no part in split inference: it needs the llama-server engine and rpc-server`,
      );
    }
    return this.#split;
  }

  /** The configured model named by `name`: a model id first, else the first model with that role. */
  #configuredModel(name: string | undefined): ModelEntry {
    const models = this.config.models;
    if (name === undefined) {
      if (models.length === 1 && models[0]) return models[0];
      throw new RoleMeshError(
        "invalid_request",
        "'model' is required: this node serves several models",
        {
          param: "model",
        },
      );
    }
    const found =
      models.find((model) => model.model_id === name) ??
      models.find((model) => model.roles.includes(name));
    if (found) return found;
    const known = models.map((model) => model.model_id).join(", ") || "none";
    throw new RoleMeshError(
      "model_not_found",
      `model "${name}" is not served by this node (models: ${known})`,
      {
        param: "model",
      },
    );
  }

  liveState(): LiveState {
    return liveState(this.#inventorySource());
  }

  inventory(): NodeInventory {
    return nodeInventory(this.#inventorySource());
  }

  models(): ModelList<AgentModelEntry> {
    return agentModels(this.#inventorySource());
  }

  scrapeMetrics(): Promise<{ contentType: string; text: string }> {
    return this.#metrics.scrape();
  }

  #inventorySource(): InventorySource {
    return {
      nodeId: this.nodeId,
      draining: this.#draining,
      backend: this.#backend.name,
      engine: this.#engine.name,
      models: this.config.models,
      scheduler: this.scheduler,
      catalog: this.#catalog,
      splitGroups: this.#split?.groups() ?? [],
    };
  }

  /**
   * Measures every device now (SPEC §3: from the vendor tool, so memory taken by programs
   * outside RoleMesh counts). Concurrent callers share one measurement.
   */
  refreshMetrics(): Promise<void> {
    this.#measuring ??= this.#measure().finally(() => (this.#measuring = undefined));
    return this.#measuring;
  }

  async #measure(): Promise<void> {
    const devices = this.scheduler.devices;
    try {
      const measured = await this.#backend.measure(devices.map((device) => device.ref));
      const now = Date.now();
      for (const device of devices) {
        const metrics = measured.get(device.id);
        if (metrics) device.measured(metrics, now);
      }
    } catch (err) {
      this.log.warn({ err }, "measuring devices failed");
    }
  }

  /**
   * The device for a request (SPEC §5). A placement that may start or switch a server is made
   * on fresh measurements.
   */
  async #chooseDevice(model: ModelEntry): Promise<Device> {
    if (!this.scheduler.holds(model)) await this.refreshMetrics();
    return this.scheduler.pick(model);
  }

  /**
   * Graceful stop (SPEC §4): stop accepting, let admitted requests finish for up to
   * `shutdown_grace_s`, then stop every server. Safe to call more than once.
   */
  shutdown(reason = "shutdown requested"): Promise<void> {
    this.#shutdown ??= this.#stop(reason);
    return this.#shutdown;
  }

  async #stop(reason: string): Promise<void> {
    this.log.info({ reason }, "shutting down: no new requests, waiting for admitted ones");
    this.#draining = true;
    // A stopping node takes no commands: gateways answer 503 node_unreachable at once.
    this.#natsCommands?.stop();
    clearInterval(this.#metricsTimer);
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    await this.#drained(this.config.shutdown_grace_s * 1000);
    // A download would keep the process alive; cancelled, it keeps its `.part` to resume.
    await this.operations.cancelAll(this.config.shutdown_grace_s * 1000);
    await this.#registrar?.stop();
    await this.#nats?.close();
    this.#server.closeAllConnections();
    await Promise.all(this.scheduler.devices.map((device) => device.stop()));
    await this.#split?.close();
    await closed;
    this.log.info("node agent stopped");
  }

  /** Resolves once no device has admitted work, or after `timeoutMs`. */
  async #drained(timeoutMs: number): Promise<void> {
    if (!this.scheduler.busy) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.log.warn("shutdown grace elapsed with requests still running; stopping anyway");
        resolve();
      }, timeoutMs);
      this.#whenIdle = () => {
        if (this.scheduler.busy) return;
        clearTimeout(timer);
        resolve();
      };
    });
    this.#whenIdle = undefined;
  }

  #authorize(presented: string | undefined): void {
    const token = this.config.auth_token;
    if (token && !secretsEqual(presented, token)) {
      throw new RoleMeshError("invalid_api_key", "missing or wrong bearer token");
    }
  }

  async #listen(): Promise<void> {
    this.#server.listen(this.config.listen_port, this.config.listen_host);
    await once(this.#server, "listening");
  }
}
