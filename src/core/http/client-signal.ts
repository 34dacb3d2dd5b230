import type { ServerResponse } from "node:http";

/** Raised into upstream work when the client closed its connection before the answer ended. */
export class ClientGoneError extends Error {
  override readonly name = "ClientGoneError";
  readonly code = "client_gone";
  constructor() {
    super("the client closed the connection");
  }
}

/**
 * An AbortSignal that fires when the client goes away before the response is finished, so
 * queued work leaves its queue and upstream generation stops.
 */
export function clientSignal(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) controller.abort(new ClientGoneError());
  });
  return controller.signal;
}
