/**
 * A local HTTP file server for install tests: serves byte ranges like a CDN, and can cut a
 * transfer halfway or hold it until the test lets it go.
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after } from "node:test";

export interface ServedFile {
  body: Buffer;
  /**
   * `cut-once`: the first full transfer stops halfway (the connection drops); `huge`: the
   * answer claims a petabyte.
   */
  fault?: "cut-once" | "huge";
  /** While set, transfers send the first half and wait for it to resolve. */
  hold?: Promise<void>;
}

export interface FileServer {
  url: string;
  files: Map<string, ServedFile>;
  /** Every request's path and Range header, in order. */
  requests: { path: string; range: string | undefined }[];
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
  const requests: FileServer["requests"] = [];
  const cut = new Set<string>();
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    requests.push({ path, range: req.headers.range });
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
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    if (start >= size && size > 0) {
      res.writeHead(416, { "Content-Range": `bytes */${size}` }).end();
      return;
    }
    res.writeHead(range ? 206 : 200, {
      "Content-Type": "application/octet-stream",
      "Content-Length": size - start,
      "Accept-Ranges": "bytes",
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
  return { url: `http://127.0.0.1:${port}`, files, requests };
}
