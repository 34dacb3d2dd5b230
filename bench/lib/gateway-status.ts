/** Waiting on a gateway's view of its nodes, for benchmarks and chaos scenarios. */
import { request } from "undici";
import type { PeerStatus } from "../../src/protocol/registry.js";

/** The gateway's live nodes, or undefined while it cannot be reached. */
export async function peers(gatewayUrl: string): Promise<PeerStatus[] | undefined> {
  try {
    const answer = await request(`${gatewayUrl}/api/status`);
    return ((await answer.body.json()) as { peers: PeerStatus[] }).peers;
  } catch {
    return undefined;
  }
}

/** Polls `check` every 20 ms; false when `timeoutMs` passed first. */
export async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
}

/** Waits until the gateway's nodes satisfy `check`; throws naming `what` after `timeoutMs`. */
export async function waitForPeers(
  gatewayUrl: string,
  check: (nodes: PeerStatus[]) => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const ok = await until(async () => {
    const nodes = await peers(gatewayUrl);
    return nodes !== undefined && check(nodes);
  }, timeoutMs);
  if (!ok) throw new Error(`timed out waiting for ${what}`);
}
