#!/usr/bin/env node
// Alias of `rolemesh gateway` (SPEC §1).
import { main } from "../dist/cli/main.js";

await main([process.argv[0], process.argv[1], "gateway", ...process.argv.slice(2)]);
