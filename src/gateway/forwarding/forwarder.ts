import type { ServerResponse } from "node:http";
import { Pool } from "undici";
import { RoleMeshError, toRoleMeshError } from "../../core/errors.js";
import { SSE_HEADERS, sseComment, sseEvent } from "../../core/http/sse.js";
import type { Logger } from "../../core/logger.js";
import type { OpenAIEndpoint } from "../../core/proxy/openai-request.js";
import { relay, UpstreamUnreachableError } from "../../core/proxy/relay.js";
import type { RelayResult } from "../../core/proxy/relay.js";
import { PROCESSING_HEADER } from "../../protocol/processing.js";
import type { NodeRecord, NodeRegistry } from "../registry/node-registry.js";
import { AffinityMemory, affinityKey } from "../router/prefix-affinity.js";
import type { AffinityOutcome } from "../router/prefix-affinity.js";
import { rankByAffinity, rankNodes } from "../router/route-picker.js";
import type { RouteChoice } from "../router/route-picker.js";

export interface ForwarderOptions {
  /** Nodes tried for one request before answering 503 (`max_attempts`). */
  maxAttempts: number;
  /** The whole exchange with one node must end within this (`request_timeout_s`). */
  requestTimeoutMs: number;
  /**
   * A node that sends nothing for this long before its answer starts is given up on and the
   * request tried on the next (`first_byte_timeout_s`); 0 = no limit.
   */
  firstByteTimeoutMs: number;
  /**
   * Told how each attempt on a node ended: `ok` (answered, or the client left), `upstream_error`
   * (its answer broke off), `unreachable`, or the code of the error it answered.
   */
  onAttempt?(nodeId: string, outcome: string): void;
  /**
   * The node that serves `name` for a group of nodes (split inference, SPEC §12), the group
   * formed first; undefined when the model runs on one node as usual.
   */
  splitHost?(name: string): Promise<NodeRecord | undefined>;
  /**
   * For a request that no live node serves: wakes what would serve it and waits (SPEC §11);
   * true once a live node does, false when nothing wakeable serves it. `notice` is called while
   * it waits. Rejects with 503 `waking` or `no_capacity`.
   */
  hold?(name: string, signal: AbortSignal, notice?: (id: string) => void): Promise<boolean>;
  /**
   * Routing by prompt prefix (SPEC §13) with this load bound (`affinity_load_factor`); least
   * load when undefined (`routing: least_load`).
   */
  affinityLoadFactor?: number;
  /** Told how each answered request's affinity went. */
  onAffinity?(outcome: AffinityOutcome): void;
  log: Logger;
}

/** The nodes to try for a request, and its prefix key's own node when it has one. */
interface Route {
  choices: RouteChoice[];
  /** The request's prefix key, under prefix affinity. */
  key?: string;
  home?: string;
}

/** One OpenAI request to forward, already read and checked. */
export interface ForwardRequest {
  endpoint: OpenAIEndpoint;
  /** The model id or role the client asked for. */
  name: string;
  /** The body as the client sent it, and parsed. */
  raw: Buffer;
  body: Record<string, unknown>;
}

/**
 * Sends OpenAI requests to nodes (SPEC §7.3): ranks the nodes that serve the model or role and
 * tries them in turn while a node fails before any byte reached the client (unreachable, silent
 * past the first-byte timeout, gone from the registry, or an error the table marks
 * `elsewhere`), up to `maxAttempts`. It counts the requests it has in flight to each node
 * (ranking reads them) and keeps one connection pool per agent address.
 */
export class Forwarder {
  readonly #registry: NodeRegistry;
  readonly #options: ForwarderOptions;
  readonly #pools = new Map<string, Pool>();
  readonly #affinity = new AffinityMemory();
  #turn = 0;

  constructor(registry: NodeRegistry, options: ForwarderOptions) {
    this.#registry = registry;
    this.#options = options;
    // A node that left (lease expired, unreachable, deregistered) answers nothing more: its
    // requests fail now, and those that received no byte yet go to another node.
    registry.on("event", (event) => {
      if (event.type === "node_removed") this.#dropUnusedPools("destroy");
    });
  }

