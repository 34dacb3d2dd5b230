import { z } from "zod";

/**
 * The environment variable that stands in for each secret key a config leaves out. SPEC §2.1
 * gives these keys the default `${VARIABLE:-}`, so a secret never has to be written in a file
 * or passed on a command line, where `ps` and shell history show it.
 */
export const SECRET_ENV = {
  auth_token: "ROLEMESH_TOKEN",
  join_token: "ROLEMESH_JOIN_TOKEN",
  admin_key: "ROLEMESH_ADMIN_KEY",
  nats_password: "ROLEMESH_NATS_PASSWORD",
  nats_token: "ROLEMESH_NATS_TOKEN",
} as const;

export type SecretKey = keyof typeof SECRET_ENV;

/**
 * A secret key of a config: the file's value when the key is there (even empty), else its
 * environment variable, else empty. Read when the config is parsed, so a test or a supervisor
 * sets it in the environment of the process it starts.
 */
export function secretKey(key: SecretKey) {
  return z.string().default(() => process.env[SECRET_ENV[key]] ?? "");
}
