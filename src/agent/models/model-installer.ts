import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import type { WriteStream } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { mkdir, statfs } from "node:fs/promises";
import { basename, join } from "node:path";
import { Transform } from "node:stream";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { request } from "undici";
import type { Dispatcher } from "undici";
import { RoleMeshError } from "../../core/errors.js";
import type { ProgressReport } from "../operations/operations.js";
import { checkGgufComplete, GgufError } from "./gguf.js";
import { PartFile } from "./part-file.js";
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
  /** The largest file accepted (`max_download_gb`); the free disk space always bounds it too. */
  maxBytes?: number;
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
/** Redirects a download follows (Hugging Face answers with one to its CDN). */
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;
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
 * Range request that holds only while the source is unchanged (`If-Range`); then checks length,
 * SHA-256 and the GGUF layout and renames it into place only when every check passed. A file
 * that fails a check is removed; a transfer that keeps being cut leaves its `.part` for the next
 * install to resume.
 */
export async function downloadModel(install: InstallRequest): Promise<InstalledFile> {
  const { source, fileName: name } = install;
  await mkdir(install.modelsDir, { recursive: true });
  const target = join(install.modelsDir, name);
  const expected = install.sha256?.toLowerCase();
  if (expected !== undefined && !/^[0-9a-f]{64}$/.test(expected))
    throw invalid("sha256", "expected 64 hexadecimal digits");

  const part = await PartFile.open(target, redact(source));
  let total: number | null = null;
  let lastFailure = "";
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    install.signal?.throwIfAborted();
    if (!part.resumable) await part.discard();
    install.report({ phase: attempt === 1 ? "connecting" : "resuming", bytes: part.bytes });
    let answer;
    try {
      answer = await get(source, part.resumeHeaders(), install.signal);
    } catch (err) {
      if (err instanceof RoleMeshError) throw err;
      install.signal?.throwIfAborted();
      lastFailure = (err as Error).message;
      continue;
    }
    const { statusCode, headers } = answer;
    if (statusCode === 416 && part.bytes > 0) {
      // The partial file is not a prefix the server recognizes: start over.
      await answer.body.dump();
      await part.discard();
      continue;
    }
    if (statusCode !== 200 && statusCode !== 206) {
      await answer.body.dump();
      throw new RoleMeshError(
        "download_failed",
        `${source.host} answered ${statusCode} for ${redact(source)}`,
      );
    }
    let range: ContentRange | null = null;
    if (statusCode === 206) {
      range = contentRange(headers["content-range"]);
      if (!range || !part.continuedBy(range.start, range.total)) {
        // Not the rest of these bytes: appending it would splice two files.
        await answer.body.dump();
        lastFailure = `asked for bytes from ${part.bytes}, got ${String(headers["content-range"])}`;
        await part.discard();
        continue;
      }
    }
    const length = Number(headers["content-length"] ?? NaN);
    total = range?.total ?? (Number.isFinite(length) ? (range?.start ?? 0) + length : null);
    // A full answer: to a first request, or to a resume the source no longer vouches for.
    if (range === null || part.bytes === 0) await part.restart(validatorOf(headers), total);
    let limit: SizeLimit;
    try {
      limit = await sizeLimit(install, total, part.bytes);
    } catch (err) {
      answer.body.destroy();
      if (part.bytes === 0) await part.discard();
      throw err;
    }
    install.report({ phase: "downloading", bytes: part.bytes, totalBytes: total });
    let received = part.bytes;
    try {
      await writeToFile(answer.body, createWriteStream(part.path, { flags: "a" }), (bytes) => {
        received += bytes;
        if (received > limit.bytes) {
          throw new RoleMeshError(
            "insufficient_storage",
            `${redact(source)} sent more than ${limit.bytes} bytes without announcing its size; ${limit.reason}`,
          );
        }
        install.report({ bytes: received });
      });
    } catch (err) {
      if (err instanceof RoleMeshError) {
        await part.discard();
        throw err;
      }
      install.signal?.throwIfAborted();
      lastFailure = (err as Error).message;
      continue;
    } finally {
      await part.measure();
    }
    if (total === null || part.bytes >= total) break;
    lastFailure = `the transfer stopped at ${part.bytes} of ${total} bytes`;
  }
  const size = part.bytes;
  if (total !== null && size !== total) {
    throw new RoleMeshError(
      "download_failed",
      `download of ${redact(source)} incomplete after ${ATTEMPTS} attempts (${size} of ${total} bytes; last: ${lastFailure}); install again to resume`,
    );
  }
  if (total === null && size === 0) {
    throw new RoleMeshError("download_failed", `${redact(source)}: ${lastFailure || "no data"}`);
  }

  install.report({ phase: "verifying", bytes: size, totalBytes: size });
  const digest = await sha256Of(part.path);
  if (expected !== undefined && digest !== expected) {
    await part.discard();
    throw new RoleMeshError(
      "checksum_mismatch",
      `sha256 check failed: expected ${expected}, the download has ${digest}`,
      { param: "sha256" },
    );
  }
  try {
    await checkGgufComplete(part.path);
  } catch (err) {
    await part.discard();
    if (err instanceof GgufError)
      throw new RoleMeshError("invalid_model_file", `GGUF check failed: ${err.message}`);
    throw err;
  }
  await part.finish(target);
  return { path: target, size_bytes: size, sha256: digest };
}

