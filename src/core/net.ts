import { connect, createServer, isIP } from "node:net";

/** True for names and addresses that only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (bare === "localhost" || bare.endsWith(".localhost")) return true;
  if (isIP(bare) === 4) return bare.startsWith("127.");
  if (isIP(bare) === 6) return bare === "::1" || bare.startsWith("::ffff:127.");
  return false;
}

/**
 * True when a request's `Host` header names this machine by a loopback name or address, or
 * names `listenHost` itself (with any port).
 */
export function isLocalHostHeader(host: string, listenHost: string): boolean {
  const name = host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : host.split(":")[0];
  if (!name) return false;
  return (
    isLoopbackHost(name) || name.replace(/^\[|\]$/g, "") === listenHost.replace(/^\[|\]$/g, "")
  );
}

/** A port on 127.0.0.1 that was free a moment ago; the server's own bind is the real test. */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address
          ? resolve(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

/**
 * Whether something accepts TCP connections on 127.0.0.1:`port`: true once a connection opens
 * (it is closed at once), false when it is refused or not open within `timeoutMs`.
 */
export function loopbackPortAccepts(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, timeout: timeoutMs });
    const settle = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.once("connect", () => settle(true));
    socket.once("timeout", () => settle(false));
    socket.once("error", () => settle(false));
  });
}

/** `url` as this machine reaches it: a wildcard listen address becomes the loopback one. */
export function loopbackUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.hostname === "0.0.0.0") parsed.hostname = "127.0.0.1";
  else if (parsed.hostname === "[::]") parsed.hostname = "[::1]";
  return parsed.origin;
}
