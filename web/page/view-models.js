// Models: every model file by type, with size, owning preset and last use; multi-select delete with a
// confirmation that shows the space it frees. Above them, the "Add a model" form (model-add.js) and the
// library scan's progress (live from `library_progress` events) with "Scan now". "Show" narrows the list to
// duplicates (grouped, the copy to keep marked, one button removes the other copies after a dry run says what
// that frees), files unused for N days, or files with an update. A model's name opens its detail (model-detail.js).

import { api } from "./api.js";
import { addModelForm } from "./model-add.js";
import { openModelDetail, updateText } from "./model-detail.js";
import { debounce, fill, fmtBytes, fmtDate, h, uid } from "./dom.js";
import { emit, loadPresets, on, startedDownload, store } from "./store.js";
import { attempt, bar, confirmDialog, errorView, notice, toast } from "./widgets.js";

export const title = "Models";

const filters = { type: "", search: "", sort: "path", show: "all", days: 30 };
const SORTS = [["path", "Path"], ["name", "Name"], ["size", "Size (largest first)"], ["modified", "Newest first"],
  ["last_used", "Last used"]];
const SHOWS = [["all", "All models"], ["duplicates", "Duplicates"], ["unused", "Unused for a while"],
  ["updates", "Updates available"]];
const QUIET_MS = 2000; // see libraryLine
const COLUMNS = ["Model", "Type", "Size", "Preset", "Last used", "Modified"];
const plural = (n, word, words = `${word}s`) => `${n} ${n === 1 ? word : words}`;

