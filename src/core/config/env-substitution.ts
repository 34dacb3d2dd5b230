/**
 * `${VAR}` and `${VAR:-default}` substitution from the environment (SPEC §2).
 * `$${` escapes a literal `${`.
 */
const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

export class MissingVariableError extends Error {
  override readonly name = "MissingVariableError";
  constructor(readonly variable: string) {
    super(
      `environment variable ${variable} is not set (write \${${variable}:-default} to allow that)`,
    );
  }
}

/** Replaces every reference in `text`; throws {@link MissingVariableError} for an unset one without default. */
export function substitute(text: string, env: NodeJS.ProcessEnv): string {
  return text.replace(
    REFERENCE,
    (match, name: string | undefined, fallback: string | undefined) => {
      if (match === "$${") return "${";
      const value = env[name as string];
      if (value !== undefined && value !== "") return value;
      if (fallback !== undefined) return fallback;
      if (value !== undefined) return value;
      throw new MissingVariableError(name as string);
    },
  );
}

/** True when `text` is exactly one reference, so its value may stand for a number or boolean. */
export function isWholeReference(text: string): boolean {
  return /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$/.test(text.trim());
}
