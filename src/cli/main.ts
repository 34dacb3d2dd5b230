import { Command, CommanderError } from "commander";
import { VERSION } from "../core/version.js";
import { ConfigError } from "../core/config/config-error.js";
import { agentCommand } from "./agent-command.js";
import { configCommand } from "./config-command.js";
import { engineCommand } from "./engine-command.js";
import { gatewayCommand } from "./gateway-command.js";
import { statusCommand } from "./status-command.js";
import { upCommand } from "./up-command.js";
import { wakeCommand } from "./wake-command.js";
import { CliExit, EXIT } from "./exit-codes.js";
import { modelsCommand } from "./models-command.js";

/** Entry point of the `rolemesh` CLI; `argv` as in `process.argv`. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command("rolemesh")
    .description("Run llama.cpp across a fleet of machines.")
    .version(VERSION)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text) });
  program.addCommand(upCommand());
  program.addCommand(agentCommand());
  program.addCommand(gatewayCommand());
  program.addCommand(statusCommand());
  program.addCommand(wakeCommand());
  program.addCommand(modelsCommand());
  program.addCommand(configCommand());
  program.addCommand(engineCommand());
  throwInsteadOfExit(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = report(err);
  }
}

/**
 * Commands added with addCommand do not inherit exitOverride: without this, a wrong option of
 * a subcommand would exit 1 from inside commander instead of the usage code 2.
 */
function throwInsteadOfExit(command: Command): void {
  command.exitOverride();
  for (const sub of command.commands) throwInsteadOfExit(sub);
}

function report(err: unknown): number {
  if (err instanceof CommanderError) {
    return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  }
  if (err instanceof CliExit) {
    console.error(err.message);
    return err.exitCode;
  }
  if (err instanceof ConfigError) {
    console.error(err.message);
    return EXIT.usage;
  }
  console.error(`rolemesh: ${err instanceof Error ? err.message : String(err)}`);
  return EXIT.failure;
}