/**
 * A GET that follows redirects itself: at most MAX_REDIRECTS, and never from https to plain
 * http, where the file could be read or swapped on the way (curl's `--proto-redir =https` for
 * that one case; http to https is an upgrade and followed).
 */
async function get(
  url: URL,
  headers: Record<string, string>,
  signal: AbortSignal | undefined,
): Promise<Dispatcher.ResponseData> {
  let current = url;
  for (let redirects = 0; ; redirects++) {
    const answer = await request(current, {
      method: "GET",
      headers,
      // A stalled source is a failed attempt (and resumed), not a hung install.
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
      ...(signal ? { signal } : {}),
    });
    const { location } = answer.headers;
    if (!REDIRECT_STATUSES.has(answer.statusCode) || typeof location !== "string") return answer;
    await answer.body.dump();
    if (redirects === MAX_REDIRECTS) {
      throw new RoleMeshError(
        "download_failed",
        `${redact(url)}: more than ${MAX_REDIRECTS} redirects`,
      );
    }
    current = redirectTarget(current, location);
  }
}

function redirectTarget(from: URL, location: string): URL {
  let to: URL;
  try {
    to = new URL(location, from);
  } catch {
    throw new RoleMeshError("download_failed", `${redact(from)} redirected to a bad URL`);
  }
  if (to.protocol !== "https:" && to.protocol !== "http:") {
    throw new RoleMeshError(
      "download_failed",
      `${redact(from)} redirected to ${to.protocol} URL; only http(s) is fetched`,
    );
  }
  if (from.protocol === "https:" && to.protocol === "http:") {
    throw new RoleMeshError(
      "download_failed",
      `${redact(from)} redirected to ${redact(to)}: a download never moves from https to plain http`,
    );
  }
  return to;
}

interface ContentRange {
  start: number;
  /** The whole file's size; null for `*`. */
  total: number | null;
}

function contentRange(header: string | string[] | undefined): ContentRange | null {
  const match = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(String(header ?? "").trim());
  if (!match) return null;
  return { start: Number(match[1]), total: match[2] === "*" ? null : Number(match[2]) };
}

/**
 * What `If-Range` may carry (RFC 9110 §13.1.5): a strong ETag, else Last-Modified. A weak ETag
 * never matches there, so without either a cut transfer starts over.
 */
function validatorOf(headers: IncomingHttpHeaders): string | null {
  const { etag, "last-modified": lastModified } = headers;
  if (typeof etag === "string" && !etag.startsWith("W/")) return etag;
  return typeof lastModified === "string" ? lastModified : null;
}

/** The largest the file may grow to, and what sets that bound. */
interface SizeLimit {
  bytes: number;
  reason: string;
}

/**
 * The file must stay within `maxBytes` and leave DISK_MARGIN free on the disk. Like curl's
 * `--max-filesize`, a size the source announces is refused before any byte is read, and a body
 * without one is stopped once it passes the limit.
 */
async function sizeLimit(
  install: InstallRequest,
  total: number | null,
  have: number,
): Promise<SizeLimit> {
  const dir = install.modelsDir;
  const maxBytes = install.maxBytes ?? Infinity;
  if (total !== null && total > maxBytes) {
    throw new RoleMeshError(
      "insufficient_storage",
      `the model is ${total} bytes, more than max_download_gb allows (${maxBytes} bytes)`,
    );
  }
  const { bavail, bsize } = await statfs(dir);
  const free = bavail * bsize;
  if (total !== null && free < total - have + DISK_MARGIN) {
    throw new RoleMeshError(
      "insufficient_storage",
      `not enough disk space in ${dir}: the model needs ${mib(total - have)} MiB more (plus ${mib(DISK_MARGIN)} MiB kept free), ${mib(free)} MiB are free`,
    );
  }
  const onDisk = have + free - DISK_MARGIN;
  return maxBytes <= onDisk
    ? { bytes: maxBytes, reason: "that is all max_download_gb allows" }
    : {
        bytes: onDisk,
        reason: `that is all the disk space in ${dir} (${mib(DISK_MARGIN)} MiB kept free)`,
      };
}

/**
 * Pipes `body` into `file`, counting bytes (`onBytes` may throw to stop the transfer), and
 * settles only once the file is closed. A cut transfer rejects the pipeline while the file
 * stream may still have a write in flight; a size read then would miss those bytes, and the
 * resume would ask for them and write them twice.
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
      try {
        onBytes(chunk.length);
      } catch (err) {
        done(err as Error);
        return;
      }
      done(null, chunk);
    },
  });
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return hash.digest("hex");
}

/** A source as logged and recorded: the URL without its query string (it may carry a token). */
export function redact(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

const mib = (bytes: number) => Math.ceil(bytes / MIB);

function invalid(param: string, message: string): RoleMeshError {
  return new RoleMeshError("invalid_request", `${param}: ${message}`, { param });
}
