// Small DOM helpers shared by the views: element lookup and creation, formatting, server errors in place.
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";

export function $<T extends HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`missing #${id}`);
  return node as T;
}

type Attrs = Record<string, string | undefined>;

/** An element with attributes (undefined ones left out) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined) continue;
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

/**
 * A button that runs `action` when pressed, once at a time (marked busy meanwhile: not disabled, which would
 * take the keyboard focus away). A new action clears the banner of the previous one's error.
 */
export function button(label: string, attrs: Attrs, action: () => Promise<void> | void): HTMLButtonElement {
  const b = el("button", { type: "button", ...attrs }, label);
  b.addEventListener("click", async () => {
    if (b.getAttribute("aria-busy") === "true") return;
    b.setAttribute("aria-busy", "true");
    const banner = document.getElementById("app-error");
    if (banner) show(banner, null);
    try {
      await action();
    } finally {
      b.removeAttribute("aria-busy");
    }
  });
  return b;
}

/** A labelled form field. */
export function field(label: string, input: HTMLElement, hint?: string): HTMLLabelElement {
  return el("label", {}, label, input, ...(hint ? [el("span", { class: "hint" }, hint)] : []));
}

export function show(node: HTMLElement, text: string | null) {
  node.textContent = text ?? "";
  node.hidden = !text;
}

export function fmtTime(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" }) : "";
}

export function fmtClock(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toLocaleTimeString() : "";
}

/**
 * `name (…3f9a1c)`: the end of the id, which tells ids apart (UUIDv7 ids start with their creation time, so
 * their first digits are shared by everything made in the same minute).
 */
export function nameWithId(name: string, id: string): string {
  return `${name} (${shortId(id)})`;
}

export function shortId(id: string): string {
  return `…${id.slice(-6)}`;
}

/** A server error as `Code: message`; a mistake found here (not a server answer) as its message alone. */
export function errorText(err: unknown): string {
  if (!(err instanceof ConnectError) && err instanceof Error) return err.message;
  const ce = ConnectError.from(err);
  return `${Code[ce.code] ?? ce.code}: ${ce.rawMessage}`;
}

/** Reads a form's fields by name. */
export function formValues(form: HTMLFormElement): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of new FormData(form).entries()) out[k] = typeof v === "string" ? v : "";
  return out;
}

/** Runs a form's submit with its error paragraph: the server's message shown in place. */
export function onSubmit(form: HTMLFormElement, error: HTMLElement, action: () => Promise<void>) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    show(error, null);
    const submit = form.querySelector<HTMLButtonElement>("button[type=submit]");
    if (submit) submit.disabled = true;
    try {
      await action();
    } catch (err) {
      show(error, errorText(err));
    } finally {
      if (submit) submit.disabled = false;
    }
  });
}
