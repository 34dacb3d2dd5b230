const SECRET_FLAG = /key|token|secret|password/i;

/** Hides the values of flags such as llama-server's `--api-key` before arguments are logged. */
export function redactSecrets(args: readonly string[]): string[] {
  return args.map((arg, i) => (i > 0 && SECRET_FLAG.test(args[i - 1] ?? "") ? "[redacted]" : arg));
}
