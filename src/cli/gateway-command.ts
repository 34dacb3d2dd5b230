import { Command } from "commander";
import { SECRET_ENV } from "../core/config/secret-env.js";
import { createLogger } from "../core/logger.js";
import { Gateway } from "../gateway/gateway.js";
import { GatewayConfigSchema } from "../gateway/config/gateway-config.js";
import { listenOverrides, readConfig, withOverrides } from "./config-files.js";
import { secretHelp, secretOption } from "./secret-option.js";
import { untilSignalled } from "./signals.js";

interface GatewayFlags {
  config?: string;
  listen?: string;
  joinToken?: string;
  joinTokenFile?: string;
  nats?: string;
}

const joinTokenHelp = secretHelp(
  "join-token",
  "token agents must present (join_token)",
  SECRET_ENV.join_token,
);

/** `rolemesh gateway --config gateway.yaml` (also installed as `rolemesh-gateway`). */
export function gatewayCommand(): Command {
  return new Command("gateway")
    .description(
      "run the gateway: registry of nodes, routing by model or role, status and admin API",
    )
    .option("-c, --config <file>", "gateway config (YAML); defaults apply when left out")
    .option("--listen <host:port>", "address to listen on (listen_host, listen_port)")
    .option("--join-token <token>", joinTokenHelp.value)
    .option("--join-token-file <file>", joinTokenHelp.file)
    .option("--nats <url>", "share the registry with other gateways over this NATS (nats_url)")
    .action(async (options: GatewayFlags) => {
      const file = readConfig("gateway", options.config);
      const joinToken = secretOption("join-token", options.joinToken, options.joinTokenFile);
      const config = withOverrides(GatewayConfigSchema, file, {
        ...(options.listen ? listenOverrides(options.listen) : {}),
        ...(joinToken !== undefined ? { join_token: joinToken } : {}),
        ...(options.nats ? { nats_url: options.nats } : {}),
      });
      const log = createLogger(config.log_level);
      const gateway = await Gateway.start(config, log);
      await untilSignalled(log, () => gateway.shutdown());
    });
}
