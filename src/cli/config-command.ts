import { Command } from "commander";
import { z } from "zod";
import { AgentConfigSchema } from "../agent/agent-config.js";
import { ConfigError } from "../core/config/config-error.js";
import { loadConfigFile } from "../core/config/load-config.js";
import { EXIT } from "./exit-codes.js";

/** `rolemesh config check FILE` and `rolemesh config schema`. */
export function configCommand(): Command {
  const config = new Command("config").description("validate config files and print their schema");
  config
    .command("check")
    .argument("<file>", "config file to validate")
    .description("validate a config file and print every problem")
    .action((file: string) => {
      try {
        loadConfigFile(file, AgentConfigSchema);
        console.log(`${file}: ok`);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        const count = err.problems.length;
        console.error(err.message);
        console.error(`${file}: ${count} problem${count === 1 ? "" : "s"}`);
        process.exitCode = EXIT.usage;
      }
    });
  config
    .command("schema")
    .description("print the JSON Schema of the node agent config file")
    .action(() => {
      console.log(
        JSON.stringify(
          z.toJSONSchema(AgentConfigSchema, { io: "input", unrepresentable: "any" }),
          null,
          2,
        ),
      );
    });
  return config;
}
