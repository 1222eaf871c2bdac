// ComfyUI Dashboard: a sidebar tab in ComfyUI's editor. Live through the dashboard's WebSocket: what the open
// workflow needs, gauges with sparklines of the last minutes, active downloads with controls, quick preset install, queue summary, a link to the
// full page, and a toast when a download completes or fails. State lives here, outside the element render()
// gets, because the tab's element is new every time it opens.
//
// The live feed (live.js), the DOM helper and the formatting (dom.js), what the open workflow needs
// (workflow-needs.js) and the sparklines (sparkline.js) are the dashboard page's own modules, imported from the dashboard
// (<dashboard>/assets/...) once its health check answers: one client and one size rule for the page and the
// tab. A dashboard that failed to start answers 503 DASHBOARD_UNAVAILABLE to everything, those files
// included: the tab then says why in plain DOM, and stops trying.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const TAB_ID = "comfyui-dashboard";
const TOOLTIP = "ComfyUI Dashboard";
const CHANNELS = ["downloads", "queue", "system"];
const base = () => `${api.api_base || ""}/dashboard`;

const state = {
  connection: "connecting", // connecting | live | waiting | login | failed
  failure: null, // why the dashboard failed to start, as its health check says
  system: null,
  history: null, // the sparklines' samples (sparkline.js's SampleHistory), once imported
  downloads: new Map(),
  queue: null, // {pending, running, paused, held (a count)} or {error}
  presets: null,
  search: "",
  labels: new Map(), // download id -> what a download without a preset fetches
};
let view = null; // the open tab's elements
let live = null; // the feed, once the dashboard's modules are here
let presetsLoading = null;
let needs = null; // workflow-needs.js, once imported
let spark = null; // sparkline.js, once imported

// The page's DOM helper and formatting (dom.js), null until imported. The size rules are exported so that
// tests can hold them against the page's.
let h = null;
let fmtPct = null;
export let fmtBytes = null;
export let fmtRate = null;

// ---- talking to the dashboard ----

/** Ask the dashboard's health first, then import its modules and start the feed; tries again while ComfyUI is away. */
async function boot(tries = 0) {
  const failure = await whyUnavailable();
  if (failure) {
    fail(failure);
    return;
  }
  let dom;
  let feed;
  let workflows;
  try {
    const again = tries ? `?try=${tries}` : ""; // the browser remembers a failed import by its URL
    [dom, feed, workflows, spark] = await Promise.all(["dom", "live", "workflow-needs", "sparkline"]
      .map((name) => import(`${base()}/assets/${name}.js${again}`)));
  } catch {
    state.connection = "waiting";
    draw();
    setTimeout(() => boot(tries + 1), Math.min(15000, 500 * 2 ** tries));
    return;
  }
  ({ h, fmtBytes, fmtPct, fmtRate } = dom);
  state.history = new spark.SampleHistory(spark.SPARK_MINUTES);
  needs = workflows;
  needs.followWorkflows({ app, call, notify, tabOpen, redraw: drawWorkflow, started: (id, label) => {
    state.labels.set(id, label);
    draw();
  } });
  needs.workflowChanged(); // the workflow the editor opened while these were on their way
  live = new feed.Live(feed.socketUrl(`${base()}/ws`, location.href), CHANNELS, { beforeRetry: async () => {
    const reason = await whyUnavailable();
    if (reason) fail(reason); // it will not start by itself: no more tries until ComfyUI restarts
    return !reason;
  } });
  const connection = { idle: "connecting", connecting: "connecting", open: "live", waiting: "waiting", unauthorized: "login" };
  live.on("state", (feedState) => {
    if (state.connection === "failed") return;
    state.connection = connection[feedState]; // "unauthorized": auth is on and there is no session
    if (feedState === "open") readHistory(); // once, and again after a break: the samples missed meanwhile
    draw();
  });
  for (const type of ["snapshot", "system_status", "queue_update", "download_progress", "download_complete", "error"]) {
    live.on(type, onMessage);
  }
  if (view) addSections();
  live.start(); // at once, so completed downloads toast even while the tab is closed
}

/** The sparklines' samples of the last minutes, read from the dashboard; the live feed adds the rest. */
async function readHistory() {
  try {
    const body = await call("GET", `/api/system/history?minutes=${spark.SPARK_MINUTES}`);
    state.history.load(body.samples);
    draw();
  } catch {
    // no history (logged out, or the dashboard went away): the live samples still draw
  }
}

function fail(reason) {
  state.connection = "failed";
  state.failure = reason;
  draw();
}

