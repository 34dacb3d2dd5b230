const SECRET_FLAG = /key|token|secret|password/i;

/**
 * Hides the values of flags such as llama-server's `--api-key` before arguments are logged,
 * in both spellings: `--api-key VALUE` and `--api-key=VALUE`.
 */
export function redactSecrets(args: readonly string[]): string[] {
  const isSecretFlag = (arg: string) => arg.startsWith("-") && SECRET_FLAG.test(arg);
  return args.map((arg, i) => {
    const equals = arg.indexOf("=");
    if (equals > 0 && isSecretFlag(arg.slice(0, equals)))
      return `${arg.slice(0, equals)}=[redacted]`;
    const previous = args[i - 1] ?? "";
    return isSecretFlag(previous) && !previous.includes("=") ? "[redacted]" : arg;
  });
}
