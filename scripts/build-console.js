#!/usr/bin/env node
// Bundles the web console (src/console) into dist/console: one script, one stylesheet and
// the page, with no external reference, so the console works offline (SPEC §9).
import { copyFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = `${root}dist/console`;

await mkdir(out, { recursive: true });
await build({
  entryPoints: [`${root}src/console/app/main.ts`],
  outfile: `${out}/app.js`,
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: "linked",
  legalComments: "none",
  logLevel: "warning",
});
await copyFile(`${root}src/console/index.html`, `${out}/index.html`);
await copyFile(`${root}src/console/style.css`, `${out}/style.css`);
