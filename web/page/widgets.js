// Pieces several views share: toasts, a confirmation dialog, gauges, progress bars, error messages and
// the download row with its controls.

import { ACTIVE, downloadActions, presetName } from "./store.js";
import { fill, fmtPct, h, svg, uid } from "./dom.js";

// ---- toasts ----

/** A short notice in the corner; `message` is text or a node. kind: info | success | error. */
export function toast(message, kind = "info", ms = kind === "error" ? 12000 : 6000) {
  const region = document.getElementById("toasts");
  const close = h("button", { class: "icon-button", "aria-label": "Dismiss notification", text: "×" });
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("div", { class: "toast-body" }, message), close);
  const remove = () => item.remove();
  close.addEventListener("click", remove);
  setTimeout(remove, ms);
  region.append(item);
  return item;
}

/** Explain an API error or an `error` message to a person; gated models get a link to their page. */
export function errorView(error) {
  const code = error.code || "";
  const details = error.details || {};
  const message = error.message || "Something went wrong";
  if (details.reason === "gated") { // the server's message already says what to do (licence, HF_TOKEN)
    const page = details.model_page;
    return h("span", { class: "error-text" }, message,
      page ? [" (", h("a", { href: page, target: "_blank", rel: "noopener noreferrer", text: "model page" }), ")"] : null, ".");
  }
  if (details.token === "HF_TOKEN" || details.reason === "unauthorized") {
    return h("span", { class: "error-text" }, `${message}. Set HF_TOKEN for the dashboard and restart it.`);
  }
  if (code === "COMFYUI_UNAVAILABLE") {
    return h("span", null, h("strong", { text: "ComfyUI is not available." }), ` ${message}`,
      details.hint ? `. ${details.hint}.` : ".");
  }
  if (code === "INSUFFICIENT_STORAGE") {
    return h("span", { class: "error-text" }, `Not enough disk space: ${message}`);
  }
  if (code === "FORBIDDEN" && details.role) {
    return h("span", { class: "error-text" }, "Your account may only look: ask an administrator.");
  }
  return h("span", { class: "error-text" }, message);
}

/** Run an action, report its failure as a toast; resolves with the action's value or undefined. */
export async function attempt(action, what) {
  try {
    return await action();
  } catch (error) {
    if (error.status !== 401) toast(h("span", null, `${what}: `, errorView(error)), "error");
    return undefined;
  }
}

// ---- confirmation ----

