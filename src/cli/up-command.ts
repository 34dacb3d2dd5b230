import { Command } from "commander";
import { NodeAgent } from "../agent/node-agent.js";
import type { RegistryClient } from "../agent/registration/registry-client.js";
import { createLogger } from "../core/logger.js";
import { natsServers } from "../core/nats/nats-config.js";
import { Gateway } from "../gateway/gateway.js";
import type { RegistryService } from "../gateway/registry/registry-service.js";
import type {
  DeregisterRequest,
  HeartbeatRequest,
  RegisterRequest,
  RegisterResponse,
} from "../protocol/registry.js";
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
    .option("--nats <url>", "join this NATS: gateway and agent share the fleet over it (nats_url)")
    .option(
      "--model <path[:id[:role,…]]>",
      "serve this GGUF file on the local agent (repeatable)",
      collect,
    )
    .action(
      async (options: { config?: string; listen?: string; model?: string[]; nats?: string }) => {
        const file = readConfig("up", options.config);
        const nats = options.nats ? { nats_url: options.nats } : {};
        const config = withOverrides(UpConfigSchema, file, {
          gateway: {
            ...file.gateway,
            ...(options.listen ? listenOverrides(options.listen) : {}),
            ...nats,
          },
          agent: {
            ...file.agent,
            models: [...file.agent.models, ...(options.model ?? []).map(modelFromFlag)],
            ...nats,
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
            // On NATS the local agent registers there like any other (SPEC §8).
            natsServers(config.agent).length > 0
              ? {}
              : { registryClient: new InProcessRegistryClient(gateway.registry) },
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
      },
    );
}

/**
 * The local agent registers with its gateway's registry service directly: no network hop, and
 * the same answers the HTTP routes give.
 */
class InProcessRegistryClient implements RegistryClient {
  constructor(private readonly registry: RegistryService) {}

  async register(message: RegisterRequest): Promise<RegisterResponse> {
    return this.registry.register(message);
  }

  async heartbeat(message: HeartbeatRequest): Promise<void> {
    this.registry.heartbeat(message);
  }

  async deregister(message: DeregisterRequest): Promise<void> {
    this.registry.deregister(message);
  }
}
