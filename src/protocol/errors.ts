/**
 * Wire shape of every error RoleMesh answers (SPEC §7): the OpenAI error object.
 */
export interface ErrorBody {
  error: {
    message: string;
    type: string;
    code: string;
    param: string | null;
  };
}

/** Stable error codes of the HTTP API (SPEC §7). */
export type ErrorCode =
  | "invalid_request"
  | "invalid_api_key"
  | "forbidden"
  | "not_found"
  | "model_not_found"
  | "unknown_node"
  | "method_not_allowed"
  | "request_too_large"
  | "unsupported_media_type"
  | "rate_limited"
  | "upstream_error"
  | "queue_full"
  | "model_loading_timeout"
  | "no_capacity"
  | "waking"
  | "shutting_down"
  | "node_unreachable"
  | "still_working"
  | "internal_error"
  | "conflict"
  | "download_failed"
  | "checksum_mismatch"
  | "invalid_model_file"
  | "insufficient_storage";
