import { readFileSync } from "node:fs";
import { closest, distance } from "fastest-levenshtein";
import { isMap, isScalar, LineCounter, parse, parseDocument, visit } from "yaml";
import type { Document, Node as YamlNode } from "yaml";
import { z } from "zod";
import { ConfigError } from "./config-error.js";
import type { ConfigProblem } from "./config-error.js";
import { isWholeReference, MissingVariableError, substitute } from "./env-substitution.js";

type Path = readonly PropertyKey[];

interface Located {
  doc: Document;
  lines: LineCounter;
  file: string;
}

/** Reads, substitutes and validates a YAML config file; throws {@link ConfigError} with every problem. */
export function loadConfigFile<S extends z.ZodType>(
  file: string,
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
): z.output<S> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const reason =
      (err as NodeJS.ErrnoException).code === "ENOENT" ? "file not found" : String(err);
    throw new ConfigError([{ file, path: "", message: `cannot read config: ${reason}` }], {
      cause: err,
    });
  }
  return parseConfigText(text, file, schema, env);
}

/** Like {@link loadConfigFile} for text already in memory; `file` names it in messages. */
export function parseConfigText<S extends z.ZodType>(
  text: string,
  file: string,
  schema: S,
  env: NodeJS.ProcessEnv = process.env,
): z.output<S> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  const located: Located = { doc, lines, file };
  const problems: ConfigProblem[] = doc.errors.map((err) => ({
    file,
    line: err.linePos?.[0].line,
    column: err.linePos?.[0].col,
    path: "",
    message: err.message.split("\n")[0] ?? err.message,
  }));
  if (problems.length === 0) problems.push(...substituteEnvironment(located, env));
  if (problems.length > 0) throw new ConfigError(problems);

  const data: unknown = doc.toJS() ?? {};
  const result = schema.safeParse(data, { reportInput: true });
  if (result.success) return result.data;
  const found = result.error.issues.map((issue) => describeIssue(issue, schema, located));
  throw new ConfigError(found.sort((a, b) => (a.line ?? 0) - (b.line ?? 0)));
}

/** Replaces `${VAR}` references in every scalar; a lone reference may become a number or boolean. */
function substituteEnvironment(located: Located, env: NodeJS.ProcessEnv): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  visit(located.doc, {
    Scalar(_key, node) {
      if (typeof node.value !== "string" || !node.value.includes("${")) return;
      try {
        const replaced = substitute(node.value, env);
        node.value =
          node.type === "PLAIN" && isWholeReference(node.value) ? typed(replaced) : replaced;
      } catch (err) {
        if (!(err instanceof MissingVariableError)) throw err;
        problems.push({ ...position(located, node), path: "", message: err.message });
      }
    },
  });
  return problems;
}

/** Reads a substituted value as YAML would have read it in place: numbers and booleans stay typed. */
function typed(value: string): unknown {
  if (value === "") return value;
  try {
    const parsed: unknown = parse(value);
    return typeof parsed === "number" || typeof parsed === "boolean" ? parsed : value;
  } catch {
    return value;
  }
}

function describeIssue(
  issue: z.core.$ZodIssue,
  schema: z.ZodType,
  located: Located,
): ConfigProblem {
  const path = issue.path;
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "";
    const keyPath = [...path, key];
    const known = knownKeys(schema, path);
    const guess = known.length > 0 ? closest(key, known) : undefined;
    const hint =
      guess !== undefined && distance(key, guess) <= Math.max(2, Math.floor(key.length / 3))
        ? ` (did you mean "${guess}"?)`
        : known.length > 0
          ? ` (known keys: ${known.join(", ")})`
          : "";
    const others = issue.keys.length > 1 ? `; also unknown: ${issue.keys.slice(1).join(", ")}` : "";
    return {
      ...position(located, keyNode(located.doc, keyPath) ?? nodeAt(located.doc, path)),
      path: formatPath(keyPath),
      message: `unknown key "${key}"${hint}${others}`,
    };
  }
  const secret = SECRET_KEY.test(String(path.at(-1) ?? ""));
  const message =
    issue.code === "invalid_type"
      ? issue.input === undefined
        ? `required key is missing (expected ${issue.expected})`
        : secret
          ? // Never echo a secret; the usual cause is an all-digit value YAML read as a number.
            `expected ${issue.expected}, got ${describeSecret(issue.input)}` +
            (typeof issue.input === "number" ? ` (quote it so it stays text: "\${VAR}")` : "")
          : `expected ${issue.expected}, got ${describe(issue.input)}`
      : issue.code === "invalid_value" && !secret
        ? describeChoice(issue.values.map(String), issue.input)
        : issue.input === undefined || secret
          ? issue.message
          : `${issue.message} (got ${describe(issue.input)})`;
  return {
    ...position(located, nearestNode(located.doc, path)),
    path: formatPath(path),
    message,
  };
}

