import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { after, before, test } from "node:test";
import { waitUntil } from "../../../test/helpers/launcher.js";
import {
  dial,
  echoThrough,
  newIdentity,
  probe,
  readAll,
  startEchoTarget,
} from "../../../test/helpers/tunnel-kit.js";
import type { EchoTarget } from "../../../test/helpers/tunnel-kit.js";
import { createLogger } from "../../core/logger.js";
import type { TunnelState } from "../../protocol/split.js";
import type { TunnelIdentity } from "./tunnel-identity.js";
import { TunnelPeer } from "./tunnel-peer.js";
import { TunnelServer } from "./tunnel-server.js";

const log = createLogger("silent");
let echo: EchoTarget;
let host: TunnelIdentity;
let worker: TunnelIdentity;
let stranger: TunnelIdentity;
const servers = new Set<TunnelServer>();
const peers = new Set<TunnelPeer>();

before(async () => {
  [host, worker, stranger] = await Promise.all([newIdentity(), newIdentity(), newIdentity()]);
  echo = await startEchoTarget();
});

after(async () => {
  for (const peer of peers) await peer.close();
  for (const server of servers) await server.close();
  await echo.close();
});

/** The worker's side: lets the host's certificate in and exposes the echo target as `echo`. */
async function startWorker(port = 0): Promise<TunnelServer> {
  const server = new TunnelServer({
    identity: worker,
    host: "127.0.0.1",
    port,
    isAllowed: (fingerprint) => fingerprint === host.fingerprint,
    resolveTarget: (name) => (name === "echo" ? echo.port : undefined),
    log,
  });
  servers.add(server);
  await server.start();
  return server;
}

function startPeer(port: number, options: Partial<{ identity: TunnelIdentity; pin: string }> = {}) {
  const peer = new TunnelPeer({
    identity: options.identity ?? host,
    host: "127.0.0.1",
    port,
    fingerprint: options.pin ?? worker.fingerprint,
    log,
  });
  peers.add(peer);
  peer.start();
  return peer;
}

function nextState(peer: TunnelPeer): Promise<TunnelState> {
  return once(peer, "state").then(([state]) => state as TunnelState);
}

test("bytes round-trip both ways over one session carrying several streams at once", async () => {
  const server = await startWorker();
  const peer = startPeer(server.port);
  await peer.ready(10_000);
  assert.equal(peer.state, "connected");
  const port = await peer.openLocal("echo");
  assert.equal(await peer.openLocal("echo"), port, "one local port per target");

  const size = 1024 * 1024;
  const clients = await Promise.all(Array.from({ length: 5 }, () => dial(port)));
  const payloads = clients.map(() => randomBytes(size));
  const answers = clients.map((client, i) => {
    client.write(payloads[i]!);
    return readAll(client);
  });
  const stats = () => server.stats()[host.fingerprint];
  await waitUntil(() => stats()?.openStreams === 5, "five streams open at once");
  assert.equal(stats()?.sessions, 1, "one TLS connection carries them all");
  for (const client of clients) client.end();
  const received = await Promise.all(answers);
  received.forEach((answer, i) => assert.ok(answer.equals(payloads[i]!), `stream ${i} echoed`));

  assert.equal(echo.connections, 5);
  assert.equal(peer.bytesSent, 5 * size);
  assert.equal(peer.bytesReceived, 5 * size);
  await waitUntil(() => stats()?.openStreams === 0, "the streams closed");
  assert.deepEqual(stats(), { bytesIn: 5 * size, bytesOut: 5 * size, openStreams: 0, sessions: 1 });
  await peer.close();
  await server.close();
});

test("a server whose certificate is not the pinned one is refused before a byte is sent", async () => {
  const connectionsBefore = echo.connections;
  const server = await startWorker();
  const peer = startPeer(server.port, { pin: stranger.fingerprint });
  assert.equal(await nextState(peer), "failed");
  await assert.rejects(peer.ready(100), (err: Error & { code?: string }) => {
    assert.equal(err.code, "node_unreachable");
    assert.match(err.message, /not the registered/);
    return true;
  });
  assert.equal((await probe(await peer.openLocal("echo"))).length, 0, "nothing came back");
  assert.equal(peer.bytesSent, 0);
  assert.equal(echo.connections, connectionsBefore, "the target saw no connection");
  await peer.close();
  await server.close();
});

test("a peer the server does not let in fails, and says why", async () => {
  const server = await startWorker();
  const peer = startPeer(server.port, { identity: stranger });
  assert.equal(await nextState(peer), "failed");
  await assert.rejects(
    peer.ready(100),
    /closed the connection before accepting this agent's certificate/,
  );
  await peer.close();
  await server.close();
});

test("an unknown target name is refused: the local connection is reset, nothing is relayed", async () => {
  const connectionsBefore = echo.connections;
  const server = await startWorker();
  const peer = startPeer(server.port);
  await peer.ready(10_000);
  assert.equal((await probe(await peer.openLocal("nope"))).length, 0);
  assert.equal(echo.connections, connectionsBefore);
  assert.equal(peer.state, "connected", "a refused stream leaves the session up");
  await peer.close();
  await server.close();
});

test("the peer reconnects after the server restarts; streams of the old session are closed", async () => {
  const first = await startWorker();
  const port = first.port;
  const peer = startPeer(port);
  await peer.ready(10_000);
  const local = await peer.openLocal("echo");
  assert.ok(await echoThrough(await dial(local), 1000));

  const open = await dial(local);
  open.write("x");
  await waitUntil(() => first.stats()[host.fingerprint]?.openStreams === 1, "a stream open");
  const openClosed = readAll(open);
  const failed = nextState(peer);
  await first.close();
  assert.equal(await failed, "failed");
  await openClosed;

  await startWorker(port);
  await peer.ready(20_000);
  assert.ok(await echoThrough(await dial(local), 1000), "the same local port works again");
});

test("close leaves no socket or server of the tunnel behind", async () => {
  for (const peer of peers) await peer.close();
  for (const server of servers) await server.close();
  await echo.close();
  await waitUntil(
    () => !process.getActiveResourcesInfo().some((kind) => /TCP|TLS/.test(kind)),
    "no TCP handle left",
  );
});
