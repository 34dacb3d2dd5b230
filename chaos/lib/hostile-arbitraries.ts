/**
 * fast-check generators of hostile input for RoleMesh's HTTP API: malformed and truncated JSON,
 * a wrong type in one field of an otherwise valid body, hostile strings, request targets that
 * play tricks with paths.
 */
import fc from "fast-check";
import type { OpenAIEndpoint } from "../../src/core/proxy/openai-request.js";

/** Bytes of one body as the server decodes them (UTF-8, bad sequences replaced). */
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

const isJsonObject = (text: string) => {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value);
  } catch {
    return false;
  }
};

/** Characters that break parsers, terminals, logs and naive escaping. */
const NASTY = [
  "\0",
  "\r\n",
  "\r",
  "\n",
  "\t",
  "\x1b[2J",
  "\x7f",
  "\u202e", // right-to-left override
  "\u200f", // right-to-left mark
  "\u200b",
  "\ufeff",
  "\u2028\u2029",
  "\ud800", // lone surrogates
  "\udfff",
  "\udc00\ud800",
  "\u{1f600}",
  "%00",
  "%",
  "../",
  "\\",
  '"',
  "'",
  "${",
  "{{",
  "__proto__",
  "constructor",
];
const LONG = { min: 1_000, max: 200_000 };

/** Strings with control bytes, lone surrogates, direction marks; some of them very long. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom(...NASTY),
  fc
    .array(fc.oneof(fc.constantFrom(...NASTY), fc.string({ unit: "binary", maxLength: 4 })), {
      maxLength: 12,
    })
    .map((parts) => parts.join("")),
  fc
    .tuple(fc.constantFrom("a", "é", ...NASTY), fc.integer(LONG))
    .map(([piece, times]) => piece.repeat(Math.ceil(times / piece.length))),
);

/** A body that is not a JSON object as the server reads it: cut short, not JSON, or not an object. */
export const malformedBody: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  // A valid object cut short is never valid: its closing brace is its last byte.
  fc.tuple(fc.dictionary(fc.string(), fc.jsonValue()), fc.nat()).map(([object, cut]) => {
    const text = JSON.stringify(object);
    return text.slice(0, cut % text.length);
  }),
  fc.string({ unit: "binary" }).filter((text) => !isJsonObject(text)),
  fc.uint8Array({ maxLength: 256 }).filter((bytes) => !isJsonObject(decode(bytes))),
  fc
    .jsonValue()
    .filter((value) => value === null || typeof value !== "object" || Array.isArray(value))
    .map((value) => JSON.stringify(value)),
  fc.constantFrom("", " ", "{", "}", '{"model":', "{'model':'stories'}", "[{}]", "\ufeff{}", "{}}"),
);

const small = fc.jsonValue({ maxDepth: 2 });
const text = fc.string({ maxLength: 16 });
const object = fc.dictionary(fc.string({ maxLength: 8 }), small, { maxKeys: 3 });
const array = fc.array(small, { maxLength: 3 });
const number = fc.double({ noNaN: true, noDefaultInfinity: true });
const fraction = number.filter((value) => !Number.isInteger(value));
const absent = fc.constant(undefined);

/** Values of a wrong type for each kind of field (`undefined`: the field left out). */
const WRONG = {
  model: fc.oneof(number, fc.boolean(), fc.constant(null), array, object, fc.constant("")),
  boolean: fc.oneof(text, number, array, object),
  number: fc.oneof(text, fc.boolean(), array, object),
  integer: fc.oneof(text, fc.boolean(), array, object, fraction),
  count: fc.oneof(text, fc.boolean(), array, object, fraction, fc.integer({ max: -1 })),
  positive: fc.oneof(text, fc.boolean(), array, object, fraction, fc.integer({ max: 0 })),
  stop: fc.oneof(number, fc.boolean(), object, fc.array(number, { minLength: 1 })),
  object: fc.oneof(text, number, fc.boolean(), array),
  messages: fc.oneof(
    absent,
    text,
    number,
    fc.boolean(),
    object,
    fc.constant(null),
    fc.constant([]),
    fc.array(fc.oneof(text, number, fc.boolean(), fc.constant(null), array), { minLength: 1 }),
  ),
  role: fc.oneof(absent, number, fc.boolean(), fc.constant(null), array, object, fc.constant("")),
  content: fc.oneof(number, fc.boolean(), object),
  // An empty array is a valid prompt (no strings), so wrong arrays have a wrong item.
  prompt: fc.oneof(
    absent,
    number,
    fc.boolean(),
    object,
    fc.constant(null),
    fc.array(fc.oneof(fc.boolean(), object, fc.constant(null)), { minLength: 1 }),
    fc.constantFrom(["a", 1], [1, [2]], [[1], ["a"]]),
  ),
  device: fc.oneof(number, fc.boolean(), fc.constant(null), array, object),
};
type Kind = keyof typeof WRONG;

const SAMPLING: [string, Kind][] = [
  ["model", "model"],
  ["max_tokens", "count"],
  ["stream", "boolean"],
  ["temperature", "number"],
];

