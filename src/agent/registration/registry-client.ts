import { ApiClient } from "../../core/http/api-client.js";
import { REGISTRY_PATHS } from "../../protocol/paths.js";
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
  readonly #api: ApiClient;
  readonly #timeoutMs: number;

  constructor(baseUrl: string, joinToken: string, timeoutMs = 10_000) {
    this.#api = new ApiClient(baseUrl, joinToken);
    this.#timeoutMs = timeoutMs;
  }

  async register(message: RegisterRequest): Promise<RegisterResponse> {
    return (await this.#post<RegisterResponse>(REGISTRY_PATHS.register, message)).body;
  }

  async heartbeat(message: HeartbeatRequest): Promise<void> {
    await this.#post(REGISTRY_PATHS.heartbeat, message);
  }

  async deregister(message: DeregisterRequest): Promise<void> {
    await this.#post(REGISTRY_PATHS.deregister, message);
  }

  #post<T>(path: string, body: unknown) {
    return this.#api.call<T>("POST", path, { body, timeoutMs: this.#timeoutMs });
  }
}
