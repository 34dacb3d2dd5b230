import assert from "node:assert/strict";
import { once } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { connect } from "node:net";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { request } from "undici";
import { createApiServer, SLOW_CLIENT_LIMITS } from "./server.js";

const answerOk = (_req: IncomingMessage, res: ServerResponse) => res.end("ok");

test("the API server applies the slow-client limits, not node's far longer defaults", () => {
  const server = createApiServer(answerOk);
  assert.equal(server.headersTimeout, SLOW_CLIENT_LIMITS.headersTimeoutMs);
  assert.equal(server.requestTimeout, SLOW_CLIENT_LIMITS.requestTimeoutMs);
});

test(
  "a head sent a byte at a time is cut off with 408 while normal requests are served",
  { timeout: 10_000 },
  async () => {
    const server = createApiServer(answerOk, {
      headersTimeoutMs: 300,
      requestTimeoutMs: 1_000,
      checkIntervalMs: 50,
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    const slow = connect(port, "127.0.0.1");
    let received = "";
    slow.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    slow.on("error", () => undefined); // a reset after the 408 is the server closing it too
    slow.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
    const drip = setInterval(() => slow.write("a"), 20);
    try {
      const normal = await request(`http://127.0.0.1:${port}/`);
      assert.equal(await normal.body.text(), "ok");
      // The test's timeout fails it if the server never closes the connection.
      await once(slow, "close");
      assert.match(received, /^HTTP\/1\.1 408/);
    } finally {
      clearInterval(drip);
      slow.destroy();
      server.close();
    }
  },
);
