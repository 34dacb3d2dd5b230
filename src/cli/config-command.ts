import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { Command, Option } from "commander";
import { parse } from "yaml";
import { z } from "zod";
import { ConfigError } from "../core/config/config-error.js";
import { loadConfigFile } from "../core/config/load-config.js";
import type { ConfigKind } from "./config-files.js";
import { SCHEMAS } from "./config-files.js";
import { EXIT } from "./exit-codes.js";

const KINDS = ["agent", "gateway", "up"] as const;
/** Keys only a gateway config has; their presence tells a gateway file from an agent file. */
const GATEWAY_ONLY = [
  "admin_key",
  "api_keys",
  "lease_s",
  "max_attempts",
  "wakeable",
  "request_timeout_s",
  "first_byte_timeout_s",
];

/** `rolemesh config check FILE` and `rolemesh config schema`. */
export function configCommand(): Command {
  const config = new Command("config").description("validate config files and print their schema");
  config
    .command("check")
    .argument("<file>", "config file to validate")
    .addOption(
      new Option("--kind <kind>", "which config it is (default: guessed from its keys)").choices(
        KINDS,
      ),
    )
    .description("validate a config file and print every problem")
    .action((file: string, options: { kind?: ConfigKind }) => {
      const kind = options.kind ?? guessKind(file);
      try {
        loadConfigFile(file, SCHEMAS[kind] as z.ZodType);
        console.log(`${file}: ok (${kind} config)`);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        const count = err.problems.length;
        console.error(err.message);
        console.error(
          `${file}: ${count} problem${count === 1 ? "" : "s"} (checked as a ${kind} config)`,
        );
        process.exitCode = EXIT.usage;
      }
    });
  config
    .command("schema")
    .addOption(new Option("--kind <kind>", "which config").choices(KINDS).default("agent"))
    .description("print the JSON Schema of a config file (agent, gateway or up)")
    .action((options: { kind: ConfigKind }) => {
      const schema = z.toJSONSchema(SCHEMAS[options.kind] as z.ZodType, {
        io: "input",
        unrepresentable: "any",
      });
      console.log(JSON.stringify(schema, null, 2));
    });
  return config;
}

/** `up` when the file has gateway:/agent: sections, `gateway` for gateway-only keys or name. */
function guessKind(file: string): ConfigKind {
  let top: unknown;
  try {
    top = parse(readFileSync(file, "utf8"));
  } catch {
    return "agent"; // the check itself reports what is wrong with the file
  }
  const keys = top && typeof top === "object" ? Object.keys(top) : [];
  if (keys.includes("gateway") || keys.includes("agent")) return "up";
  if (keys.some((key) => GATEWAY_ONLY.includes(key)) || basename(file).includes("gateway"))
    return "gateway";
  return "agent";
}
