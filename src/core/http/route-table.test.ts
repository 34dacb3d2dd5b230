import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import { connect } from "node:net";
import type { AddressInfo } from "node:net";
import { after, before, beforeEach, describe, test } from "node:test";
import { rawExchange } from "../../../chaos/lib/raw-http.js";
import { RoleMeshError } from "../errors.js";
import { readBody } from "./read-body.js";
import { sendJson } from "./respond.js";
import { isLocalHostHeader } from "../net.js";
import { requestListener, RouteTable } from "./route-table.js";

const table = new RouteTable([
  { method: "GET", path: "/v1/models", handle: () => undefined },
  { method: "POST", path: "/v1/node/models/:id/load", handle: () => undefined },
]);

test("matches paths and decodes parameters", () => {
  const { route, params } = table.match("POST", "/v1/node/models/org%2Fmodel/load");
  assert.equal(route.path, "/v1/node/models/:id/load");
  assert.deepEqual(params, { id: "org/model" });
});

test("unknown paths are 404, known paths with another method 405, bad escapes 400", () => {
  const code = (method: string, path: string) => {
    try {
      table.match(method, path);
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
  assert.equal(code("HEAD", "/v1/models"), "matched", "HEAD is served by the GET route");
  assert.equal(code("HEAD", "/v1/node/models/a/load"), "405 method_not_allowed");
});

describe("request listener", () => {
  const unexpected: unknown[] = [];
  let handled: Promise<void>;
  let finished: () => void;
  /** Called as the upload route starts reading its body. */
  let onUpload = () => {};
  const server = createServer(
    requestListener({
      routes: new RouteTable([
        { method: "GET", path: "/v1/models", handle: ({ res }) => sendJson(res, 200, {}) },
        {
          method: "POST",
          path: "/upload",
          handle: async ({ req, res }) => {
            onUpload();
            try {
              sendJson(res, 200, { bytes: (await readBody(req, 1024)).length });
            } finally {
              finished();
            }
          },
        },
      ]),
      authorize: () => undefined,
      onUnexpected: (err) => unexpected.push(err),
    }),
  );
  let url: string;
  const exchange = (head: string) =>
    rawExchange(url, `${head}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, {
      timeoutMs: 5_000,
    });

  before(async () => {
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());
  beforeEach(() => {
    unexpected.length = 0;
    handled = new Promise((resolve) => (finished = resolve));
  });

  test("a request target that is no URL is a 400, not a 500 logged as a bug", async () => {
    for (const target of ["http://[/", "http://a:99999/v1/models"]) {
      const answer = await exchange(`GET ${target} HTTP/1.1`);
      assert.equal(answer.status, 400, target);
      assert.match(answer.body, /"code":"invalid_request"/);
    }
    assert.deepEqual(unexpected, []);
  });

  test("an origin-form target starting with // is a path, never a host", async () => {
    assert.equal((await exchange("GET //x/v1/models HTTP/1.1")).status, 404);
    assert.equal((await exchange("GET http://x/v1/models HTTP/1.1")).status, 200);
  });

  test("a client that leaves in the middle of its body is no unexpected failure", async () => {
    const socket = connect(Number(new URL(url).port), "127.0.0.1");
    onUpload = () => socket.destroy();
    socket.write(
      "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    );
    await handled;
    // The dispatcher's catch runs right after the handler's finally.
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unexpected, []);
  });

  test("a POST, PUT or DELETE that is not declared JSON is a 415, its handler never runs", async () => {
    let ran = false;
    onUpload = () => (ran = true);
    for (const type of [
      "",
      "Content-Type: text/plain\r\n",
      "Content-Type: application/x-www-form-urlencoded\r\n",
    ]) {
      const answer = await rawExchange(
        url,
        `POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n${type}Content-Length: 2\r\nConnection: close\r\n\r\n{}`,
        { timeoutMs: 5_000 },
      );
      assert.equal(answer.status, 415, type);
      assert.match(answer.body, /"code":"unsupported_media_type"/);
    }
    assert.equal(ran, false);
    const declared = await rawExchange(
      url,
      "POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
      { timeoutMs: 5_000 },
    );
    assert.equal(declared.status, 200);
  });
});

describe("a listener that trusts loopback callers", () => {
  const server = createServer(
    requestListener({
      routes: new RouteTable([
        { method: "GET", path: "/v1/models", handle: ({ res }) => sendJson(res, 200, {}) },
      ]),
      authorize: () => undefined,
      onUnexpected: () => undefined,
      hostAllowed: (host) => isLocalHostHeader(host, "127.0.0.1"),
    }),
  );
  let url: string;
  before(async () => {
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  test("answers requests addressed to a loopback name, refuses a rebound page's host (403)", async () => {
    const get = (host: string) =>
      rawExchange(url, `GET /v1/models HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, {
        timeoutMs: 5_000,
      });
    for (const host of [
      "127.0.0.1:8080",
      "localhost:8080",
      "localhost",
      "[::1]:8080",
      "app.localhost",
    ]) {
      assert.equal((await get(host)).status, 200, host);
    }
    for (const host of [
      "evil.example:8080",
      "evil.example",
      "10.0.0.5:8080",
      "127.0.0.1.evil.example",
    ]) {
      const answer = await get(host);
      assert.equal(answer.status, 403, host);
      assert.match(answer.body, /"code":"forbidden"/);
    }
  });
});
