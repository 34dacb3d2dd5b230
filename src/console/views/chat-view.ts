/**
 * The chat playground: sends a conversation to `/v1/chat/completions` for a chosen model or
 * role, streams the answer token by token, and shows which node answered and how fast.
 */
import { ApiError, call, readJsonEvents } from "../api.js";
import { h } from "../dom.js";
import type { FleetStore } from "../fleet-store.js";
import { formatRate } from "../format.js";
import { askForKey } from "./key-dialog.js";

interface Message {
  role: "user" | "assistant";
  content: string;
}

interface StreamChunk {
  choices?: { delta?: { content?: string } }[];
  usage?: { completion_tokens?: number };
  error?: { message?: string };
}

export class ChatView {
  readonly element: HTMLElement;
  readonly #store: FleetStore;
  readonly #model = h("select", { id: "chat-model", required: true });
  readonly #prompt = h("textarea", {
    id: "chat-prompt",
    rows: 3,
    required: true,
    placeholder: "Once upon a time",
  });
  readonly #maxTokens = h("input", {
    id: "chat-max-tokens",
    type: "number",
    min: 1,
    max: 4096,
    value: 64,
  });
  readonly #send = h("button", { type: "submit", class: "primary", id: "chat-send" }, "Send");
  readonly #stop = h("button", { type: "button", id: "chat-stop", disabled: true }, "Stop");
  readonly #transcript = h("ol", {
    class: "transcript",
    "aria-live": "polite",
    "aria-label": "conversation",
  });
  readonly #stats = h("p", { class: "chat-stats", role: "status" });
  readonly #messages: Message[] = [];
  #abort: AbortController | undefined;

  constructor(store: FleetStore) {
    this.#store = store;
    const clear = h("button", { type: "button", id: "chat-clear" }, "Clear");
    const form = h(
      "form",
      { class: "chat-form" },
      h(
        "div",
        { class: "chat-options" },
        h("label", { for: "chat-model" }, "Model or role"),
        this.#model,
        h("label", { for: "chat-max-tokens" }, "Max tokens"),
        this.#maxTokens,
      ),
      h("label", { for: "chat-prompt", class: "sr-only" }, "Message"),
      this.#prompt,
      h("div", { class: "chat-buttons" }, this.#send, this.#stop, clear),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.#ask();
    });
    // Enter sends, Shift+Enter starts a new line (as in most chat tools).
    this.#prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    this.#stop.addEventListener("click", () => this.#abort?.abort());
    clear.addEventListener("click", () => {
      this.#abort?.abort();
      this.#messages.length = 0;
      this.#transcript.replaceChildren();
      this.#stats.textContent = "";
    });
    this.element = h(
      "section",
      { class: "panel chat", "aria-labelledby": "chat-title" },
      h("h2", { id: "chat-title" }, "Chat playground"),
      this.#transcript,
      this.#stats,
      form,
    );
  }

  /** Keeps the model list in step with the fleet, without losing the current choice. */
  update(): void {
    const names = [
      ...this.#store.models().map((model) => ({ value: model.id, text: model.id })),
      ...[...this.#store.roles().keys()].map((role) => ({ value: role, text: `role: ${role}` })),
    ];
    const signature = names.map((name) => name.value).join("\n");
    if (this.#model.dataset.signature === signature) return;
    this.#model.dataset.signature = signature;
    const chosen = this.#model.value;
    this.#model.replaceChildren(
      ...names.map((name) => h("option", { value: name.value }, name.text)),
    );
    if (names.some((name) => name.value === chosen)) this.#model.value = chosen;
  }

  async #ask(): Promise<void> {
    const text = this.#prompt.value.trim();
    if (!text || this.#abort) return;
    this.#prompt.value = "";
    this.#messages.push({ role: "user", content: text });
    this.#transcript.append(bubble("user", text));
    const answer = { role: "assistant" as const, content: "" };
    const answerText = h("div", { class: "bubble-text" });
    const answerBubble = h("li", { class: "bubble assistant streaming" }, answerText);
    this.#transcript.append(answerBubble);
    this.#abort = new AbortController();
    this.#setRunning(true);
    const started = performance.now();
    let firstTokenAt: number | undefined;
    let tokens = 0;
    let reportedTokens: number | undefined;
    let node = "";
    let model = "";
    const showStats = (done: boolean) => {
      const seconds = firstTokenAt === undefined ? 0 : (performance.now() - firstTokenAt) / 1000;
      const count = reportedTokens ?? tokens;
      const parts = [
        node && `node ${node}`,
        model && `model ${model}`,
        firstTokenAt !== undefined && `first token ${Math.round(firstTokenAt - started)} ms`,
        `${count} tokens`,
        seconds > 0 && `${formatRate(count / seconds)} tokens/s`,
        !done && "streaming…",
      ];
      this.#stats.textContent = parts.filter(Boolean).join(" · ");
    };
    try {
      const response = await this.#post(this.#abort.signal);
      node = response.headers.get("x-rolemesh-node") ?? "";
      model = response.headers.get("x-rolemesh-model") ?? "";
      answerBubble.dataset.node = node;
      showStats(false);
      await readJsonEvents(response, (event) => {
        const chunk = event as StreamChunk;
        if (chunk.error) throw new Error(chunk.error.message ?? "the stream failed");
        const piece = chunk.choices?.[0]?.delta?.content;
        if (piece) {
          firstTokenAt ??= performance.now();
          tokens++;
          answer.content += piece;
          answerText.textContent = answer.content;
        }
        if (chunk.usage?.completion_tokens !== undefined)
          reportedTokens = chunk.usage.completion_tokens;
        showStats(false);
      });
      this.#messages.push(answer);
      showStats(true);
    } catch (err) {
      const stopped = this.#abort.signal.aborted;
      this.#abort.abort(); // releases the response if the stream itself reported the failure
      answerBubble.classList.add(stopped ? "stopped" : "failed");
      answerBubble.append(
        h("p", { class: "bubble-note" }, stopped ? "stopped" : (err as Error).message),
      );
      if (answer.content) this.#messages.push(answer);
      else this.#messages.pop(); // nothing came back: the question is not part of the context
      showStats(true);
    } finally {
      answerBubble.classList.remove("streaming");
      this.#abort = undefined;
      this.#setRunning(false);
      this.#prompt.focus();
    }
  }

  async #post(signal: AbortSignal): Promise<Response> {
    const body = JSON.stringify({
      model: this.#model.value,
      messages: this.#messages,
      max_tokens: Number(this.#maxTokens.value) || 64,
      stream: true,
      stream_options: { include_usage: true },
    });
    for (;;) {
      try {
        return await call("/v1/chat/completions", { method: "POST", body, signal });
      } catch (err) {
        if (err instanceof ApiError && err.needsKey && (await askForKey(err.message))) continue;
        throw err;
      }
    }
  }

  #setRunning(running: boolean): void {
    this.#send.disabled = running;
    this.#stop.disabled = !running;
  }
}

function bubble(role: Message["role"], text: string): HTMLElement {
  return h("li", { class: `bubble ${role}` }, h("div", { class: "bubble-text" }, text));
}
