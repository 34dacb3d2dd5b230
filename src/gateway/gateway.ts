import { once } from "node:events";
import { hostname } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { WorkInProgress } from "../core/async.js";
import { RoleMeshError } from "../core/errors.js";
import { bearerToken, secretsEqual } from "../core/http/bearer.js";
import { bindRoutes, requestListener, RouteTable } from "../core/http/route-table.js";
import { createApiServer } from "../core/http/server.js";
import { KvDocument } from "../core/nats/kv-document.js";
import { natsServers } from "../core/nats/nats-config.js";
import { JsonFileDocument } from "../core/state/shared-document.js";
import type { SharedDocument } from "../core/state/shared-document.js";
import { connectNats } from "../core/nats/nats-connection.js";
import { sseEvent, streamEvents } from "../core/http/sse.js";
import type { Route } from "../core/http/route-table.js";
import { modelList } from "../core/proxy/model-list.js";
import type { Logger } from "../core/logger.js";
import { isLocalHostHeader, isLoopbackHost } from "../core/net.js";
import { VERSION } from "../core/version.js";
import type { LiveState } from "../protocol/inventory.js";
import type { FleetModelEntry, ModelList } from "../protocol/models.js";
import { REGISTRY_PATHS } from "../protocol/paths.js";
import type { RegistryEvent, StatusResponse } from "../protocol/registry.js";
import { expandHome } from "../core/paths.js";
import type { ClientKey } from "./auth/client-keys.js";
import { ClientKeys, keyAllows } from "./auth/client-keys.js";
import { RateLimiter } from "./auth/rate-limiter.js";
import type { GatewayConfig } from "./config/gateway-config.js";
import { leaseSeconds, minMessageIntervalS } from "./config/gateway-config.js";
import { HttpCommandTransport } from "./commands/command-transport.js";
import { NatsCommandTransport } from "./commands/nats-command-transport.js";
import { SplitCoordinator } from "./split/split-coordinator.js";
import { NodeCommands } from "./commands/node-commands.js";
import { Forwarder } from "./forwarding/forwarder.js";
import { CONSOLE_ROUTES, ConsoleAssets } from "./http/console-assets.js";
import type { Access, GatewayApi, RequestEnd } from "./http/gateway-api.js";
import { GATEWAY_ROUTES } from "./http/gateway-routes.js";
import { eventFor, statusFor } from "./http/status-view.js";
import type { StatusViewer } from "./http/status-view.js";
import { NodeRegistry, titleCase } from "./registry/node-registry.js";
import { GatewayMetrics } from "./metrics/gateway-metrics.js";
import { GatewayPeers } from "./peers/gateway-peers.js";
import { KvRegistryFeed } from "./registry/kv-registry-feed.js";
import { NodeIdentities } from "./registry/node-identities.js";
import { RegistryService } from "./registry/registry-service.js";
import type { RegistryMessage } from "./registry/registry-service.js";
import { fleetModels, offers } from "./router/route-picker.js";
import { WakeableEntries } from "./wakeable/wakeable-entries.js";
import { Waker } from "./wakeable/waker.js";
import type { WakeStates } from "./wakeable/waker.js";
import { KIB, MIB } from "../core/units.js";

export interface GatewayOptions {
  /** The live state of the process this gateway runs in (`rolemesh up`: its local agent). */
  localState?: () => LiveState;
}

/** How often leases are checked. */
const SWEEP_INTERVAL_MS = 1000;

/** Unread event bytes the gateway holds for one `/api/events` reader before it cuts it off. */
const EVENT_BACKLOG_LIMIT_BYTES = 4 * MIB;

/** When a console refused at `max_event_clients` may try again. */
const EVENT_CLIENT_RETRY_S = 5;

/**
 * Node ids whose secret is kept, per live node allowed: room for every live node and as many
 * that left (the binding of a node that is not live protects nothing, see NodeIdentities).
 */
const IDENTITIES_PER_NODE = 2;

/** A gateway's part of the control plane over NATS. */
interface NatsPlane {
  connection: NatsConnection;
  feed: KvRegistryFeed;
  peers: GatewayPeers;
}

/**
 * The gateway (SPEC §7.2–7.4): the registry of live nodes, routing of OpenAI requests by model
 * id or role, status and events for the console, client keys and the admin API.
 */
