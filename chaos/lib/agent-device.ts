/**
 * The one device of a fake agent (the CPU backend has exactly one), as its inventory shows it,
 * and the fault the scenarios inject most: SIGKILL of the server on it.
 */
import { getJson } from "../../bench/lib/client.js";
import type { DeviceInventory, NodeInventory } from "../../src/protocol/inventory.js";

export async function firstDevice(agentUrl: string): Promise<DeviceInventory | undefined> {
  return (await getJson<NodeInventory>(`${agentUrl}/v1/node/inventory`)).devices[0];
}

/** SIGKILLs the server of the agent's device; false when none runs or the agent is gone. */
export async function killEngine(agentUrl: string): Promise<boolean> {
  try {
    const pid = (await firstDevice(agentUrl))?.server.pid;
    if (!pid) return false;
    process.kill(pid, "SIGKILL");
    return true;
  } catch {
    return false; // the agent itself is being restarted
  }
}
