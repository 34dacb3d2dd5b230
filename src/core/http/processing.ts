import type { IncomingMessage, ServerResponse } from "node:http";
import { PROCESSING_HEADER, PROCESSING_INTERVAL_MS } from "../../protocol/processing.js";

/**
 * When the caller asked for it (`PROCESSING_HEADER`), sends an interim `102 Processing` every
 * `PROCESSING_INTERVAL_MS` until the response's own headers go out, so a caller with a
 * first-byte deadline can tell a request being worked on from a node that froze.
 */
export function reportProcessing(req: IncomingMessage, res: ServerResponse): void {
  if (req.headers[PROCESSING_HEADER] === undefined) return;
  const timer = setInterval(() => {
    if (res.headersSent || res.writableEnded) clearInterval(timer);
    else res.writeProcessing();
  }, PROCESSING_INTERVAL_MS);
  res.once("close", () => clearInterval(timer));
}