export function mount(root, params) {
  if (params.get("type") !== null) filters.type = params.get("type");
  if (SHOWS.some(([value]) => value === params.get("show"))) filters.show = params.get("show");
  const typeId = uid("models-type");
  const typeSelect = h("select", { id: typeId, class: "select" });
  const search = h("input", { type: "search", id: "models-search", class: "input", placeholder: "Folder or file name",
    value: filters.search, autocomplete: "off" });
  const sortId = uid("models-sort");
  const sort = h("select", { id: sortId, class: "select" }, SORTS.map(([value, text]) => h("option", { value, text })));
  sort.value = filters.sort;
  const showId = uid("models-show");
  const show = h("select", { id: showId, class: "select" }, SHOWS.map(([value, text]) => h("option", { value, text })));
  show.value = filters.show;
  const daysId = uid("models-days");
  const days = h("input", { id: daysId, class: "input", type: "number", min: 0, max: 100000, step: 1, inputmode: "numeric",
    value: String(filters.days) });
  const daysField = h("div", { class: "field days-field" }, h("label", { for: daysId, text: "Unused for (days)" }), days);
  const summary = h("p", { class: "muted count", role: "status", "aria-live": "polite" });
  const selectAll = h("input", { type: "checkbox", "aria-label": "Select all models shown" });
  const body = h("tbody");
  const table = h("table", { class: "table models-table" },
    h("caption", { class: "visually-hidden", text: "Model files" }),
    h("thead", null, h("tr", null, h("th", { scope: "col", class: "check" }, selectAll),
      ...COLUMNS.map((t) => h("th", { scope: "col", text: t })))),
    body);
  const selection = h("span", { class: "selection-text", role: "status", "aria-live": "polite" });
  const deleteButton = h("button", { type: "button", class: "button danger", text: "Delete selected", disabled: true });
  const clearButton = h("button", { type: "button", class: "button", text: "Clear selection", disabled: true });
  const problems = h("div");
  const viewBar = h("div", { class: "show-bar" }); // what the chosen "Show" offers: bulk removal, bulk update
  const adder = addModelForm();
  let models = []; // the list GET /api/models answered for the chosen "Show"
  let groups = []; // duplicates: the groups, in the server's order
  let updates = new Map(); // updates: path -> update
  let checkedAt = null;
  const selected = new Set();
  let loading = 0; // counts loads: an answer to an older one is dropped

  const library = libraryLine(() => load()); // a finished scan changes hashes: duplicates, details
  fill(root,
    h("h1", { class: "view-title", text: "Models" }),
    adder.el,
    library.el,
    h("div", { class: "filters" },
      h("div", { class: "field" }, h("label", { for: showId, text: "Show" }), show),
      daysField,
      h("div", { class: "field" }, h("label", { for: typeId, text: "Type" }), typeSelect),
      h("div", { class: "field grow" }, h("label", { for: "models-search", text: "Search models" }), search),
      h("div", { class: "field" }, h("label", { for: sortId, text: "Sort" }), sort)),
    viewBar,
    h("div", { class: "action-bar" }, selection, h("span", { class: "button-group" }, clearButton, deleteButton)),
    summary, problems, h("div", { class: "table-wrap" }, table));

  const matches = (m) => {
    const words = filters.search.toLowerCase().split(/\s+/).filter(Boolean);
    return (!filters.type || m.type === filters.type) && words.every((w) => m.path.toLowerCase().includes(w));
  };

  const shownModels = () => {
    const list = models.filter(matches);
    if (filters.show === "duplicates") return list; // group by group, the copy to keep first (the server's order)
    const name = (m) => m.path.split("/").pop().toLowerCase();
    const by = {
      path: (a, b) => a.path.localeCompare(b.path),
      name: (a, b) => name(a).localeCompare(name(b)),
      size: (a, b) => b.size_bytes - a.size_bytes,
      modified: (a, b) => String(b.modified).localeCompare(String(a.modified)),
      last_used: (a, b) => String(b.last_used || "").localeCompare(String(a.last_used || "")) || a.path.localeCompare(b.path),
    }[filters.sort];
    return list.sort(by);
  };

  const drawSelection = () => {
    const chosen = models.filter((m) => selected.has(m.path));
    const bytes = chosen.reduce((sum, m) => sum + m.size_bytes, 0);
    selection.textContent = chosen.length ? `${chosen.length} selected · ${fmtBytes(bytes)}` : "Nothing selected";
    deleteButton.disabled = clearButton.disabled = chosen.length === 0;
    const shown = shownModels();
    const shownSelected = shown.filter((m) => selected.has(m.path)).length;
    selectAll.checked = shown.length > 0 && shownSelected === shown.length;
    selectAll.indeterminate = shownSelected > 0 && shownSelected < shown.length;
  };

  const row = (m, extra = {}) => {
    const box = h("input", { type: "checkbox", "aria-label": `Select ${m.path}`, checked: selected.has(m.path),
      onchange: () => {
        if (box.checked) selected.add(m.path);
        else selected.delete(m.path);
        drawSelection();
      } });
    const name = h("button", { type: "button", class: "model-name break", "aria-label": `Details of ${m.path}`, text: m.path,
      onclick: (event) => openModelDetail(m.path, event.currentTarget) });
    const update = updates.get(m.path);
    return h("tr", { "data-path": m.path, "data-keep": extra.keep === undefined ? null : String(extra.keep) },
      h("td", { class: "check" }, box),
      h("td", { class: "path", "data-label": "Model" }, name,
        extra.keep ? h("span", { class: "badge keep-badge", text: "Keep" }) : null,
        extra.keep === false ? h("span", { class: "badge copy-badge", text: "Copy" }) : null,
        update ? h("div", { class: "small-text update-text" }, updateText(update), " ",
          h("button", { type: "button", class: "button small primary", "aria-label": `Update ${m.path}`, text: "Update",
            onclick: () => startUpdates([m.path]) })) : null),
      h("td", { "data-label": "Type", text: m.type }),
      h("td", { class: "num", "data-label": "Size", text: fmtBytes(m.size_bytes) }),
      h("td", { "data-label": "Preset", text: extra.presets ? extra.presets.join(", ") || "—" : m.preset || "—" }),
      h("td", { "data-label": "Last used", text: m.last_used ? `${fmtDate(m.last_used)} (${plural(m.use_count, "prompt")})` : "never" }),
      h("td", { "data-label": "Modified", text: fmtDate(m.modified) }));
  };

  const empty = () => {
    const text = !models.length ? {
      all: "No model files yet.", duplicates: "No duplicates: no two files have the same hash (among the files hashed so far).",
      unused: `Every model file was used or changed in the last ${plural(filters.days, "day")}.`,
      updates: "No updates available.",
    }[filters.show] : "No model matches.";
    return h("tr", null, h("td", { colspan: COLUMNS.length + 1, class: "muted", text }));
  };

  const drawRows = () => {
    const shown = shownModels();
    const total = shown.reduce((sum, m) => sum + m.size_bytes, 0);
    summary.textContent = `${plural(shown.length, "model file")} · ${fmtBytes(total)}`;
    if (!shown.length) fill(body, empty());
    else if (filters.show === "duplicates") {
      const byPath = new Map(shown.map((m) => [m.path, m]));
      fill(body, groups.map((g) => {
        const files = g.files.filter((f) => byPath.has(f.path));
        if (!files.length) return null;
        return [h("tr", { class: "group-row", "data-group": g.sha256 },
          h("th", { scope: "rowgroup", colspan: COLUMNS.length + 1 },
            h("span", { class: "group-title" }, `${plural(g.files.length, "copy", "copies")} of ${fmtBytes(g.size_bytes)}`, " · ",
              h("code", { title: g.sha256, text: g.sha256.slice(0, 12) })),
            h("span", { class: "group-frees", text: ` · removing the copies frees ${fmtBytes(g.reclaimable_bytes)}` }))),
        files.map((f) => row(byPath.get(f.path), f))];
      }));
    } else fill(body, shown.map((m) => row(m)));
    drawSelection();
  };

  const drawViewBar = () => {
    daysField.hidden = filters.show !== "unused";
    sort.disabled = filters.show === "duplicates";
    if (filters.show === "duplicates") {
      const reclaimable = groups.reduce((sum, g) => sum + g.reclaimable_bytes, 0);
      fill(viewBar, groups.length ? h("div", { class: "action-bar show-actions" },
        h("span", { text: `${plural(groups.length, "group")} of identical files (same SHA-256). The copy marked Keep stays.` }),
        h("button", { type: "button", class: "button danger", text: `Remove duplicates (frees ${fmtBytes(reclaimable)})`,
          onclick: () => removeDuplicates(groups) })) : null);
    } else if (filters.show === "updates") {
      fill(viewBar, h("div", { class: "action-bar show-actions" },
        h("span", null, updates.size ? `${plural(updates.size, "file")} with a newer version. ` : "",
          "Updating downloads the new file beside the old one: the old file stays until the new one is verified.",
          checkedAt ? h("span", { class: "muted small-text", text: ` Checked ${fmtDate(checkedAt)}.` }) : null),
        h("span", { class: "button-group" },
          h("button", { type: "button", class: "button", text: "Check again", onclick: () => load({ refresh: true }) }),
          updates.size ? h("button", { type: "button", class: "button primary", text: `Update all (${updates.size})`,
            onclick: () => startUpdates([...updates.keys()]) }) : null)));
    } else fill(viewBar);
  };

  const drawTypes = (types) => {
    fill(typeSelect, h("option", { value: "", text: "All types" }),
      types.map((t) => h("option", { value: t.id, text: `${t.name} (${t.count})` })));
    typeSelect.value = filters.type;
    adder.setTypes(types);
  };

  const read = async ({ refresh = false } = {}) => {
    const query = { limit: 10000 };
    if (filters.show === "duplicates") query.duplicates = true;
    if (filters.show === "unused") query.unused_days = filters.days;
    if (filters.show !== "updates") return [await api("api/models", { query }), null];
    return Promise.all([api("api/models", { query }), api("api/models/updates", { query: refresh ? { refresh: true } : undefined })]);
  };

  const load = async (options) => {
    const round = ++loading;
    try {
      const [[list, found], types] = await Promise.all([read(options), api("api/models/types")]);
      if (round !== loading) return;
      updates = new Map(found ? found.updates.map((u) => [u.path, u]) : []);
      checkedAt = found && found.checked_at ? found.checked_at : null;
      models = found ? list.models.filter((m) => updates.has(m.path)) : list.models;
      groups = list.groups || [];
      const known = new Set(models.map((m) => m.path));
      for (const path of [...selected]) if (!known.has(path)) selected.delete(path);
      drawTypes(types.types);
      fill(problems, list.problems.length ? notice("warn", `Could not read: ${list.problems.map((p) => `${p.path} (${p.error})`).join(", ")}`) : null);
      drawViewBar();
      drawRows();
    } catch (error) {
      if (round === loading && error.status !== 401) fill(problems, notice("error", errorView(error)));
    }
  };

  const reading = () => fill(body, h("tr", null, h("td", { colspan: COLUMNS.length + 1, class: "muted", text: "Reading model folders…" })));

  show.addEventListener("change", () => {
    filters.show = show.value;
    models = [];
    groups = [];
    updates = new Map();
    drawViewBar();
    reading();
    load();
  });
  const setDays = () => {
    const value = Number(days.value);
    if (days.value === "" || !Number.isInteger(value) || value < 0) {
      days.setAttribute("aria-invalid", "true");
      return;
    }
    days.removeAttribute("aria-invalid");
    if (value === filters.days) return;
    filters.days = value;
    load();
  };
  days.addEventListener("input", debounce(setDays, 400));
  days.addEventListener("change", setDays);
  typeSelect.addEventListener("change", () => {
    filters.type = typeSelect.value;
    drawRows();
  });
  search.addEventListener("input", () => {
    filters.search = search.value;
    drawRows();
  });
  sort.addEventListener("change", () => {
    filters.sort = sort.value;
    drawRows();
  });
  selectAll.addEventListener("change", () => {
    for (const m of shownModels()) {
      if (selectAll.checked) selected.add(m.path);
      else selected.delete(m.path);
    }
    drawRows();
  });
  clearButton.addEventListener("click", () => {
    selected.clear();
    drawRows();
  });
  deleteButton.addEventListener("click", async () => {
    const chosen = models.filter((m) => selected.has(m.path));
    if (await deleteModels(chosen)) selected.clear(); // the "models" topic reloads the list
  });

  drawViewBar();
  reading();
  load();
  const offs = [on("models", load), on("reconnected", load)];
  return () => {
    offs.forEach((off) => off());
    library.stop();
  };
}

