/**
 * 6. Hostile input, property-based: fast-check generates malformed, mistyped, huge, slow,
 * control-byte-laden and path-tricking requests against one agent and the gateway it is
 * registered with, with and without credentials. Every answer is a documented status, every
 * JSON error the OpenAI shape with a known code; neither process crashes or logs an unhandled
 * error; slow clients neither starve normal requests nor keep their connections.
 */
import { Readable } from "node:stream";
import fc from "fast-check";
import { request } from "undici";
import { fakeAgent, start, stop } from "../../bench/lib/cluster.js";
import type { Started } from "../../bench/lib/cluster.js";
import { until } from "../../bench/lib/gateway-status.js";
import { isErrorCode, RoleMeshError } from "../../src/core/errors.js";
import { OPENAI_ENDPOINTS } from "../../src/core/proxy/openai-request.js";
import type { OpenAIEndpoint } from "../../src/core/proxy/openai-request.js";
import type { ErrorBody } from "../../src/protocol/errors.js";
import {
  hostileField,
  hostileString,
  malformedBody,
  modelName,
  pathTrick,
  validBody,
  wrongDevice,
  wrongField,
} from "../lib/hostile-arbitraries.js";
import type { WrongField } from "../lib/hostile-arbitraries.js";
import { rawExchange } from "../lib/raw-http.js";
import type { RawAnswer } from "../lib/raw-http.js";
import { Checks, sleep } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";
import { SlowClients } from "../lib/slow-clients.js";

const SECRETS = {
  agent: "agent-token-hostile-0001",
  join: "join-token-hostile-0001",
  admin: "admin-key-hostile-0001",
  client: "client-key-hostile-0001",
  wrong: "not-a-token-of-anyone-0001",
};
type Credential = "none" | keyof typeof SECRETS;
/** Who may use what: the agent has one token; the gateway a key per access kind (SPEC §7). */
type Access = "openai" | "node-admin" | "join";
const OPENS: Record<Access, Credential[]> = {
  openai: ["agent", "client", "admin"],
  "node-admin": ["agent"],
  join: ["join"],
};

/** The default body limit (SPEC §7: 8 MiB). */
const BODY_LIMIT = 8 * 1024 * 1024;
/** How far past the limit an oversized body goes. */
const OVERSIZE_MAX = 64 * 1024;
/** node:http's default maxHeaderSize, which any head above gets a 431 for. */
const HEAD_LIMIT = 16 * 1024;
/** The value of each of many headers that add up past that limit. */
const MANY_VALUE_CHARS = 90;
/** Chunks of a chunked oversized body. */
const CHUNK_BYTES = 1024 * 1024;
/** A request not answered by then hangs: a failure of its own. */
const ANSWER_TIMEOUT_MS = 15_000;
/** Property runs per category and second of `durationS` (10 s → 300). */
const RUNS_PER_S = 30;
/** Oversized bodies cost 8 MiB each: fewer of them. */
const HUGE_SHARE = 0.4;

/**
 * Statuses a hostile request may get. From RoleMesh (SPEC §7 and the router): 200 for one that
 * is valid after all; 400 invalid_request; 401 invalid_api_key; 403 forbidden; 404 not_found /
 * model_not_found; 405 method_not_allowed; 413 request_too_large; 415 unsupported_media_type;
 * 429 rate_limited;
 * 502 upstream_error; 503 backpressure. From node:http itself, before any RoleMesh code runs:
 * 400 for a head it cannot parse (unknown method, bare LF, NUL/CR in a header, no Host), 408
 * when headersTimeout / requestTimeout passes, 413 for chunk extensions over its limit, 417 for
 * an Expect other than 100-continue, 431 for a head over maxHeaderSize. 500 is a bug: never.
 */
const ALLOWED = new Set([200, 400, 401, 403, 404, 405, 408, 413, 415, 417, 429, 431, 502, 503]);
/** node:http closes a CONNECT without answering when nobody listens for it. */
const CLOSES_UNANSWERED = "CONNECT";
/** Paths anyone may read: health, and the console on the gateway. */
const PUBLIC_PATH = /^\/(healthz|console\/[^/]+)?$/;

