/**
 * Asks for the gateway key (admin key for commands; a client or admin key where the gateway
 * requires one to read). Kept for the tab only (sessionStorage).
 */
import { saveKey, savedKey } from "../api.js";
import { h } from "../dom.js";

let open: Promise<boolean> | undefined;

/** Resolves true when a key was entered, false when the operator cancelled. */
export function askForKey(reason: string): Promise<boolean> {
  open ??= show(reason).finally(() => (open = undefined));
  return open;
}

function show(reason: string): Promise<boolean> {
  const input = h("input", {
    id: "key-input",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    value: savedKey(),
  });
  const form = h(
    "form",
    { method: "dialog" },
    h("h2", { id: "key-title" }, "Gateway key"),
    h("p", { id: "key-reason" }, reason),
    h("label", { for: "key-input" }, "Admin key"),
    input,
    h("p", { class: "muted" }, "Kept for this tab only."),
    h(
      "div",
      { class: "dialog-actions" },
      h("button", { type: "submit", value: "save", class: "primary" }, "Use key"),
      h("button", { type: "submit", value: "cancel", formnovalidate: true }, "Cancel"),
    ),
  );
  const dialog = h("dialog", { class: "key-dialog", "aria-labelledby": "key-title" }, form);
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const accepted = dialog.returnValue === "save" && input.value.trim() !== "";
      if (accepted) saveKey(input.value.trim());
      dialog.remove();
      resolve(accepted);
    });
  });
}