// ---- the library scan ----

/** "Hashing model files: 12 of 200 (1.2 GB of 40 GB)", "All 200 files hashed", ... */
export function libraryText(s) {
  const counts = `${s.files_hashed} of ${s.files_total}`;
  const bytes = `${fmtBytes(s.bytes_hashed)} of ${fmtBytes(s.bytes_total)}`;
  if (s.status === "scanning" && s.paused) return `Hashing paused while ComfyUI runs a prompt: ${counts} files hashed (${bytes})`;
  if (s.status === "scanning") return `Hashing model files: ${counts} (${bytes})`;
  if (!s.files_total) return "No model files hashed yet: a scan hashes them to find duplicates.";
  if (s.files_hashed >= s.files_total) return s.files_total === 1 ? "The 1 model file is hashed" : `All ${s.files_total} files hashed`;
  return `${counts} files hashed`;
}

/**
 * The scan's line: its progress, live from the page feed's `library_progress` events, and "Scan now".
 * `finished()` runs when a scan ends. `stop()` stops following.
 */
function libraryLine(finished) {
  const text = h("span", { class: "library-text" });
  const phase = h("span", { class: "visually-hidden", role: "status", "aria-live": "polite" }); // said on changes only
  const progress = bar("Library scan progress");
  const scan = h("button", { type: "button", class: "button small", text: "Scan now" });
  const el = h("section", { class: "library-bar", "aria-label": "Library scan", "data-state": "idle" },
    h("div", { class: "library-row" }, text, scan), progress.el, phase);
  let last = null;
  const set = (s) => {
    const was = last;
    last = s;
    const state = s.status !== "scanning" ? "idle" : s.paused ? "paused" : "scanning";
    text.textContent = libraryText(s);
    progress.el.hidden = state === "idle";
    progress.set(s.bytes_total ? (100 * s.bytes_hashed) / s.bytes_total : 0, text.textContent);
    scan.disabled = state !== "idle";
    if (el.dataset.state !== state || !was) phase.textContent = state === "idle" ? text.textContent
      : state === "paused" ? "Hashing paused while ComfyUI runs a prompt" : "Hashing model files";
    el.dataset.state = state;
    if (was && was.status === "scanning" && s.status === "idle") finished();
    clearTimeout(quiet);
    if (state !== "idle" && !stopped) quiet = setTimeout(refresh, QUIET_MS);
  };
  // While a scan runs, a feed that goes quiet is asked directly: events sent while the feed was down are lost.
  let quiet = null;
  let stopped = false;
  const refresh = () => api("api/library/status").then((s) => stopped || set(s), () => {});
  scan.addEventListener("click", async () => {
    scan.disabled = true;
    const answer = await attempt(() => api("api/library/scan", { method: "POST" }), "Scan the library");
    if (answer) set(answer);
    else scan.disabled = false;
  });
  const off = on("library", set);
  text.textContent = "Reading the library scan…";
  progress.el.hidden = true;
  refresh();
  return {
    el,
    stop() {
      stopped = true;
      clearTimeout(quiet);
      off();
    },
  };
}

