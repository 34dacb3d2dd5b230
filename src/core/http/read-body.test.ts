import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import { connect } from "node:net";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { rawExchange } from "../../../chaos/lib/raw-http.js";
import { RoleMeshError } from "../errors.js";
import { ClientGoneError } from "./client-signal.js";
import { MAX_JSON_DEPTH, parseJsonObject, readBody } from "./read-body.js";
import { sendError, sendJson } from "./respond.js";

const LIMIT = 1024;
const IDLE_MS = 200;
/** Far longer than the idle time: an answer that has not come by then never comes. */
const ANSWER_TIMEOUT_MS = 5_000;

/** What readBody gave the server for the last request: the body or the error. */
let outcome: Promise<unknown>;
let settle: (value: unknown) => void;
const expectOutcome = () => (outcome = new Promise((resolve) => (settle = resolve)));
/** Called as the server starts reading a body. */
let onRequest = () => {};

const server = createServer((req, res) => {
  onRequest();
  readBody(req, LIMIT, IDLE_MS).then(
    (body) => {
      settle(body);
      sendJson(res, 200, { bytes: body.length });
    },
    (err: unknown) => {
      settle(err);
      sendError(res, err);
    },
  );
});
let url: string;

before(async () => {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

const head = (headers: string[]) =>
  ["POST /upload HTTP/1.1", "Host: 127.0.0.1", ...headers, "", ""].join("\r\n");

test("reads a whole body", async () => {
  expectOutcome();
  const answer = await rawExchange(url, `${head(["Content-Length: 5"])}hello`, {
    timeoutMs: ANSWER_TIMEOUT_MS,
  });
  assert.equal(answer.status, 200);
  assert.equal(String(await outcome), "hello");
});

test("a body that stops arriving is refused, not held until node's requestTimeout", async () => {
  expectOutcome();
  const answer = await rawExchange(url, `${head(["Content-Length: 100"])}{"model":`, {
    timeoutMs: ANSWER_TIMEOUT_MS,
  });
  assert.equal(answer.status, 400);
  assert.match(answer.body, /stopped arriving/);
});

test("a chunked body over the limit is answered 413", async () => {
  expectOutcome();
  const chunk = "a".repeat(2 * LIMIT);
  const chunked = `${head(["Transfer-Encoding: chunked"])}${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`;
  const answer = await rawExchange(url, chunked, { timeoutMs: ANSWER_TIMEOUT_MS });
  assert.equal(answer.status, 413);
  assert.match(answer.body, /"code":"request_too_large"/);
});

test("a client that leaves halfway is a ClientGoneError, not an unexpected failure", async () => {
  expectOutcome();
  const socket = connect(Number(new URL(url).port), "127.0.0.1");
  // Leave once the server reads the body, long before the idle time passes.
  onRequest = () => socket.destroy();
  socket.write(`${head(["Content-Length: 100"])}{"mod`);
  try {
    assert.ok((await outcome) instanceof ClientGoneError);
  } finally {
    onRequest = () => {};
  }
});

test("JSON nested deeper than the limit is a 400; strings and the limit itself are fine", () => {
  const nested = (depth: number) =>
    Buffer.from(`{"x":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`);
  assert.deepEqual(Object.keys(parseJsonObject(nested(MAX_JSON_DEPTH))), ["x"]);
  assert.throws(
    () => parseJsonObject(nested(MAX_JSON_DEPTH + 1)),
    (err: unknown) => err instanceof RoleMeshError && err.code === "invalid_request",
  );
  const inString = `{"x":"${"[".repeat(MAX_JSON_DEPTH * 2)}","y":"\\"[{"}`;
  assert.deepEqual(Object.keys(parseJsonObject(Buffer.from(inString))), ["x", "y"]);
  // So deep that re-serializing it (the gateway rewrites bodies) would overflow the stack.
  assert.throws(() => parseJsonObject(nested(200_000)), /deeper than/);
});