/** Every field the relay checks, per endpoint, with its kind. */
const FIELDS: Record<OpenAIEndpoint, [string, Kind][]> = {
  "/v1/chat/completions": [
    ...SAMPLING,
    ["max_completion_tokens", "count"],
    ["top_p", "number"],
    ["seed", "integer"],
    ["n", "positive"],
    ["stop", "stop"],
    ["stream_options", "object"],
    ["stream_options.include_usage", "boolean"],
    ["messages", "messages"],
    ["messages.0", "object"],
    ["messages.0.role", "role"],
    ["messages.0.content", "content"],
  ],
  "/v1/completions": [...SAMPLING, ["prompt", "prompt"]],
  "/v1/embeddings": [
    ["model", "model"],
    ["input", "prompt"],
  ],
};

/** The model as a client names it: its id, or its role (the gateway then rewrites the body). */
export const modelName = fc.constantFrom("stories", "chat");

/** A valid body for `endpoint`, cheap to answer (two tokens). */
export function validBody(endpoint: OpenAIEndpoint, model: string): Record<string, unknown> {
  const sampling = { model, max_tokens: 2 };
  switch (endpoint) {
    case "/v1/chat/completions":
      return { ...sampling, messages: [{ role: "user", content: "Once upon a time" }] };
    case "/v1/completions":
      return { ...sampling, prompt: "Once upon a time" };
    case "/v1/embeddings":
      return { model, input: "Once upon a time" };
  }
}

export interface WrongField {
  body: Record<string, unknown>;
  /** The field at fault, as the answer's `param` must name it. */
  param: string;
}

/** A valid body for `endpoint` with one field of a wrong type (or a required one left out). */
export function wrongField(endpoint: OpenAIEndpoint): fc.Arbitrary<WrongField> {
  return fc.tuple(modelName, fc.constantFrom(...FIELDS[endpoint])).chain(([model, [param, kind]]) =>
    WRONG[kind].map((value) => ({
      body: withField(validBody(endpoint, model), param, value),
      param,
    })),
  );
}

/** A load command's body with a `device` that is not a device id. */
export const wrongDevice: fc.Arbitrary<WrongField> = WRONG.device.map((device) => ({
  body: { device },
  param: "device",
}));

/** The string fields of each endpoint's body. */
const STRING_FIELDS: Record<OpenAIEndpoint, string[]> = {
  "/v1/chat/completions": ["model", "messages.0.content", "messages.0.role", "stop", "user"],
  "/v1/completions": ["model", "prompt", "stop", "user"],
  "/v1/embeddings": ["model", "input", "user"],
};

/** A valid body for `endpoint` with a hostile string in one string field, or as a key and value. */
export function hostileField(endpoint: OpenAIEndpoint): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .tuple(modelName, fc.option(fc.constantFrom(...STRING_FIELDS[endpoint])), hostileString)
    .map(([model, field, text]) => {
      const body = validBody(endpoint, model);
      // A hostile key is used as it is: never split at dots nor resolved through a prototype.
      return field === null ? { ...body, [text]: text } : withField(body, field, text);
    });
}

/** `body` with the value at a dotted path set (objects made on the way), or removed if undefined. */
function withField(body: Record<string, unknown>, path: string, value: unknown) {
  const copy = structuredClone(body);
  const keys = path.split(".");
  let at: Record<string, unknown> = copy;
  for (const key of keys.slice(0, -1)) {
    at[key] ??= {};
    at = at[key] as Record<string, unknown>;
  }
  const last = keys.at(-1)!;
  if (value === undefined) delete at[last];
  else at[last] = value;
  return copy;
}

const SEGMENTS = [
  "v1",
  "models",
  "node",
  "inventory",
  "healthz",
  "metrics",
  "api",
  "status",
  "keys",
  "nodes",
  "console",
  "index.html",
  "chat",
  "completions",
  "stories",
  "load",
  "operations",
  "",
  ".",
  "..",
  "%2e",
  "%2e%2e",
  "%2E%2e",
  ".%2e",
  "%2F",
  "..%2F",
  "%2f..%2f",
  "%00",
  "%",
  "%zz",
  "%ED%A0%80", // a lone surrogate, UTF-8 encoded
  "%C0%AE", // an overlong "."
  "%E2%80%AE",
  "\\",
  ";",
  "*",
  "~",
];
const PREFIXES = [
  "/",
  "//",
  "///",
  "/./",
  "/../",
  "/%2e%2e/",
  "//v1/",
  "/v1//",
  "http://127.0.0.1/",
  "http://evil.example/",
  "HTTP://X/",
  "https://h:1/",
  "http://[::1]/",
  "http://user:pw@h/",
  "http://[/",
  "http://a:99999/",
  "*",
  "",
  "v1/",
];
/** Printable ASCII but the space, which would end the request target. */
const targetText = fc.string({
  unit: fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code)),
});

/**
 * A request target: a prefix (origin-form with dot segments and doubled slashes, absolute-form,
 * asterisk, none), segments with encoded dots and slashes, a query, a fragment, or a path far
 * longer than any head node accepts.
 */
export const pathTrick: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 9,
    arbitrary: fc
      .tuple(
        fc.constantFrom(...PREFIXES),
        fc.array(fc.oneof(fc.constantFrom(...SEGMENTS), targetText), { maxLength: 6 }),
        fc.option(targetText, { nil: undefined }),
        fc.option(targetText, { nil: undefined }),
      )
      .map(
        ([prefix, segments, query, fragment]) =>
          `${prefix}${segments.join("/")}${query === undefined ? "" : `?${query}`}${fragment === undefined ? "" : `#${fragment}`}`,
      ),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 10_000, max: 40_000 })
      .map((length) => `/v1/${"a".repeat(length)}`),
  },
);
