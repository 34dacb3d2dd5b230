/**
 * A local HTTP file server for install tests: serves byte ranges like a CDN (with an ETag, and
 * `If-Range` honoured), redirects, and can cut a transfer halfway, hold it until the test lets
 * it go, leave out the length, or answer a range other than the one asked for.
 */
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after } from "node:test";

export interface ServedFile {
  body: Buffer;
  /**
   * `cut-once`: the first full transfer stops halfway (the connection drops); `huge`: the
   * answer claims a petabyte; `wrong-range`: a range request is answered from byte 0.
   */
  fault?: "cut-once" | "huge" | "wrong-range";
  /** While set, transfers send the first half and wait for it to resolve. */
  hold?: Promise<void>;
  /** A strong ETag of the body's hash unless given; null: none. */
  etag?: string | null;
  lastModified?: string;
  /** Sent without Content-Length (chunked), as a generated body would be. */
  unsized?: true;
}

export interface FileServer {
  url: string;
  files: Map<string, ServedFile>;
  /** Path → the Location a GET there is redirected to (302). */
  redirects: Map<string, string>;
  /** Every request's path, Range and If-Range headers, in order. */
  requests: { path: string; range: string | undefined; ifRange: string | undefined }[];
}

const servers: Server[] = [];
// Registered when the module loads, so it runs after the test file, not after a hook.
after(() => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
});

export async function startFileServer(): Promise<FileServer> {
  const files = new Map<string, ServedFile>();
  const redirects = new Map<string, string>();
  const requests: FileServer["requests"] = [];
  const cut = new Set<string>();
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const ifRange = req.headers["if-range"]?.toString();
    requests.push({ path, range: req.headers.range, ifRange });
    const location = redirects.get(path);
    if (location) {
      res.writeHead(302, { Location: location }).end();
      return;
    }
    const file = files.get(path);
    if (!file) {
      res.writeHead(404).end("not found");
      return;
    }
    if (file.fault === "huge") {
      // Headers and a first byte; the rest never comes (the client gives up first).
      res.writeHead(200, { "Content-Length": 2 ** 50 });
      res.write("G");
      return;
    }
    const size = file.body.length;
    const etag =
      file.etag === undefined
        ? `"${createHash("sha256").update(file.body).digest("hex").slice(0, 16)}"`
        : file.etag;
    // RFC 9110 §13.1.5: a range is served only while If-Range names this very representation.
    const current = ifRange === undefined || ifRange === etag || ifRange === file.lastModified;
    const range = current ? /^bytes=(\d+)-$/.exec(req.headers.range ?? "") : null;
    const asked = range ? Number(range[1]) : 0;
    const start = file.fault === "wrong-range" ? 0 : asked;
    if (start >= size && size > 0) {
      res.writeHead(416, { "Content-Range": `bytes */${size}` }).end();
      return;
    }
    res.writeHead(range ? 206 : 200, {
      "Content-Type": "application/octet-stream",
      ...(file.unsized ? {} : { "Content-Length": size - start }),
      "Accept-Ranges": "bytes",
      ...(etag === null ? {} : { ETag: etag }),
      ...(file.lastModified ? { "Last-Modified": file.lastModified } : {}),
      ...(range ? { "Content-Range": `bytes ${start}-${size - 1}/${size}` } : {}),
    });
    const half = Math.max(start, Math.floor(size / 2));
    if (file.fault === "cut-once" && !cut.has(path) && start < half) {
      cut.add(path);
      res.write(file.body.subarray(start, half), () => res.destroy());
      return;
    }
    if (file.hold && start < half) {
      res.write(file.body.subarray(start, half));
      void file.hold.then(() => res.end(file.body.subarray(half)));
      return;
    }
    res.end(file.body.subarray(start));
  });
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, files, redirects, requests };
}
