// The page's live state, fed by the WebSocket and a few API reads. Views read it and listen to topics:
// "system", "downloads", "queue" (any change), "queue_update" (ComfyUI's queue moved), "prompts",
// "models" (files changed on disk), "presets", "download_settings" (the limits downloads share),
// "reconnected" (the feed is back after a break: read again).

import { api, seg } from "./api.js";
import { fmtDuration, fmtRate } from "./dom.js";

const RECENT_KEY = "comfyui-dashboard.recent-prompts";
const RECENT_MAX = 12;

export const store = {
  system: null, // {cpu, memory, gpu, disk, gpus, memory_total_gb, disk_total_gb, comfyui, uptime, sampled_at}
  downloads: new Map(), // id -> download (API shape plus speedText / etaText)
  downloadSettings: null, // GET /api/downloads/settings answer; `yielding` follows the feed
  queue: { loaded: false, error: null, pending: 0, running: 0, current: null },
  prompts: new Map(), // prompt_id -> {prompt_id, type, node, value, max, nodes: Map(node -> state), images}
  history: new Map(), // prompt_id -> history record (GET /api/comfyui/history/{id})
  recent: loadRecent(), // prompt ids, newest first
  presets: null, // GET /api/presets answer, loaded on demand
  user: null,
  authEnabled: false,
  // Where ComfyUI's /view answers (output images): "../view" inside ComfyUI, "" when unknown.
  viewBase: document.documentElement.dataset.comfyuiView || "",
};

const listeners = new Map();

export function on(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
  return () => listeners.get(topic).delete(fn);
}

export function emit(topic, data) {
  for (const fn of [...(listeners.get(topic) || [])]) {
    try {
      fn(data);
    } catch (error) {
      console.error("store listener failed", topic, error);
    }
  }
}

// ---- system ----

/** Merge GET /api/system/status (full) or a system_status message (percentages and GPUs). */
export function setSystem(data, fromStatus) {
  const s = { ...(store.system || {}) };
  if (fromStatus) {
    Object.assign(s, {
      cpu: data.resources.cpu_percent, memory: data.resources.memory_percent, gpu: data.resources.gpu_percent,
      disk: data.disk ? data.disk.usage_percent : null, gpus: data.gpus, uptime: data.uptime,
      memory_total_gb: data.memory ? data.memory.total_gb : null,
      disk_total_gb: data.disk ? data.disk.total_gb : null, disk_used_gb: data.disk ? data.disk.used_gb : null,
      disk_path: data.disk ? data.disk.path : null, comfyui: data.services.comfyui, sampled_at: data.sampled_at,
    });
  } else {
    Object.assign(s, { cpu: data.cpu_usage, memory: data.memory_usage, gpu: data.gpu_usage, disk: data.disk_usage,
      gpus: data.gpus || [], sampled_at: data.sampled_at });
  }
  store.system = s;
  emit("system", s);
}

export async function refreshSystem() {
  setSystem(await api("api/system/status"), true);
}

// ---- downloads ----

function fromApi(d) {
  return { ...d, speedText: d.status === "downloading" ? fmtRate(d.speed_mbps) : null, etaText: fmtDuration(d.eta_seconds) };
}

export function setDownloads(list, yielding) {
  store.downloads = new Map(list.map((d) => [d.id, fromApi(d)]));
  if (store.downloadSettings && yielding !== undefined) store.downloadSettings.yielding = yielding;
  if (list.length) wantPresetNames();
  emit("downloads");
}

let namesLoading = null;
/** Downloads carry preset ids: fetch the presets once so rows and toasts can say their names. */
function wantPresetNames() {
  if (store.presets || namesLoading) return;
  namesLoading = loadPresets().then(() => emit("downloads"), () => {
    namesLoading = null;
  });
}

export function putDownload(d) {
  store.downloads.set(d.id, { ...(store.downloads.get(d.id) || {}), ...fromApi(d) });
  emit("downloads");
}

/** A download this page just started, from the answer of the request that started it. The feed may have
 * told of it already (a small file can finish before the answer arrives): what the feed said wins. */
export function startedDownload(d) {
  store.downloads.set(d.id, { ...fromApi(d), ...(store.downloads.get(d.id) || {}) });
  emit("downloads");
}

function onProgress(e) {
  wantPresetNames();
  const old = store.downloads.get(e.download_id) || { id: e.download_id, priority: "normal", files: {}, error: null };
  store.downloads.set(e.download_id, {
    ...old, id: e.download_id, preset_id: e.preset_id, status: e.status, progress: e.progress,
    current_file: e.current_file, speedText: e.status === "downloading" ? e.speed : null,
    etaText: e.status === "downloading" ? e.eta : null, files: { ...old.files, ...e.files },
    connections: e.connections ?? old.connections, error: e.status === "failed" ? old.error : null,
  });
  emit("downloads");
}

