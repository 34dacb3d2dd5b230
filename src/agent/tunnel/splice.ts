import { constants } from "node:http2";
import type { Http2Stream } from "node:http2";
import type { Socket } from "node:net";

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL } = constants;

/** Where a splice reports the payload bytes it carries. */
export interface ByteCounts {
  /** Bytes read from the local socket and sent into the tunnel. */
  sent(bytes: number): void;
  /** Bytes received from the tunnel and written to the local socket. */
  received(bytes: number): void;
}

/**
 * Joins a TCP socket and a tunnel stream both ways, as a TCP connection through a proxy
 * behaves: an end (FIN, END_STREAM) on one side ends the other's writing, so half-closed
 * connections work; a side that fails or is torn down resets the other (RST_STREAM CANCEL,
 * or `reset` of the socket). The socket must allow half-open connections.
 */
export function splice(socket: Socket, stream: Http2Stream, counts: ByteCounts): void {
  socket.on("data", (chunk: Buffer) => counts.sent(chunk.length));
  stream.on("data", (chunk: Buffer) => counts.received(chunk.length));
  socket.pipe(stream);
  stream.pipe(socket);
  // Failures are handled on "close", which follows every "error".
  socket.on("error", () => {});
  stream.on("error", () => {});
  socket.on("close", () => {
    // Both directions ended: the stream's own ends follow through the pipes.
    const finished = socket.readableEnded && socket.writableFinished;
    if (!stream.closed) stream.close(finished ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL);
  });
  stream.on("close", () => {
    const finished =
      stream.rstCode === NGHTTP2_NO_ERROR && stream.readableEnded && socket.readableEnded;
    if (!finished) reset(socket);
  });
}

/**
 * Closes `socket` as a broken connection, with a TCP RST where it can, so its client sees an
 * error rather than a clean end. A socket whose writing has ended (a FIN passed on through the
 * pipe) is only destroyed: while its shutdown is in flight libuv refuses the reset (EINVAL) and
 * Node 20 then never closes the socket, leaving its handle open for good (measured here).
 */
export function reset(socket: Socket): void {
  if (socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}
