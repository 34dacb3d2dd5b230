/**
 * 7. Auth enumeration: every route of the agent and of the gateway, listed from their route
 * tables, refuses a caller without credentials or with a wrong token (401, the error alone);
 * public routes hold no fleet data; the right credentials work; no secret reaches a log.
 */
import { fakeAgent, start, stop, STORIES_MODEL } from "../../bench/lib/cluster.js";
import type { Started } from "../../bench/lib/cluster.js";
import { auditFleet, auditLogs, auditSetup, Findings } from "../../test/helpers/auth-audit.js";
import type { FleetAudit } from "../../test/helpers/auth-audit.js";
import { Checks } from "../lib/scenario.js";
import type { Scenario } from "../lib/scenario.js";

export const authEnumeration: Scenario = {
  name: "auth enumeration",
  async run() {
    const checks = new Checks();
    const setup = auditSetup({ path: STORIES_MODEL, roles: ["chat"], parallel: 1 });
    const gateway = await start("gateway", setup.gatewayConfig);
    let agent: Started | undefined;
    let audit: FleetAudit;
    try {
      agent = await fakeAgent(1, setup.agentConfig, {}, setup.agentArgs(gateway.url));
      audit = await auditFleet(setup, agent.url, gateway.url);
    } finally {
      if (agent) await stop(agent);
      await stop(gateway);
    }
    // After a graceful stop, so deregistration and shutdown are in the logs too.
    const logs = auditLogs(setup.secrets, { agent: agent.output, gateway: gateway.output });
    const findings = new Findings();
    for (const found of [audit.agent.findings, audit.gateway.findings, audit.authorized, logs])
      findings.add(found);
    checks.expect(findings.failures.length === 0, findings.failures.join("; "));
    return checks.outcome({
      agent_routes: audit.agent.routes,
      agent_public: audit.agent.public,
      agent_401: audit.agent.unauthorized,
      gateway_routes: audit.gateway.routes,
      gateway_public: audit.gateway.public,
      gateway_401: audit.gateway.unauthorized,
      leaks: findings.leaks,
    });
  },
};
