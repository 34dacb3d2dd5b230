/** One problem found in a config file, located as precisely as the file allows. */
export interface ConfigProblem {
  file: string;
  /** 1-based line of the offending key or value, when known. */
  line?: number;
  /** 1-based column, when known. */
  column?: number;
  /** Key path such as `models[0].ctx_size`; empty for the whole file. */
  path: string;
  message: string;
}

export function formatProblem(problem: ConfigProblem): string {
  const where =
    problem.line === undefined
      ? problem.file
      : `${problem.file}:${problem.line}${problem.column === undefined ? "" : `:${problem.column}`}`;
  return problem.path
    ? `${where}: ${problem.path}: ${problem.message}`
    : `${where}: ${problem.message}`;
}

/** A config file that cannot be used; carries every problem found, not only the first. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "config_invalid";

  constructor(
    readonly problems: ConfigProblem[],
    options?: { cause?: unknown },
  ) {
    super(problems.map(formatProblem).join("\n"), options);
  }
}
