// ComfyUI Dashboard: a sidebar tab in ComfyUI's editor. Live through the dashboard's WebSocket: gauges,
// active downloads with controls, quick preset install, queue summary, a link to the full page, and a toast
// when a download completes or fails. Plain DOM; state lives here, outside the element render() gets,
// because the tab's element is new every time it opens. A dashboard that failed to start says why
// (GET /dashboard/health answers 503 DASHBOARD_UNAVAILABLE) and the tab stops trying to connect.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const TAB_ID = "comfyui-dashboard";
const TOOLTIP = "ComfyUI Dashboard";
const base = () => `${api.api_base || ""}/dashboard`;

const state = {
  connection: "connecting", // connecting | live | waiting | login | failed
  failure: null, // why the dashboard failed to start, as its health check says
  system: null,
  downloads: new Map(),
  queue: null, // {pending, running} or {error}
  presets: null,
  search: "",
};
let view = null; // the open tab's elements
let socket = null;
let attempt = 0;
let retryTimer = null;
let checking = false; // asking /dashboard/health why the socket closed
let presetsLoading = null;

// ---- talking to the dashboard ----

function socketUrl() {
  const url = new URL(`${base()}/ws`, location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

function connect() {
  clearTimeout(retryTimer);
  if (state.connection === "failed") return;
  state.connection = "connecting";
  draw();
  const ws = new WebSocket(socketUrl());
  socket = ws;
  ws.onopen = () => {
    attempt = 0;
    ws.send(JSON.stringify({ type: "subscribe", channels: ["downloads", "queue", "system"] }));
  };
  ws.onmessage = (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    onMessage(message);
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    socket = null;
    if (event.code === 4401) { // auth is on and there is no session: log in on the full page
      state.connection = "login";
      draw();
      return;
    }
    state.connection = "waiting";
    draw();
    checking = true;
    whyClosed().then((failure) => {
      checking = false;
      if (socket !== null || state.connection !== "waiting") return;
      if (failure) {
        state.connection = "failed"; // it will not start by itself: no more tries until ComfyUI restarts
        state.failure = failure;
        draw();
        return;
      }
      const delay = Math.min(30000, 500 * 2 ** attempt++) * (0.75 + Math.random() / 2);
      retryTimer = setTimeout(connect, delay);
    });
  };
}

/** The message of a dashboard that failed to start (its health answers DASHBOARD_UNAVAILABLE), else null. */
async function whyClosed() {
  try {
    const response = await fetch(`${base()}/health`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status !== 503) return null;
    const error = ((await response.json()) || {}).error || {};
    return error.code === "DASHBOARD_UNAVAILABLE" ? error.message : null;
  } catch {
    return null; // ComfyUI itself is away (restarting): keep trying
  }
}

function onMessage(m) {
  const d = m.data || {};
  if (m.type === "subscribed") state.connection = "live";
  else if (m.type === "snapshot" && m.channel === "downloads") state.downloads = new Map((d.downloads || []).map((x) => [x.id, fromApi(x)]));
  else if (m.type === "snapshot" && m.channel === "system") state.system = d;
  else if (m.type === "snapshot" && m.channel === "queue") {
    state.queue = d.error ? { error: d.error } : { pending: d.queue_pending.length, running: d.queue_running.length };
  } else if (m.type === "system_status") state.system = d;
  else if (m.type === "queue_update") state.queue = { pending: d.queue_pending, running: d.queue_running };
  else if (m.type === "download_progress") {
    const old = state.downloads.get(d.download_id) || {};
    state.downloads.set(d.download_id, { ...old, id: d.download_id, preset_id: d.preset_id, status: d.status, progress: d.progress,
      speed: d.status === "downloading" ? d.speed : null, eta: d.status === "downloading" ? d.eta : null });
  } else if (m.type === "download_complete") {
    const old = state.downloads.get(d.download_id);
    if (old) old.status = d.status === "success" ? "completed" : d.status; // or failed, cancelled
    if (d.status === "success") {
      named(d.preset_id).then((name) => notify("success", `${name} installed`, `Downloaded in ${d.time_taken_seconds}s.`));
      const preset = state.presets && state.presets.find((p) => p.id === d.preset_id);
      if (preset) preset.installed = true;
      drawPresets();
    }
  } else if (m.type === "error" && d.details && d.details.download_id) {
    // The message says what to do (for a gated model: accept the licence, set HF_TOKEN).
    named(d.details.preset_id).then((name) => notify("error", `${name}: download failed`, d.message));
  } else {
    return;
  }
  draw();
}

function fromApi(x) {
  return { id: x.id, preset_id: x.preset_id, status: x.status, progress: x.progress,
    speed: x.status === "downloading" ? fmtRate(x.speed_mbps) : null, eta: null };
}

// ---- formatting: the same rules as the page's (web/page/dom.js), which this file cannot import ----

const SIZE_UNITS = [["KB", 1e3, 0], ["MB", 1e6, 1], ["GB", 1e9, 1], ["TB", 1e12, 2]];

/** 512 B, 12 KB, 62.9 MB, 14.5 GB, 1.20 TB: decimal units of bytes, as web/page/dom.js writes them. */
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

/** "125 MB/s", as web/page/dom.js writes speeds. */
export function fmtRate(megabytesPerSecond) {
  if (!megabytesPerSecond) return "0 KB/s";
  return megabytesPerSecond >= 1 ? `${Math.round(megabytesPerSecond)} MB/s` : `${Math.round(megabytesPerSecond * 1000)} KB/s`;
}

function notify(severity, summary, detail) {
  const toast = app.extensionManager && app.extensionManager.toast;
  if (toast) toast.add({ severity, summary, detail, life: severity === "error" ? 10000 : 5000 });
}

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") { // cookie sessions may change state only with JSON
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body || {});
  }
  const response = await fetch(base() + path, init);
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error((data && data.error && data.error.message) || `HTTP ${response.status}`);
  return data;
}