/** Slow clients per target: heads sent a byte at a time, bodies that stop halfway. */
const SLOW_HEADS = 150;
const SLOW_BODIES = 20;
const SLOW_TICK_MS = 500;
/** What a slow body sends a byte per tick before it stops for good. */
const BODY_DRIP = '"msg';
/** Every slow connection must be closed by the server within this long of opening. */
const SLOW_CLOSE_LIMIT_MS = 25_000;
/** A normal request answered later than this while slow clients hang on is starved. */
const NORMAL_LIMIT_MS = 2_000;
const NORMAL_EVERY_MS = 200;

interface Target {
  name: "agent" | "gateway";
  url: string;
  credentials: Credential[];
}

interface Route {
  target: Target;
  path: string;
  access: Access;
}

export const hostileInput: Scenario = {
  name: "hostile input",
  async run({ durationS }) {
    const seed = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31));
    if (!Number.isSafeInteger(seed)) throw new Error(`FC_SEED: expected an integer`);
    const runs = Math.max(1, Math.round(durationS * RUNS_PER_S));
    const checks = new Checks();
    const gateway = await start("gateway", {
      heartbeat_interval_s: 1,
      admin_key: SECRETS.admin,
      join_token: SECRETS.join,
      api_keys: [{ name: "hostile", key: SECRETS.client, models: ["*"] }],
    });
    const agent = await fakeAgent(2, { node_id: "hostile", auth_token: SECRETS.agent }, {}, [
      ...["--dispatcher-url", gateway.url, "--heartbeat-interval", "1"],
      ...["--join-token", SECRETS.join],
    ]);
    try {
      await ready(agent.url, gateway.url);
      const fuzz = new Fuzz(
        { name: "agent", url: agent.url, credentials: ["none", "wrong", "agent"] },
        {
          name: "gateway",
          url: gateway.url,
          credentials: ["none", "wrong", "client", "admin", "join"],
        },
        { seed, runs, checks },
      );
      const [slow] = await Promise.all([
        slowClients([agent.url, gateway.url], gateway.url),
        fuzz.all(),
      ]);
      checks.expect(
        slow.closed === slow.opened,
        `${slow.opened - slow.closed} of ${slow.opened} slow connections still open after ${SLOW_CLOSE_LIMIT_MS / 1000} s`,
      );
      checks.expect(slow.disallowed === 0, `slow clients were answered ${slow.statuses}`);
      checks.expect(
        slow.normalFailed === 0 && slow.normalMaxMs < NORMAL_LIMIT_MS,
        `normal requests beside slow clients: ${slow.normalFailed} failed, slowest ${slow.normalMaxMs} ms`,
      );
      const crashes = (await crashed(agent)) + (await crashed(gateway));
      const logs = [...agent.output, ...gateway.output];
      const unhandled = logs.filter((line) => /unhandled|uncaught/i.test(line));
      // The dispatcher's own "this is a bug" line: an error that was not answered as a RoleMeshError.
      const unexpected = logs.filter((line) => line.includes('"msg":"request failed"'));
      checks.expect(crashes === 0, `${crashes} process(es) crashed`);
      checks.expect(unhandled.length === 0, `unhandled: ${unhandled[0]?.slice(0, 300)}`);
      checks.expect(
        unexpected.length === 0,
        `unexpected failures logged: ${unexpected[0]?.slice(0, 300)}`,
      );
      return checks.outcome({
        seed,
        ...fuzz.counts,
        statuses: fuzz.statuses(),
        slow: slow.opened,
        slow_closed: slow.closed,
        slow_close_max_s: Math.round(slow.closeMaxMs / 100) / 10,
        slow_statuses: slow.statuses,
        normal_ok: slow.normalOk,
        normal_failed: slow.normalFailed,
        normal_max_ms: slow.normalMaxMs,
        crashes,
        unhandled: unhandled.length,
        unexpected: unexpected.length,
      });
    } finally {
      await stop(agent);
      await stop(gateway);
    }
  },
};

