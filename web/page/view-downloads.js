// Downloads: every download with progress, speed and ETA; pause, resume, cancel and priority; the
// limits all downloads share (bandwidth, connections, yielding to ComfyUI while it generates).

import { fill, h, place, uid } from "./dom.js";
import { ACTIVE, loadDownloadSettings, loadPresets, on, saveDownloadSettings, store } from "./store.js";
import { attempt, downloadRow, notice, toast } from "./widgets.js";

export const title = "Downloads";

export function mount(root) {
  const activeList = h("ul", { class: "download-list", "aria-label": "Active downloads" });
  const doneList = h("ul", { class: "download-list", "aria-label": "Finished downloads" });
  const activeEmpty = h("p", { class: "muted", text: "Nothing is downloading. Install a preset to start one." });
  const doneEmpty = h("p", { class: "muted", text: "No finished downloads yet." });
  const limits = limitsPanel();
  fill(root,
    h("h1", { class: "view-title", text: "Downloads" }),
    h("section", { class: "panel", "aria-labelledby": "downloads-active" },
      h("h2", { id: "downloads-active", text: "Active" }), activeEmpty, activeList),
    h("section", { class: "panel", "aria-labelledby": "downloads-done" },
      h("h2", { id: "downloads-done", text: "Finished" }), doneEmpty, doneList),
    limits.el);

  let rows = new Map();
  const draw = () => {
    const all = [...store.downloads.values()].sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
    const next = new Map();
    for (const d of all) {
      const row = rows.get(d.id) || downloadRow(d, { priority: true });
      row.update(d);
      next.set(d.id, row);
    }
    rows = next;
    // Keep rows (and the focus inside them) in place; move only those whose list changed.
    place(activeList, all.filter((d) => ACTIVE.has(d.status)).map((d) => rows.get(d.id).el));
    place(doneList, all.filter((d) => !ACTIVE.has(d.status)).map((d) => rows.get(d.id).el));
    activeEmpty.hidden = activeList.children.length > 0;
    doneEmpty.hidden = doneList.children.length > 0;
  };
  draw();
  if (!store.presets) {
    loadPresets().then(() => { // rows made before the presets arrived show ids: remake them with names
      rows = new Map();
      fill(activeList);
      fill(doneList);
      draw();
    }, () => {});
  }
  const offs = [on("downloads", draw), on("download_settings", limits.show)];
  loadDownloadSettings().then(limits.show, () => {});
  return () => offs.forEach((off) => off());
}

/** The shared limits as a small form; `show(settings)` fills it (never under the user's cursor). */
function limitsPanel() {
  const field = (label, input) => {
    input.id = uid("limit");
    return h("div", { class: "field" }, h("label", { for: input.id, text: label }), input);
  };
  const bandwidth = h("input", { class: "input", type: "number", min: "0.1", step: "0.1", placeholder: "unlimited" });
  const perFile = h("input", { class: "input", type: "number", min: "1", max: "32", step: "1" });
  const total = h("input", { class: "input", type: "number", min: "1", max: "256", step: "1" });
  const yieldBox = h("input", { type: "checkbox" });
  const share = h("input", { class: "input", type: "number", min: "1", max: "100", step: "1" });
  const status = h("div", { "aria-live": "polite" });
  const save = h("button", { type: "submit", class: "button primary", text: "Save limits" });
  const form = h("form", { class: "filters", "aria-label": "Download limits", onsubmit: async (event) => {
    event.preventDefault();
    const mbps = bandwidth.value.trim();
    const changes = {
      max_bandwidth_bytes: mbps === "" ? null : Math.round(Number(mbps) * 1e6),
      connections_per_file: Number(perFile.value), max_connections: Number(total.value),
      yield_to_generation: yieldBox.checked, yield_share: Number(share.value) / 100,
    };
    save.disabled = true;
    if (await attempt(() => saveDownloadSettings(changes), "Save the download limits")) toast("Download limits saved.", "success");
    save.disabled = false;
  } },
  field("Bandwidth, all downloads (MB/s)", bandwidth),
  field("Connections per file", perFile),
  field("Connections in all", total),
  field("While ComfyUI generates, keep (%)", share),
  h("div", { class: "field" }, h("label", { class: "inline-label" }, yieldBox, " Slow down while ComfyUI generates")),
  save);
  const el = h("section", { class: "panel", "aria-labelledby": "downloads-limits" },
    h("h2", { id: "downloads-limits", text: "Limits" }), status, form);
  const show = (s) => {
    if (!s) return;
    fill(status, s.yielding ? notice("info", `ComfyUI is generating: downloads keep ${Math.round(s.yield_share * 100)}% of their bandwidth until it is done.`) : null);
    if (form.contains(document.activeElement)) return;
    bandwidth.value = s.max_bandwidth_bytes === null ? "" : String(+(s.max_bandwidth_bytes / 1e6).toFixed(1));
    perFile.value = s.connections_per_file;
    total.value = s.max_connections;
    yieldBox.checked = s.yield_to_generation;
    share.value = Math.round(s.yield_share * 100);
  };
  return { el, show };
}
