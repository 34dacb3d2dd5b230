import type { z } from "zod";
import { RoleMeshError } from "./errors.js";

/**
 * Parses a request body with a schema; the first problem becomes a 400 `invalid_request`
 * naming the field (`param`) and what was expected.
 */
export function parseRequest<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const param = issue?.path.map(String).join(".") || undefined;
  throw new RoleMeshError(
    "invalid_request",
    `${param ?? "body"}: ${issue?.message ?? "invalid"}`,
    param ? { param } : {},
  );
}