/** Until the model is loaded and the gateway routes to the agent. */
async function ready(agentUrl: string, gatewayUrl: string): Promise<void> {
  const load = await request(`${agentUrl}/v1/node/models/stories/load`, {
    method: "POST",
    headers: { authorization: `Bearer ${SECRETS.agent}`, "content-type": "application/json" },
  });
  await load.body.dump();
  if (load.statusCode !== 200) throw new Error(`loading the model answered ${load.statusCode}`);
  const routed = await until(async () => {
    const models = await request(`${gatewayUrl}/v1/models`, {
      headers: { authorization: `Bearer ${SECRETS.client}` },
    });
    return (await models.body.text()).includes('"stories"');
  }, 10_000);
  if (!routed) throw new Error("the gateway never listed the agent's model");
}

/** Exits the process has had, or the health check it failed. */
async function crashed(process_: Started): Promise<number> {
  if (process_.child.exitCode !== null || process_.child.signalCode !== null) return 1;
  try {
    const answer = await request(`${process_.url}/healthz`);
    await answer.body.dump();
    return answer.statusCode === 200 ? 0 : 1;
  } catch {
    return 1;
  }
}

interface FuzzOptions {
  seed: number;
  /** Property runs per category. */
  runs: number;
  checks: Checks;
}

/** The fuzzing categories, each a property run `runs` times from one seed. */
class Fuzz {
  readonly counts: Record<string, number> = {};
  readonly #statuses = new Map<string, number>();
  /** What the last request sent, for the report of a failing run. */
  #sent = "";
  readonly #agent: Target;
  readonly #gateway: Target;
  readonly #options: FuzzOptions;

  constructor(agent: Target, gateway: Target, options: FuzzOptions) {
    this.#agent = agent;
    this.#gateway = gateway;
    this.#options = options;
  }

  async all(): Promise<void> {
    await this.#category("malformed", this.#malformed());
    await this.#category("types", this.#types());
    await this.#category("huge", this.#huge(), HUGE_SHARE);
    await this.#category("unicode", this.#unicode());
    await this.#category("paths", this.#paths());
  }

