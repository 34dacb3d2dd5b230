/** What /proc tells of a process's sockets, for tests that check what listens where. */
import { readdir, readFile, readlink } from "node:fs/promises";

/** Every TCP socket `pid` listens on, as `address:port` (IPv6 addresses as /proc writes them). */
export async function listeningSockets(pid: number): Promise<string[]> {
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode) inodes.add(inode);
  }
  const found: string[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const rows = (await readFile(table, "utf8")).trim().split("\n").slice(1);
    for (const row of rows) {
      const [, local = "", , state, , , , , , inode = ""] = row.trim().split(/\s+/);
      if (state !== "0A" || !inodes.has(inode)) continue; // 0A: LISTEN
      const [address = "", port = ""] = local.split(":");
      const ipv4 =
        address.length === 8
          ? (address.match(/../g) ?? []).reverse().map((byte) => parseInt(byte, 16))
          : null;
      found.push(`${ipv4 ? ipv4.join(".") : address}:${parseInt(port, 16)}`);
    }
  }
  return found;
}
