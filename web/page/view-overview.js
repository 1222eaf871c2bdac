// Overview: CPU, RAM, disk and GPU gauges with sparklines of the last minutes, storage by model type, active
// downloads, queue summary.

import { api } from "./api.js";
import { fill, fmtBytes, fmtGb, h, place } from "./dom.js";
import { freeMemoryControl } from "./queue-control.js";
import { SPARK_MINUTES, SampleHistory, sparkline } from "./sparkline.js";
import { ACTIVE, on, refreshSystem, store } from "./store.js";
import { bar, downloadRow, errorView, gauge, notice } from "./widgets.js";

export const title = "Overview";

// The sparklines' samples, kept while other views are open: read once, then added from the live feed.
const history = new SampleHistory(SPARK_MINUTES);
let historyRead = null;

function followHistory() {
  if (historyRead) return historyRead;
  const addLatest = () => {
    const s = store.system;
    if (s) history.add({ timestamp: s.sampled_at, cpu_percent: s.cpu, memory_percent: s.memory, gpus: s.gpus || [] });
  };
  addLatest();
  on("system", addLatest);
  const read = () => api(`api/system/history?minutes=${SPARK_MINUTES}`).then((body) => history.load(body.samples), () => {});
  on("reconnected", read); // the samples missed while the feed was away
  historyRead = read();
  return historyRead;
}

export function mount(root) {
  const cpu = gauge("CPU");
  const ram = gauge("RAM");
  const disk = gauge("Disk");
  const cpuTrend = trendRow("CPU", sparkline("CPU"));
  const ramTrend = trendRow("RAM", sparkline("RAM"));
  const gpuArea = h("div", { class: "gpu-list" });
  const storageArea = h("div", { class: "storage" }, h("p", { class: "muted", text: "Reading storage…" }));
  const downloadsArea = h("div");
  const queueArea = h("div");
  fill(root,
    h("h1", { class: "view-title", text: "Overview" }),
    h("div", { class: "overview-grid" },
      section("System", "system", h("div", { class: "gauges" }, cpu.el, ram.el, disk.el),
        h("div", { class: "sparklines" }, cpuTrend.el, ramTrend.el)),
      section("GPUs", "gpus", gpuArea, h("div", { class: "gpu-free" }, freeMemoryControl())),
      section("Storage", "storage", storageArea),
      section("Active downloads", "downloads", downloadsArea, h("a", { href: "#/downloads", class: "more", text: "All downloads" })),
      section("Queue", "queue", queueArea, h("a", { href: "#/queue", class: "more", text: "Open the queue" }))));

  let gpuCards = new Map();
  const drawSystem = () => {
    const s = store.system;
    if (!s) return;
    cpuTrend.set(history.series((x) => x.cpu_percent));
    ramTrend.set(history.series((x) => x.memory_percent));
    cpu.set(s.cpu);
    ram.set(s.memory, s.memory_total_gb ? `${fmtGb((s.memory / 100) * s.memory_total_gb)} of ${fmtGb(s.memory_total_gb)}` : "");
    disk.set(s.disk, s.disk_total_gb ? `${fmtGb(s.disk_used_gb)} of ${fmtGb(s.disk_total_gb)}` : "");
    const gpus = s.gpus || [];
    if (!gpus.length) {
      gpuCards = new Map();
      if (!gpuArea.querySelector(".no-gpu")) {
        fill(gpuArea, h("p", { class: "no-gpu muted" }, h("strong", { text: "No GPU detected. " }),
          "No GPU reading answered (NVIDIA through NVML, AMD through amdsmi or sysfs); ComfyUI runs on the CPU here."));
      }
      return;
    }
    if (gpuCards.size !== gpus.length || gpus.some((g) => !gpuCards.has(g.index))) {
      gpuCards = new Map(gpus.map((g) => [g.index, gpuCard(g)]));
      fill(gpuArea, [...gpuCards.values()].map((c) => c.el));
    }
    for (const g of gpus) gpuCards.get(g.index).update(g);
  };

  const downloadsEmpty = h("p", { class: "muted", text: "No downloads running." });
  const downloadsList = h("ul", { class: "download-list", "aria-label": "Active downloads" });
  fill(downloadsArea, downloadsEmpty, downloadsList);
  let rows = new Map(); // kept between messages, so a focused button stays where it is
  let named = !!store.presets;
  const drawDownloads = () => {
    if (!named && store.presets) { // rows made before the preset names arrived: make them again
      named = true;
      rows = new Map();
    }
    const active = [...store.downloads.values()].filter((d) => ACTIVE.has(d.status) || d.status === "failed").slice(0, 5);
    const next = new Map(active.map((d) => [d.id, rows.get(d.id) || downloadRow(d, { compact: true })]));
    for (const d of active) next.get(d.id).update(d);
    rows = next;
    place(downloadsList, active.map((d) => rows.get(d.id).el));
    downloadsEmpty.hidden = active.length > 0;
  };

  const drawQueue = () => {
    const q = store.queue;
    if (!q.loaded) {
      fill(queueArea, h("p", { class: "muted", text: "Asking ComfyUI…" }));
    } else if (q.error) {
      fill(queueArea, notice("warn", errorView(q.error)));
    } else {
      const p = q.current && store.prompts.get(q.current.prompt_id);
      fill(queueArea, h("dl", { class: "stats" },
        stat("Running", q.running), stat("Pending", q.pending),
        p && p.node ? stat("Node", `${p.node}${p.max > 1 ? ` · ${p.value}/${p.max}` : ""}`) : null));
    }
  };

  const drawStorage = async () => {
    try {
      const [storage, types] = await Promise.all([api("api/system/storage"), api("api/models/types")]);
      fill(storageArea, storageView(storage, types.types));
    } catch (error) {
      if (error.status !== 401) fill(storageArea, notice("error", errorView(error)));
    }
  };

  let mounted = true;
  followHistory().then(() => {
    if (mounted) drawSystem();
  });
  drawSystem();
  drawDownloads();
  drawQueue();
  drawStorage();
  const offs = [on("system", drawSystem), on("downloads", drawDownloads), on("queue", drawQueue), on("prompts", drawQueue),
    on("models", () => {
      drawStorage();
      refreshSystem().catch(() => {}); // the disk's used and free space
    }), on("reconnected", drawStorage)];
  return () => {
    mounted = false;
    offs.forEach((off) => off());
  };
}

