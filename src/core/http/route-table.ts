import type { IncomingMessage, ServerResponse } from "node:http";
import { RoleMeshError } from "../errors.js";
import { ClientGoneError } from "./client-signal.js";
import { requestUrl } from "./request-target.js";
import { sendError } from "./respond.js";

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** Values of `:name` segments of the route's path. */
  params: Record<string, string>;
}

/** What a route is, without its handler: enough to list and audit a route table. */
export interface RouteInfo<Access extends string = string> {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Path with `:name` segments, e.g. `/v1/node/models/:id/load`. */
  path: string;
  /** Answered without credentials (e.g. `/healthz`). */
  public?: boolean;
  /** Which credentials a non-public route needs, for servers that have several kinds. */
  access?: Access;
}

export interface Route<Access extends string = string> extends RouteInfo<Access> {
  handle(ctx: RequestContext): Promise<void> | void;
}

/**
 * A route whose handler is handed the API it serves. A table of these is plain data: it can be
 * listed (and audited) without a running server, and bound to one with {@link bindRoutes}.
 */
export interface RouteSpec<Api, Access extends string = string> extends RouteInfo<Access> {
  handle(api: Api, ctx: RequestContext): Promise<void> | void;
}

/** The routes of `specs`, each handling requests with `api`. */
export function bindRoutes<Api, Access extends string>(
  specs: readonly RouteSpec<Api, Access>[],
  api: Api,
): Route<Access>[] {
  return specs.map((spec) => ({ ...spec, handle: (ctx) => spec.handle(api, ctx) }));
}

interface CompiledRoute<Access extends string> {
  route: Route<Access>;
  pattern: RegExp;
  names: string[];
}

/**
 * Matches requests to routes: exact paths with `:name` segments. The table is data, so tests
 * can enumerate every route (for example to prove that none answers without credentials).
 */
export class RouteTable<Access extends string = string> {
  readonly routes: readonly Route<Access>[];
  readonly #compiled: CompiledRoute<Access>[];

  constructor(routes: Route<Access>[]) {
    this.routes = routes;
    this.#compiled = routes.map((route) => {
      const names: string[] = [];
      const source = route.path
        .split("/")
        .map((segment) => {
          if (!segment.startsWith(":")) return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
          names.push(segment.slice(1));
          return "([^/]+)";
        })
        .join("/");
      return { route, pattern: new RegExp(`^${source}$`), names };
    });
  }

  /**
   * Finds the route for a request; throws 404 or 405 as an OpenAI-shaped error. HEAD is served
   * by the GET route (node:http sends no body for it), as health checkers and `curl -I` expect.
   */
  match(
    method: string,
    pathname: string,
  ): { route: Route<Access>; params: Record<string, string> } {
    const wanted = method === "HEAD" ? "GET" : method;
    let pathMatched = false;
    for (const { route, pattern, names } of this.#compiled) {
      const found = pattern.exec(pathname);
      if (!found) continue;
      pathMatched = true;
      if (route.method !== wanted) continue;
      const params: Record<string, string> = {};
      names.forEach((name, i) => {
        params[name] = decodeSegment(found[i + 1] ?? "");
      });
      return { route, params };
    }
    if (pathMatched)
      throw new RoleMeshError(
        "method_not_allowed",
        `method ${method} is not allowed on ${pathname}`,
      );
    throw new RoleMeshError("not_found", `no such endpoint: ${method} ${pathname}`);
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new RoleMeshError(
      "invalid_request",
      `malformed percent-encoding in path segment "${segment}"`,
    );
  }
}

/** Methods that change something: their body, even an empty one, must be declared JSON. */
const CHANGING_METHODS = new Set(["POST", "PUT", "DELETE", "PATCH"]);

/**
 * 415 for a POST, PUT or DELETE that is not `application/json`. A web page can send
 * `text/plain` (or no body at all) to any address without a CORS preflight; it cannot send
 * `application/json` without one, which a RoleMesh server never grants.
 */
function checkMediaType(req: IncomingMessage): void {
  if (!CHANGING_METHODS.has(req.method ?? "GET")) return;
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type === "application/json") return;
  throw new RoleMeshError(
    "unsupported_media_type",
    `a ${req.method} request must have Content-Type: application/json (got ${type ? `"${type}"` : "none"})`,
  );
}

export interface ListenerOptions<Access extends string = string> {
  routes: RouteTable<Access>;
  /**
   * When set, a request whose `Host` this refuses is answered 403 before anything else: a
   * server that trusts loopback callers in place of credentials must not answer a web page
   * that reached it through DNS rebinding (its `Host` is the page's own name).
   */
  hostAllowed?(host: string): boolean;
  /** Throws `invalid_api_key` (or `forbidden`) when the request may not use a non-public route. */
  authorize(req: IncomingMessage, route: Route<Access>): void;
  /** Called for errors that were not answered as a RoleMeshError (bugs). */
  onUnexpected(err: unknown, req: IncomingMessage): void;
}

/** The request listener shared by agent and gateway: route, authorize, handle, answer errors. */
export function requestListener<Access extends string>(options: ListenerOptions<Access>) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    void (async () => {
      // Every answer is data, never a page: no sniffing it into HTML, nothing it could load.
      // A route that serves a page (the console) sets its own policy over these.
      res.setHeader("X-Content-Type-Options", "nosniff");
      res.setHeader("Content-Security-Policy", "default-src 'none'");
      try {
        const url = requestUrl(req.url ?? "/");
        const host = req.headers.host ?? "";
        if (options.hostAllowed && !options.hostAllowed(host)) {
          throw new RoleMeshError(
            "forbidden",
            `this server trusts local callers without credentials, so it answers only requests ` +
              `addressed to it by a loopback name (Host "${host.slice(0, 100)}" is not one)`,
          );
        }
        const { route, params } = options.routes.match(req.method ?? "GET", url.pathname);
        if (!route.public) options.authorize(req, route);
        checkMediaType(req);
        await route.handle({ req, res, url, params });
      } catch (err) {
        // A client that left has nobody to answer, and is no bug.
        if (err instanceof ClientGoneError) return;
        if (!(err instanceof RoleMeshError)) options.onUnexpected(err, req);
        sendError(res, err);
      }
    })();
  };
}