async function act(what, method, path, body) {
  try {
    return await call(method, path, body);
  } catch (error) {
    notify("error", "Dashboard", `${what}: ${error.message}`);
    return null;
  }
}

const nameOf = (presetId) => {
  const preset = state.presets && state.presets.find((p) => p.id === presetId);
  return preset ? preset.name : presetId;
};

/** A preset's name, reading the presets first if this page has not yet (the tab may never have been opened). */
async function named(presetId) {
  if (!state.presets) await loadPresets();
  return nameOf(presetId);
}

// ---- the tab ----

const STYLE = `
.cdash { display: flex; flex-direction: column; gap: 12px; padding: 10px; font-size: 13px; color: var(--fg-color, #e0e0e0); }
.cdash h3 { margin: 0 0 6px; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--descrip-text, #a3a3a3); }
.cdash-head { display: flex; justify-content: space-between; align-items: center; gap: 8px; }
.cdash-head strong { font-size: 15px; }
.cdash-state { font-size: 11px; padding: 1px 8px; border-radius: 999px; border: 1px solid var(--border-color, #444); }
.cdash-state[data-state="live"] { color: #4cc38a; }
.cdash-state[data-state="waiting"], .cdash-state[data-state="connecting"] { color: #e8b33e; }
.cdash-state[data-state="login"], .cdash-state[data-state="failed"] { color: #f06a6a; }
.cdash-failure { margin: 0; padding: 8px; border: 1px solid #a33; border-radius: 6px; background: rgba(160, 40, 40, .15);
  overflow-wrap: anywhere; }
.cdash-row { display: grid; grid-template-columns: 70px 1fr 56px; gap: 6px; align-items: center; margin: 3px 0; }
.cdash-bar { height: 6px; border-radius: 999px; background: var(--comfy-input-bg, #333); overflow: hidden; }
.cdash-bar > span { display: block; height: 100%; background: #2f9bff; }
.cdash-num { text-align: right; font-variant-numeric: tabular-nums; }
.cdash-muted { color: var(--descrip-text, #a3a3a3); }
.cdash-item { border: 1px solid var(--border-color, #444); border-radius: 6px; padding: 6px 8px; margin-bottom: 6px; }
.cdash-item-head { display: flex; justify-content: space-between; gap: 6px; }
.cdash-item-head span:first-child { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.cdash-buttons { display: flex; gap: 6px; margin-top: 6px; flex-wrap: wrap; }
.cdash button { font: inherit; font-size: 12px; color: inherit; background: var(--comfy-input-bg, #333); border: 1px solid var(--border-color, #555);
  border-radius: 5px; padding: 3px 10px; cursor: pointer; }
.cdash button:hover { filter: brightness(1.25); }
.cdash button:focus-visible, .cdash input:focus-visible, .cdash a:focus-visible { outline: 2px solid #8cc8ff; outline-offset: 1px; }
.cdash input { width: 100%; box-sizing: border-box; font: inherit; color: inherit; background: var(--comfy-input-bg, #222);
  border: 1px solid var(--border-color, #555); border-radius: 5px; padding: 5px 8px; }
.cdash a { color: #4aa8ff; }
.cdash-preset { display: flex; justify-content: space-between; align-items: center; gap: 6px; padding: 4px 0; }
.cdash-preset span { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
`;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