/** A labelled sparkline, hidden while its reading has no values (a GPU that never says its utilization). */
function trendRow(label, trend) {
  const el = h("div", { class: "spark-row" }, h("span", { class: "spark-label", "aria-hidden": "true", text: label }), trend.el);
  return {
    el,
    set(points) {
      trend.set(points);
      el.hidden = !points.length;
    },
  };
}

function section(title, id, ...children) {
  const headingId = `overview-${id}`;
  return h("section", { class: `panel panel-${id}`, "aria-labelledby": headingId },
    h("h2", { id: headingId, text: title }), ...children);
}

function stat(label, value) {
  return h("div", { class: "stat" }, h("dt", { text: label }), h("dd", { text: String(value) }));
}

function gpuCard(g) {
  const util = gauge(`GPU ${g.index} utilization`);
  const vram = bar(`GPU ${g.index} VRAM`, { meter: true });
  const vramText = h("span");
  const temp = h("span", { class: "temp" });
  const power = h("span", { class: "muted small-text" });
  const utilTrend = trendRow("Utilization", sparkline(`GPU ${g.index} utilization`));
  const vramTrend = trendRow("VRAM", sparkline(`GPU ${g.index} VRAM`));
  const processes = h("div", { class: "gpu-processes muted small-text" });
  const el = h("div", { class: "gpu-card" },
    h("div", { class: "gpu-name" }, h("strong", { text: g.name || `GPU ${g.index}` }),
      g.comfyui ? h("span", { class: "badge comfyui-badge", text: "ComfyUI's" })
        : g.visible_to_comfyui === false ? h("span", { class: "badge", text: "not ComfyUI's" }) : null),
    h("div", { class: "gpu-body" }, util.el,
      h("div", { class: "gpu-facts" },
        h("div", null, h("span", { class: "fact-label", text: "VRAM " }), vramText), vram.el,
        h("div", null, h("span", { class: "fact-label", text: "Temperature " }), temp),
        h("div", null, power))),
    h("div", { class: "sparklines" }, utilTrend.el, vramTrend.el),
    processes);
  return {
    el,
    update(next) {
      utilTrend.set(history.gpu(next.index, "utilization_percent"));
      vramTrend.set(history.gpu(next.index, "memory_percent"));
      processes.textContent = processText(next.processes);
      util.set(next.utilization_percent);
      vram.set(next.memory_percent, `${fmtGb(next.memory_used_gb)} of ${fmtGb(next.memory_total_gb)}`);
      vramText.textContent = next.memory_total_gb ? `${fmtGb(next.memory_used_gb)} / ${fmtGb(next.memory_total_gb)}` : "n/a";
      temp.textContent = next.temperature_c === null || next.temperature_c === undefined ? "n/a" : `${next.temperature_c} °C`;
      temp.dataset.level = next.temperature_c >= 85 ? "alarm" : next.temperature_c >= 75 ? "warn" : "ok";
      power.textContent = next.power_w ? `${Math.round(next.power_w)} W${next.power_limit_w ? ` of ${Math.round(next.power_limit_w)} W` : ""}` : "";
    },
  };
}

