import { z } from "zod";
import { RoleMeshError } from "../errors.js";

/** The OpenAI endpoints RoleMesh relays, by path. */
export const OPENAI_ENDPOINTS = [
  "/v1/chat/completions",
  "/v1/completions",
  "/v1/embeddings",
] as const;
export type OpenAIEndpoint = (typeof OPENAI_ENDPOINTS)[number];

const optionalNumber = z.number().nullish();
const stop = z.union([z.string(), z.array(z.string())]).nullish();

const sampling = {
  model: z.string().min(1).optional(),
  stream: z.boolean().nullish(),
  max_tokens: z.int().min(0).nullish(),
  max_completion_tokens: z.int().min(0).nullish(),
  temperature: optionalNumber,
  top_p: optionalNumber,
  seed: z.int().nullish(),
  n: z.int().min(1).nullish(),
  stop,
  stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
};

const message = z.looseObject({
  role: z.string().min(1),
  content: z.union([z.string(), z.array(z.unknown()), z.null()]).optional(),
});

// Loose objects: fields we do not know are the upstream's business and pass through untouched.
const SCHEMAS: Record<OpenAIEndpoint, z.ZodType> = {
  "/v1/chat/completions": z.looseObject({ ...sampling, messages: z.array(message).min(1) }),
  "/v1/completions": z.looseObject({
    ...sampling,
    prompt: z.union([
      z.string(),
      z.array(z.string()),
      z.array(z.number()),
      z.array(z.array(z.number())),
    ]),
  }),
  "/v1/embeddings": z.looseObject({
    model: z.string().min(1).optional(),
    input: z.union([
      z.string(),
      z.array(z.string()),
      z.array(z.number()),
      z.array(z.array(z.number())),
    ]),
  }),
};

export interface OpenAIRequest {
  /** The `model` field: a model id or a role; undefined when the client left it out. */
  model: string | undefined;
  stream: boolean;
}

/** Checks the fields the relay depends on; a wrong one is a 400 naming it in `param`. */
export function checkOpenAIRequest(
  endpoint: OpenAIEndpoint,
  body: Record<string, unknown>,
): OpenAIRequest {
  const result = SCHEMAS[endpoint].safeParse(body, { reportInput: true });
  if (!result.success) {
    const issue = result.error.issues[0];
    const param = issue?.path.map(String).join(".") || null;
    const detail =
      issue?.code === "invalid_type" && issue.input === undefined
        ? `'${param}' is required`
        : `${param ?? "body"}: ${issue?.message ?? "invalid"}`;
    throw new RoleMeshError("invalid_request", detail, param ? { param } : {});
  }
  const unpaired = findUnpairedSurrogate(body)?.join(".");
  if (unpaired !== undefined) {
    throw new RoleMeshError(
      "invalid_request",
      `${unpaired}: holds an unpaired UTF-16 surrogate (such as \\ud800), which is not valid Unicode`,
      { param: unpaired },
    );
  }
  return {
    model: typeof body.model === "string" ? body.model : undefined,
    stream: body.stream === true,
  };
}

// With the `u` flag a surrogate pair is one code point, so only a lone half matches.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * The path (outermost key first) to the first string or key holding a lone UTF-16 surrogate, or
 * undefined. JSON.parse accepts `"\ud800"`, but it is no Unicode text and llama-server's parser
 * refuses it with a 500: it is the client's mistake, so a 400.
 */
function findUnpairedSurrogate(value: unknown): string[] | undefined {
  if (typeof value === "string") return LONE_SURROGATE.test(value) ? [] : undefined;
  if (typeof value !== "object" || value === null) return undefined;
  for (const [key, item] of Object.entries(value)) {
    const below = LONE_SURROGATE.test(key) ? [] : findUnpairedSurrogate(item);
    if (below) return [key, ...below];
  }
  return undefined;
}
