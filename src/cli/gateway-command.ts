import { Command } from "commander";
import { createLogger } from "../core/logger.js";
import { Gateway } from "../gateway/gateway.js";
import { GatewayConfigSchema } from "../gateway/config/gateway-config.js";
import { listenOverrides, readConfig, withOverrides } from "./config-files.js";
import { untilSignalled } from "./signals.js";

/** `rolemesh gateway --config gateway.yaml` (also installed as `rolemesh-gateway`). */
export function gatewayCommand(): Command {
  return new Command("gateway")
    .description(
      "run the gateway: registry of nodes, routing by model or role, status and admin API",
    )
    .option("-c, --config <file>", "gateway config (YAML); defaults apply when left out")
    .option("--listen <host:port>", "address to listen on (listen_host, listen_port)")
    .option("--join-token <token>", "token agents must present (join_token)")
    .action(async (options: { config?: string; listen?: string; joinToken?: string }) => {
      const file = readConfig("gateway", options.config);
      const config = withOverrides(GatewayConfigSchema, file, {
        ...(options.listen ? listenOverrides(options.listen) : {}),
        ...(options.joinToken !== undefined ? { join_token: options.joinToken } : {}),
      });
      const log = createLogger(config.log_level);
      const gateway = await Gateway.start(config, log);
      await untilSignalled(log, () => gateway.shutdown());
    });
}
