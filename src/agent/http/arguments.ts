import { RoleMeshError } from "../../core/errors.js";

/** The optional `device` argument of load commands. */
export function deviceArg(body: Record<string, unknown>): string | undefined {
  if (body.device !== undefined && typeof body.device !== "string") {
    throw new RoleMeshError("invalid_request", 'device: expected a device id such as "gpu:0"', {
      param: "device",
    });
  }
  return body.device;
}

/** The optional `model_id` argument of backend commands. */
export function modelIdArg(body: Record<string, unknown>): string | undefined {
  if (body.model_id === undefined) return undefined;
  if (typeof body.model_id !== "string" || body.model_id === "") {
    throw new RoleMeshError("invalid_request", "model_id: expected a model id", {
      param: "model_id",
    });
  }
  return body.model_id;
}