// ---- duplicates and updates ----

/** Dry run, confirm with the space it frees, remove; true when something was removed. */
async function removeDuplicates(groups) {
  const body = { sha256: groups.map((g) => g.sha256) };
  const plan = await attempt(() => api("api/models/duplicates/remove", { method: "POST", body: { ...body, dry_run: true } }),
    "Remove duplicates");
  if (!plan) return false;
  if (!plan.would_delete.length) {
    toast(plan.errors.length ? `Nothing to remove: ${plan.errors.map((e) => `${e.path} (${e.message})`).join("; ")}`
      : "Nothing to remove.", plan.errors.length ? "error" : "info");
    return false;
  }
  const listed = plan.would_delete.slice(0, 8);
  const ok = await confirmDialog({
    title: `Remove ${plural(plan.would_delete.length, "duplicate copy", "duplicate copies")}?`,
    body: [
      h("p", { class: "freed" }, "This frees ", h("strong", { text: fmtBytes(plan.space_freed_bytes) }),
        `. One copy of each file stays (${plural(plan.kept.length, "file")} kept). It cannot be undone.`),
      h("p", { class: "small-text muted", text: "Deleted:" }),
      h("ul", { class: "path-list" }, listed.map((p) => h("li", { text: p })),
        plan.would_delete.length > listed.length ? h("li", { text: `and ${plan.would_delete.length - listed.length} more` }) : null),
      plan.errors.length ? notice("warn", `Not removed: ${plan.errors.map((e) => `${e.path} (${e.message})`).join("; ")}`) : null,
    ],
    confirmLabel: "Remove duplicates",
    danger: true,
  });
  if (!ok) return false;
  const answer = await attempt(() => api("api/models/duplicates/remove", { method: "POST", body }), "Remove duplicates");
  if (!answer) return false;
  if (answer.deleted) toast(`Removed ${plural(answer.deleted, "duplicate copy", "duplicate copies")}, freed ${fmtBytes(answer.space_freed_bytes)}.`, "success");
  if (answer.errors.length) toast(`Not removed: ${answer.errors.map((e) => `${e.path} (${e.message})`).join("; ")}`, "error");
  if (answer.deleted) {
    emit("models");
    if (store.presets) loadPresets(true).catch(() => {});
  }
  return answer.deleted > 0;
}