function describeChoice(choices: string[], input: unknown): string {
  const expected = `expected one of ${choices.join(", ")}`;
  if (typeof input !== "string") return `${expected}, got ${describe(input)}`;
  const guess = closest(input, choices);
  const hint = distance(input, guess) <= 2 ? ` (did you mean "${guess}"?)` : "";
  return `${expected}, got "${input}"${hint}`;
}

/** Keys whose values are never printed: tokens, keys, passwords, secrets. */
const SECRET_KEY = /token|key|password|secret/i;

/** What a secret value is, without what it says. */
function describeSecret(value: unknown): string {
  return Array.isArray(value) || value === null ? describe(value) : `a ${typeof value} (hidden)`;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return `${typeof value} ${JSON.stringify(value)}`;
}

export function formatPath(path: Path): string {
  return path
    .map((part, i) =>
      typeof part === "number" ? `[${part}]` : i === 0 ? String(part) : `.${String(part)}`,
    )
    .join("");
}

function nodeAt(doc: Document, path: Path): YamlNode | undefined {
  if (path.length === 0) return (doc.contents as YamlNode | null) ?? undefined;
  const node: unknown = doc.getIn(path as unknown[], true);
  return node !== null && typeof node === "object" ? (node as YamlNode) : undefined;
}

/** The deepest node that exists along `path` (a missing key is reported at its parent). */
function nearestNode(doc: Document, path: Path): YamlNode | undefined {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = nodeAt(doc, path.slice(0, depth));
    if (node) return node;
  }
  return undefined;
}

function keyNode(doc: Document, path: Path): YamlNode | undefined {
  const parent = nodeAt(doc, path.slice(0, -1));
  if (!isMap(parent)) return undefined;
  const key = path[path.length - 1];
  const pair = parent.items.find((item) => isScalar(item.key) && item.key.value === key);
  return pair && isScalar(pair.key) ? pair.key : undefined;
}

function position(
  located: Located,
  node: YamlNode | undefined,
): Pick<ConfigProblem, "file" | "line" | "column"> {
  const offset = node?.range?.[0];
  if (offset === undefined) return { file: located.file };
  const { line, col } = located.lines.linePos(offset);
  return { file: located.file, line, column: col };
}

/** The keys an object schema accepts at `path`, for "did you mean" hints. */
function knownKeys(schema: z.ZodType, path: Path): string[] {
  let current: z.ZodType | undefined = schema;
  for (const part of path) {
    current = unwrap(current);
    if (current instanceof z.ZodObject && typeof part === "string") {
      current = (current.shape as Record<string, z.ZodType>)[part];
    } else if (current instanceof z.ZodArray && typeof part === "number") {
      current = current.element as z.ZodType;
    } else {
      return [];
    }
  }
  current = unwrap(current);
  return current instanceof z.ZodObject ? Object.keys(current.shape) : [];
}

function unwrap(schema: z.ZodType | undefined): z.ZodType | undefined {
  let current = schema;
  while (
    current instanceof z.ZodDefault ||
    current instanceof z.ZodOptional ||
    current instanceof z.ZodPipe
  ) {
    current = (current instanceof z.ZodPipe ? current.in : current.unwrap()) as z.ZodType;
  }
  return current;
}