export class Gateway implements GatewayApi {
  readonly config: GatewayConfig;
  readonly log: Logger;
  readonly maxBodyBytes: number;
  readonly maxDescriptorBytes: number;
  /** The live nodes; `registry` (the GatewayApi one) answers agents' messages to it. */
  readonly nodes: NodeRegistry;
  readonly registry: RegistryService;
  readonly registryOverNats: boolean;
  readonly forwarder: Forwarder;
  readonly keys: ClientKeys;
  readonly wakeable: WakeableEntries;
  /** Wakes wakeable entries, holds requests for them, puts idle nodes to sleep (SPEC §11). */
  readonly waker: Waker;
  readonly commands: NodeCommands;
  /** Forms split groups for models no node serves alone (SPEC §12). */
  readonly split: SplitCoordinator;
  readonly rateLimiter = new RateLimiter();
  readonly metrics: GatewayMetrics;
  readonly startedAt = new Date();
  readonly #server: Server;
  readonly #clientKeyOf = new WeakMap<IncomingMessage, ClientKey>();
  /** OpenAI requests admitted and not finished: a shutdown lets them finish. */
  readonly #requests = new WorkInProgress();
  #stopping = false;
  #shutdown: Promise<void> | undefined;
  /**
   * Open `/api/events` streams: what each reader may see, and how many bytes it may have
   * unread — the backlog limit plus its first status, which a large fleet makes larger alone.
   */
  readonly #events = new Map<ServerResponse, { viewer: StatusViewer; allowance: number }>();
  /** Requests of read routes that came with a client key, not the admin's. */
  readonly #clientReaders = new WeakSet<IncomingMessage>();
  readonly #localState: () => LiveState;
  /** The local state last told to event clients, to announce changes. */
  #announcedState: LiveState;
  #sweeper: NodeJS.Timeout | undefined;
  /** The control plane over NATS (SPEC §8), when `nats_url` is set. */
  #nats: NatsPlane | undefined;

  private constructor(
    config: GatewayConfig,
    log: Logger,
    parts: {
      keys: ClientKeys;
      wakeable: WakeableEntries;
      wakeStates: SharedDocument<WakeStates>;
      initialWakeStates: WakeStates;
      console: ConsoleAssets;
      identities: NodeIdentities;
      /** The NATS connection, when `nats_url` is set: commands go over it. */
      nats: NatsConnection | undefined;
    },
    options: GatewayOptions,
  ) {
    this.config = config;
    this.log = log;
    this.keys = parts.keys;
    this.registryOverNats = parts.nats !== undefined;
    this.wakeable = parts.wakeable;
    this.#localState = options.localState ?? (() => "client");
    this.#announcedState = this.#localState();
    this.maxBodyBytes = config.max_body_mb * MIB;
    this.maxDescriptorBytes = config.max_descriptor_kb * KIB;
    this.nodes = new NodeRegistry({
      leaseMs: leaseSeconds(config) * 1000,
      sweepIntervalMs: SWEEP_INTERVAL_MS,
      maxTombstones: config.max_nodes,
    });
    const metrics = new GatewayMetrics({
      nodes: this.nodes,
      maxNodes: config.max_nodes,
      eventClients: () => this.#events.size,
      heldRequests: () => this.waker.held,
    });
    this.metrics = metrics;
    this.registry = new RegistryService({
      registry: this.nodes,
      identities: parts.identities,
      terms: { heartbeat_interval_s: config.heartbeat_interval_s, lease_s: leaseSeconds(config) },
      allowPublicAgentUrls: config.allow_public_agent_urls,
      maxNodes: config.max_nodes,
      minMessageIntervalS: minMessageIntervalS(config),
      observe: (message, outcome) => metrics.observeRegistryMessage(message, outcome),
      log,
    });
    this.forwarder = new Forwarder(this.nodes, {
      maxAttempts: config.max_attempts,
      requestTimeoutMs: config.request_timeout_s * 1000,
      firstByteTimeoutMs: config.first_byte_timeout_s * 1000,
      onAttempt: (nodeId, outcome) => metrics.observeAttempt(nodeId, outcome),
      splitHost: (name) => this.split.host(name),
      hold: (name, signal, notice) => this.waker.hold(name, signal, notice),
      ...(config.routing === "prefix_affinity"
        ? { affinityLoadFactor: config.affinity_load_factor }
        : {}),
      onAffinity: (outcome) => metrics.observeAffinity(outcome),
      log,
    });
    this.commands = new NodeCommands(
      this.nodes,
      parts.nats ? new NatsCommandTransport(parts.nats) : new HttpCommandTransport(this.nodes),
      log.child({ component: "commands" }),
    );
    this.split = new SplitCoordinator(this.nodes, this.commands, log.child({ component: "split" }));
    this.waker = new Waker({
      entries: parts.wakeable,
      registry: this.nodes,
      states: parts.wakeStates,
      initialStates: parts.initialWakeStates,
      commands: this.commands,
      settings: {
        onDemand: config.wake_on_demand,
        maxWaitMs: config.wake_max_wait_s * 1000,
        maxHeld: config.wake_max_held,
        timeoutMs: config.wake_timeout_s * 1000,
        cooldownMs: config.wake_cooldown_s * 1000,
      },
      metrics: metrics.wakes,
      log: log.child({ component: "wakeable" }),
    });
    this.nodes.on("event", (event) => {
      if (event.type === "node_registered")
        log.info({ node_id: event.node.node_id, url: event.node.agent_url }, "node registered");
      if (event.type === "node_removed") {
        log.info({ node_id: event.node_id, reason: event.reason }, "node removed");
      }
      this.#broadcast(event);
      // In `rolemesh up` the local agent is also a registered node: its changes arrive here.
      const state = this.#localState();
      if (state !== this.#announcedState) {
        this.#announcedState = state;
        this.#broadcast({ type: "gateway_state", node_state: state });
      }
    });
    // Entries, wakes and the nodes entries become: all change what the console shows of them.
    this.waker.on("change", () => this.#broadcastWakeable());
    const routes = new RouteTable<Access>([
      ...bindRoutes(GATEWAY_ROUTES, this),
      ...bindRoutes(CONSOLE_ROUTES, parts.console),
    ]);
    this.#server = createApiServer(
      requestListener({
        routes,
        authorize: (req, route) => this.#authorize(req, route),
        hostAllowed: (host) =>
          !this.#trustsLoopback() || isLocalHostHeader(host, config.listen_host),
        onUnexpected: (err, req) =>
          log.error({ err, method: req.method, url: req.url }, "request failed"),
      }),
    );
  }