/** The message of a dashboard that failed to start (its health answers DASHBOARD_UNAVAILABLE), else null. */
async function whyUnavailable() {
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
  if (m.type === "snapshot" && m.channel === "downloads") state.downloads = new Map((d.downloads || []).map((x) => [x.id, fromApi(x)]));
  else if ((m.type === "snapshot" && m.channel === "system") || m.type === "system_status") {
    state.system = d;
    state.history.add(spark.fromStatusMessage(d));
  } else if (m.type === "snapshot" && m.channel === "queue") {
    state.queue = d.error ? { error: d.error } : { pending: d.queue_pending.length, running: d.queue_running.length,
      paused: !!d.paused, held: (d.held || []).length };
  } else if (m.type === "queue_update") {
    state.queue = { pending: d.queue_pending, running: d.queue_running, paused: !!d.paused, held: d.held || 0 };
  }
  else if (m.type === "download_progress") {
    const old = state.downloads.get(d.download_id) || {};
    state.downloads.set(d.download_id, { ...old, id: d.download_id, preset_id: d.preset_id, status: d.status, progress: d.progress,
      speed: d.status === "downloading" ? d.speed : null, eta: d.status === "downloading" ? d.eta : null });
  } else if (m.type === "download_complete") {
    const old = state.downloads.get(d.download_id);
    if (old) old.status = d.status === "success" ? "completed" : d.status; // or failed, cancelled
    needs.downloadEnded(d);
    if (d.status === "success") {
      downloadName(d.download_id, d.preset_id, d.paths).then((name) => notify("success", `${name} installed`, `Downloaded in ${d.time_taken_seconds}s.`));
      const preset = state.presets && state.presets.find((p) => p.id === d.preset_id);
      if (preset) preset.installed = true;
      drawPresets();
    }
  } else if (m.type === "error" && d.details && d.details.download_id) {
    // The message says what to do (for a gated model: accept the licence, set HF_TOKEN).
    downloadName(d.details.download_id, d.details.preset_id).then((name) => notify("error", `${name}: download failed`, d.message));
  } else {
    return;
  }
  draw();
}

