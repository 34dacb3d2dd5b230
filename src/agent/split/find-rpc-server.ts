import { findExecutable } from "../../core/find-executable.js";
import { buildFor, engineCacheDir } from "../engines/build/engine-cache.js";

/** The name `rpc_server_bin` has when the config does not set it. */
export const DEFAULT_RPC_SERVER_BIN = "rpc-server";
/** The name current upstream llama.cpp builds and packages give the program. */
const UPSTREAM_NAME = "ggml-rpc-server";

/**
 * llama.cpp's rpc-server, found the way llama-server is (SPEC §6, §12): `rpc_server_bin` as a
 * path or a name on PATH; for the default name also `ggml-rpc-server` on PATH, then the build of
 * `rolemesh engine build` for `deviceBackend`. Throws naming every place it looked.
 */
export async function findRpcServer(
  configured: string,
  deviceBackend: string,
  cacheDir = engineCacheDir(),
): Promise<string> {
  const named = findExecutable(configured);
  if (named) return named;
  if (configured.includes("/"))
    throw new Error(`rpc_server_bin: no executable file at ${configured}`);
  const tried = [`"${configured}" on PATH`];
  if (configured === DEFAULT_RPC_SERVER_BIN) {
    const upstream = findExecutable(UPSTREAM_NAME);
    if (upstream) return upstream;
    const build = await buildFor(deviceBackend, cacheDir);
    if (build) return build.rpcServer;
    const backends = deviceBackend === "cpu" ? "cpu" : `${deviceBackend} or cpu`;
    tried.push(`"${UPSTREAM_NAME}" on PATH`, `a ${backends} build in ${cacheDir}`);
  }
  throw new Error(
    `rpc_server_bin: cannot find rpc-server (tried ${tried.join(", ")}); run "rolemesh engine build", ` +
      "or install llama.cpp's rpc-server and set rpc_server_bin to its path",
  );
}