  async forward(
    request: ForwardRequest,
    res: ServerResponse,
    signal: AbortSignal,
  ): Promise<RelayResult> {
    const { name } = request;
    const host = await this.#options.splitHost?.(name);
    let route: Route = host ? { choices: [{ record: host, modelId: name }] } : this.#route(request);
    if (route.choices.length === 0 && this.#options.hold) {
      // A held stream hears that it waits, so neither it nor a proxy gives up on silence.
      const notice =
        request.body.stream === true
          ? (id: string) => {
              if (!res.headersSent) res.writeHead(200, SSE_HEADERS);
              res.write(sseComment(`waking ${id}`));
            }
          : undefined;
      try {
        if (await this.#options.hold(name, signal, notice)) route = this.#route(request);
        return await this.#send(request, route, res, signal);
      } catch (err) {
        // Its stream has begun with 200: the failure is told as its last event.
        if (res.headersSent && !res.writableEnded) res.end(sseEvent(toRoleMeshError(err).toBody()));
        throw err;
      }
    }
    return this.#send(request, route, res, signal);
  }

  /** The live nodes for the request, by its prompt prefix or by least load. */
  #route(request: ForwardRequest): Route {
    const live = this.#registry.live();
    const factor = this.#options.affinityLoadFactor;
    const key =
      factor === undefined ? undefined : affinityKey(request.endpoint, request.body, request.name);
    if (factor === undefined || key === undefined) {
      return { choices: rankNodes(live, request.name, this.#turn++) };
    }
    return { key, ...rankByAffinity(live, request.name, key, factor, this.#turn++) };
  }

  /** Tries the route's nodes in turn (see the class comment). */
  async #send(
    request: ForwardRequest,
    { choices, key, home }: Route,
    res: ServerResponse,
    signal: AbortSignal,
  ): Promise<RelayResult> {
    const { name } = request;
    if (choices.length === 0) {
      throw new RoleMeshError("model_not_found", `no live node offers model or role "${name}"`, {
        param: "model",
      });
    }
    const { firstByteTimeoutMs } = this.#options;
    // Asked to, an agent shows it is working (queued, loading, generating), so silence is a
    // frozen or cut-off node, not a slow answer.
    const processing: Record<string, string> =
      firstByteTimeoutMs > 0 ? { [PROCESSING_HEADER]: "1" } : {};
    let lastFailure: RoleMeshError | undefined;
    let everyNodeFull = true;
    let attempts = 0;
    for (const { record, modelId } of choices) {
      if (attempts === this.#options.maxAttempts) break;
      // A node that left while an earlier one was tried has no pool any more.
      if (this.#registry.get(record.nodeId) !== record) continue;
      attempts++;
      const body =
        modelId === name
          ? request.raw
          : Buffer.from(JSON.stringify({ ...request.body, model: modelId }));
      // Whether the node likely holds the prefix: it went there last (hit), it is the key's own
      // node but new to it (miss), or the key's node was over the load bound (overflow).
      const affinity: AffinityOutcome | undefined =
        key === undefined
          ? undefined
          : record.nodeId !== home
            ? "overflow"
            : this.#affinity.sent(key, record.nodeId)
              ? "hit"
              : "miss";
      record.inFlight++;
      try {
        const result = await relay({
          upstream: this.#poolFor(record.agentUrl),
          path: request.endpoint,
          body,
          res,
          signal,
          deadlineMs: this.#options.requestTimeoutMs,
          firstByteTimeoutMs: firstByteTimeoutMs > 0 ? firstByteTimeoutMs : undefined,
          requestHeaders: {
            ...processing,
            ...(record.authToken ? { authorization: `Bearer ${record.authToken}` } : {}),
          },
          responseHeaders: {
            "x-rolemesh-node": record.nodeId,
            "x-rolemesh-model": modelId,
            ...(affinity ? { "x-rolemesh-affinity": affinity } : {}),
          },
        });
        this.#registry.connectSucceeded(record.nodeId);
        if (affinity) this.#options.onAffinity?.(affinity);
        const broke = !result.complete && !signal.aborted;
        this.#options.onAttempt?.(record.nodeId, broke ? "upstream_error" : "ok");
        return result;
      } catch (err) {
        this.#options.onAttempt?.(record.nodeId, attemptFailure(err));
        if (res.headersSent || !(err instanceof RoleMeshError)) throw err;
        const unreachable = err instanceof UpstreamUnreachableError;
        if (unreachable) this.#registry.connectFailed(record.nodeId);
        else if (!err.mayTryElsewhere) throw err;
        // A node that cannot be reached is news; one that is busy is backpressure doing its
        // job, thousands of times a second under overload.
        this.#options.log[unreachable ? "warn" : "debug"](
          { node_id: record.nodeId, code: err.code, reason: err.message },
          "trying the next node",
        );
        lastFailure = err;
        everyNodeFull &&= err.code === "queue_full";
      } finally {
        record.inFlight--;
      }
    }
    // Nodes that are only busy give the client the same answer one node would: come back soon.
    throw new RoleMeshError(
      everyNodeFull ? "queue_full" : "no_capacity",
      `no node could take the request for "${name}" (last: ${lastFailure?.message ?? "none"})`,
      { retryAfterS: lastFailure?.retryAfterS ?? 1 },
    );
  }

  /**
   * Closes the pools to agent addresses no live node has any more: a node that registered
   * again on another address. Requests still running through a pool finish first.
   */
  closeUnusedPools(): void {
    this.#dropUnusedPools("close");
  }

  async close(): Promise<void> {
    await Promise.all([...this.#pools.values()].map((pool) => pool.destroy()));
    this.#pools.clear();
  }

  /**
   * Ends the pools to agent addresses no live node has: `close` lets their requests finish,
   * `destroy` fails them at once.
   */
  #dropUnusedPools(how: "close" | "destroy"): void {
    if (this.#pools.size === 0) return;
    const inUse = new Set(this.#registry.live().map((record) => record.agentUrl));
    for (const [url, pool] of this.#pools) {
      if (inUse.has(url)) continue;
      this.#pools.delete(url);
      pool[how]().catch(() => undefined);
    }
  }

  /** A connection pool to an agent, made on first use. */
  #poolFor(agentUrl: string): Pool {
    let pool = this.#pools.get(agentUrl);
    if (!pool) {
      // Generations can run for minutes: the gateway keeps its own deadline (request_timeout_s).
      pool = new Pool(agentUrl, { headersTimeout: 0, bodyTimeout: 0, connectTimeout: 5000 });
      this.#pools.set(agentUrl, pool);
    }
    return pool;
  }
}

/** The outcome of an attempt that threw, for `onAttempt`. */
function attemptFailure(err: unknown): string {
  return err instanceof UpstreamUnreachableError ? "unreachable" : toRoleMeshError(err).code;
}
