import { request } from "undici";
import { RoleMeshError } from "../../core/errors.js";
import { upstreamFailure } from "../../core/proxy/relay.js";
import type {
  DeregisterRequest,
  HeartbeatRequest,
  RegisterRequest,
  RegisterResponse,
} from "../../protocol/registry.js";

/**
 * How an agent talks to the registry. The HTTP client below is the default; `rolemesh up`
 * calls its gateway in process, and a NATS transport can implement the same three calls.
 */
export interface RegistryClient {
  register(message: RegisterRequest): Promise<RegisterResponse>;
  /** Rejects with a RoleMeshError of code `unknown_node` when the gateway does not know the node. */
  heartbeat(message: HeartbeatRequest): Promise<void>;
  deregister(message: DeregisterRequest): Promise<void>;
}

/** The registry endpoints of a gateway (SPEC §7.2), with the join token as bearer. */
export class HttpRegistryClient implements RegistryClient {
  readonly #base: string;

  constructor(
    baseUrl: string,
    private readonly joinToken: string,
    private readonly timeoutMs = 10_000,
  ) {
    this.#base = baseUrl.replace(/\/+$/, "");
  }

  async register(message: RegisterRequest): Promise<RegisterResponse> {
    return (await this.#post("/v1/nodes/register", message)) as RegisterResponse;
  }

  async heartbeat(message: HeartbeatRequest): Promise<void> {
    await this.#post("/v1/nodes/heartbeat", message);
  }

  async deregister(message: DeregisterRequest): Promise<void> {
    await this.#post("/v1/nodes/deregister", message);
  }

  async #post(path: string, body: unknown): Promise<unknown> {
    const answer = await request(`${this.#base}${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(this.joinToken ? { authorization: `Bearer ${this.joinToken}` } : {}),
      },
      body: JSON.stringify(body),
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
    const text = await answer.body.text();
    if (answer.statusCode >= 400) throw upstreamFailure(answer.statusCode, text);
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new RoleMeshError(
        "upstream_error",
        `the gateway answered ${path} with something other than JSON`,
        {
          cause: err,
        },
      );
    }
  }
}