function fromApi(x) {
  if (!x.preset_id && x.path && !state.labels.has(x.id)) state.labels.set(x.id, x.path.split("/").pop());
  return { id: x.id, preset_id: x.preset_id, status: x.status, progress: x.progress,
    speed: x.status === "downloading" ? fmtRate(x.speed_mbps) : null, eta: null };
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

/** What a download fetches, as a name: its preset's (read first if this page has not yet: the tab may never
 * have been opened), else what the editor or the feed said of it, else its files. */
async function downloadName(downloadId, presetId, paths) {
  if (!presetId) {
    const files = paths && paths.length ? (paths.length === 1 ? paths[0].split("/").pop() : `${paths.length} model files`) : "A model";
    return state.labels.get(downloadId) || files;
  }
  if (!state.presets) await loadPresets();
  return nameOf(presetId);
}

/** Whether this tab is the sidebar's open one. */
function tabOpen() {
  const tabs = app.extensionManager && app.extensionManager.sidebarTab;
  return tabs && "activeSidebarTabId" in tabs ? tabs.activeSidebarTabId === TAB_ID : Boolean(view);
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
.cdash-spark { display: block; width: calc(100% - 132px); height: 16px; margin: 0 0 4px 76px; }
.cdash-spark polyline { stroke: #2f9bff; stroke-width: 1.5; stroke-linejoin: round; }
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
.cdash-needs { margin: 4px 0; padding-left: 16px; }
.cdash-needs li { margin: 2px 0; overflow-wrap: anywhere; }
`;

/** The tab's frame, in plain DOM (a dashboard that failed to start sends no dom.js): title, state, failure. */
function frame(root) {
  root.innerHTML = '<div class="cdash"><div class="cdash-head"><strong>Dashboard</strong><span class="cdash-state" '
    + 'role="status"></span></div><p class="cdash-failure" role="alert"></p></div>';
  return { root: root.firstChild, status: root.querySelector(".cdash-state"), failure: root.querySelector(".cdash-failure") };
}

/** The rest of the tab, made with the page's h() (so once dom.js is here). */
function addSections() {
  const search = h("input", { type: "search", placeholder: "Find a preset to install", "aria-label": "Find a preset to install",
    value: state.search, oninput: (event) => {
      state.search = event.target.value;
      drawPresets();
    } });
  Object.assign(view, {
    workflow: h("div"),
    vitals: h("div", { "aria-label": "System" }),
    downloads: h("div"),
    presets: h("div"),
    queue: h("div"),
    link: h("a", { href: `${base()}/`, target: "_blank", rel: "noopener", text: "Open the full dashboard ↗" }),
  });
  view.root.append(
    h("section", { "aria-label": "This workflow" }, h("h3", { text: "This workflow" }), view.workflow),
    h("section", { "aria-label": "System" }, h("h3", { text: "System" }), view.vitals),
    h("section", { "aria-label": "Downloads" }, h("h3", { text: "Downloads" }), view.downloads),
    h("section", { "aria-label": "Install a preset" }, h("h3", { text: "Install a preset" }), search, view.presets),
    h("section", { "aria-label": "Queue" }, h("h3", { text: "Queue" }), view.queue),
    view.link);
  draw();
  drawPresets(); // the search box keeps its words when the tab opens again: so do its results
}

function gaugeRow(label, percent, text) {
  const fill = h("span", { style: { width: `${Math.max(0, Math.min(100, percent || 0))}%` } });
  return h("div", { class: "cdash-row", role: "meter", "aria-label": label, "aria-valuemin": 0, "aria-valuemax": 100,
    "aria-valuenow": percent === null || percent === undefined ? null : Math.round(percent) },
  h("span", { text: label }), h("div", { class: "cdash-bar" }, fill), h("span", { class: "cdash-num", text }));
}

function render(root) {
  if (!document.getElementById("cdash-style")) {
    const style = document.createElement("style");
    style.id = "cdash-style";
    style.textContent = STYLE;
    document.head.append(style);
  }
  view = frame(root);
  if (live && live.state === "unauthorized") live.start(); // the user may have logged in since
  else if (live) live.reconnectNow(); // skip a reconnect's wait
  if (!state.presets && state.connection !== "failed") loadPresets();
  if (h) addSections();
  else draw();
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
  if (!view.vitals) return; // the rest of the tab comes with the dashboard's modules
  for (const part of [...view.root.querySelectorAll("section"), view.link]) part.hidden = failed;
  drawWorkflow();
  drawVitals();
  drawDownloads();
  drawQueue();
  if (focused && !view.root.contains(document.activeElement)) {
    const again = [...view.root.querySelectorAll("[aria-label]")].find((node) => node.getAttribute("aria-label") === focused);
    if (again) again.focus();
  }
}

function drawWorkflow() {
  if (view && view.workflow) view.workflow.replaceChildren(...needs.drawNeeds(h, fmtBytes).filter(Boolean));
}

function drawVitals() {
  const s = state.system;
  if (state.connection === "login") {
    view.vitals.replaceChildren(h("p", { class: "cdash-muted" }, "This dashboard needs a login: ",
      h("a", { href: `${base()}/`, target: "_blank", rel: "noopener", text: "log in on the full page" }), ", then reopen this tab."));
    return;
  }
  if (!s) {
    view.vitals.replaceChildren(h("p", { class: "cdash-muted", text: "Waiting for the first reading…" }));
    return;
  }
  const gpus = s.gpus || [];
  const history = state.history;
  view.vitals.replaceChildren(...[
    gaugeRow("CPU", s.cpu_usage, fmtPct(s.cpu_usage)),
    trend("CPU", history.series((x) => x.cpu_percent)),
    gaugeRow("RAM", s.memory_usage, fmtPct(s.memory_usage)),
    trend("RAM", history.series((x) => x.memory_percent)),
    gaugeRow("Disk", s.disk_usage, fmtPct(s.disk_usage)),
    ...(gpus.length ? gpus.flatMap((g) => [
      gaugeRow(`GPU ${g.index}`, g.utilization_percent, fmtPct(g.utilization_percent)),
      trend(`GPU ${g.index} utilization`, history.gpu(g.index, "utilization_percent")),
      gaugeRow(`VRAM ${g.index}`, g.memory_percent, g.temperature_c === null || g.temperature_c === undefined ? fmtPct(g.memory_percent) : `${g.temperature_c}°C`),
      trend(`GPU ${g.index} VRAM`, history.gpu(g.index, "memory_percent")),
    ]) : [h("p", { class: "cdash-muted", text: "No GPU detected." })])].filter(Boolean));
}

/** A sparkline of the last minutes under its gauge; null for a reading that never answered. */
function trend(label, points) {
  if (!points.length) return null;
  const line = spark.sparkline(label, "cdash-spark");
  line.set(points);
  return line.el;
}

function drawDownloads() {
  const active = [...state.downloads.values()].filter((d) => ["queued", "downloading", "paused"].includes(d.status));
  if (!active.length) {
    view.downloads.replaceChildren(h("p", { class: "cdash-muted", text: "No downloads running." }));
    return;
  }
  view.downloads.replaceChildren(...active.map((d) => {
    const name = d.preset_id ? nameOf(d.preset_id) : state.labels.get(d.id) || "Model download";
    const fill = h("span", { style: { width: `${d.progress || 0}%` } });
    const button = (label, method, path) => h("button", { type: "button", "aria-label": `${label} download of ${name}`, text: label,
      onclick: () => act(`${label} ${name}`, method, path) });
    return h("div", { class: "cdash-item", "data-download": d.id },
      h("div", { class: "cdash-item-head" }, h("span", { text: name }), h("span", { class: "cdash-num", text: `${Math.floor(d.progress || 0)}%` })),
      h("div", { class: "cdash-bar", role: "progressbar", "aria-label": `Progress of ${name}`, "aria-valuenow": Math.floor(d.progress || 0),
        "aria-valuemin": 0, "aria-valuemax": 100 }, fill),
      h("div", { class: "cdash-muted", text: d.status === "downloading" ? [d.speed, d.eta && `${d.eta} left`].filter(Boolean).join(" · ") : d.status }),
      h("div", { class: "cdash-buttons" },
        d.status === "paused" ? button("Resume", "POST", `/api/downloads/${encodeURIComponent(d.id)}/resume`)
          : button("Pause", "POST", `/api/downloads/${encodeURIComponent(d.id)}/pause`),
        button("Cancel", "DELETE", `/api/downloads/${encodeURIComponent(d.id)}`)));
  }));
}

function drawPresets() {
  if (!view || !view.presets) return; // the tab is closed (render() may run before its element is in the page)
  if (!state.presets) {
    view.presets.replaceChildren(h("p", { class: "cdash-muted", text: state.connection === "login" ? "" : "Loading presets…" }));
    return;
  }
  const words = state.search.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) {
    view.presets.replaceChildren(h("p", { class: "cdash-muted", text: `${state.presets.length} presets: type to search.` }));
    return;
  }
  const found = state.presets.filter((p) => words.every((w) => `${p.id} ${p.name} ${p.tags.join(" ")}`.toLowerCase().includes(w))).slice(0, 6);
  view.presets.replaceChildren(...(found.length ? found.map((p) => h("div", { class: "cdash-preset", "data-preset": p.id },
    h("span", { title: `${p.name} (${fmtBytes(p.download_bytes)})`, text: `${p.name} · ${fmtBytes(p.download_bytes)}` }),
    p.installed ? h("span", { class: "cdash-muted", text: "installed" })
      : p.requires ? h("span", { class: "cdash-muted", text: "needs a newer ComfyUI",
        title: `This ComfyUI has no ${(p.requires.comfyui_folders || []).join(", ")} model folder: update ComfyUI to install ${p.name}.` })
      : h("button", { type: "button", "aria-label": `Install ${p.name}`, text: "Install", onclick: async (event) => {
        event.currentTarget.disabled = true;
        const answer = await act(`Install ${p.name}`, "POST", `/api/presets/${encodeURIComponent(p.id)}/install`);
        if (answer && answer.status === "installed") notify("info", p.name, "Already installed.");
      } }))) : [h("p", { class: "cdash-muted", text: "No preset matches." })]));
}

function drawQueue() {
  const q = state.queue;
  if (!view.queueLine) { // made once per open tab: the Pause / Resume button keeps the focus across redraws
    view.queueLine = h("p");
    view.queuePause = h("button", { type: "button", onclick: async (event) => {
      const button = event.currentTarget;
      const resume = button.dataset.paused === "true";
      await act(resume ? "Resume the queue" : "Pause the queue", "POST", `/api/comfyui/queue/${resume ? "resume" : "pause"}`);
    } });
    view.queue.replaceChildren(view.queueLine, h("div", { class: "cdash-buttons" }, view.queuePause));
  }
  const known = q && !q.error;
  view.queueLine.className = known ? "" : "cdash-muted";
  view.queueLine.textContent = !q ? "…" : q.error ? `ComfyUI queue unavailable: ${q.error.message}`
    : [`${q.running} running · ${q.pending} pending`, q.paused ? "paused" : null, q.held ? `${q.held} held` : null]
      .filter(Boolean).join(" · ");
  view.queuePause.hidden = !known;
  view.queuePause.dataset.paused = String(!!(known && q.paused));
  view.queuePause.textContent = known && q.paused ? "Resume" : "Pause";
  view.queuePause.setAttribute("aria-label", known && q.paused ? "Resume the queue" : "Pause the queue");
}

app.registerExtension({
  name: "comfyui-dashboard.sidebar",
  async setup() {
    boot();
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
  afterConfigureGraph() { // a workflow was opened or loaded, or its tab switched to
    if (needs) needs.workflowChanged();
  },
});
