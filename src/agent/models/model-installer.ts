import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import type { WriteStream } from "node:fs";
import { mkdir, rename, rm, stat, statfs } from "node:fs/promises";
import { basename, join } from "node:path";
import { Transform } from "node:stream";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { getGlobalDispatcher, interceptors, request } from "undici";
import { RoleMeshError } from "../../core/errors.js";
import type { ProgressReport } from "../operations/operations.js";
import { checkGgufComplete, GgufError } from "./gguf.js";
import { MIB } from "../../core/units.js";

/** What to download, and where (SPEC §10 `model.install`). */
export interface InstallRequest {
  /** Where to download from (see `resolveSource`). */
  source: URL;
  /** The file name under the models folder (see `installFileName`). */
  fileName: string;
  /** Expected SHA-256 of the whole file, hex. */
  sha256?: string;
  modelsDir: string;
  report: (progress: ProgressReport) => void;
  signal?: AbortSignal;
}

export interface InstalledFile {
  path: string;
  size_bytes: number;
  sha256: string;
}

/** Connection attempts for one install: a transfer cut short resumes where it stopped. */
const ATTEMPTS = 4;
/** Hugging Face answers downloads with a redirect to its CDN. */
const FOLLOW_REDIRECTS = getGlobalDispatcher().compose(
  interceptors.redirect({ maxRedirections: 5 }),
);
/** Kept free on the disk beyond the file itself. */
const DISK_MARGIN = 64 * MIB;

/** `hf://org/repo/path/file.gguf` → the Hugging Face download URL; http(s) URLs as given. */
export function resolveSource(url: string): URL {
  const hf = /^hf:\/\/([^/]+)\/([^/]+)\/(.+)$/.exec(url);
  const resolved = hf ? `https://huggingface.co/${hf[1]}/${hf[2]}/resolve/main/${hf[3]}` : url;
  let parsed: URL;
  try {
    parsed = new URL(resolved);
  } catch {
    throw invalid("url", `not a URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw invalid("url", `expected an http(s):// or hf://org/repo/file.gguf URL, got ${url}`);
  }
  return parsed;
}

/** A plain file name ending in `.gguf`; anything that could leave the models folder is refused. */
export function checkFileName(name: string): string {
  const plain =
    name.length <= 255 &&
    basename(name) === name &&
    !name.includes("\\") &&
    !name.includes("\0") &&
    !name.startsWith(".") &&
    name.toLowerCase().endsWith(".gguf");
  if (!plain) {
    throw invalid(
      "file_name",
      `${JSON.stringify(name)} is not a plain file name ending in .gguf inside the models folder`,
    );
  }
  return name;
}

/** The file name an install writes: the one asked for, or the URL's last path segment. */
export function installFileName(source: URL, fileName: string | undefined): string {
  return checkFileName(
    fileName ?? decodeURIComponent(source.pathname.split("/").filter(Boolean).at(-1) ?? ""),
  );
}

/**
 * Downloads a GGUF into the models folder: to `<name>.part`, resuming a partial file with a
 * Range request; then checks length, SHA-256 and the GGUF layout and
 * renames it into place only when every check passed. A file that fails a check is removed;
 * a transfer that keeps being cut leaves its `.part` for the next install to resume.
 */
export async function downloadModel(install: InstallRequest): Promise<InstalledFile> {
  const { source, fileName: name } = install;
  await mkdir(install.modelsDir, { recursive: true });
  const target = join(install.modelsDir, name);
  const partial = `${target}.part`;
  const expected = install.sha256?.toLowerCase();
  if (expected !== undefined && !/^[0-9a-f]{64}$/.test(expected))
    throw invalid("sha256", "expected 64 hexadecimal digits");

  let total: number | null = null;
  let received = await sizeOf(partial);
  let lastFailure = "";
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    install.signal?.throwIfAborted();
    install.report({ phase: attempt === 1 ? "connecting" : "resuming", bytes: received });
    let answer;
    try {
      answer = await request(source, {
        method: "GET",
        headers: received > 0 ? { range: `bytes=${received}-` } : {},
        dispatcher: FOLLOW_REDIRECTS,
        // A stalled source is a failed attempt (and resumed), not a hung install.
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
        ...(install.signal ? { signal: install.signal } : {}),
      });
    } catch (err) {
      install.signal?.throwIfAborted();
      lastFailure = (err as Error).message;
      continue;
    }
    const { statusCode, headers } = answer;
    if (statusCode === 416 && received > 0) {
      // The partial file is not a prefix the server recognizes: start over.
      await answer.body.dump();
      await rm(partial, { force: true });
      received = 0;
      continue;
    }
    if (statusCode !== 200 && statusCode !== 206) {
      await answer.body.dump();
      throw new RoleMeshError(
        "download_failed",
        `${source.host} answered ${statusCode} for ${redact(source)}`,
      );
    }
    if (statusCode === 200 && received > 0) received = 0; // no range support: from the start
    const length = Number(headers["content-length"] ?? NaN);
    const range = /\/(\d+)\s*$/.exec(String(headers["content-range"] ?? ""));
    total = range ? Number(range[1]) : Number.isFinite(length) ? received + length : null;
    if (attempt === 1 || received === 0) {
      try {
        await checkDiskSpace(install.modelsDir, total, received);
      } catch (err) {
        answer.body.destroy();
        throw err;
      }
    }
    install.report({ phase: "downloading", bytes: received, totalBytes: total });
    const file = createWriteStream(partial, {
      flags: received > 0 || statusCode === 206 ? "a" : "w",
    });
    try {
      await writeToFile(answer.body, file, (bytes) => {
        received += bytes;
        install.report({ bytes: received });
      });
    } catch (err) {
      install.signal?.throwIfAborted();
      lastFailure = (err as Error).message;
      received = await sizeOf(partial);
      continue;
    }
    received = await sizeOf(partial);
    if (total === null || received >= total) break;
    lastFailure = `the transfer stopped at ${received} of ${total} bytes`;
  }
  if (total !== null && received !== total) {
    throw new RoleMeshError(
      "download_failed",
      `download of ${redact(source)} incomplete after ${ATTEMPTS} attempts (${received} of ${total} bytes; last: ${lastFailure}); install again to resume`,
    );
  }
  if (total === null && received === 0) {
    throw new RoleMeshError("download_failed", `${redact(source)}: ${lastFailure || "no data"}`);
  }

  install.report({ phase: "verifying", bytes: received, totalBytes: received });
  const digest = await sha256Of(partial);
  if (expected !== undefined && digest !== expected) {
    await rm(partial, { force: true });
    throw new RoleMeshError(
      "checksum_mismatch",
      `sha256 check failed: expected ${expected}, the download has ${digest}`,
      { param: "sha256" },
    );
  }
  try {
    await checkGgufComplete(partial);
  } catch (err) {
    await rm(partial, { force: true });
    if (err instanceof GgufError)
      throw new RoleMeshError("invalid_model_file", `GGUF check failed: ${err.message}`);
    throw err;
  }
  await rename(partial, target);
  return { path: target, size_bytes: received, sha256: digest };
}

