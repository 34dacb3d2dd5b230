import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { RequestContext, RouteSpec } from "../../core/http/route-table.js";
import { RoleMeshError } from "../../core/errors.js";

/** Where `npm run build` writes the console bundle (the same from src/ and from dist/). */
export const CONSOLE_DIR = fileURLToPath(new URL("../../../dist/console", import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

/**
 * The console may load only its own files and talk only to its own gateway: no CDN, no inline
 * script, no framing by another site.
 */
const SECURITY_HEADERS = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/**
 * The web console's files (SPEC §9), read once into memory and served by name only, so no
 * request path ever reaches the file system.
 */
export class ConsoleAssets {
  readonly #assets: Map<string, Asset>;

  private constructor(assets: Map<string, Asset>) {
    this.#assets = assets;
  }

  /** Loads the bundle from `dir`; an unbuilt console yields an empty set that explains itself. */
  static async load(dir = CONSOLE_DIR): Promise<ConsoleAssets> {
    const assets = new Map<string, Asset>();
    let names: string[] = [];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    for (const name of names) {
      const type = CONTENT_TYPES[extname(name)];
      if (!type) continue;
      const body = await readFile(join(dir, name));
      const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
      assets.set(name, { body, type, etag });
    }
    return new ConsoleAssets(assets);
  }

  get built(): boolean {
    return this.#assets.has("index.html");
  }

  /** Answers one console file by name (304 when the browser has it). */
  serve({ req, res }: RequestContext, name: string): void {
    const asset = this.#assets.get(name);
    if (!asset) {
      throw new RoleMeshError(
        "not_found",
        this.built
          ? `no console file "${name}"`
          : "the web console is not built: run `npm run build` in the RoleMesh package",
      );
    }
    const headers = {
      ...SECURITY_HEADERS,
      "Content-Type": asset.type,
      ETag: asset.etag,
      // Names are fixed, so browsers revalidate (a cheap 304) instead of keeping an old bundle.
      "Cache-Control": "no-cache",
    };
    if (req.headers["if-none-match"] === asset.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, "Content-Length": asset.body.length });
    res.end(asset.body);
  }
}

/** `GET /` and `GET /console/{file}`: public, the data behind the page needs its own key. */
export const CONSOLE_ROUTES: readonly RouteSpec<ConsoleAssets, never>[] = [
  {
    method: "GET",
    path: "/",
    public: true,
    handle: (assets, ctx) => assets.serve(ctx, "index.html"),
  },
  {
    method: "GET",
    path: "/console/:file",
    public: true,
    handle: (assets, ctx) => assets.serve(ctx, ctx.params.file ?? ""),
  },
];
