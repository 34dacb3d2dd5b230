import { RoleMeshError } from "../errors.js";

/** Stands in for the Host: routes match on the path alone. */
const ORIGIN = "http://localhost";
/** absolute-form, which a server must accept (RFC 9112 §3.2.2), as proxies send it. */
const ABSOLUTE_FORM = /^https?:\/\//i;
/** How much of a bad target an error message repeats. */
const SHOWN_CHARS = 200;

/**
 * The URL a request target names. origin-form ("/v1/models?x") is a path: "//v1/models" is the
 * path "//v1/models", never a host "v1" (which a relative-URL parse would make of it). Anything
 * else that is not absolute-form (or does not parse) is a 400, not a crash.
 */
export function requestUrl(target: string): URL {
  try {
    if (target.startsWith("/")) return new URL(`${ORIGIN}${target}`);
    if (ABSOLUTE_FORM.test(target)) return new URL(target);
  } catch {
    // not a URL: answered below
  }
  throw new RoleMeshError(
    "invalid_request",
    `malformed request target "${target.slice(0, SHOWN_CHARS)}": expected a path such as /v1/models`,
  );
}