  statuses(): string {
    return tally(this.#statuses);
  }

  /**
   * Malformed and truncated bodies: 400 invalid_request with the right credentials, else 401;
   * declared as anything but JSON, 415 with the right credentials (the type is checked first).
   */
  #malformed(): fc.Arbitrary<() => Promise<void>> {
    const routes = [...this.#openaiRoutes(), ...this.#joinRoutes()];
    return fc
      .constantFrom(...routes)
      .chain((route) =>
        fc.tuple(
          fc.constant(route),
          fc.constantFrom(...route.target.credentials),
          malformedBody,
          fc.constantFrom(
            "application/json",
            "text/plain",
            "application/json; charset=utf-16",
            undefined,
          ),
        ),
      )
      .map(([route, credential, body, contentType]) => async () => {
        const answer = await this.#post(route.target, route.path, credential, body, contentType);
        // No type given means #post's default, JSON.
        const json = (contentType ?? "application/json").split(";")[0] === "application/json";
        expectError(
          answer,
          !OPENS[route.access].includes(credential)
            ? "invalid_api_key"
            : json
              ? "invalid_request"
              : "unsupported_media_type",
        );
      });
  }

  /** One field of a wrong type: 400 naming it in `param`, or 401 without the right credentials. */
  #types(): fc.Arbitrary<() => Promise<void>> {
    const cases: [Route, fc.Arbitrary<WrongField>][] = [
      ...this.#openaiRoutes().map((route): [Route, fc.Arbitrary<WrongField>] => [
        route,
        wrongField(route.path as OpenAIEndpoint),
      ]),
      [
        { target: this.#agent, path: "/v1/node/models/stories/load", access: "node-admin" },
        wrongDevice,
      ],
    ];
    return fc
      .constantFrom(...cases)
      .chain(([route, wrong]) =>
        fc.tuple(fc.constant(route), fc.constantFrom(...route.target.credentials), wrong),
      )
      .map(([route, credential, { body, param }]) => async () => {
        const answer = await this.#post(route.target, route.path, credential, JSON.stringify(body));
        if (!OPENS[route.access].includes(credential)) {
          expectError(answer, "invalid_api_key");
          return;
        }
        const error = expectError(answer, "invalid_request");
        const named = error.param === param || error.param?.startsWith(`${param}.`);
        if (!named)
          throw new Error(`param ${String(error.param)}, expected ${param}: ${error.message}`);
      });
  }

  /** Bodies over the limit (413), heads over node's limit (431), JSON nested absurdly deep. */
  #huge(): fc.Arbitrary<() => Promise<void>> {
    const oversized = Buffer.alloc(BODY_LIMIT + OVERSIZE_MAX, " ");
    const body = fc
      .tuple(
        fc.constantFrom(...this.#openaiRoutes()),
        fc.integer({ min: 1, max: OVERSIZE_MAX }),
        fc.boolean(),
      )
      .chain(([route, over, chunked]) =>
        fc.constantFrom(...route.target.credentials).map((credential) => async () => {
          const bytes = oversized.subarray(0, BODY_LIMIT + over);
          const answer = await this.#post(
            route.target,
            route.path,
            credential,
            chunked ? Readable.from(inChunks(bytes)) : bytes,
          );
          expectError(
            answer,
            OPENS[route.access].includes(credential) ? "request_too_large" : "invalid_api_key",
          );
        }),
      );
    const head = fc
      .tuple(
        this.#anyTarget(),
        fc.constantFrom("one header", "many headers", "long target"),
        fc.integer({ min: HEAD_LIMIT, max: 4 * HEAD_LIMIT }),
      )
      .map(([target, shape, size]) => async () => {
        const filler = "h".repeat(size);
        const lines =
          shape === "one header"
            ? [`X-Big: ${filler}`]
            : shape === "many headers"
              ? // Their values alone come to `size` bytes.
                Array.from(
                  { length: Math.ceil(size / MANY_VALUE_CHARS) },
                  (_, i) => `X-Many-${i}: ${filler.slice(0, MANY_VALUE_CHARS)}`,
                )
              : [];
        const path = shape === "long target" ? `/v1/${filler}` : "/v1/models";
        const answer = await this.#raw(target, "GET", path, "none", lines);
        if (answer.status !== 431)
          throw new Error(`a head of ${size} bytes answered ${answer.status}`);
      });
    const deep = fc
      .tuple(
        fc.constantFrom(
          ...this.#openaiRoutes().filter((route) => route.path === "/v1/chat/completions"),
        ),
        modelName,
        fc.integer({ min: 1_000, max: 200_000 }),
      )
      .chain(([route, model, depth]) =>
        fc.constantFrom(...route.target.credentials).map((credential) => async () => {
          const valid = JSON.stringify(validBody("/v1/chat/completions", model));
          const nested = `${valid.slice(0, -1)},"x":${"[".repeat(depth)}${"]".repeat(depth)}}`;
          checkAnswer(await this.#post(route.target, route.path, credential, nested));
        }),
      );
    return fc.oneof({ weight: 2, arbitrary: body }, head, deep);
  }

  /** Control bytes, lone surrogates, direction marks and long strings in fields, headers, paths. */
  #unicode(): fc.Arbitrary<() => Promise<void>> {
    const field = fc
      .constantFrom(...this.#openaiRoutes())
      .chain((route) =>
        fc.tuple(
          fc.constant(route),
          fc.constantFrom(...route.target.credentials),
          hostileField(route.path as OpenAIEndpoint),
        ),
      )
      .map(([route, credential, body]) => async () => {
        checkAnswer(await this.#post(route.target, route.path, credential, JSON.stringify(body)));
      });
    const header = fc
      .tuple(
        this.#anyTarget(),
        fc.constantFrom(
          "X-Hostile",
          "User-Agent",
          "Accept",
          "Content-Type",
          "Authorization",
          "Host",
        ),
        hostileString,
      )
      .chain(([target, name, value]) =>
        fc.constantFrom(...target.credentials).map((credential) => async () => {
          const line = `${name}: ${value}`;
          const answer = await this.#raw(target, "GET", "/v1/models", credential, [line]);
          if (!refusedAsTooLarge(line, answer)) checkAnswer(answer);
        }),
      );
    const path = fc
      .tuple(this.#anyTarget(), hostileString, fc.boolean())
      .chain(([target, text, encoded]) =>
        fc.constantFrom(...target.credentials).map((credential) => async () => {
          // Encoded, every byte of it: the id reaches the load route and nothing else.
          const answer = encoded
            ? await this.#raw(
                target,
                "POST",
                `/v1/node/models/${percentEncoded(text)}/load`,
                credential,
              )
            : await this.#raw(target, "GET", `/v1/${text}`, credential);
          if (!refusedAsTooLarge(text, answer)) checkAnswer(answer);
        }),
      );
    return fc.oneof(field, header, path);
  }

  /**
   * Path tricks. Without credentials every method is tried, and whatever may not read (no
   * credential, a wrong one, the join token) gets 2xx from public paths alone; credentials that
   * open anything only use methods that change nothing, so the fuzzing cannot stop or drain
   * the node, delete its model or mint keys.
   */
  #paths(): fc.Arbitrary<() => Promise<void>> {
    // Besides GET, which is half of all: it reads a route, so access checks must hold against it.
    const harmless = ["HEAD", "OPTIONS", "PATCH", "TRACE", "get", "FOO", "G ET"];
    const changing = [...harmless, "POST", "PUT", "DELETE", CLOSES_UNANSWERED];
    const methods = (others: string[]) => fc.oneof(fc.constant("GET"), fc.constantFrom(...others));
    return this.#anyTarget()
      .chain((target) => fc.tuple(fc.constant(target), fc.constantFrom(...target.credentials)))
      .chain(([target, credential]) =>
        fc
          .tuple(methods(opensAnything(credential) ? harmless : changing), pathTrick)
          .map(([method, path]) => async () => {
            const answer = await this.#raw(target, method, path, credential);
            if (method === CLOSES_UNANSWERED && answer.status === undefined) return;
            checkAnswer(answer, method === "HEAD");
            const success = answer.status !== undefined && answer.status < 300;
            const reader = OPENS.openai.includes(credential);
            if (success && !reader && !PUBLIC_PATH.test(routedPath(path) ?? ""))
              throw new Error(`${method} ${path} answered ${answer.status} as ${credential}`);
          }),
      );
  }

  async #category(
    name: string,
    cases: fc.Arbitrary<() => Promise<void>>,
    share = 1,
  ): Promise<void> {
    const { seed, runs, checks } = this.#options;
    this.counts[name] = 0;
    const property = fc.asyncProperty(cases, async (send) => {
      this.counts[name]!++;
      this.#sent = "nothing";
      try {
        await send();
      } catch (err) {
        throw new Error(`${(err as Error).message}; sent ${this.#sent}`, { cause: err });
      }
    });
    const numRuns = Math.max(1, Math.round(runs * share));
    // No shrinking: each run is a request, and the seed and path replay the first failure.
    const details = await fc.check(property, { seed, numRuns, endOnFailure: true });
    if (details.failed) {
      const message = (details.errorInstance as Error | undefined)?.message ?? "failed";
      checks.expect(
        false,
        `${name}: ${message} (FC_SEED=${seed}, path ${details.counterexamplePath})`,
      );
    }
  }

  #anyTarget(): fc.Arbitrary<Target> {
    return fc.constantFrom(this.#agent, this.#gateway);
  }

  #openaiRoutes(): Route[] {
    return [this.#agent, this.#gateway].flatMap((target) =>
      OPENAI_ENDPOINTS.map((path): Route => ({ target, path, access: "openai" })),
    );
  }

  #joinRoutes(): Route[] {
    return ["/v1/nodes/register", "/v1/nodes/heartbeat"].map((path) => ({
      target: this.#gateway,
      path,
      access: "join",
    }));
  }

  #count(answer: RawAnswer): RawAnswer {
    const key = String(answer.status ?? "closed");
    this.#statuses.set(key, (this.#statuses.get(key) ?? 0) + 1);
    return answer;
  }

  /** A POST through undici, which sends any body but refuses bad header bytes. */
  async #post(
    target: Target,
    path: string,
    credential: Credential,
    body: string | Uint8Array | Readable,
    contentType: string | undefined = "application/json",
  ): Promise<RawAnswer> {
    this.#sent = `POST ${target.name}${path} as ${credential}: ${preview(body)}`;
    const answer = await request(`${target.url}${path}`, {
      method: "POST",
      headers: {
        ...(contentType ? { "content-type": contentType } : {}),
        ...(credential === "none" ? {} : { authorization: `Bearer ${SECRETS[credential]}` }),
      },
      body,
      headersTimeout: ANSWER_TIMEOUT_MS,
      bodyTimeout: ANSWER_TIMEOUT_MS,
    });
    const headers = Object.fromEntries(
      Object.entries(answer.headers).map(([name, value]) => [name, String(value)]),
    );
    return this.#count({ status: answer.statusCode, headers, body: await answer.body.text() });
  }

  /** A request written byte for byte: any method, target and header lines. */
  async #raw(
    target: Target,
    method: string,
    path: string,
    credential: Credential,
    headerLines: string[] = [],
  ): Promise<RawAnswer> {
    const lines = [
      `${method} ${path} HTTP/1.1`,
      ...(headerLines.some((line) => /^host:/i.test(line)) ? [] : ["Host: 127.0.0.1"]),
      ...headerLines,
      ...(credential === "none" || headerLines.some((line) => /^authorization:/i.test(line))
        ? []
        : [`Authorization: Bearer ${SECRETS[credential]}`]),
      "Connection: close",
    ];
    const bytes = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "utf8");
    this.#sent = `to ${target.name}: ${preview(bytes)}`;
    return this.#count(
      await rawExchange(target.url, bytes, {
        timeoutMs: ANSWER_TIMEOUT_MS,
        head: method === "HEAD",
      }),
    );
  }
}

