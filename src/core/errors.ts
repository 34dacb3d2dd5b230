import type { ErrorBody, ErrorCode } from "../protocol/errors.js";

/**
 * The one table that maps error codes to HTTP statuses, OpenAI error types, and whether a node
 * that answers the code may leave the request to another node (`elsewhere`: "not me, not now" —
 * busy, nothing loaded that fits, stopping). Everything that answers an error goes through
 * {@link RoleMeshError.toBody} and this table.
 */
const ERROR_TABLE: Record<ErrorCode, { status: number; type: string; elsewhere?: true }> = {
  invalid_request: { status: 400, type: "invalid_request_error" },
  invalid_api_key: { status: 401, type: "authentication_error" },
  forbidden: { status: 403, type: "permission_error" },
  not_found: { status: 404, type: "not_found_error" },
  model_not_found: { status: 404, type: "invalid_request_error" },
  unknown_node: { status: 404, type: "not_found_error" },
  method_not_allowed: { status: 405, type: "invalid_request_error" },
  request_too_large: { status: 413, type: "invalid_request_error" },
  unsupported_media_type: { status: 415, type: "invalid_request_error" },
  rate_limited: { status: 429, type: "rate_limit_error" },
  upstream_error: { status: 502, type: "server_error" },
  queue_full: { status: 503, type: "server_error", elsewhere: true },
  model_loading_timeout: { status: 503, type: "server_error" },
  no_capacity: { status: 503, type: "server_error", elsewhere: true },
  // Wakeable capacity (SPEC §11): what serves the request is waking; come back at its ETA.
  waking: { status: 503, type: "server_error" },
  shutting_down: { status: 503, type: "server_error", elsewhere: true },
  // Node commands (SPEC §10): nobody answers the node's subject; or its answer is late.
  node_unreachable: { status: 503, type: "server_error" },
  still_working: { status: 504, type: "server_error" },
  internal_error: { status: 500, type: "server_error" },
  conflict: { status: 409, type: "invalid_request_error" },
  // Model installation (SPEC §10): what the download or one of its checks found.
  download_failed: { status: 502, type: "server_error" },
  checksum_mismatch: { status: 422, type: "invalid_request_error" },
  invalid_model_file: { status: 422, type: "invalid_request_error" },
  insufficient_storage: { status: 507, type: "server_error" },
};

export interface RoleMeshErrorOptions {
  /** The request field at fault, reported as `param`. */
  param?: string;
  /** Seconds after which a retry may succeed; sent as `Retry-After`. */
  retryAfterS?: number;
  /** Overrides the OpenAI `type` of the code (used to keep an upstream's own type). */
  type?: string;
  cause?: unknown;
}

/** An error with a stable code, answered to clients in the OpenAI shape. */
export class RoleMeshError extends Error {
  override readonly name: string = "RoleMeshError";
  readonly code: ErrorCode;
  readonly param: string | null;
  readonly retryAfterS: number | undefined;
  readonly #type: string | undefined;

  constructor(code: ErrorCode, message: string, options: RoleMeshErrorOptions = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.param = options.param ?? null;
    this.retryAfterS = options.retryAfterS;
    this.#type = options.type;
  }

  get status(): number {
    return ERROR_TABLE[this.code].status;
  }

  /** True when the node that answered this leaves the request to another (see the table). */
  get mayTryElsewhere(): boolean {
    return ERROR_TABLE[this.code].elsewhere === true;
  }

  toBody(): ErrorBody {
    return {
      error: {
        message: this.message,
        type: this.#type ?? ERROR_TABLE[this.code].type,
        code: this.code,
        param: this.param,
      },
    };
  }
}

/** True for the codes of SPEC §7, so an error relayed from another RoleMesh process keeps its code. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(ERROR_TABLE, code);
}

/** Wraps anything thrown into a RoleMeshError; unknown failures become `internal_error`. */
export function toRoleMeshError(err: unknown): RoleMeshError {
  if (err instanceof RoleMeshError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new RoleMeshError("internal_error", `internal error: ${message}`, { cause: err });
}

/**
 * The error another RoleMesh process answered: its body is an error object with one of our
 * codes, kept as it was (with `param` and `Retry-After`). Undefined for any other answer.
 */
export function errorFromAnswer(
  text: string,
  retryAfter?: string | string[],
): RoleMeshError | undefined {
  let error: { message?: unknown; type?: unknown; code?: unknown; param?: unknown } | undefined;
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error;
  } catch {
    return undefined;
  }
  if (!isErrorCode(error?.code) || typeof error.message !== "string") return undefined;
  const retryAfterS = Number(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
  return new RoleMeshError(error.code, error.message, {
    ...(typeof error.param === "string" ? { param: error.param } : {}),
    ...(Number.isFinite(retryAfterS) && retryAfterS > 0 ? { retryAfterS } : {}),
  });
}
