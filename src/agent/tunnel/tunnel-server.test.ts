import assert from "node:assert/strict";
import { once } from "node:events";
import { connect as connectHttp2 } from "node:http2";
import type { ClientHttp2Session } from "node:http2";
import { connect } from "node:net";
import { networkInterfaces } from "node:os";
import { after, before, test } from "node:test";
import { createLogger } from "../../core/logger.js";
import { newIdentity, startEchoTarget } from "../../../test/helpers/tunnel-kit.js";
import type { EchoTarget } from "../../../test/helpers/tunnel-kit.js";
import type { TunnelIdentity } from "./tunnel-identity.js";
import { TunnelServer } from "./tunnel-server.js";

const log = createLogger("silent");
let echo: EchoTarget;
let server: TunnelServer;
let member: TunnelIdentity;
let stranger: TunnelIdentity;
const allowed = new Set<string>();

before(async () => {
  const [own, ...others] = await Promise.all([newIdentity(), newIdentity(), newIdentity()]);
  [member, stranger] = others as [TunnelIdentity, TunnelIdentity];
  allowed.add(member.fingerprint);
  echo = await startEchoTarget();
  server = new TunnelServer({
    identity: own!,
    host: "127.0.0.1",
    port: 0,
    isAllowed: (fingerprint) => allowed.has(fingerprint),
    resolveTarget: (name) => (name === "echo" ? echo.port : undefined),
    log,
  });
  await server.start();
});

after(async () => {
  await server.close();
  await echo.close();
});

/** An HTTP/2 session to the tunnel as any TLS 1.3 client could open one. */
function session(identity: TunnelIdentity | undefined): ClientHttp2Session {
  const client = connectHttp2(`https://127.0.0.1:${server.port}`, {
    minVersion: "TLSv1.3",
    rejectUnauthorized: false,
    ...(identity && { key: identity.key, cert: identity.cert }),
  });
  client.on("error", () => {});
  return client;
}

/** Asks for `target` with `method` and sends a few bytes; the answer's status, if any came. */
function ask(client: ClientHttp2Session, target: string, method = "CONNECT") {
  const stream = client.request(
    method === "CONNECT"
      ? { ":method": method, ":authority": target }
      : { ":method": method, ":path": "/", ":authority": target },
    { endStream: false },
  );
  stream.on("error", () => {});
  stream.write("hello");
  return new Promise<number | undefined>((resolve) => {
    stream.once("response", (headers) => resolve(headers[":status"]));
    stream.once("close", () => resolve(undefined));
  });
}

for (const [who, identity] of [
  ["without a certificate", () => undefined],
  ["with a certificate that is not a fleet member's", () => stranger],
] as const) {
  test(`a client ${who} gets nothing relayed and its connection closed`, async () => {
    const client = session(identity());
    const closed = once(client, "close");
    assert.equal(await ask(client, "echo"), undefined);
    await closed;
    assert.equal(echo.connections, 0, "the target saw no connection");
  });
}

test("a fleet member reaches named targets only: unknown names 404, other methods 405", async () => {
  const client = session(member);
  try {
    assert.equal(await ask(client, "nope"), 404);
    assert.equal(await ask(client, "127.0.0.1:22"), 404);
    assert.equal(await ask(client, "echo", "GET"), 405);
    assert.equal(echo.connections, 0);
    assert.equal(await ask(client, "echo"), 200);
    assert.equal(echo.connections, 1);
    assert.equal(server.stats()[member.fingerprint]?.sessions, 1);
  } finally {
    client.destroy();
  }
});

test("a member no longer allowed is closed by recheckPeers and refused afterwards", async () => {
  const client = session(member);
  try {
    assert.equal(await ask(client, "echo"), 200);
    allowed.delete(member.fingerprint);
    const closed = once(client, "close");
    server.recheckPeers();
    await closed;
    const again = session(member);
    const refused = once(again, "close");
    assert.equal(await ask(again, "echo"), undefined);
    await refused;
  } finally {
    allowed.add(member.fingerprint);
    client.destroy();
  }
});

test("listening on 127.0.0.1 keeps the tunnel off the network", async (t) => {
  const address = Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry && entry.family === "IPv4" && !entry.internal)?.address;
  if (!address) return t.skip("this machine has no non-loopback IPv4 address");
  const socket = connect({ host: address, port: server.port });
  const outcome = await new Promise((resolve) => {
    socket.once("connect", () => resolve("connected"));
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code));
  });
  socket.destroy();
  assert.equal(outcome, "ECONNREFUSED");
});
