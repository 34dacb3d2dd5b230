import { Command, Option } from "commander";
import { SECRET_ENV } from "../core/config/secret-env.js";
import type { OperationStatus } from "../protocol/operations.js";
import { CliExit, EXIT } from "./exit-codes.js";
import { AgentTarget, GatewayTarget } from "./models-target.js";
import type { InstallAnswer, ModelsTarget } from "./models-target.js";
import { ProgressLine } from "./progress-line.js";
import { secretHelp, secretOption } from "./secret-option.js";
import { textTable } from "./text-table.js";

interface TargetFlags {
  gateway: string;
  agent?: string;
  key?: string;
  keyFile?: string;
  node?: string;
}

const keyHelp = secretHelp(
  "key",
  "admin key of the gateway, or the agent's token",
  SECRET_ENV.admin_key,
);

/** `install` and `upgrade` wait this long by default (SPEC §10). */
const INSTALL_TIMEOUT_S = 15 * 60;

/**
 * `rolemesh models list|load|unload|install|delete` (SPEC §7.3): model management through a
 * gateway, or directly against one agent with `--agent`. Exit codes: 0 done, 1 failed or
 * refused, 2 usage, 3 still running when the timeout passed.
 */
export function modelsCommand(): Command {
  const models = new Command("models").description(
    "list, load, unload, install and delete models on the fleet's nodes",
  );
  models.addCommand(
    withTarget(new Command("list").description("models on every node, and where they are loaded"))
      .option("--json", "print JSON")
      .action(async (flags: TargetFlags & { json?: boolean }) => {
        const rows = await target(flags).list();
        if (flags.json) console.log(JSON.stringify(rows, null, 2));
        else
          console.log(
            textTable(
              ["MODEL", "ROLES", "NODE", "LOADED ON"],
              rows.map((row) => [
                row.model_id,
                row.roles.join(",") || "-",
                row.node_id,
                row.loaded_on.join(",") || "-",
              ]),
            ),
          );
      }),
  );
  models.addCommand(
    withTarget(new Command("load").description("start a model's server and wait until it is ready"))
      .argument("<id>", "model id or role")
      .option("--device <id>", "device to load on, e.g. gpu:1")
      .action(async (id: string, flags: TargetFlags & { device?: string }) => {
        const result = (await target(flags).load(id, flags.node, flags.device)) as {
          device?: string;
          server?: { port?: number };
        };
        console.log(`loaded ${id}${result.device ? ` on ${result.device}` : ""}`);
      }),
  );
  models.addCommand(
    withTarget(new Command("unload").description("stop the servers holding a model"))
      .argument("<id>", "model id")
      .action(async (id: string, flags: TargetFlags) => {
        await target(flags).unload(id, flags.node);
        console.log(`unloaded ${id}`);
      }),
  );
  models.addCommand(
    withTarget(new Command("install").description("download a GGUF into a node's models folder"))
      .argument("<url>", "http(s):// URL or hf://org/repo/file.gguf")
      .requiredOption("--id <id>", "model id to register it as")
      .option("--roles <roles>", "comma-separated roles", "")
      .option("--sha256 <hex>", "expected SHA-256 of the file")
      .addOption(
        new Option("--timeout <seconds>", "how long to wait before reporting 'still installing'")
          .default(INSTALL_TIMEOUT_S)
          .argParser((value) => positiveNumber(value, "--timeout")),
      )
      .action(
        async (
          url: string,
          flags: TargetFlags & { id: string; roles: string; sha256?: string; timeout: number },
        ) => {
          const place = target(flags);
          const answer = await place.install(
            {
              url,
              model_id: flags.id,
              roles: flags.roles
                .split(",")
                .map((role) => role.trim())
                .filter(Boolean),
              ...(flags.sha256 ? { sha256: flags.sha256 } : {}),
            },
            flags.node,
          );
          await followInstall(place, flags, answer);
        },
      ),
  );
  models.addCommand(
    withTarget(
      new Command("cancel").description("stop a running install (its download resumes later)"),
    )
      .argument("<op_id>", "the install's operation id")
      .action(async (opId: string, flags: TargetFlags) => {
        const status = await target(flags).cancel(opId);
        console.log(
          status.state === "running"
            ? `cancelling ${opId}: the node is still stopping it`
            : `${opId} ${status.state}`,
        );
      }),
  );
  models.addCommand(
    withTarget(
      new Command("delete").description(
        "unload a model and remove its files (on every node that has it, unless --node)",
      ),
    )
      .argument("<id>", "model id")
      .action(async (id: string, flags: TargetFlags) => {
        await target(flags).delete(id, flags.node);
        console.log(`deleted ${id}`);
      }),
  );
  return models;
}

