import assert from "node:assert/strict";
import fs from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, test } from "node:test";
import { getGlobalDispatcher, MockAgent, setGlobalDispatcher } from "undici";
import { startFileServer } from "../../../test/helpers/file-server.js";
import type { FileServer, ServedFile } from "../../../test/helpers/file-server.js";
import { RoleMeshError } from "../../core/errors.js";
import type { ErrorCode } from "../../protocol/errors.js";
import type { ProgressReport } from "../operations/operations.js";
import type { InstallRequest } from "./model-installer.js";
import {
  checkFileName,
  downloadModel,
  installFileName,
  resolveSource,
  writeToFile,
} from "./model-installer.js";

const STORIES = new URL("../../../../shared/models/stories260K.gguf", import.meta.url).pathname;
const dirs: string[] = [];
after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

test("hf:// is shorthand for the Hugging Face file URL; only http(s) is fetched", () => {
  assert.equal(
    resolveSource("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf").href,
    "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/qwen2.5-0.5b-instruct-q4_k_m.gguf",
  );
  assert.equal(
    resolveSource("hf://org/repo/sub/dir/m.gguf").pathname,
    "/org/repo/resolve/main/sub/dir/m.gguf",
  );
  for (const bad of ["file:///etc/passwd", "ftp://x/m.gguf", "not a url", "hf://org"]) {
    assert.throws(() => resolveSource(bad), /url:/, bad);
  }
});

test("file names stay inside the models folder", () => {
  assert.equal(checkFileName("model-q4_k_m.gguf"), "model-q4_k_m.gguf");
  for (const bad of [
    "../evil.gguf",
    "/etc/evil.gguf",
    "a/b.gguf",
    "..\\evil.gguf",
    ".hidden.gguf",
    "model.bin",
    "",
    "x\0.gguf",
  ]) {
    assert.throws(() => checkFileName(bad), /file_name:/, JSON.stringify(bad));
  }
  assert.equal(installFileName(new URL("https://h/x/m%20one.gguf?sig=1"), undefined), "m one.gguf");
  assert.throws(
    () => installFileName(new URL("https://h/x/..%2Fevil.gguf"), undefined),
    /file_name/,
  );
});

test("a cut transfer settles only once the write in flight is on disk", async () => {
  // A file system slow to write: the cut arrives while the chunk before it is being written.
  const slowFs = {
    ...fs,
    write: (...args: Parameters<typeof fs.write>) => setTimeout(() => fs.write(...args), 200),
  };
  const dir = await mkdtemp(join(tmpdir(), "rolemesh-install-"));
  const path = join(dir, "m.gguf.part");
  const body = new Readable({ read: () => undefined });
  body.push(Buffer.alloc(1000));
  setTimeout(() => body.destroy(new Error("other side closed")), 50);
  let counted = 0;
  try {
    await assert.rejects(
      writeToFile(body, fs.createWriteStream(path, { fs: slowFs }), (bytes) => (counted += bytes)),
      /other side closed/,
    );
    assert.equal(counted, 1000);
    assert.equal((await stat(path)).size, 1000, "the size a resume starts from is all on disk");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/**
 * Two versions of one model: the same header, tensor data that differs every 4 KiB past the
 * first 64 KiB. A splice of the two is neither, wherever a transfer was cut.
 */
const v1 = await readFile(STORIES);
const v2 = Buffer.from(v1);
for (let at = 64 * 1024; at < v2.length; at += 4096) v2.writeUInt8(v2.readUInt8(at) ^ 0xff, at);

async function modelsDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "rolemesh-download-"));
  dirs.push(dir);
  return dir;
}

function download(
  server: FileServer,
  path: string,
  dir: string,
  extra: Partial<InstallRequest> = {},
): ReturnType<typeof downloadModel> {
  return downloadModel({
    source: new URL(`${server.url}${path}`),
    fileName: "m.gguf",
    modelsDir: dir,
    report: () => undefined,
    ...extra,
  });
}

/** Leaves the first half of `file` in `dir` as the `.part` of `path`: cut, then given up on. */
async function leaveHalf(server: FileServer, path: string, dir: string, file: ServedFile) {
  server.files.set(path, { ...file, fault: "cut-once" });
  const stop = new AbortController();
  const report = (progress: ProgressReport) => {
    if (progress.phase === "resuming") stop.abort();
  };
  await assert.rejects(download(server, path, dir, { report, signal: stop.signal }), {
    name: "AbortError",
  });
  assert.ok((await stat(join(dir, "m.gguf.part"))).size > 0);
  server.files.set(path, file);
  server.requests.length = 0;
}

const failure = (code: ErrorCode, message: RegExp) => (err: unknown) => {
  assert.ok(err instanceof RoleMeshError, String(err));
  assert.equal(err.code, code, err.message);
  assert.match(err.message, message);
  return true;
};

const asked = (server: FileServer) => server.requests.map(({ range, ifRange }) => [range, ifRange]);

