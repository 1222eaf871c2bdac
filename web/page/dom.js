// A tiny DOM helper and the formatting every view shares. No framework: elements are made with h().
// ComfyUI's sidebar tab (web/comfyui/dashboard_sidebar.js) imports this module too, from
// <dashboard>/assets/dom.js: it imports nothing and has no side effects.

/** h("button", {class: "x", onclick: fn, "aria-label": "..."}, "text", child, [more]) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

/** The same for SVG elements (attributes only). */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, value);
  append(el, children);
  return el;
}

function setProps(el, props) {
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name === "style") Object.assign(el.style, value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "value" || name === "checked") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
}

/** Append children: strings, numbers, nodes, nested arrays; null/false are skipped. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Make `list`'s children exactly `elements`, in order, moving only what must move (keeps focus inside). */
export function place(list, elements) {
  const wanted = new Set(elements);
  for (const child of [...list.children]) if (!wanted.has(child)) child.remove();
  elements.forEach((el, index) => {
    if (list.children[index] !== el) list.insertBefore(el, list.children[index] || null);
  });
}

let ids = 0;
/** A unique id for label/aria wiring. */
export const uid = (prefix = "id") => `${prefix}-${++ids}`;

// ---- formatting ----

// One rule for every size on the page and in ComfyUI's sidebar (which imports these functions): decimal
// units of bytes, as download managers and disk tools show them (1 MB = 1,000,000 bytes), the smallest unit
// that keeps the number under 1000; B and KB whole, MB and GB with one decimal, TB with two. Sizes are
// formatted from bytes wherever the API gives bytes.
const SIZE_UNITS = [["KB", 1e3, 0], ["MB", 1e6, 1], ["GB", 1e9, 1], ["TB", 1e12, 2]];

/** 512 B, 12 KB, 62.9 MB, 14.5 GB, 1.20 TB. */
export function fmtBytes(bytes) {
  if (typeof bytes !== "number" || !Number.isFinite(bytes)) return "?";
  if (bytes < 1000) return `${Math.round(bytes)} B`;
  let text = "";
  for (const [unit, size, digits] of SIZE_UNITS) {
    const value = (bytes / size).toFixed(digits);
    text = `${value} ${unit}`;
    if (Number(value) < 1000) break;
  }
  return text;
}

/** A `..._gb` value of the API (GiB), in the same units as fmtBytes. */
export const fmtGb = (gb) => (gb === null || gb === undefined ? "?" : fmtBytes(gb * 1024 ** 3));
export const fmtPct = (v) => (v === null || v === undefined ? "n/a" : `${Math.round(v)}%`);

/** "125 MB/s", as the server writes speeds in download_progress messages. */
export function fmtRate(megabytesPerSecond) {
  if (!megabytesPerSecond) return "0 KB/s";
  return megabytesPerSecond >= 1 ? `${Math.round(megabytesPerSecond)} MB/s` : `${Math.round(megabytesPerSecond * 1000)} KB/s`;
}

/** "2m 30s", "1h 5m", "45s", as the server writes ETAs. */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return null;
  const s = Math.max(0, Math.round(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (hours) return `${hours}h ${minutes}m`;
  return minutes ? `${minutes}m ${s % 60}s` : `${s % 60}s`;
}

/** A date (ISO string or seconds since the epoch) in the user's locale. */
export function fmtDate(value) {
  if (value === null || value === undefined) return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}

/** Call fn at most once per `ms`, the last call winning. */
export function throttle(fn, ms) {
  let timer = null;
  let pending = false;
  return function throttled() {
    if (timer) {
      pending = true;
      return;
    }
    fn();
    timer = setTimeout(function release() {
      timer = null;
      if (pending) {
        pending = false;
        throttled();
      }
    }, ms);
  };
}

/** Call fn `ms` after the last call. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
