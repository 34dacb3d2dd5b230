import { Command } from "commander";
import { AgentConfigSchema } from "../agent/config/agent-config.js";
import { NodeAgent } from "../agent/node-agent.js";
import { SECRET_ENV } from "../core/config/secret-env.js";
import { createLogger } from "../core/logger.js";
import type { AgentFlags } from "./config-files.js";
import { agentOverrides, collect, readConfig, withOverrides } from "./config-files.js";
import { secretHelp, secretOption } from "./secret-option.js";
import { untilSignalled } from "./signals.js";

const joinTokenHelp = secretHelp(
  "join-token",
  "token the gateway expects (join_token)",
  SECRET_ENV.join_token,
);

/** `rolemesh agent --config node_agent.yaml` (also installed as `rolemesh-node-agent`). */
export function agentCommand(): Command {
  return new Command("agent")
    .description("run the node agent: one inference server per device behind an OpenAI API")
    .option("-c, --config <file>", "node agent config (YAML); defaults apply when left out")
    .option("--dispatcher-url <url>", "gateway to register with (dispatcher_base_url)")
    .option("--join-token <token>", joinTokenHelp.value)
    .option("--join-token-file <file>", joinTokenHelp.file)
    .option("--nats <url>", "register and heartbeat over this NATS (nats_url)")
    .option("--node-id <id>", "node id (node_id)")
    .option("--hostname <name>", "host name reported to the gateway")
    .option("--heartbeat-interval <seconds>", "seconds between heartbeats")
    .option("--listen <host:port>", "address to listen on (listen_host, listen_port)")
    .option("--model <path[:id[:role,…]]>", "serve this GGUF file (repeatable)", collect)
    .action(async (options: AgentFlags & { config?: string; joinTokenFile?: string }) => {
      const file = readConfig("agent", options.config);
      const joinToken = secretOption("join-token", options.joinToken, options.joinTokenFile);
      const config = withOverrides(
        AgentConfigSchema,
        file,
        agentOverrides(file, { ...options, joinToken }),
      );
      const log = createLogger(config.log_level);
      const agent = await NodeAgent.start(config, log);
      await untilSignalled(log, () => agent.shutdown(), agent.stopRequested);
    });
}
