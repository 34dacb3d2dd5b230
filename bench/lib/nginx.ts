/** nginx as the reference relay (`proxy_pass` with upstream keepalive), when installed. */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdir, writeFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { join } from "node:path";
import { findExecutable } from "../../src/core/find-executable.js";
import { tempDir } from "./cluster.js";

export interface Nginx {
  url: string;
  stop(): Promise<void>;
}

export async function startNginx(upstreamPort: number, port: number): Promise<Nginx | undefined> {
  // Debian puts nginx in /usr/sbin, which is not on every user's PATH.
  const bin = findExecutable("nginx") ?? findExecutable("/usr/sbin/nginx");
  if (!bin) return undefined;
  const dir = await tempDir();
  await mkdir(join(dir, "logs"), { recursive: true });
  const config = `
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream llama { server 127.0.0.1:${upstreamPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://llama;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}`;
  await writeFile(join(dir, "nginx.conf"), config);
  const child: ChildProcess = spawn(bin, ["-p", dir, "-c", join(dir, "nginx.conf")], {
    stdio: ["ignore", "ignore", "inherit"],
    detached: true,
  });
  await waitForPort(port);
  return {
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      process.kill(-child.pid!, "SIGTERM");
      await once(child, "exit");
    },
  };
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection(port, "127.0.0.1")
        .once("connect", () => {
          socket.destroy();
          resolve(true);
        })
        .once("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`nginx did not listen on ${port}`);
}