for (const validator of ["ETag", "Last-Modified"] as const) {
  test(`a resume carries If-Range (${validator}): a file changed since comes whole, never spliced`, async () => {
    const server = await startFileServer();
    const version = (body: Buffer, tag: string): ServedFile =>
      validator === "ETag"
        ? { body, etag: `"${tag}"` }
        : { body, etag: null, lastModified: `${tag}, 21 Oct 2025 07:28:00 GMT` };
    server.files.set("/m.gguf", { ...version(v1, "Mon"), fault: "cut-once" });
    const dir = await modelsDir();
    const file = await download(server, "/m.gguf", dir, {
      // The source changes between the cut and the resume.
      report: (progress) => {
        if (progress.phase === "resuming") server.files.set("/m.gguf", version(v2, "Tue"));
      },
    });
    assert.ok((await readFile(file.path)).equals(v2), "the new file, whole");
    const [first, resume] = asked(server);
    assert.deepEqual(first, [undefined, undefined]);
    assert.match(resume?.[0] ?? "", /^bytes=[1-9]\d*-$/);
    assert.equal(resume?.[1], validator === "ETag" ? '"Mon"' : "Mon, 21 Oct 2025 07:28:00 GMT");
    assert.equal(server.requests.length, 2);
    assert.deepEqual(await readdir(dir), ["m.gguf"]);
  });
}

test("bytes no validator vouches for, or from another source, are not resumed", async () => {
  const server = await startFileServer();

  // A .part with no record of where it came from (as an older agent left it).
  const orphan = await modelsDir();
  await writeFile(join(orphan, "m.gguf.part"), v1.subarray(0, v1.length / 2));
  server.files.set("/m.gguf", { body: v2 });
  const file = await download(server, "/m.gguf", orphan);
  assert.deepEqual(asked(server), [[undefined, undefined]]);
  assert.ok((await readFile(file.path)).equals(v2));

  // A source that names no validator: a cut transfer starts over.
  server.requests.length = 0;
  server.files.set("/plain.gguf", { body: v1, etag: null, fault: "cut-once" });
  const plain = await download(server, "/plain.gguf", await modelsDir());
  assert.deepEqual(asked(server), [
    [undefined, undefined],
    [undefined, undefined],
  ]);
  assert.ok((await readFile(plain.path)).equals(v1));

  // The same file name from another source.
  const dir = await modelsDir();
  await leaveHalf(server, "/a/m.gguf", dir, { body: v1 });
  server.files.set("/b/m.gguf", { body: v2 });
  const other = await download(server, "/b/m.gguf", dir);
  assert.deepEqual(asked(server), [[undefined, undefined]]);
  assert.ok((await readFile(other.path)).equals(v2));
});

test("a 206 that does not start at the byte asked for is not appended: the file starts over", async () => {
  const server = await startFileServer();
  const dir = await modelsDir();
  await leaveHalf(server, "/m.gguf", dir, { body: v1 });
  server.files.set("/m.gguf", { body: v1, fault: "wrong-range" });
  const file = await download(server, "/m.gguf", dir);
  const ranges = server.requests.map((request) => request.range);
  assert.equal(ranges.length, 2, ranges.join(" "));
  assert.match(ranges[0] ?? "", /^bytes=[1-9]\d*-$/);
  assert.equal(ranges[1], undefined);
  assert.ok((await readFile(file.path)).equals(v1));
});

test("a file over the size limit never lands: refused up front, or stopped without a length", async () => {
  const server = await startFileServer();
  server.files.set("/sized.gguf", { body: v1 });
  server.files.set("/unsized.gguf", { body: v1, unsized: true });
  const maxBytes = v1.length - 1;

  const sized = await modelsDir();
  await assert.rejects(
    download(server, "/sized.gguf", sized, { maxBytes }),
    failure(
      "insufficient_storage",
      /the model is 1185376 bytes, more than max_download_gb allows \(1185375 bytes\)/,
    ),
  );
  assert.deepEqual(await readdir(sized), []);

  const unsized = await modelsDir();
  await assert.rejects(
    download(server, "/unsized.gguf", unsized, { maxBytes }),
    failure(
      "insufficient_storage",
      /sent more than 1185375 bytes without announcing its size; that is all max_download_gb/,
    ),
  );
  assert.deepEqual(await readdir(unsized), []);

  // Within the limit (here the disk's), a body without a length is taken whole.
  const file = await download(server, "/unsized.gguf", await modelsDir());
  assert.ok((await readFile(file.path)).equals(v1));
});

test("redirects are followed, up to a limit", async () => {
  const server = await startFileServer();
  server.files.set("/m.gguf", { body: v1 });
  server.redirects.set("/hop", `${server.url}/relative`);
  server.redirects.set("/relative", "/m.gguf");
  server.redirects.set("/loop", "/loop");
  const file = await download(server, "/hop", await modelsDir());
  assert.ok((await readFile(file.path)).equals(v1));

  await assert.rejects(
    download(server, "/loop", await modelsDir()),
    failure("download_failed", /more than 5 redirects/),
  );
});

test("a redirect from https to plain http is refused", async () => {
  const server = await startFileServer();
  server.files.set("/m.gguf", { body: v1 });
  // The https source is undici's mock (no certificate needed); the http one is real.
  const previous = getGlobalDispatcher();
  const mock = new MockAgent();
  mock.enableNetConnect();
  mock
    .get("https://models.example")
    .intercept({ path: "/m.gguf" })
    .reply(302, "", { headers: { location: `${server.url}/m.gguf?sig=1` } });
  setGlobalDispatcher(mock);
  try {
    await assert.rejects(
      downloadModel({
        source: new URL("https://models.example/m.gguf"),
        fileName: "m.gguf",
        modelsDir: await modelsDir(),
        report: () => undefined,
      }),
      failure("download_failed", /never moves from https to plain http/),
    );
  } finally {
    setGlobalDispatcher(previous);
    await mock.close();
  }
  assert.deepEqual(server.requests, []);
});
