import { readFileSync } from "node:fs";
import { connect, credsAuthenticator } from "@nats-io/transport-node";
import type { NatsConnection, NodeConnectionOptions } from "@nats-io/transport-node";
import type { Logger } from "../logger.js";
import { natsServers } from "./nats-config.js";
import type { NatsConfig } from "./nats-config.js";

/** NATS could not be reached, or refused the credentials, when the process started. */
export class NatsUnavailableError extends Error {
  override readonly name = "NatsUnavailableError";
}

/**
 * Connects to the NATS of `config` as `name` (shown by the server's monitoring), with its
 * inboxes under `inboxPrefix` when given (`_INBOX` otherwise). A process
 * that cannot reach NATS at start fails with a NatsUnavailableError naming the servers (a
 * supervisor restarts it); once connected it never gives up reconnecting, so a restarted NATS
 * costs a blip, not the fleet. Status changes are logged.
 */
export async function connectNats(
  config: NatsConfig,
  name: string,
  log: Logger,
  inboxPrefix?: string,
): Promise<NatsConnection> {
  const servers = natsServers(config);
  const options: NodeConnectionOptions = {
    servers,
    name,
    // A node's own inboxes, so permissions can keep it from reading anyone else's replies.
    ...(inboxPrefix ? { inboxPrefix } : {}),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    ...(config.nats_user ? { user: config.nats_user, pass: config.nats_password } : {}),
    ...(config.nats_token ? { token: config.nats_token } : {}),
    ...(config.nats_creds
      ? { authenticator: credsAuthenticator(() => readFileSync(config.nats_creds)) }
      : {}),
    ...(config.nats_tls_ca ? { tls: { caFile: config.nats_tls_ca } } : {}),
  };
  let connection: NatsConnection;
  try {
    connection = await connect(options);
  } catch (err) {
    throw new NatsUnavailableError(
      `cannot connect to NATS at ${servers.join(", ")}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  log.info({ server: connection.getServer() }, "connected to NATS");
  void logStatusChanges(connection, log);
  return connection;
}

async function logStatusChanges(connection: NatsConnection, log: Logger): Promise<void> {
  for await (const status of connection.status()) {
    if (status.type === "disconnect") log.warn({ server: status.server }, "NATS disconnected");
    else if (status.type === "reconnect") log.info({ server: status.server }, "NATS reconnected");
    else if (status.type === "error") log.error({ err: status.error }, "NATS error");
  }
}

/**
 * Calls `onReconnect` each time the connection comes back. NATS may have restarted without its
 * store: whoever keeps state there (a bucket handle, a watch) sets it up again then.
 */
export function whenReconnected(connection: NatsConnection, onReconnect: () => void): void {
  void (async () => {
    for await (const status of connection.status()) {
      if (status.type === "reconnect") onReconnect();
    }
  })();
}
