// Small DOM helpers shared by the pages: an element builder, badges, problem display, toasts,
// the confirmation dialog and polling tied to the page's lifetime.

import { ApiError } from "./api.js";
import { DASH, timeParts, titleCase } from "./format.js";

/**
 * h("button", {class: "btn", onclick: f}, "Text", child, [more]) -> HTMLElement.
 * Attributes starting with "on" become listeners; `dataset`, `style` objects are merged;
 * true/false toggle boolean attributes; null/undefined children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith("svg:");
  const element = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (key === "style" && typeof value === "object") {
      for (const [prop, v] of Object.entries(value)) element.style.setProperty(prop, v);
    } else if (value === true) {
      element.setAttribute(key, "");
    } else {
      element.setAttribute(key, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of `element`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export function text(value) {
  return value === null || value === undefined || value === "" ? DASH : String(value);
}

export function timeEl(value) {
  const parts = timeParts(value);
  if (!value) return h("span", { class: "muted" }, DASH);
  return h("time", { datetime: parts.datetime, title: parts.title }, parts.text);
}

const STATE_TONES = {
  ok: "ok",
  connected: "ok",
  succeeded: "ok",
  cleared: "neutral",
  acknowledged: "info",
  failing: "warn",
  running: "info",
  requested: "info",
  awaiting_approval: "warn",
  unknown: "neutral",
  disabled: "neutral",
  quarantined: "bad",
  failed: "bad",
  rejected: "bad",
  disconnected: "bad",
  active: "bad",
  critical: "bad",
  major: "bad",
  warning: "warn",
  minor: "warn",
  info: "info",
};

const STATE_LABELS = { ok: "OK", unknown: "Not read yet", awaiting_approval: "Awaiting approval" };

/** A coloured pill with text (never colour alone). */
export function badge(value, { label, tone } = {}) {
  const key = value === null || value === undefined ? "unknown" : String(value).toLowerCase();
  const t = tone || STATE_TONES[key] || "neutral";
  return h("span", { class: `badge badge-${t}`, dataset: { state: key } }, label || STATE_LABELS[key] || titleCase(value ?? "unknown"));
}

export const PROTOCOLS = { iec21: "IEC 62056-21", dlms: "DLMS/COSEM", modbus: "Modbus" };

/** The relay state in words; null means the meter has no relay or it was never read. */
export function relayBadge(relay) {
  if (relay === "connected") return badge("connected", { label: "Supply on" });
  if (relay === "disconnected") return badge("disconnected", { label: "Supply off" });
  return badge("unknown", { label: "Relay unknown" });
}

/** A visible, announced error box for an ApiError or any Error. */
export function problemBox(error, { heading } = {}) {
  const box = h("div", { class: "alert alert-error", role: "alert" });
  if (error instanceof ApiError) {
    box.append(h("strong", {}, heading || error.title));
    if (heading) box.append(h("span", {}, ` ${error.title}.`));
    if (error.detail) box.append(h("p", {}, error.detail));
    if (error.errors.length) {
      box.append(
        h(
          "ul",
          {},
          error.errors.map((item) => {
            const where = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body").join(".") : item.line;
            return h("li", {}, where ? `${where}: ${item.message ?? item.msg}` : item.message ?? item.msg);
          }),
        ),
      );
    }
    if (error.retryAfter) box.append(h("p", {}, `Try again in ${Math.ceil(error.retryAfter)} s.`));
    box.append(h("p", { class: "alert-meta" }, `HTTP ${error.status} \u00b7 ${error.slug}`));
  } else {
    box.append(h("strong", {}, heading || "Something went wrong"));
    box.append(h("p", {}, error?.message || String(error)));
  }
  return box;
}

export function toast(message, tone = "info") {
  const host = document.getElementById("toasts");
  const item = h("div", { class: `toast toast-${tone}` }, message);
  host.append(item);
  setTimeout(() => item.remove(), 6000);
}

/**
 * Ask before doing something that matters. Resolves true only for an explicit "OK"; Escape,
 * Cancel and closing resolve false. `body` is text or a node.
 */
export function confirmDialog({ title, body, okLabel = "OK", danger = false }) {
  const dialog = document.getElementById("confirm-dialog");
  const ok = document.getElementById("confirm-ok");
  fill(document.getElementById("confirm-title"), title);
  fill(document.getElementById("confirm-body"), typeof body === "string" ? h("p", {}, body) : body);
  ok.textContent = okLabel;
  ok.className = `btn ${danger ? "btn-danger" : "btn-primary"}`;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

/** A labelled card section. */
export function card(title, { id, actions, className = "" } = {}, ...children) {
  const headingId = id ? `${id}-title` : undefined;
  return h(
    "section",
    { class: `card ${className}`.trim(), id, "aria-labelledby": headingId },
    h("div", { class: "card-head" }, h("h2", { id: headingId }, title), actions ? h("div", { class: "card-actions" }, actions) : null),
    ...children,
  );
}

/** A key/value list (`<dl>`). */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.map(([key, value]) => h("div", { class: "fact" }, h("dt", {}, key), h("dd", {}, value))),
  );
}

/** A page-lifetime helper: timers and listeners that end when the route changes. */
export class PageScope {
  constructor() {
    this.alive = true;
    this.cleanups = [];
    this.controller = new AbortController();
  }

  get signal() {
    return this.controller.signal;
  }

  onCleanup(fn) {
    this.cleanups.push(fn);
  }

  /** Run `fn` now and every `ms` while the page is shown (skipped while the tab is hidden). */
  every(ms, fn, { now = true } = {}) {
    let timer = null;
    let busy = false;
    const tick = async () => {
      if (!this.alive) return;
      if (!document.hidden && !busy) {
        busy = true;
        try {
          await fn();
        } catch (error) {
          if (error?.name !== "AbortError") console.error(error);
        } finally {
          busy = false;
        }
      }
      if (this.alive) timer = setTimeout(tick, ms);
    };
    if (now) tick();
    else timer = setTimeout(tick, ms);
    this.onCleanup(() => clearTimeout(timer));
  }

  end() {
    this.alive = false;
    this.controller.abort();
    for (const fn of this.cleanups.splice(0)) {
      try {
        fn();
      } catch (error) {
        console.error(error);
      }
    }
  }
}

/** A unique id for an idempotent request (the same form submission retried keeps it). */
export function requestId(prefix) {
  const random = globalThis.crypto?.randomUUID
    ? crypto.randomUUID()
    : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
  return `${prefix}-${random}`;
}

/** The page title in the document and the tab. */
export function pageHead(title, { subtitle, actions, badges } = {}) {
  document.title = `${title} \u00b7 metercom`;
  return h(
    "div",
    { class: "page-head" },
    h("div", { class: "page-title" }, h("h1", {}, title), badges ? h("div", { class: "page-badges" }, badges) : null),
    subtitle ? h("p", { class: "page-subtitle" }, subtitle) : null,
    actions ? h("div", { class: "page-actions" }, actions) : null,
  );
}
