import assert from "node:assert/strict";
import { test } from "node:test";
import { RoleMeshError } from "../errors.js";
import { requestUrl } from "./request-target.js";

test("origin-form targets are paths, doubled slashes included", () => {
  assert.equal(requestUrl("/v1/models?x=1#frag").pathname, "/v1/models");
  assert.equal(requestUrl("/v1/models?x=1").searchParams.get("x"), "1");
  // Read as a relative URL these would be hosts: "//healthz" the path "/", "//x/v1/models" "/v1/models".
  assert.equal(requestUrl("//healthz").pathname, "//healthz");
  assert.equal(requestUrl("//x/v1/models").pathname, "//x/v1/models");
  assert.equal(requestUrl("/v1/models/../../healthz").pathname, "/healthz");
});

test("absolute-form targets route on their path", () => {
  assert.equal(requestUrl("http://evil.example/v1/models").pathname, "/v1/models");
  assert.equal(requestUrl("HTTPS://h:1/healthz?a").pathname, "/healthz");
});

test("targets that are no URL are 400 invalid_request, never a thrown TypeError", () => {
  for (const target of ["http://[/", "http://a:99999/healthz", "*", "v1/models", "", "ftp://h/x"]) {
    assert.throws(
      () => requestUrl(target),
      (err: unknown) => err instanceof RoleMeshError && err.code === "invalid_request",
      target,
    );
  }
});