/** `status:count,…` in order. */
function tally(counts: Map<string, number>): string {
  return [...counts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([status, n]) => `${status}:${n}`)
    .join(",");
}

const PREVIEW_CHARS = 200;

/** The start of what was sent, escaped so that control bytes show. */
function preview(body: string | Uint8Array | Readable): string {
  if (body instanceof Readable) return "(a chunked body)";
  const text = typeof body === "string" ? body : Buffer.from(body).toString("latin1");
  return `${JSON.stringify(text.slice(0, PREVIEW_CHARS))} (${text.length} chars)`;
}

/**
 * A head past the server's limit is answered 431 and the connection closed while the client may
 * still be sending it; the reset can then reach the client before the answer (TCP discards
 * what it had not read), so a close counts as the refusal too.
 */
function refusedAsTooLarge(sent: string, answer: RawAnswer): boolean {
  if (Buffer.byteLength(sent) <= HEAD_LIMIT) return false;
  return answer.status === undefined || answer.status === 431;
}

function opensAnything(credential: Credential): boolean {
  return Object.values(OPENS).some((credentials) => credentials.includes(credential));
}

/**
 * The status is allowed, and a JSON error is the OpenAI shape with a code of SPEC §7 (`bodyless`:
 * an answer to HEAD, whose head says JSON but which has no body).
 */