async function checkDiskSpace(dir: string, total: number | null, have: number): Promise<void> {
  if (total === null) return;
  const { bavail, bsize } = await statfs(dir);
  const free = bavail * bsize;
  const needed = total - have + DISK_MARGIN;
  if (free < needed) {
    throw new RoleMeshError(
      "insufficient_storage",
      `not enough disk space in ${dir}: the model needs ${mib(total - have)} MiB more (plus ${mib(DISK_MARGIN)} MiB kept free), ${mib(free)} MiB are free`,
    );
  }
}

/**
 * Pipes `body` into `file`, counting bytes, and settles only once the file is closed. A cut
 * transfer rejects the pipeline while the file stream may still have a write in flight; a size
 * read then would miss those bytes, and the resume would ask for them and write them twice.
 */
export async function writeToFile(
  body: Readable,
  file: WriteStream,
  onBytes: (bytes: number) => void,
): Promise<void> {
  try {
    await pipeline(body, progressCounter(onBytes), file);
  } finally {
    if (!file.closed) await once(file, "close").catch(() => undefined);
  }
}

function progressCounter(onBytes: (bytes: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      onBytes(chunk.length);
      done(null, chunk);
    },
  });
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex");
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw err;
  }
}

/** A URL for logs and errors: no query string (it may carry a token). */
function redact(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

const mib = (bytes: number) => Math.ceil(bytes / MIB);

function invalid(param: string, message: string): RoleMeshError {
  return new RoleMeshError("invalid_request", `${param}: ${message}`, { param });
}
