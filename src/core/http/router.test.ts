import assert from "node:assert/strict";
import { test } from "node:test";
import { RoleMeshError } from "../errors.js";
import { Router } from "./router.js";

const router = new Router([
  { method: "GET", path: "/v1/models", handle: () => undefined },
  { method: "POST", path: "/v1/node/models/:id/load", handle: () => undefined },
]);

test("matches paths and decodes parameters", () => {
  const { route, params } = router.match("POST", "/v1/node/models/org%2Fmodel/load");
  assert.equal(route.path, "/v1/node/models/:id/load");
  assert.deepEqual(params, { id: "org/model" });
});

test("unknown paths are 404, known paths with another method 405, bad escapes 400", () => {
  const code = (method: string, path: string) => {
    try {
      router.match(method, path);
    } catch (err) {
      assert.ok(err instanceof RoleMeshError);
      return `${err.status} ${err.code}`;
    }
    return "matched";
  };
  assert.equal(code("GET", "/v1/nope"), "404 not_found");
  assert.equal(code("DELETE", "/v1/models"), "405 method_not_allowed");
  assert.equal(code("POST", "/v1/node/models/%E0%A4%A/load"), "400 invalid_request");
  assert.equal(code("GET", "/v1/models/"), "404 not_found");
});
