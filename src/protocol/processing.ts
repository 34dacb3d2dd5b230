/**
 * How an agent shows a gateway that a forwarded request is being worked on before its answer
 * starts — queued, waiting for a model to load, or generating an answer that is not streamed
 * (SPEC §7.3). A gateway that sends this request header gets an interim `102 Processing`
 * response every `PROCESSING_INTERVAL_MS` until the answer's own headers; it can then give up
 * on a node that sends nothing at all (frozen, cut off) long before the answer could be due.
 * Only on request: some HTTP clients take any status line for the final answer.
 */
export const PROCESSING_HEADER = "x-rolemesh-processing";

export const PROCESSING_INTERVAL_MS = 1000;
