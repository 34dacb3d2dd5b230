#!/usr/bin/env node
// A wake command for tests, as a machine that boots: records that it ran (a line with
// ROLEMESH_WAKE_ID in the file named first), starts the rest of its command line in the
// background, detached, and exits at once.
//
//   start-detached.mjs RUNS_FILE COMMAND [ARG...]
import { spawn } from "node:child_process";
import { appendFileSync } from "node:fs";

const [runsFile, command, ...args] = process.argv.slice(2);
appendFileSync(runsFile, `${process.env.ROLEMESH_WAKE_ID ?? ""}\n`);
spawn(command, args, { detached: true, stdio: "ignore" }).unref();