/** The limits every download shares: read them once, change them with `saveDownloadSettings`. */
export async function loadDownloadSettings() {
  setDownloadSettings(await api("api/downloads/settings"));
  return store.downloadSettings;
}

export async function saveDownloadSettings(changes) {
  setDownloadSettings(await api("api/downloads/settings", { method: "PUT", body: changes }));
  return store.downloadSettings;
}

function setDownloadSettings(settings) {
  store.downloadSettings = settings;
  emit("download_settings", settings);
}

/** The download a preset's card shows: its newest one. */
export function downloadOfPreset(presetId) {
  let best = null;
  for (const d of store.downloads.values()) {
    if (d.preset_id === presetId && (!best || (d.created_at || Infinity) >= (best.created_at || 0))) best = d;
  }
  return best;
}

export const ACTIVE = new Set(["queued", "downloading", "paused"]);

export const downloadActions = {
  pause: async (id) => putDownload({ ...store.downloads.get(id), ...(await api(`api/downloads/${seg(id)}/pause`, { method: "POST" })) }),
  resume: async (id) => putDownload({ ...store.downloads.get(id), ...(await api(`api/downloads/${seg(id)}/resume`, { method: "POST" })) }),
  cancel: async (id) => putDownload({ ...store.downloads.get(id), ...(await api(`api/downloads/${seg(id)}`, { method: "DELETE" })) }),
  priority: async (id, priority) => putDownload(await api(`api/downloads/${seg(id)}/priority`, { method: "POST", body: { priority } })),
};

// ---- presets ----

let presetsLoading = null;
/** GET /api/presets once (or again with `force`); concurrent callers share one request. */
export function loadPresets(force = false) {
  if (store.presets && !force) return Promise.resolve(store.presets);
  if (!presetsLoading) {
    presetsLoading = api("api/presets").then((data) => {
      store.presets = data;
      emit("presets");
      return data;
    }).finally(() => {
      presetsLoading = null;
    });
  }
  return presetsLoading;
}

export function presetName(id) {
  const preset = store.presets && store.presets.presets.find((p) => p.id === id);
  return preset ? preset.name : id;
}

function markInstalled(presetId, installed) {
  const preset = store.presets && store.presets.presets.find((p) => p.id === presetId);
  if (preset && preset.installed !== installed) {
    preset.installed = installed;
    emit("presets");
  }
}

export async function installPreset(presetId) {
  const answer = await api(`api/presets/${seg(presetId)}/install`, { method: "POST" });
  if (answer.download_id && !store.downloads.has(answer.download_id)) {
    startedDownload({ id: answer.download_id, preset_id: presetId, status: "queued", progress: 0, priority: "normal",
      files: {}, created_at: Date.now() / 1000, error: null });
  }
  if (answer.status === "installed") markInstalled(presetId, true);
  return answer;
}

export async function uninstallPreset(presetId, force = false) {
  const answer = await api(`api/presets/${seg(presetId)}`, { method: "DELETE", query: force ? { force: true } : undefined });
  markInstalled(presetId, false);
  emit("models");
  return answer;
}

// ---- queue and prompts ----

// store.queue also says the dashboard's part: `paused` and `held` (how many prompts it holds); `items` is
// the last GET /api/comfyui/queue answer (its `held` lists them, `restored` says what came back).
function setQueueSnapshot(data) {
  if (data.error) {
    store.queue = { loaded: true, error: data.error, pending: 0, running: 0, current: null, paused: false, held: 0 };
  } else {
    store.queue = { loaded: true, error: null, pending: data.queue_pending.length, running: data.queue_running.length,
      current: data.queue_running[0] || null, paused: !!data.paused, held: (data.held || []).length, items: data };
  }
  emit("queue");
}

/** GET /api/comfyui/queue into the store (answers COMFYUI_UNAVAILABLE as an error state, not a throw). */
export async function refreshQueue() {
  try {
    setQueueSnapshot(await api("api/comfyui/queue"));
  } catch (error) {
    if (error.status === 401) throw error;
    setQueueSnapshot({ error: { code: error.code, message: error.message, details: error.details } });
  }
}

// Prompts that ended while their history still said pending or running (ComfyUI announces the end a
// moment before it records it): asked again when the queue next changes.
const unsettled = new Set();
const ENDED = ["completed", "failed", "interrupted"];

function onQueueUpdate(data) {
  const control = "paused" in data ? { paused: !!data.paused, held: data.held ?? 0 } : {};
  const controlChanged = "paused" in data && (control.paused !== store.queue.paused || control.held !== store.queue.held);
  store.queue = { ...store.queue, loaded: true, error: null, pending: data.queue_pending, running: data.queue_running,
    current: data.current_task, ...control };
  for (const id of unsettled) loadHistory(id);
  emit("queue");
  emit("queue_update", { controlChanged });
}