function checkAnswer(answer: RawAnswer, bodyless = false): ErrorBody | undefined {
  if (answer.status === undefined) throw new Error("closed without an answer");
  if (!ALLOWED.has(answer.status))
    throw new Error(`status ${answer.status}: ${answer.body.slice(0, 200)}`);
  if (bodyless || answer.status < 400 || !(answer.headers["content-type"] ?? "").includes("json"))
    return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer.body);
  } catch {
    throw new Error(`status ${answer.status} with a JSON content type and a body that is not JSON`);
  }
  const error = (parsed as { error?: Record<string, unknown> } | null)?.error ?? {};
  const { message, type, code, param } = error;
  const shaped =
    typeof message === "string" &&
    typeof type === "string" &&
    (param === null || typeof param === "string");
  if (!shaped || !isErrorCode(code))
    throw new Error(`not an OpenAI error body: ${answer.body.slice(0, 200)}`);
  const status = new RoleMeshError(code, message).status;
  if (status !== answer.status)
    throw new Error(`code ${code} answered with ${answer.status}, not ${status}`);
  return parsed as ErrorBody;
}

/** Checks the answer, and that it is the error `code`; returns the error. */
function expectError(answer: RawAnswer, code: string): ErrorBody["error"] {
  const body = checkAnswer(answer);
  if (body?.error.code !== code)
    throw new Error(`expected ${code}, got ${answer.status} ${answer.body.slice(0, 200)}`);
  return body.error;
}