function gaugeRow(label, percent, text) {
  const fill = el("span");
  fill.style.width = `${Math.max(0, Math.min(100, percent || 0))}%`;
  return el("div", { class: "cdash-row", role: "meter", "aria-label": label, "aria-valuemin": 0, "aria-valuemax": 100,
    "aria-valuenow": percent === null || percent === undefined ? null : Math.round(percent) },
  el("span", { text: label }), el("div", { class: "cdash-bar" }, fill), el("span", { class: "cdash-num", text }));
}

const pct = (v) => (v === null || v === undefined ? "n/a" : `${Math.round(v)}%`);

function render(root) {
  if (!document.getElementById("cdash-style")) document.head.append(el("style", { id: "cdash-style", text: STYLE }));
  const search = el("input", { type: "search", placeholder: "Find a preset to install", "aria-label": "Find a preset to install",
    value: state.search, oninput: (event) => {
      state.search = event.target.value;
      drawPresets();
    } });
  view = {
    root: el("div", { class: "cdash" }),
    status: el("span", { class: "cdash-state", role: "status" }),
    failure: el("p", { class: "cdash-failure", role: "alert" }),
    vitals: el("div", { "aria-label": "System" }),
    downloads: el("div"),
    presets: el("div"),
    queue: el("div"),
    link: el("a", { href: `${base()}/`, target: "_blank", rel: "noopener", text: "Open the full dashboard ↗" }),
  };
  view.root.append(
    el("div", { class: "cdash-head" }, el("strong", { text: "Dashboard" }), view.status),
    view.failure,
    el("section", { "aria-label": "System" }, el("h3", { text: "System" }), view.vitals),
    el("section", { "aria-label": "Downloads" }, el("h3", { text: "Downloads" }), view.downloads),
    el("section", { "aria-label": "Install a preset" }, el("h3", { text: "Install a preset" }), search, view.presets),
    el("section", { "aria-label": "Queue" }, el("h3", { text: "Queue" }), view.queue),
    view.link);
  root.replaceChildren(view.root);
  if (!socket && !checking) connect(); // after a 4401 (the user may have logged in since), or skipping a reconnect's wait
  if (!state.presets && state.connection !== "failed") loadPresets();
  draw();
  drawPresets(); // the search box keeps its words when the tab opens again: so do its results
}

/** Read the preset list once at a time; a failure leaves it null (tried again when the tab opens). */
function loadPresets() {
  if (!presetsLoading) {
    presetsLoading = call("GET", "/api/presets").then((body) => {
      state.presets = body.presets;
    }, () => {
      state.presets = null;
    }).finally(() => {
      presetsLoading = null;
      drawPresets();
    });
  }
  return presetsLoading;
}

function draw() {
  if (!view) return; // the tab is closed (render() may run before its element is in the page)
  // Sections are redrawn whole; give the focus back to the control that had it.
  const focused = view.root.contains(document.activeElement) ? document.activeElement.getAttribute("aria-label") : null;
  const labels = { connecting: "connecting…", live: "live", waiting: "reconnecting…", login: "log in", failed: "failed" };
  view.status.dataset.state = state.connection;
  view.status.textContent = labels[state.connection];
  const failed = state.connection === "failed";
  view.failure.hidden = !failed;
  view.failure.textContent = failed ? state.failure : "";
  for (const part of [...view.root.querySelectorAll("section"), view.link]) part.hidden = failed;
  drawVitals();
  drawDownloads();
  drawQueue();
  if (focused && !view.root.contains(document.activeElement)) {
    const again = [...view.root.querySelectorAll("[aria-label]")].find((node) => node.getAttribute("aria-label") === focused);
    if (again) again.focus();
  }
}

function drawVitals() {
  const s = state.system;
  if (state.connection === "login") {
    view.vitals.replaceChildren(el("p", { class: "cdash-muted" }, "This dashboard needs a login: ",
      el("a", { href: `${base()}/`, target: "_blank", rel: "noopener", text: "log in on the full page" }), ", then reopen this tab."));
    return;
  }
  if (!s) {
    view.vitals.replaceChildren(el("p", { class: "cdash-muted", text: "Waiting for the first reading…" }));
    return;
  }
  const gpus = s.gpus || [];
  view.vitals.replaceChildren(
    gaugeRow("CPU", s.cpu_usage, pct(s.cpu_usage)),
    gaugeRow("RAM", s.memory_usage, pct(s.memory_usage)),
    gaugeRow("Disk", s.disk_usage, pct(s.disk_usage)),
    ...(gpus.length ? gpus.flatMap((g) => [
      gaugeRow(`GPU ${g.index}`, g.utilization_percent, pct(g.utilization_percent)),
      gaugeRow(`VRAM ${g.index}`, g.memory_percent, g.temperature_c === null || g.temperature_c === undefined ? pct(g.memory_percent) : `${g.temperature_c}°C`),
    ]) : [el("p", { class: "cdash-muted", text: "No GPU detected." })]));
}