function prompt(id) {
  if (!store.prompts.has(id)) store.prompts.set(id, { prompt_id: id, type: "queued", node: null, value: 0, max: 1, nodes: new Map(), images: [] });
  return store.prompts.get(id);
}

function onWorkflowProgress(e) {
  if (!e.prompt_id) return;
  const p = prompt(e.prompt_id);
  if (e.type === "cached") for (const node of e.nodes || []) p.nodes.set(node, "cached");
  if (e.type === "executing" || e.type === "progress") {
    if (p.node && p.node !== e.node && p.nodes.get(p.node) === "running") p.nodes.set(p.node, "done");
    if (e.node) p.nodes.set(e.node, "running");
    p.node = e.node;
  }
  if (e.type === "progress") {
    p.value = e.value;
    p.max = e.max || 1;
  } else if (e.type === "executing") {
    p.value = 0;
    p.max = 1;
  }
  p.type = e.type;
  if (ENDED.includes(e.type)) {
    if (p.node && p.nodes.get(p.node) === "running") p.nodes.set(p.node, e.type === "completed" ? "done" : "failed");
    rememberPrompt(e.prompt_id);
    loadHistory(e.prompt_id);
  } else if (e.type === "started") {
    rememberPrompt(e.prompt_id);
  }
  emit("prompts");
}

function onWorkflowOutput(e) {
  if (!e.prompt_id || !e.output) return;
  const p = prompt(e.prompt_id);
  for (const image of e.output.images || []) p.images.push(image);
  emit("prompts");
}

export function rememberPrompt(id) {
  store.recent = [id, ...store.recent.filter((x) => x !== id)].slice(0, RECENT_MAX);
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify(store.recent));
  } catch {
    /* private mode: remember for this page only */
  }
}

function loadRecent() {
  try {
    const ids = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
    return Array.isArray(ids) ? ids.filter((x) => typeof x === "string").slice(0, RECENT_MAX) : [];
  } catch {
    return [];
  }
}

/** Fetch one prompt's history record; a prompt ComfyUI forgot (PROMPT_NOT_FOUND) leaves the recent list. */
export async function loadHistory(id) {
  try {
    const record = await api(`api/comfyui/history/${seg(id)}`);
    store.history.set(id, record);
    const ended = ENDED.includes(store.prompts.get(id)?.type);
    if (ended && (record.status === "pending" || record.status === "running")) unsettled.add(id);
    else unsettled.delete(id);
  } catch (error) {
    if (error.code === "PROMPT_NOT_FOUND") {
      unsettled.delete(id);
      store.recent = store.recent.filter((x) => x !== id);
      try {
        localStorage.setItem(RECENT_KEY, JSON.stringify(store.recent));
      } catch {
        /* ignore */
      }
    }
    return;
  }
  emit("prompts");
}

/** URL of an output file on ComfyUI's /view, or null where the page cannot reach it (standalone). */
export function viewUrl(file) {
  if (!store.viewBase) return null;
  const params = new URLSearchParams({ filename: file.filename, subfolder: file.subfolder || "", type: file.type || "output" });
  return `${store.viewBase}?${params}`;
}

// ---- wiring the feed ----

/** Route the feed's messages into the store; `notify(kind, payload)` shows download and workflow news. */
export function connectStore(live, notify) {
  live.on("snapshot", (m) => {
    if (m.channel === "downloads") setDownloads(m.data.downloads || [], m.data.yielding);
    else if (m.channel === "system") setSystem(m.data, false);
    else if (m.channel === "queue") setQueueSnapshot(m.data);
  });
  live.on("system_status", (m) => setSystem(m.data, false));
  live.on("download_progress", (m) => onProgress(m.data));
  live.on("download_settings", (m) => setDownloadSettings(m.data));
  live.on("models_changed", () => emit("models")); // another process installed, removed or changed files
  live.on("library_progress", (m) => emit("library", m.data)); // the library scan
  live.on("download_complete", (m) => {
    const d = store.downloads.get(m.data.download_id);
    if (d) {
      d.status = m.data.status === "success" ? "completed" : m.data.status; // or failed, cancelled
      if (d.status === "completed") d.progress = 100;
      d.speedText = d.etaText = null;
    }
    if (m.data.status === "success") markInstalled(m.data.preset_id, true);
    emit("downloads");
    emit("models");
    notify("download_complete", m.data);
  });
  live.on("error", (m) => {
    const details = (m.data && m.data.details) || {};
    if (details.download_id) {
      const d = store.downloads.get(details.download_id);
      if (d) d.error = m.data;
      emit("downloads");
      notify("download_error", m.data);
    } else if (m.data && m.data.code === "WORKFLOW_FAILED") {
      notify("workflow_error", m.data);
    }
  });
  live.on("queue_update", (m) => onQueueUpdate(m.data));
  live.on("workflow_progress", (m) => onWorkflowProgress(m.data));
  live.on("workflow_output", (m) => onWorkflowOutput(m.data));
}
