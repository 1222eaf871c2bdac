// Downloads: every download with progress, speed and ETA; pause, resume, cancel and priority.

import { fill, h, place } from "./dom.js";
import { ACTIVE, loadPresets, on, store } from "./store.js";
import { downloadRow } from "./widgets.js";

export const title = "Downloads";

export function mount(root) {
  const activeList = h("ul", { class: "download-list", "aria-label": "Active downloads" });
  const doneList = h("ul", { class: "download-list", "aria-label": "Finished downloads" });
  const activeEmpty = h("p", { class: "muted", text: "Nothing is downloading. Install a preset to start one." });
  const doneEmpty = h("p", { class: "muted", text: "No finished downloads yet." });
  fill(root,
    h("h1", { class: "view-title", text: "Downloads" }),
    h("section", { class: "panel", "aria-labelledby": "downloads-active" },
      h("h2", { id: "downloads-active", text: "Active" }), activeEmpty, activeList),
    h("section", { class: "panel", "aria-labelledby": "downloads-done" },
      h("h2", { id: "downloads-done", text: "Finished" }), doneEmpty, doneList));

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
  const offs = [on("downloads", draw)];
  return () => offs.forEach((off) => off());
}
