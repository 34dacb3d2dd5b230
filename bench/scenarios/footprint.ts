/** P6 footprint: the agent's idle memory (RSS) and the time from start to listening. */
import { readFile } from "node:fs/promises";
import { fakeAgent, start, stop } from "../lib/cluster.js";
import { figure } from "../lib/stats.js";
import type { Figure } from "../lib/stats.js";

export interface Footprint {
  agentStartMs: Figure;
  agentIdleRssMb: Figure;
  gatewayStartMs: Figure;
  gatewayIdleRssMb: Figure;
}

const IDLE_MS = 2000;

export async function footprint(repeats: number): Promise<Footprint> {
  const agent = { start: [] as number[], rss: [] as number[] };
  const gateway = { start: [] as number[], rss: [] as number[] };
  for (let i = 0; i < repeats; i++) {
    const started = await fakeAgent(1);
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    agent.start.push(started.startMs);
    agent.rss.push(await rssMb(started.pid));
    await stop(started);
    const gw = await start("gateway", {});
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    gateway.start.push(gw.startMs);
    gateway.rss.push(await rssMb(gw.pid));
    await stop(gw);
  }
  return {
    agentStartMs: figure(agent.start),
    agentIdleRssMb: figure(agent.rss),
    gatewayStartMs: figure(gateway.start),
    gatewayIdleRssMb: figure(gateway.rss),
  };
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
  return kb / 1024;
}