/** A modal <dialog>; resolves true when confirmed. Escape or Cancel resolves false. */
export function confirmDialog({ title, body, confirmLabel = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const titleId = uid("dialog-title");
    const cancel = h("button", { type: "button", class: "button", text: "Cancel" });
    const ok = h("button", { type: "button", class: danger ? "button danger" : "button primary", text: confirmLabel });
    const dialog = h("dialog", { class: "dialog", "aria-labelledby": titleId },
      h("h2", { id: titleId, text: title }), h("div", { class: "dialog-body" }, body),
      h("div", { class: "dialog-actions" }, cancel, ok));
    const finish = (value) => {
      dialog.close();
      dialog.remove();
      resolve(value);
    };
    cancel.addEventListener("click", () => finish(false));
    ok.addEventListener("click", () => finish(true));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      finish(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

// ---- gauges and bars ----

const RADIUS = 26;
const CIRCUMFERENCE = 2 * Math.PI * RADIUS;

function level(value, warn = 75, alarm = 90) {
  if (value === null || value === undefined) return "none";
  return value >= alarm ? "alarm" : value >= warn ? "warn" : "ok";
}

/** A ring gauge for a percentage. Returns {el, set(value, detail)}. */
export function gauge(label) {
  const arc = svg("circle", { class: "gauge-arc", cx: 32, cy: 32, r: RADIUS, "stroke-dasharray": `0 ${CIRCUMFERENCE}` });
  const number = h("span", { class: "gauge-value", text: "–" });
  const detail = h("span", { class: "gauge-detail" });
  const el = h("div", { class: "gauge", role: "meter", "aria-label": label, "aria-valuemin": 0, "aria-valuemax": 100 },
    h("div", { class: "gauge-ring" },
      svg("svg", { viewBox: "0 0 64 64", "aria-hidden": "true", focusable: "false" },
        svg("circle", { class: "gauge-track", cx: 32, cy: 32, r: RADIUS }), arc),
      number),
    h("div", { class: "gauge-label" }, h("span", { text: label }), detail));
  return {
    el,
    set(value, text = "") {
      const known = value !== null && value !== undefined;
      const pct = known ? Math.max(0, Math.min(100, value)) : 0;
      arc.setAttribute("stroke-dasharray", `${(pct / 100) * CIRCUMFERENCE} ${CIRCUMFERENCE}`);
      arc.style.visibility = pct > 0 ? "visible" : "hidden"; // a round cap would draw a dot at 0%
      el.dataset.level = level(value);
      number.textContent = fmtPct(value);
      detail.textContent = text;
      if (known) el.setAttribute("aria-valuenow", String(Math.round(pct)));
      else el.removeAttribute("aria-valuenow");
      el.setAttribute("aria-valuetext", `${fmtPct(value)}${text ? `, ${text}` : ""}`);
    },
  };
}

/** A horizontal bar (role progressbar); set(percent, text). */
export function bar(label, { meter = false } = {}) {
  const fillEl = h("div", { class: "bar-fill" });
  const el = h("div", { class: "bar", role: meter ? "meter" : "progressbar", "aria-label": label,
    "aria-valuemin": 0, "aria-valuemax": 100 }, fillEl);
  return {
    el,
    set(value, text) {
      const pct = Math.max(0, Math.min(100, value || 0));
      fillEl.style.width = `${pct}%`;
      el.dataset.level = meter ? level(value) : "ok";
      el.setAttribute("aria-valuenow", String(Math.round(pct * 10) / 10));
      el.setAttribute("aria-valuetext", text || `${Math.round(pct)}%`);
    },
  };
}

// ---- downloads ----

const STATUS_TEXT = { queued: "Queued", downloading: "Downloading", paused: "Paused", completed: "Done",
  failed: "Failed", cancelled: "Cancelled" };

export const statusText = (status) => STATUS_TEXT[status] || status;

/** "45% · 3/5 files · 125 MB/s · 2m 30s left" for a download. */
export function progressText(d) {
  const parts = [`${Math.floor(d.progress || 0)}%`];
  if (d.files && d.files.total) parts.push(`${d.files.completed || 0}/${d.files.total} files`);
  if (d.status === "downloading") {
    if (d.speedText) parts.push(d.speedText);
    if (d.connections > 1) parts.push(`${d.connections} connections`);
    if (d.etaText) parts.push(`${d.etaText} left`);
  }
  return parts.join(" · ");
}

/** Pause / Resume / Cancel buttons for a download, labelled with what they act on. */
export function downloadControls(d, name, { compact = false } = {}) {
  const button = (label, action, kind = "") => h("button", {
    type: "button", class: `button ${kind} ${compact ? "small" : ""}`, "aria-label": `${label} download of ${name}`,
    text: label, onclick: async (event) => {
      const self = event.currentTarget;
      self.disabled = true;
      await attempt(() => downloadActions[action](d.id), `${label} ${name}`);
      self.disabled = false;
    },
  });
  return [
    ["queued", "downloading"].includes(d.status) ? button("Pause", "pause") : null,
    ["paused", "failed"].includes(d.status) ? button(d.status === "failed" ? "Retry" : "Resume", "resume", "primary") : null,
    ACTIVE.has(d.status) || d.status === "failed" ? button("Cancel", "cancel", "danger") : null,
  ];
}

/** One download with its progress and controls; `update(d)` refreshes it in place. */
export function downloadRow(d, { priority = false, compact = false } = {}) {
  const name = presetName(d.preset_id);
  const progress = bar(`Progress of ${name}`);
  const status = h("span", { class: "badge" });
  const text = h("span", { class: "muted small-text" });
  const current = h("span", { class: "muted small-text ellipsis" });
  const error = h("div", { class: "row-error" });
  const controls = h("div", { class: "actions" });
  const title = h("div", { class: "row-title" }, h("strong", { class: "ellipsis", text: name }), status);
  const el = h("li", { class: "download-row", "data-download": d.id, "data-status": d.status },
    title, progress.el, h("div", { class: "row-meta" }, text, current), error, controls);
  let select = null;
  if (priority) {
    const id = uid("priority");
    select = h("select", { id, class: "select small", onchange: (event) => attempt(
      () => downloadActions.priority(d.id, event.target.value), `Priority of ${name}`) },
    ...["high", "normal", "low"].map((p) => h("option", { value: p, text: p[0].toUpperCase() + p.slice(1) })));
    controls.append(h("label", { for: id, class: "inline-label", text: "Priority" }), select);
  }
  const buttons = h("span", { class: "button-group" });
  controls.append(buttons);
  let shown = null; // status and error the buttons and message were made for: remade only when they change,
  // so a focused button is not replaced under the keyboard on every progress message
  const update = (next) => {
    d = next;
    el.dataset.status = d.status;
    status.textContent = statusText(d.status);
    status.dataset.status = d.status;
    progress.set(d.progress, progressText(d));
    text.textContent = progressText(d);
    current.textContent = d.status === "downloading" && d.current_file ? d.current_file : "";
    if (select && document.activeElement !== select) {
      select.value = d.priority || "normal";
      select.disabled = !ACTIVE.has(d.status);
    }
    if (shown && shown.status === d.status && shown.error === d.error) return;
    shown = { status: d.status, error: d.error };
    fill(error, d.status === "failed" && d.error ? errorView(d.error) : null);
    fill(buttons, downloadControls(d, name, { compact }));
  };
  update(d);
  return { el, update };
}

/** A plain notice box. kind: info | warn | error. */
export function notice(kind, ...children) {
  return h("div", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : null }, ...children);
}
