import { readFileSync } from "node:fs";

// src/core and dist/core sit at the same depth below the package root.
const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

/** This package's version, reported by agents and gateways. */
export const VERSION: string = pkg.version;
