import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import type { RequestListener, Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, test } from "node:test";
import { RoleMeshError } from "../errors.js";
import { ApiClient, MAX_ANSWER_BYTES } from "./api-client.js";

const servers: Server[] = [];
after(() => {
  for (const server of servers) server.close().closeAllConnections();
});

async function serve(listener: RequestListener): Promise<ApiClient> {
  const server = createServer(listener).listen(0, "127.0.0.1");
  servers.push(server);
  await once(server, "listening");
  return new ApiClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}

/** Writes `piece` until the client hangs up: a peer whose answer never ends. */
function endless(res: Parameters<RequestListener>[1], piece: string): void {
  const chunk = Buffer.from(piece.repeat(Math.ceil(65_536 / piece.length)));
  const write = () => {
    while (!res.destroyed && res.write(chunk));
  };
  res.on("drain", write);
  write();
}

const upstreamError = (err: unknown) =>
  err instanceof RoleMeshError &&
  err.code === "upstream_error" &&
  /more than|longer than/.test(err.message);

test(
  "an answer past the cap is refused, by its Content-Length or as it streams",
  { timeout: 60_000 },
  async () => {
    const declared = await serve((_req, res) => {
      res.writeHead(200, { "content-length": String(MAX_ANSWER_BYTES + 1) });
      res.write("{");
    });
    await assert.rejects(declared.call("GET", "/api/status"), upstreamError);
    const streamed = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      endless(res, '"x",');
    });
    await assert.rejects(streamed.call("GET", "/api/status"), upstreamError);
  },
);

test("an event stream whose event never ends is refused", { timeout: 60_000 }, async () => {
  const client = await serve((_req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.write("data: ");
    endless(res, "x");
  });
  await assert.rejects(
    client.events("/v1/operations/op-1", () => undefined),
    upstreamError,
  );
});