/** Which path a request target names (RFC 9112 §3.2): origin-form, absolute-form, or none. */
function routedPath(target: string): string | undefined {
  try {
    if (target.startsWith("/")) return new URL(`http://origin${target}`).pathname;
    if (/^https?:\/\//i.test(target)) return new URL(target).pathname;
  } catch {
    // not a URL at all
  }
  return undefined;
}

/** Every UTF-8 byte of `text` percent-encoded (a lone surrogate becomes U+FFFD). */
function percentEncoded(text: string): string {
  return [...Buffer.from(text, "utf8")]
    .map((byte) => `%${byte.toString(16).padStart(2, "0")}`)
    .join("");
}

async function* inChunks(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  for (let at = 0; at < bytes.length; at += CHUNK_BYTES) yield bytes.subarray(at, at + CHUNK_BYTES);
}

interface SlowOutcome {
  opened: number;
  closed: number;
  closeMaxMs: number;
  /** What the server answered them before closing, e.g. `408:300,400:40,401:40`. */
  statuses: string;
  /** Answers with a status outside the allowed set. */
  disallowed: number;
  normalOk: number;
  normalFailed: number;
  normalMaxMs: number;
}

/**
 * Opens slow connections to every target (heads a byte at a time; bodies that stop halfway,
 * with and without credentials), and sends normal requests meanwhile until the server closed
 * them all or the limit passed.
 */
async function slowClients(urls: string[], gatewayUrl: string): Promise<SlowOutcome> {
  const slow = new SlowClients(SLOW_TICK_MS);
  const headOpening = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
  const bodyHead = (token?: string) =>
    [
      "POST /v1/chat/completions HTTP/1.1",
      "Host: 127.0.0.1",
      "Content-Type: application/json",
      "Content-Length: 1000",
      ...(token ? [`Authorization: Bearer ${token}`] : []),
      "",
      '{"model":"stories",',
    ].join("\r\n");
  for (const url of urls) {
    const token = url === gatewayUrl ? SECRETS.client : SECRETS.agent;
    for (let i = 0; i < SLOW_HEADS; i++) slow.open(url, { drip: headOpening, filler: "a" });
    for (let i = 0; i < SLOW_BODIES; i++) {
      slow.open(url, { burst: bodyHead(token), drip: BODY_DRIP });
      slow.open(url, { burst: bodyHead(), drip: BODY_DRIP });
    }
  }
  const opened = slow.clients.length;
  const normal = { ok: 0, failed: 0, maxMs: 0 };
  const began = performance.now();
  try {
    while (slow.closed < opened && performance.now() - began < SLOW_CLOSE_LIMIT_MS) {
      await Promise.all([
        ...urls.map((url) => normalRequest(`${url}/healthz`)),
        normalChat(gatewayUrl),
      ]).then((outcomes) => {
        for (const { ok, ms } of outcomes) {
          if (ok) normal.ok++;
          else normal.failed++;
          normal.maxMs = Math.max(normal.maxMs, Math.round(ms));
        }
      });
      await sleep(NORMAL_EVERY_MS);
    }
  } finally {
    slow.stop();
  }
  const closedAfter = slow.clients.map((client) => client.closedAfterMs ?? Infinity);
  const statuses = new Map<string, number>();
  for (const { status } of slow.clients) {
    const key = String(status ?? "none");
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
  }
  return {
    opened,
    closed: closedAfter.filter((ms) => ms <= SLOW_CLOSE_LIMIT_MS).length,
    closeMaxMs: Math.max(...closedAfter.filter(Number.isFinite)),
    statuses: tally(statuses),
    disallowed: slow.clients.filter(({ status }) => status !== undefined && !ALLOWED.has(status))
      .length,
    normalOk: normal.ok,
    normalFailed: normal.failed,
    normalMaxMs: normal.maxMs,
  };
}

async function normalRequest(url: string, init: Parameters<typeof request>[1] = {}) {
  const began = performance.now();
  try {
    // Waits past the limit, so a starved request is measured rather than cut off.
    const answer = await request(url, { ...init, headersTimeout: NORMAL_LIMIT_MS * 5 });
    await answer.body.dump();
    return { ok: answer.statusCode === 200, ms: performance.now() - began };
  } catch {
    return { ok: false, ms: performance.now() - began };
  }
}

function normalChat(gatewayUrl: string) {
  return normalRequest(`${gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${SECRETS.client}` },
    body: JSON.stringify(validBody("/v1/chat/completions", "stories")),
  });
}
