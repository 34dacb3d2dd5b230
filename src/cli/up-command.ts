import { Command } from "commander";
import { NodeAgent } from "../agent/node-agent.js";
import type { RegistryClient } from "../agent/registration/registry-client.js";
import { RoleMeshError } from "../core/errors.js";
import { createLogger } from "../core/logger.js";
import { Gateway } from "../gateway/gateway.js";
import type { NodeRegistry } from "../gateway/registry/node-registry.js";
import { leaseSeconds } from "../gateway/config/gateway-config.js";
import {
  collect,
  listenOverrides,
  modelFromFlag,
  readConfig,
  UpConfigSchema,
  withOverrides,
} from "./config-files.js";
import { untilSignalled } from "./signals.js";

/** `rolemesh up`: a gateway and a local agent in one process (SPEC §1, §2.1). */
export function upCommand(): Command {
  return new Command("up")
    .description("run a gateway and a local node agent in one process")
    .option(
      "-c, --config <file>",
      "config with gateway: and agent: sections; defaults apply when left out",
    )
    .option("--listen <host:port>", "the gateway's address (gateway.listen_host, listen_port)")
    .option(
      "--model <path[:id[:role,…]]>",
      "serve this GGUF file on the local agent (repeatable)",
      collect,
    )
    .action(async (options: { config?: string; listen?: string; model?: string[] }) => {
      const file = readConfig("up", options.config);
      const config = withOverrides(UpConfigSchema, file, {
        gateway: { ...file.gateway, ...(options.listen ? listenOverrides(options.listen) : {}) },
        agent: {
          ...file.agent,
          models: [...file.agent.models, ...(options.model ?? []).map(modelFromFlag)],
        },
      });
      const log = createLogger(config.gateway.log_level);
      let agent: NodeAgent | undefined;
      const gateway = await Gateway.start(config.gateway, log.child({ component: "gateway" }), {
        localState: () => agent?.liveState() ?? "client",
      });
      try {
        agent = await NodeAgent.start(
          { ...config.agent, heartbeat_interval_s: config.gateway.heartbeat_interval_s },
          log.child({ component: "agent" }),
          {
            registryClient: new InProcessRegistryClient(
              gateway.registry,
              config.gateway.heartbeat_interval_s,
              leaseSeconds(config.gateway),
            ),
          },
        );
      } catch (err) {
        await gateway.shutdown();
        throw err;
      }
      const local = agent;
      await untilSignalled(
        log,
        async () => {
          await local.shutdown();
          await gateway.shutdown();
        },
        local.stopRequested,
      );
    });
}

/** The local agent registers with its gateway by calling the registry directly: no network hop. */
class InProcessRegistryClient implements RegistryClient {
  constructor(
    private readonly registry: NodeRegistry,
    private readonly heartbeatIntervalS: number,
    private readonly leaseS: number,
  ) {}

  async register(message: Parameters<RegistryClient["register"]>[0]) {
    this.registry.register(message);
    return {
      node_id: message.node_id,
      heartbeat_interval_s: this.heartbeatIntervalS,
      lease_s: this.leaseS,
    };
  }

  async heartbeat(message: Parameters<RegistryClient["heartbeat"]>[0]): Promise<void> {
    if (this.registry.heartbeat(message) === "unknown") {
      throw new RoleMeshError("unknown_node", `node ${message.node_id} is not registered`);
    }
  }

  async deregister(message: Parameters<RegistryClient["deregister"]>[0]): Promise<void> {
    this.registry.deregister(message);
  }
}