/** Download the newer version of these files (the old ones stay until each new one is verified). */
async function startUpdates(paths) {
  const answer = await attempt(() => api("api/models/update", { method: "POST", body: { paths } }), "Update models");
  if (!answer) return;
  startedDownload({ id: answer.download_id, preset_id: null, status: answer.status, progress: 0, priority: "normal",
    files: {}, created_at: Date.now() / 1000, error: null });
  toast(h("span", null, `Updating ${answer.paths.length === 1 ? answer.paths[0] : plural(answer.paths.length, "file")}: `,
    "the old file stays until the new one is verified. ", h("a", { href: "#/downloads", text: "See it on the Downloads view" }), "."),
  "success");
}

// ---- delete ----

/** Confirm, delete, report; true when something was deleted. */
async function deleteModels(chosen) {
  const bytes = chosen.reduce((sum, m) => sum + m.size_bytes, 0);
  const listed = chosen.slice(0, 8);
  const ok = await confirmDialog({
    title: `Delete ${chosen.length} model file${chosen.length === 1 ? "" : "s"}?`,
    body: [
      h("p", { class: "freed" }, "This frees ", h("strong", { text: fmtBytes(bytes) }), ". It cannot be undone."),
      h("ul", { class: "path-list" }, listed.map((m) => h("li", { text: `${m.path} (${fmtBytes(m.size_bytes)})` })),
        chosen.length > listed.length ? h("li", { text: `and ${chosen.length - listed.length} more` }) : null),
    ],
    confirmLabel: "Delete",
    danger: true,
  });
  if (!ok) return false;
  let answer = await attempt(() => api("api/models", { method: "DELETE", body: { paths: chosen.map((m) => m.path) } }), "Delete models");
  if (!answer) return false;
  let deleted = answer.deleted;
  let freed = answer.space_freed_bytes;
  const inUse = answer.errors.filter((e) => e.code === "MODEL_IN_USE");
  if (inUse.length && await confirmDialog({
    title: `${inUse.length} file${inUse.length === 1 ? " is" : "s are"} in use`,
    body: h("p", null, "A queued or running prompt names ", inUse.map((e) => e.path).join(", "),
      ". Deleting it makes that prompt fail."),
    confirmLabel: "Delete anyway",
    danger: true,
  })) {
    const forced = await attempt(() => api("api/models", { method: "DELETE", body: { paths: inUse.map((e) => e.path), force: true } }),
      "Delete models");
    if (forced) {
      deleted += forced.deleted;
      freed += forced.space_freed_bytes;
      answer = { ...answer, errors: [...answer.errors.filter((e) => e.code !== "MODEL_IN_USE"), ...forced.errors] };
    }
  }
  if (deleted) toast(`Deleted ${deleted} file${deleted === 1 ? "" : "s"}, freed ${fmtBytes(freed)}.`, "success");
  const failed = answer.errors;
  if (failed.length) toast(`Not deleted: ${failed.map((e) => `${e.path} (${e.message})`).join("; ")}`, "error");
  if (deleted) {
    emit("models");
    if (store.presets) loadPresets(true).catch(() => {});
  }
  return deleted > 0;
}
