/** An event of a `text/event-stream` passed the size its reader accepts. */
export class EventTooLargeError extends Error {
  override readonly name = "EventTooLargeError";

  constructor(readonly limit: number) {
    super(`an event of the stream is longer than ${limit} characters`);
  }
}

/**
 * Splits `text/event-stream` text into events' data, whatever the chunking (the HTML spec's
 * event-stream parsing, reduced to the `data` field: RoleMesh uses no `event`, `id` or
 * `retry`, and comments are keep-alives). Free of Node and DOM APIs, so the gateway, the CLI
 * and the browser console read streams alike. An event, or a line still unfinished, longer
 * than `maxEventLength` is an EventTooLargeError: a peer must not make its reader hold an
 * endless line.
 */
export class EventStreamDecoder {
  readonly #maxEventLength: number;
  /** The start of a line whose end has not arrived yet. */
  #partial = "";
  #data: string[] = [];
  #dataLength = 0;

  constructor(maxEventLength = Number.POSITIVE_INFINITY) {
    this.#maxEventLength = maxEventLength;
  }

  /** Feeds the next text of the stream; returns the data of each event it completed. */
  push(text: string): string[] {
    const events: string[] = [];
    // Only the new text is searched, so an event that arrives in many pieces costs its length.
    let start = 0;
    for (let newline: number; (newline = text.indexOf("\n", start)) >= 0; start = newline + 1) {
      const line = (this.#partial + text.slice(start, newline)).replace(/\r$/, "");
      this.#partial = "";
      if (line === "") {
        if (this.#data.length > 0) events.push(this.#data.join("\n"));
        this.#data = [];
        this.#dataLength = 0;
      } else if (line.startsWith("data:")) {
        const data = line.slice(line.startsWith("data: ") ? 6 : 5);
        this.#data.push(data);
        this.#dataLength += data.length;
      }
    }
    this.#partial += text.slice(start);
    if (this.#dataLength + this.#partial.length > this.#maxEventLength) {
      throw new EventTooLargeError(this.#maxEventLength);
    }
    return events;
  }
}