/** "Processes: python (ComfyUI) 6.0 GB · Xorg 210 MB", the three that hold the most. */
function processText(list) {
  if (!list || !list.length) return "";
  const named = list.slice(0, 3).map((p) => `${p.name || `pid ${p.pid}`}${p.comfyui ? " (ComfyUI)" : ""}`
    + `${p.used_memory_bytes === null ? "" : ` ${fmtBytes(p.used_memory_bytes)}`}`);
  return `Processes: ${named.join(" · ")}${list.length > 3 ? ` and ${list.length - 3} more` : ""}`;
}

function storageView(storage, types) {
  const volume = storage.workspace;
  const models = storage.models;
  const used = bar("Models volume used", { meter: true });
  if (volume) used.set(volume.usage_percent, `${fmtGb(volume.used_gb)} of ${fmtGb(volume.total_gb)} used`);
  const nonEmpty = types.filter((t) => t.count > 0).sort((a, b) => b.size_bytes - a.size_bytes);
  const biggest = Math.max(...nonEmpty.map((t) => t.size_bytes), 1);
  return [
    volume ? h("div", { class: "volume" },
      h("div", { class: "volume-text" }, h("span", { text: `${fmtGb(volume.used_gb)} used of ${fmtGb(volume.total_gb)}` }),
        h("span", { class: "muted", text: `${fmtGb(volume.available_gb)} free` })), used.el,
      h("p", { class: "muted small-text ellipsis", title: volume.path, text: volume.path })) : null,
    h("p", { class: "models-total" }, h("strong", { text: `${models.count} model${models.count === 1 ? "" : "s"}` }),
      ` · ${fmtBytes(models.total_size_bytes)}`),
    nonEmpty.length
      ? h("ul", { class: "type-bars" }, nonEmpty.map((t) => {
        const fillEl = h("span", { class: "type-fill" });
        fillEl.style.width = `${Math.max(2, (100 * t.size_bytes) / biggest)}%`;
        return h("li", null, h("a", { href: `#/models?type=${encodeURIComponent(t.id)}`, class: "type-name", text: t.name }),
          h("span", { class: "type-track", "aria-hidden": "true" }, fillEl),
          h("span", { class: "type-size", text: `${fmtBytes(t.size_bytes)} · ${t.count}` }));
      }))
      : h("p", { class: "muted", text: "No model files yet: install a preset." }),
  ];
}
