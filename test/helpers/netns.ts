/**
 * A second "host" on this machine for multi-host tests: a network namespace with its own
 * loopback, joined to the test's namespace by a veth pair on a private /30. Traffic between
 * them crosses a real (virtual) link and never leaves the machine. Needs root (`ip netns`).
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface NetworkNamespace {
  /** The name to pass to `ip netns exec` (LaunchOptions.netns). */
  name: string;
  /** This side's address on the link, in the test's own namespace. */
  outside: string;
  /** The namespace's address on the link. */
  inside: string;
  /** Removes the namespace, and with it the link. */
  remove(): Promise<void>;
}

/**
 * Why namespaces cannot be made here, or undefined when they can: tests that need them skip
 * with this reason (not root, or no `ip`).
 */
export async function whyNoNetns(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "network namespaces need root";
  try {
    await run("ip", ["netns", "list"]);
    return undefined;
  } catch (err) {
    return `ip netns does not work here: ${(err as Error).message.split("\n")[0]}`;
  }
}

/**
 * Makes a namespace named after this test process and `label`, its loopback up and a veth
 * link to it. Addresses come from 10.213.0.0/16, a /30 per pid and label, so test files running
 * at once do not collide.
 */
export async function makeNetns(label: string): Promise<NetworkNamespace> {
  const name = `rolemesh-${process.pid}-${label}`;
  const slot = (process.pid * 7 + [...label].reduce((sum, c) => sum + c.charCodeAt(0), 0)) % 16384;
  const base = `10.213.${Math.floor(slot / 64)}.${(slot % 64) * 4}`;
  const address = (host: number) => base.replace(/\d+$/, (last) => String(Number(last) + host));
  const [outside, inside] = [address(1), address(2)];
  // Interface names are at most 15 bytes.
  const link = `rm${(process.pid % 1_000_000).toString(36)}${label.slice(0, 3)}`;
  const ip = (...args: string[]) => run("ip", args);
  const remove = async () => {
    // Deleting the namespace deletes the veth end inside it, and with it the pair.
    await ip("netns", "delete", name).catch(() => {});
    await ip("link", "delete", `${link}o`).catch(() => {});
  };
  try {
    await ip("netns", "add", name);
    await ip("link", "add", `${link}o`, "type", "veth", "peer", "name", `${link}i`);
    await ip("link", "set", `${link}i`, "netns", name);
    await ip("addr", "add", `${outside}/30`, "dev", `${link}o`);
    await ip("link", "set", `${link}o`, "up");
    await ip("netns", "exec", name, "ip", "addr", "add", `${inside}/30`, "dev", `${link}i`);
    await ip("netns", "exec", name, "ip", "link", "set", `${link}i`, "up");
    await ip("netns", "exec", name, "ip", "link", "set", "lo", "up");
  } catch (err) {
    await remove();
    throw err;
  }
  return { name, outside, inside, remove };
}
