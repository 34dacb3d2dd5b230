import { readFileSync } from "node:fs";
import { CliExit, EXIT } from "./exit-codes.js";

/**
 * A secret given as `--NAME VALUE` or `--NAME-file FILE` (the way Docker and Kubernetes hand
 * secrets over: a file mode 0600, or a mounted secret). The file's content is the secret, without
 * its trailing newline. Undefined when neither is given, so the config (and its environment
 * variable) decide.
 */
export function secretOption(
  flag: string,
  value: string | undefined,
  file: string | undefined,
): string | undefined {
  if (file === undefined) return value;
  if (value !== undefined) {
    throw new CliExit(
      EXIT.usage,
      `--${flag} and --${flag}-file are two ways to give one secret: give one`,
    );
  }
  let secret: string;
  try {
    secret = readFileSync(file, "utf8").replace(/\r?\n$/, "");
  } catch (err) {
    throw new CliExit(EXIT.usage, `--${flag}-file ${file}: ${(err as Error).message}`);
  }
  if (secret === "") throw new CliExit(EXIT.usage, `--${flag}-file ${file}: the file is empty`);
  return secret;
}

/** Help text for a secret's flag pair: a value on the command line shows in `ps`, so say so. */
export function secretHelp(
  flag: string,
  what: string,
  envVariable: string,
): { value: string; file: string } {
  return {
    value: `${what}; ${envVariable} or --${flag}-file keep it out of ps`,
    file: `read the ${what} from a file (its trailing newline is dropped)`,
  };
}
