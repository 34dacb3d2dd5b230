// Executable entry of the CLI when run from source (`tsx src/cli/rolemesh.ts …`).
import { main } from "./main.js";

await main(process.argv);
