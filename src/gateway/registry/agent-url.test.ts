import assert from "node:assert/strict";
import { test } from "node:test";
import { RoleMeshError } from "../../core/errors.js";
import { checkAgentUrl } from "./agent-url.js";

const refused = (url: string, peer?: string, allowPublic = false) =>
  assert.throws(
    () => checkAgentUrl(url, peer, allowPublic),
    (err: unknown) => err instanceof RoleMeshError && err.param === "agent_url",
    url,
  );

test("private, loopback and named agents are accepted as their origin", () => {
  assert.equal(checkAgentUrl("http://10.0.0.7:8090", "10.0.0.9", false), "http://10.0.0.7:8090");
  assert.equal(checkAgentUrl("http://127.0.0.1:8090/", undefined, false), "http://127.0.0.1:8090");
  assert.equal(checkAgentUrl("http://[fd00::7]:8090", undefined, false), "http://[fd00::7]:8090");
  assert.equal(checkAgentUrl("https://gpu-7.lan:8090", undefined, false), "https://gpu-7.lan:8090");
  assert.equal(
    checkAgentUrl("http://100.101.1.2:8090", undefined, false),
    "http://100.101.1.2:8090",
  );
});

test("paths, queries, credentials and other schemes are refused", () => {
  refused("http://10.0.0.7:8090/v1");
  refused("http://10.0.0.7:8090/?x=1");
  refused("http://user:pw@10.0.0.7:8090");
  refused("ftp://10.0.0.7");
  refused("not a url");
});

test("link-local addresses are refused, whoever registers them", () => {
  refused("http://169.254.169.254", "169.254.169.254", true);
  refused("http://[fe80::1]:8090", undefined, true);
});

test("a public address only when it is the peer's own, or when allowed", () => {
  refused("http://8.8.8.8:8090", "10.0.0.9");
  assert.equal(
    checkAgentUrl("http://8.8.8.8:8090", "::ffff:8.8.8.8", false),
    "http://8.8.8.8:8090",
  );
  assert.equal(checkAgentUrl("http://8.8.8.8:8090", "10.0.0.9", true), "http://8.8.8.8:8090");
});