function withTarget(command: Command): Command {
  return command
    .option("--gateway <url>", "gateway to send the command through", "http://127.0.0.1:8080")
    .option("--agent <url>", "talk to this agent directly instead of a gateway")
    .option("--key <key>", keyHelp.value)
    .option("--key-file <file>", keyHelp.file)
    .option("--node <id>", "the node to act on (through a gateway)");
}

function target(flags: TargetFlags): ModelsTarget {
  const key = secretOption("key", flags.key, flags.keyFile) ?? process.env[SECRET_ENV.admin_key];
  if (flags.agent) {
    if (flags.node) throw new CliExit(EXIT.usage, "--node goes with --gateway, not --agent");
    return new AgentTarget(flags.agent, key);
  }
  return new GatewayTarget(flags.gateway, key);
}

/**
 * Follows an install until it ends or the timeout passes. A timeout while the node still
 * works is "still installing" (exit 3), not a failure: running the same install again joins it.
 */
async function followInstall(
  place: ModelsTarget,
  flags: TargetFlags & { id: string; timeout: number },
  answer: InstallAnswer,
): Promise<void> {
  if ("installed" in answer) {
    console.log(`${flags.id} is installed already`);
    return;
  }
  const where = place.describe(answer.node_id ?? flags.node);
  console.log(
    `${answer.joined ? "joined the running install" : "installing"} ${flags.id} on ${where} (${answer.op_id})`,
  );
  const progress = new ProgressLine();
  const deadline = AbortSignal.timeout(flags.timeout * 1000);
  let last: OperationStatus | undefined;
  try {
    // The stream may break (a gateway restart); the operation goes on, so follow it again.
    while (!deadline.aborted && (last === undefined || last.state === "running")) {
      await place
        .follow(
          answer.op_id,
          (status) => {
            last = status;
            progress.update(status.progress, status.state === "running");
          },
          deadline,
        )
        .catch((err: unknown) => {
          if (!deadline.aborted) throw err;
        });
      if (!deadline.aborted && last?.state === "running")
        last = await place.operation(answer.op_id);
    }
  } finally {
    progress.done();
  }
  if (last?.state === "succeeded") {
    const result = last.result as { path?: string; size_bytes?: number };
    console.log(`installed ${flags.id}: ${result.path ?? ""} (${result.size_bytes ?? "?"} bytes)`);
    return;
  }
  if (last?.state === "failed") {
    throw new CliExit(
      EXIT.failure,
      `install of ${flags.id} failed: ${last.error?.message ?? "unknown error"} (${last.error?.code ?? "?"})`,
    );
  }
  if (last?.state === "cancelled") {
    throw new CliExit(
      EXIT.failure,
      `install of ${flags.id} was cancelled (${answer.op_id}); installing it again resumes the download`,
    );
  }
  throw new CliExit(
    EXIT.stillRunning,
    `still installing ${flags.id} after ${flags.timeout} s (${answer.op_id}): the node keeps working; run the same install again to follow it, or \`rolemesh models cancel ${answer.op_id}\` to stop it`,
  );
}

function positiveNumber(value: string, flag: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0)
    throw new CliExit(EXIT.usage, `${flag}: expected a positive number of seconds, got "${value}"`);
  return number;
}
