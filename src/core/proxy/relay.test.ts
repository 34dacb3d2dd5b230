import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import { createServer as createTcpServer } from "node:net";
import type { AddressInfo, Server as TcpServer, Socket } from "node:net";
import { test } from "node:test";
import { Pool, request } from "undici";
import { RoleMeshError } from "../errors.js";
import { relay, UpstreamUnreachableError } from "./relay.js";
import type { RelayOptions } from "./relay.js";

/** An upstream that takes connections and does `onRequest` when a request's bytes arrive. */
async function rawUpstream(onRequest: (socket: Socket) => void): Promise<TcpServer> {
  const server = createTcpServer((socket) => {
    socket.on("error", () => undefined);
    socket.once("data", () => onRequest(socket));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

const portOf = (server: { address(): unknown }) => (server.address() as AddressInfo).port;

/** The relay's limits a test sets; five seconds for the whole exchange unless told. */
type Limits = Partial<Pick<RelayOptions, "deadlineMs" | "firstByteTimeoutMs">>;

/**
 * Relays one client request to `upstreamPort`: what the client got, what `relay` threw, and
 * whether the client's answer had started when it threw.
 */
async function relayOnce(upstreamPort: number, limits: Limits = {}) {
  const pool = new Pool(`http://127.0.0.1:${upstreamPort}`);
  let thrown: unknown = "nothing thrown";
  let headersSent = false;
  const front = createServer((_req, res) => {
    void relay({
      upstream: pool,
      path: "/v1/chat/completions",
      body: Buffer.from('{"model":"m","messages":[]}'),
      res,
      signal: new AbortController().signal,
      deadlineMs: 5000,
      ...limits,
    })
      .catch((err: unknown) => {
        thrown = err;
        headersSent = res.headersSent;
      })
      .finally(() => res.end());
  });
  front.listen(0, "127.0.0.1");
  await once(front, "listening");
  try {
    const answer = await request(`http://127.0.0.1:${portOf(front)}/`);
    return { status: answer.statusCode, text: await answer.body.text(), thrown, headersSent };
  } finally {
    front.close();
    await pool.destroy();
  }
}

/**
 * What `relay` throws for one client request relayed to `upstreamPort`; it also fails the test
 * if the relay had started the client's answer by then (a thrown failure must leave it unsent).
 */
async function relayFailure(upstreamPort: number, limits: Limits = {}): Promise<unknown> {
  const { thrown, headersSent } = await relayOnce(upstreamPort, limits);
  assert.equal(headersSent, false, "the client's answer was started before the relay failed");
  return thrown;
}

/** Asserts the relay failed before any answer, and whether the request may be sent again. */
function assertUnreachable(err: unknown, neverSent: boolean): void {
  assert.ok(err instanceof UpstreamUnreachableError, String(err));
  assert.equal(err.neverSent, neverSent);
}

test("a reset when the request arrives (a server killed a moment ago): never sent, may be retried", async () => {
  const upstream = await rawUpstream((socket) => socket.resetAndDestroy());
  assertUnreachable(await relayFailure(portOf(upstream)), true);
  upstream.close();
});

test("a refused connection: never sent", async () => {
  const upstream = await rawUpstream(() => undefined);
  const port = portOf(upstream);
  upstream.close();
  await once(upstream, "close");
  assertUnreachable(await relayFailure(port), true);
});

test("a server that read the request and then closed may have acted on it: not to be sent again", async () => {
  const upstream = await rawUpstream((socket) => socket.end());
  assertUnreachable(await relayFailure(portOf(upstream)), false);
  upstream.close();
});

test(
  "an upstream that sends its headers and dies before its body: the client has nothing yet, the request may go elsewhere",
  { timeout: 10_000 },
  async () => {
    const upstream = await rawUpstream((socket) => {
      socket.write(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
      );
      setImmediate(() => socket.destroy());
    });
    assertUnreachable(await relayFailure(portOf(upstream)), false);
    upstream.close();
  },
);

test("a deadline that passes before any answer is final: upstream_error, not unreachable", async () => {
  const upstream = await rawUpstream(() => undefined); // takes the request, never answers
  const err = await relayFailure(portOf(upstream), { deadlineMs: 200 });
  upstream.close();
  assert.ok(err instanceof RoleMeshError, String(err));
  assert.ok(!(err instanceof UpstreamUnreachableError), "a hung upstream is not a gone one");
  assert.equal(err.code, "upstream_error");
  assert.match(err.message, /no complete answer within 0.2 s/);
});

test("an upstream silent past the first-byte timeout is taken for gone: the request may go elsewhere", async () => {
  const upstream = await rawUpstream(() => undefined); // takes the request, never answers
  const err = await relayFailure(portOf(upstream), { firstByteTimeoutMs: 200 });
  upstream.close();
  // It may have acted on the request: only a caller that may repeat it sends it again.
  assertUnreachable(err, false);
  assert.match((err as Error).message, /nothing within 0.2 s/);
});

test("interim 102 responses show the upstream is working: the first-byte wait starts again", async () => {
  const upstream = await rawUpstream((socket) => {
    // A second of progress reports, each well inside the timeout, before the answer.
    let reports = 0;
    const timer = setInterval(() => {
      if (++reports <= 10) {
        socket.write("HTTP/1.1 102 Processing\r\n\r\n");
        return;
      }
      clearInterval(timer);
      socket.end(
        'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}',
      );
    }, 100);
  });
  const answer = await relayOnce(portOf(upstream), { firstByteTimeoutMs: 400 });
  upstream.close();
  assert.equal(answer.thrown, "nothing thrown", String(answer.thrown));
  assert.equal(answer.status, 200);
  assert.equal(answer.text, '{"ok":true}');
});

test("an upstream that answers HTML is an upstream_error: nothing of it reaches the client", async () => {
  const upstream = await rawUpstream((socket) => {
    socket.end(
      "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 25\r\n\r\n<script>alert(1)</script>",
    );
  });
  const err = await relayFailure(portOf(upstream));
  upstream.close();
  assert.ok(
    err instanceof RoleMeshError && !(err instanceof UpstreamUnreachableError),
    String(err),
  );
  assert.equal(err.code, "upstream_error");
  assert.match(err.message, /text\/html, not JSON or an event stream/);
});

test(
  "a relay that fails while answering its client ends the upstream request too",
  { timeout: 10_000 },
  async () => {
    let upstreamClosed!: () => void;
    const closed = new Promise<void>((resolve) => (upstreamClosed = resolve));
    const upstream = await rawUpstream((socket) => {
      socket.on("close", () => upstreamClosed());
      // A stream that would go on for a long time.
      socket.write(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
      );
      socket.write("7\r\ndata: 1\r\n");
    });
    const pool = new Pool(`http://127.0.0.1:${portOf(upstream)}`);
    const front = createServer((_req, res) => {
      void relay({
        upstream: pool,
        path: "/v1/chat/completions",
        body: Buffer.from("{}"),
        res,
        signal: new AbortController().signal,
        deadlineMs: 60_000,
        // Not Latin-1: writing the answer's head throws.
        responseHeaders: { "x-rolemesh-node": "gpu-\u7bc0\u70b9" },
      }).catch(() => res.destroy());
    });
    front.listen(0, "127.0.0.1");
    await once(front, "listening");
    await request(`http://127.0.0.1:${portOf(front)}/`).catch(() => undefined);
    await closed;
    front.close();
    upstream.close();
    await pool.destroy();
  },
);
