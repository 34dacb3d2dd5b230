import { isIP } from "node:net";
import { RoleMeshError } from "../../core/errors.js";

/**
 * Checks the `agent_url` a node registers, before the gateway sends users' prompts there: an
 * origin only (no path, query or credentials: the gateway appends its own paths), never a
 * link-local address (cloud metadata services live there), and an IP address on the public
 * internet only when it is the registering peer's own or `allowPublic` says so. Host names are
 * accepted: agents advertise them, and what they resolve to is the operator's DNS. Returns the
 * origin.
 */
export function checkAgentUrl(
  value: string,
  peer: string | undefined,
  allowPublic: boolean,
): string {
  const refuse = (why: string) =>
    new RoleMeshError("invalid_request", `agent_url "${value.slice(0, 200)}": ${why}`, {
      param: "agent_url",
    });
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw refuse("not a URL");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw refuse("expected http or https");
  if (
    url.username ||
    url.password ||
    url.search ||
    url.hash ||
    (url.pathname !== "/" && url.pathname !== "")
  ) {
    throw refuse("expected an origin only, such as http://10.0.0.7:8090");
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  if (isIP(host) !== 0) {
    if (isLinkLocal(host)) throw refuse("a link-local address is never an agent");
    const own = peer !== undefined && sameAddress(host, peer);
    if (!isPrivate(host) && !own && !allowPublic) {
      throw refuse(
        "a public address that is not the registering peer's (set allow_public_agent_urls to allow it)",
      );
    }
  }
  return url.origin;
}

/** `::ffff:10.0.0.7` as `10.0.0.7`, for comparing a socket's address with a URL's. */
const bare = (address: string) => address.toLowerCase().replace(/^::ffff:(?=\d+\.)/, "");

function sameAddress(a: string, b: string): boolean {
  return bare(a) === bare(b);
}

function octets(address: string): number[] | undefined {
  const v4 = bare(address);
  return isIP(v4) === 4 ? v4.split(".").map(Number) : undefined;
}

function isLinkLocal(address: string): boolean {
  const v4 = octets(address);
  if (v4) return v4[0] === 169 && v4[1] === 254;
  return /^fe[89ab]/i.test(address);
}

/** Loopback, RFC 1918, carrier-grade NAT (Tailscale and the like), IPv6 unique-local. */
function isPrivate(address: string): boolean {
  const v4 = octets(address);
  if (v4) {
    const [a = 0, b = 0] = v4;
    return (
      a === 127 ||
      a === 10 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 100 && b >= 64 && b <= 127)
    );
  }
  const v6 = address.toLowerCase();
  return v6 === "::1" || /^f[cd]/.test(v6);
}
