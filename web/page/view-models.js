// Models: every model file by type, with size and owning preset; multi-select delete with a confirmation that
// shows the space it frees. Above them, the "Add a model" form (model-add.js).

import { api } from "./api.js";
import { addModelForm } from "./model-add.js";
import { fill, fmtBytes, fmtDate, h, uid } from "./dom.js";
import { emit, loadPresets, on, store } from "./store.js";
import { attempt, confirmDialog, errorView, notice, toast } from "./widgets.js";

export const title = "Models";

const filters = { type: "", search: "", sort: "path" };
const SORTS = [["path", "Path"], ["name", "Name"], ["size", "Size (largest first)"], ["modified", "Newest first"]];

export function mount(root, params) {
  if (params.get("type") !== null) filters.type = params.get("type");
  const typeId = uid("models-type");
  const typeSelect = h("select", { id: typeId, class: "select" });
  const search = h("input", { type: "search", id: "models-search", class: "input", placeholder: "Folder or file name",
    value: filters.search, autocomplete: "off" });
  const sortId = uid("models-sort");
  const sort = h("select", { id: sortId, class: "select" }, SORTS.map(([value, text]) => h("option", { value, text })));
  sort.value = filters.sort;
  const summary = h("p", { class: "muted count", role: "status", "aria-live": "polite" });
  const selectAll = h("input", { type: "checkbox", "aria-label": "Select all models shown" });
  const body = h("tbody");
  const table = h("table", { class: "table models-table" },
    h("caption", { class: "visually-hidden", text: "Model files" }),
    h("thead", null, h("tr", null, h("th", { scope: "col", class: "check" }, selectAll),
      ...["Model", "Type", "Size", "Preset", "Modified"].map((t) => h("th", { scope: "col", text: t })))),
    body);
  const selection = h("span", { class: "selection-text", role: "status", "aria-live": "polite" });
  const deleteButton = h("button", { type: "button", class: "button danger", text: "Delete selected", disabled: true });
  const clearButton = h("button", { type: "button", class: "button", text: "Clear selection", disabled: true });
  const problems = h("div");
  const adder = addModelForm();
  fill(root,
    h("h1", { class: "view-title", text: "Models" }),
    adder.el,
    h("div", { class: "filters" },
      h("div", { class: "field" }, h("label", { for: typeId, text: "Type" }), typeSelect),
      h("div", { class: "field grow" }, h("label", { for: "models-search", text: "Search models" }), search),
      h("div", { class: "field" }, h("label", { for: sortId, text: "Sort" }), sort)),
    h("div", { class: "action-bar" }, selection, h("span", { class: "button-group" }, clearButton, deleteButton)),
    summary, problems, h("div", { class: "table-wrap" }, table));

  let models = [];
  const selected = new Set();

  const shownModels = () => {
    const words = filters.search.toLowerCase().split(/\s+/).filter(Boolean);
    const list = models.filter((m) => (!filters.type || m.type === filters.type) && words.every((w) => m.path.toLowerCase().includes(w)));
    const name = (m) => m.path.split("/").pop().toLowerCase();
    const by = {
      path: (a, b) => a.path.localeCompare(b.path),
      name: (a, b) => name(a).localeCompare(name(b)),
      size: (a, b) => b.size_bytes - a.size_bytes,
      modified: (a, b) => String(b.modified).localeCompare(String(a.modified)),
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

  const drawRows = () => {
    const shown = shownModels();
    const total = shown.reduce((sum, m) => sum + m.size_bytes, 0);
    summary.textContent = `${shown.length} model file${shown.length === 1 ? "" : "s"} · ${fmtBytes(total)}`;
    fill(body, shown.length ? shown.map((m) => {
      const box = h("input", { type: "checkbox", "aria-label": `Select ${m.path}`, checked: selected.has(m.path),
        onchange: () => {
          if (box.checked) selected.add(m.path);
          else selected.delete(m.path);
          drawSelection();
        } });
      return h("tr", { "data-path": m.path },
        h("td", { class: "check" }, box),
        h("td", { class: "path", "data-label": "Model" }, h("span", { class: "break", text: m.path })),
        h("td", { "data-label": "Type", text: m.type }),
        h("td", { class: "num", "data-label": "Size", text: fmtBytes(m.size_bytes) }),
        h("td", { "data-label": "Preset", text: m.preset || "—" }),
        h("td", { "data-label": "Modified", text: fmtDate(m.modified) }));
    }) : h("tr", null, h("td", { colspan: 6, class: "muted", text: models.length ? "No model matches." : "No model files yet." })));
    drawSelection();
  };

  const drawTypes = (types) => {
    fill(typeSelect, h("option", { value: "", text: "All types" }),
      types.map((t) => h("option", { value: t.id, text: `${t.name} (${t.count})` })));
    typeSelect.value = filters.type;
    adder.setTypes(types);
  };

  const load = async () => {
    try {
      const [list, types] = await Promise.all([api("api/models", { query: { limit: 10000 } }), api("api/models/types")]);
      models = list.models;
      const known = new Set(models.map((m) => m.path));
      for (const path of [...selected]) if (!known.has(path)) selected.delete(path);
      drawTypes(types.types);
      fill(problems, list.problems.length ? notice("warn", `Could not read: ${list.problems.map((p) => `${p.path} (${p.error})`).join(", ")}`) : null);
      drawRows();
    } catch (error) {
      if (error.status !== 401) fill(problems, notice("error", errorView(error)));
    }
  };

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

  fill(body, h("tr", null, h("td", { colspan: 6, class: "muted", text: "Reading model folders…" })));
  load();
  const offs = [on("models", load), on("reconnected", load)];
  return () => offs.forEach((off) => off());
}

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
