import assert from "node:assert/strict";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { MANIFEST } from "../engines/build/engine-cache.js";
import { findRpcServer } from "./find-rpc-server.js";
import { tempDir } from "../../../test/helpers/launcher.js";

let root: string;
let savedPath: string | undefined;

beforeEach(async () => {
  root = await tempDir("rolemesh-find-rpc-");
  savedPath = process.env.PATH;
  process.env.PATH = join(root, "path");
  await mkdir(join(root, "path"));
});
afterEach(() => {
  process.env.PATH = savedPath;
});

async function program(path: string): Promise<string> {
  await writeFile(path, "#!/bin/sh\n");
  await chmod(path, 0o755);
  return path;
}

/** A finished build of `rolemesh engine build` in `<root>/cache`, as `readBuild` accepts it. */
async function cachedBuild(backend: string): Promise<string> {
  const dir = join(root, "cache", `0123456789ab-${backend}`);
  await mkdir(join(dir, "bin"), { recursive: true });
  await program(join(dir, "bin", "llama-server"));
  const rpcServer = await program(join(dir, "bin", "rpc-server"));
  await writeFile(
    join(dir, MANIFEST),
    JSON.stringify({ commit: "0123456789abcdef", backend, built_at: new Date().toISOString() }),
  );
  return rpcServer;
}

test("rpc_server_bin as a path, else on PATH", async () => {
  const own = await program(join(root, "my-rpc"));
  assert.equal(await findRpcServer(own, "cpu", join(root, "cache")), own);
  const onPath = await program(join(root, "path", "rpc-server"));
  assert.equal(await findRpcServer("rpc-server", "cpu", join(root, "cache")), onPath);
  await assert.rejects(
    findRpcServer(join(root, "missing"), "cpu", join(root, "cache")),
    /rpc_server_bin: no executable file at .*missing$/,
  );
});

test("the default name also finds upstream's ggml-rpc-server on PATH, then the engine build", async () => {
  const build = await cachedBuild("cpu");
  assert.equal(await findRpcServer("rpc-server", "cuda", join(root, "cache")), build);
  const upstream = await program(join(root, "path", "ggml-rpc-server"));
  assert.equal(await findRpcServer("rpc-server", "cuda", join(root, "cache")), upstream);
});

test("not found: the error names every place tried; a custom name is looked for only on PATH", async () => {
  await cachedBuild("cpu");
  await assert.rejects(findRpcServer("rpc-server", "cpu", join(root, "none")), (err: Error) => {
    assert.match(
      err.message,
      /tried "rpc-server" on PATH, "ggml-rpc-server" on PATH, a cpu build in .*none\)/,
    );
    assert.match(err.message, /rolemesh engine build/);
    return true;
  });
  await assert.rejects(
    findRpcServer("my-rpc-server", "cpu", join(root, "cache")),
    /tried "my-rpc-server" on PATH\)/,
  );
});
