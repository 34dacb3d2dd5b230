import { Command } from "commander";
import { AgentConfigSchema } from "../agent/agent-config.js";
import type { AgentConfig } from "../agent/agent-config.js";
import { NodeAgent } from "../agent/node-agent.js";
import { loadConfigFile, parseConfigText } from "../core/config/load-config.js";
import { createLogger } from "../core/logger.js";

/** `rolemesh agent --config node_agent.yaml` (also installed as `rolemesh-node-agent`). */
export function agentCommand(): Command {
  return new Command("agent")
    .description("run the node agent: one inference server per device behind an OpenAI API")
    .option("-c, --config <file>", "node agent config (YAML); defaults apply when left out")
    .action(async (options: { config?: string }) => {
      const config: AgentConfig = options.config
        ? loadConfigFile(options.config, AgentConfigSchema)
        : parseConfigText("", "(defaults)", AgentConfigSchema);
      const log = createLogger(config.log_level);
      const agent = await NodeAgent.start(config, log);
      await untilSignalled(log, () => agent.shutdown());
    });
}

/**
 * Runs `stop` on the first SIGINT or SIGTERM and resolves when it is done. A second signal
 * exits at once; servers still die with us through their death signal.
 */
export function untilSignalled(
  log: { warn(msg: string): void },
  stop: () => Promise<void>,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn(`${signal} again: exiting now`);
        process.exit(130);
      }
      stopping = true;
      stop().then(resolve, reject);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}