function drawDownloads() {
  const active = [...state.downloads.values()].filter((d) => ["queued", "downloading", "paused"].includes(d.status));
  if (!active.length) {
    view.downloads.replaceChildren(el("p", { class: "cdash-muted", text: "No downloads running." }));
    return;
  }
  view.downloads.replaceChildren(...active.map((d) => {
    const name = nameOf(d.preset_id);
    const fill = el("span");
    fill.style.width = `${d.progress || 0}%`;
    const button = (label, method, path) => el("button", { type: "button", "aria-label": `${label} download of ${name}`, text: label,
      onclick: () => act(`${label} ${name}`, method, path) });
    return el("div", { class: "cdash-item", "data-download": d.id },
      el("div", { class: "cdash-item-head" }, el("span", { text: name }), el("span", { class: "cdash-num", text: `${Math.floor(d.progress || 0)}%` })),
      el("div", { class: "cdash-bar", role: "progressbar", "aria-label": `Progress of ${name}`, "aria-valuenow": Math.floor(d.progress || 0),
        "aria-valuemin": 0, "aria-valuemax": 100 }, fill),
      el("div", { class: "cdash-muted", text: d.status === "downloading" ? [d.speed, d.eta && `${d.eta} left`].filter(Boolean).join(" · ") : d.status }),
      el("div", { class: "cdash-buttons" },
        d.status === "paused" ? button("Resume", "POST", `/api/downloads/${encodeURIComponent(d.id)}/resume`)
          : button("Pause", "POST", `/api/downloads/${encodeURIComponent(d.id)}/pause`),
        button("Cancel", "DELETE", `/api/downloads/${encodeURIComponent(d.id)}`)));
  }));
}

function drawPresets() {
  if (!view) return; // the tab is closed (render() may run before its element is in the page)
  if (!state.presets) {
    view.presets.replaceChildren(el("p", { class: "cdash-muted", text: state.connection === "login" ? "" : "Loading presets…" }));
    return;
  }
  const words = state.search.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) {
    view.presets.replaceChildren(el("p", { class: "cdash-muted", text: `${state.presets.length} presets: type to search.` }));
    return;
  }
  const found = state.presets.filter((p) => words.every((w) => `${p.id} ${p.name} ${p.tags.join(" ")}`.toLowerCase().includes(w))).slice(0, 6);
  view.presets.replaceChildren(...(found.length ? found.map((p) => el("div", { class: "cdash-preset", "data-preset": p.id },
    el("span", { title: `${p.name} (${fmtBytes(p.download_bytes)})`, text: `${p.name} · ${fmtBytes(p.download_bytes)}` }),
    p.installed ? el("span", { class: "cdash-muted", text: "installed" })
      : p.requires ? el("span", { class: "cdash-muted", text: "needs a newer ComfyUI",
        title: `This ComfyUI has no ${(p.requires.comfyui_folders || []).join(", ")} model folder: update ComfyUI to install ${p.name}.` })
      : el("button", { type: "button", "aria-label": `Install ${p.name}`, text: "Install", onclick: async (event) => {
        event.currentTarget.disabled = true;
        const answer = await act(`Install ${p.name}`, "POST", `/api/presets/${encodeURIComponent(p.id)}/install`);
        if (answer && answer.status === "installed") notify("info", p.name, "Already installed.");
      } }))) : [el("p", { class: "cdash-muted", text: "No preset matches." })]));
}

function drawQueue() {
  const q = state.queue;
  view.queue.replaceChildren(!q ? el("p", { class: "cdash-muted", text: "…" })
    : q.error ? el("p", { class: "cdash-muted", text: `ComfyUI queue unavailable: ${q.error.message}` })
      : el("p", { text: `${q.running} running · ${q.pending} pending` }));
}

app.registerExtension({
  name: "comfyui-dashboard.sidebar",
  async setup() {
    connect(); // at once, so completed downloads toast even while the tab is closed
    app.extensionManager.registerSidebarTab({
      id: TAB_ID,
      icon: "pi pi-chart-bar",
      title: "Dashboard",
      tooltip: TOOLTIP,
      type: "custom",
      render,
      destroy() {
        view = null;
      },
    });
  },
});