  static async start(
    config: GatewayConfig,
    log: Logger,
    options: GatewayOptions = {},
  ): Promise<Gateway> {
    const stateDir = expandHome(config.state_dir);
    const nats =
      natsServers(config).length > 0
        ? await connectNats(
            config,
            `rolemesh-gateway ${config.listen_host}:${config.listen_port}`,
            log.child({ component: "nats" }),
          )
        : undefined;
    // Over NATS every gateway reads and writes the same state (SPEC §8).
    const document = <T>(name: string, fallback: T): Promise<SharedDocument<T>> =>
      nats
        ? KvDocument.open(nats, name, fallback, log)
        : Promise.resolve(new JsonFileDocument(join(stateDir, `${name}.json`), fallback));
    const keys = await ClientKeys.open(await document("keys", []), config.api_keys);
    const wakeable = await WakeableEntries.open(await document("wakeable", []), config.wakeable);
    const wakeStates = await document<WakeStates>("wake-states", {});
    const identities = await NodeIdentities.open(
      stateDir,
      IDENTITIES_PER_NODE * config.max_nodes,
      log,
    );
    const console = await ConsoleAssets.load();
    if (!console.built) log.warn("the web console is not built (npm run build); / answers 404");
    const gateway = new Gateway(
      config,
      log,
      {
        keys,
        wakeable,
        wakeStates,
        initialWakeStates: await wakeStates.read(),
        console,
        identities,
        nats,
      },
      options,
    );
    gateway.#server.listen(config.listen_port, config.listen_host);
    await once(gateway.#server, "listening");
    gateway.#sweeper = setInterval(() => {
      gateway.nodes.sweep();
      gateway.forwarder.closeUnusedPools();
    }, SWEEP_INTERVAL_MS).unref();
    if (nats) gateway.#nats = gateway.#joinNats(nats);
    const exposed = !isLoopbackHost(config.listen_host);
    if (exposed && !keys.enabled)
      log.warn("the OpenAI API is open to anyone who can reach this address: add api_keys");
    if (exposed && !config.admin_key)
      log.warn("the admin API is disabled on this address until admin_key is set");
    log.info({ url: gateway.url, lease_s: leaseSeconds(config) }, "gateway listening");
    return gateway;
  }

  /** Names this gateway among its peers: its host and port. */
  get id(): string {
    return `${hostname()}:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Reads the registry from the nodes bucket and announces this gateway, over `connection`. */
  #joinNats(connection: NatsConnection): NatsPlane {
    const log = this.log.child({ component: "nats" });
    const feed = new KvRegistryFeed(
      connection,
      this.registry,
      leaseSeconds(this.config),
      log,
      (seconds) => this.metrics.observeRegistryLag(seconds),
    );
    const peers = new GatewayPeers(
      connection,
      { id: this.id, url: this.url, version: VERSION, started_at: this.startedAt.toISOString() },
      this.config.heartbeat_interval_s,
      log,
    );
    peers.on("change", () => this.#broadcast({ type: "gateways", gateways: peers.list() }));
    return { connection, feed, peers };
  }

  get url(): string {
    const address = this.#server.address() as AddressInfo;
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}`;
  }

  status(): StatusResponse {
    const state = this.#localState();
    return {
      gateway: {
        id: this.id,
        version: VERSION,
        url: this.url,
        started_at: this.startedAt.toISOString(),
      },
      gateways: this.#nats?.peers.list() ?? [
        { id: this.id, url: this.url, version: VERSION, last_seen: new Date().toISOString() },
      ],
      node_state: state,
      node_status: titleCase(state),
      peers: this.nodes.live().map((record) => this.nodes.peerStatus(record)),
      wakeable: this.wakeableStatus(),
    };
  }

  wakeableStatus() {
    return this.waker.status();
  }

  models(): ModelList<FleetModelEntry> {
    return modelList(
      this.startedAt,
      fleetModels(this.nodes.live()).map((entry) => ({
        id: entry.id,
        kind: entry.kind,
        node_count: entry.nodes.length,
        nodes: entry.nodes,
      })),
    );
  }

  admitClient(req: IncomingMessage, name: string): void {
    const key = this.#clientKeyOf.get(req);
    if (!key) return;
    if (!keyAllows(key, name)) {
      throw new RoleMeshError("forbidden", `key "${key.name}" may not use "${name}"`, {
        param: "model",
      });
    }
    const verdict = this.rateLimiter.take(key.name, key.requests_per_minute);
    if (!verdict.allowed) {
      throw new RoleMeshError(
        "rate_limited",
        `key "${key.name}" is over its limit of ${key.requests_per_minute} requests per minute`,
        { retryAfterS: verdict.retryAfterS },
      );
    }
  }

  /** Who sent an admin request, for the log: the admin key, or nobody on an open loopback. */
  adminName(req: IncomingMessage): string {
    const presented = bearerToken(req);
    if (this.config.admin_key && secretsEqual(presented, this.config.admin_key)) return "admin";
    return "anonymous (loopback, no admin_key)";
  }

  /**
   * Counts one OpenAI request in the metrics: under the name asked for only if the fleet
   * offers it, and under its client key's name if it came with one.
   */
  observeRequest(req: IncomingMessage, end: RequestEnd): void {
    const { name } = end;
    this.metrics.observeRequest({
      ...end,
      model: name !== undefined && offers(this.nodes.live(), name) ? name : "",
      key: this.#clientKeyOf.get(req)?.name,
    });
  }

  statusFor(req: IncomingMessage): StatusResponse {
    return statusFor(this.status(), this.#viewerOf(req));
  }

  #viewerOf(req: IncomingMessage): StatusViewer {
    return this.#clientReaders.has(req) ? "client" : "admin";
  }

  /**
   * Starts an SSE client of `/api/events` with the current status and keeps it until it leaves;
   * beyond `max_event_clients` open streams, 503 with `Retry-After` (as nginx's `limit_conn`),
   * since each may hold a backlog.
   */
  addEventClient(req: IncomingMessage, res: ServerResponse): void {
    if (this.#events.size >= this.config.max_event_clients) {
      this.metrics.eventClientRefused();
      throw new RoleMeshError(
        "queue_full",
        `the gateway already streams events to max_event_clients (${this.config.max_event_clients}) clients`,
        { retryAfterS: EVENT_CLIENT_RETRY_S },
      );
    }
    const viewer = this.#viewerOf(req);
    const status = sseEvent({ type: "status", status: statusFor(this.status(), viewer) });
    streamEvents(res);
    res.write(status);
    this.#events.set(res, {
      viewer,
      allowance: EVENT_BACKLOG_LIMIT_BYTES + Buffer.byteLength(status),
    });
    res.once("close", () => this.#events.delete(res));
  }

  #broadcast(event: RegistryEvent): void {
    // Every heartbeat is an event: with no console open, skip serializing it.
    if (this.#events.size === 0) return;
    // Serialized once per kind of reader, and only for kinds that are listening.
    const payloads = new Map<StatusViewer, string>();
    const payloadFor = (viewer: StatusViewer) => {
      let payload = payloads.get(viewer);
      if (payload === undefined) {
        payload = sseEvent(eventFor(event, viewer));
        payloads.set(viewer, payload);
      }
      return payload;
    };
    for (const [client, { viewer, allowance }] of this.#events) {
      if (client.writableLength > allowance) {
        // A reader that stopped reading (a frozen tab, a stuck script) would make the gateway
        // hold every later event for it. Cut it off; a console reconnects to a fresh status.
        this.log.warn(
          { backlog_bytes: client.writableLength },
          "an /api/events reader fell behind; closing its stream",
        );
        this.#events.delete(client);
        client.destroy();
        continue;
      }
      client.write(payloadFor(viewer));
    }
  }

  #broadcastWakeable(): void {
    this.#broadcast({ type: "wakeable", wakeable: this.wakeableStatus() });
  }

  /**
   * Counts an OpenAI request as admitted work that a shutdown waits for; refused with 503
   * `shutting_down` (a client or load balancer tries another gateway) once shutdown began.
   */
  admitRequest(): () => void {
    if (this.#stopping) {
      throw new RoleMeshError("shutting_down", "the gateway is shutting down", {
        retryAfterS: 1,
      });
    }
    return this.#requests.enter();
  }

  /**
   * Stops accepting, lets admitted requests (streams included) finish for up to
   * `shutdown_grace_s`, then closes every connection. Event streams, which never finish, end
   * at once. Safe to call more than once.
   */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#stop();
    return this.#shutdown;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    this.log.info(
      { in_flight: this.#requests.count },
      "shutting down: no new requests, waiting for admitted ones",
    );
    for (const client of this.#events.keys()) client.end();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    if (!(await this.#requests.idle(this.config.shutdown_grace_s * 1000))) {
      this.log.warn(
        { in_flight: this.#requests.count },
        "shutdown grace elapsed with requests still running; stopping anyway",
      );
    }
    clearInterval(this.#sweeper);
    this.waker.close();
    if (this.#nats) {
      this.#nats.peers.stop();
      await this.#nats.feed.stop();
      await this.#nats.connection.close();
    }
    this.#server.closeAllConnections();
    await this.forwarder.close();
    await closed;
    this.log.info("gateway stopped");
  }

  #authorize(req: IncomingMessage, route: Route<Access>): void {
    const presented = bearerToken(req);
    switch (route.access) {
      case "join":
        if (this.config.join_token && !secretsEqual(presented, this.config.join_token)) {
          const message = registryMessage(route.path);
          if (message) this.metrics.observeRegistryMessage(message, "invalid_api_key");
          throw new RoleMeshError("invalid_api_key", "missing or wrong join token");
        }
        return;
      case "admin":
        return this.#authorizeAdmin(presented);
      case "read":
        // Status and events hold no secrets; once keys exist they need one (client or admin),
        // and a client key reads them without what only operators should (see statusFor).
        if (!this.keys.enabled && !this.config.admin_key) return;
        if (this.config.admin_key && secretsEqual(presented, this.config.admin_key)) return;
        if (this.keys.authenticate(presented)) {
          this.#clientReaders.add(req);
          return;
        }
        throw new RoleMeshError("invalid_api_key", "a client key or the admin key is required");
      default: {
        if (!this.keys.enabled) return;
        // The admin key also works as a client key with no limits (the console's playground).
        if (this.config.admin_key && secretsEqual(presented, this.config.admin_key)) return;
        const key = this.keys.authenticate(presented);
        if (!key) throw new RoleMeshError("invalid_api_key", "missing or unknown API key");
        this.#clientKeyOf.set(req, key);
      }
    }
  }

  /**
   * True while being on loopback stands in for a credential: some kind of caller (admin, agent,
   * client) is let in without one. Then only requests addressed to a loopback name are answered.
   */
  #trustsLoopback(): boolean {
    if (!isLoopbackHost(this.config.listen_host)) return false;
    return !this.config.admin_key || !this.config.join_token || !this.keys.enabled;
  }

  #authorizeAdmin(presented: string | undefined): void {
    if (!this.config.admin_key) {
      if (isLoopbackHost(this.config.listen_host)) return;
      throw new RoleMeshError(
        "forbidden",
        "the admin API is disabled: this gateway listens on a non-loopback address and has no admin_key",
      );
    }
    if (!secretsEqual(presented, this.config.admin_key)) {
      throw new RoleMeshError("invalid_api_key", "missing or wrong admin key");
    }
  }
}

/** The registry message a route receives, if it is a registry route. */
function registryMessage(path: string): RegistryMessage | undefined {
  const messages = Object.keys(REGISTRY_PATHS) as RegistryMessage[];
  return messages.find((message) => REGISTRY_PATHS[message] === path);
}
