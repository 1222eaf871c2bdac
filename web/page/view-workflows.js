// Workflows: the library (shipped, yours, ComfyUI's templates), one workflow's JSON, run it, and install the
// presets that provide the model files it is missing.

import { api, seg } from "./api.js";
import { fill, h, uid } from "./dom.js";
import { installPreset, loadPresets, presetName, rememberPrompt } from "./store.js";
import { attempt, errorView, notice, toast } from "./widgets.js";

export const title = "Workflows";

const PAGE = 80;
const filters = { search: "", source: "", category: "" };
let selectedId = null;
const SOURCES = [["", "All sources"], ["shipped", "Shipped"], ["user", "Mine"], ["template", "ComfyUI templates"]];

export function mount(root) {
  const search = h("input", { type: "search", id: "workflow-search", class: "input", placeholder: "Search workflows",
    value: filters.search, autocomplete: "off" });
  const sourceId = uid("wf-source");
  const source = h("select", { id: sourceId, class: "select" }, SOURCES.map(([value, text]) => h("option", { value, text })));
  source.value = filters.source;
  const categoryId = uid("wf-category");
  const category = h("select", { id: categoryId, class: "select" });
  const count = h("p", { class: "muted count", role: "status", "aria-live": "polite" });
  const list = h("ul", { class: "workflow-list", "aria-label": "Workflows" });
  const more = h("div", { class: "more-row" });
  const detail = h("section", { class: "panel workflow-detail", "aria-label": "Selected workflow", tabindex: "-1" });
  fill(root,
    h("h1", { class: "view-title", text: "Workflows" }),
    h("div", { class: "filters" },
      h("div", { class: "field grow" }, h("label", { for: "workflow-search", text: "Search workflows" }), search),
      h("div", { class: "field" }, h("label", { for: sourceId, text: "Source" }), source),
      h("div", { class: "field" }, h("label", { for: categoryId, text: "Category" }), category)),
    count,
    h("div", { class: "split" }, h("div", { class: "split-list" }, list, more), detail));

  let data = null;
  let shown = PAGE;

  const draw = () => {
    if (!data) return;
    const words = filters.search.toLowerCase().split(/\s+/).filter(Boolean);
    const found = data.workflows.filter((w) => (!filters.source || w.source === filters.source)
      && (!filters.category || w.category === filters.category)
      && words.every((word) => `${w.id} ${w.name} ${w.description} ${w.tags.join(" ")}`.toLowerCase().includes(word)));
    count.textContent = `${found.length} of ${data.total} workflows`;
    fill(list, found.slice(0, shown).map((w) => h("li", null, h("button", {
      type: "button", class: "list-button", "aria-pressed": String(w.id === selectedId), "data-workflow": w.id,
      onclick: () => select(w.id),
    }, h("span", { class: "list-name", text: w.name }), h("span", { class: "muted small-text", text: `${w.category} · ${w.source}${w.format === "ui" ? " · UI format" : ""}` })))));
    if (!found.length) fill(list, h("li", { class: "muted", text: "No workflow matches." }));
    fill(more, found.length > shown ? h("button", { type: "button", class: "button", text: `Show more (${found.length - shown} left)`,
      onclick: () => {
        shown += PAGE;
        draw();
      } }) : null);
  };

  const select = async (id) => {
    selectedId = id;
    for (const b of list.querySelectorAll("button[data-workflow]")) b.setAttribute("aria-pressed", String(b.dataset.workflow === id));
    fill(detail, h("p", { class: "muted", text: "Loading…" }));
    try {
      showDetail(detail, await api(`api/workflows/${seg(id)}`));
    } catch (error) {
      if (error.status !== 401) fill(detail, notice("error", errorView(error)));
    }
  };

  search.addEventListener("input", () => {
    filters.search = search.value;
    shown = PAGE;
    draw();
  });
  source.addEventListener("change", () => {
    filters.source = source.value;
    shown = PAGE;
    draw();
  });
  category.addEventListener("change", () => {
    filters.category = category.value;
    shown = PAGE;
    draw();
  });

  fill(detail, h("p", { class: "muted", text: "Choose a workflow to see its JSON, run it or install what it needs." }));
  fill(list, h("li", { class: "muted", text: "Loading workflows…" }));
  const names = loadPresets().catch(() => null); // preset names instead of ids
  Promise.all([api("api/workflows"), names]).then(([answer]) => {
    data = answer;
    fill(category, h("option", { value: "", text: "All categories" }), answer.categories.map((c) => h("option", { value: c, text: c })));
    category.value = filters.category;
    draw();
    if (selectedId) select(selectedId);
  }, (error) => error.status !== 401 && fill(list, h("li", null, notice("error", errorView(error)))));
  return () => {};
}

function showDetail(detail, w) {
  const runnable = w.format === "api";
  const result = h("div", { class: "run-result", role: "status", "aria-live": "polite" });
  const needs = h("div");
  const run = h("button", { type: "button", class: "button primary", text: "Run", disabled: !runnable,
    "aria-label": `Run ${w.name} on ComfyUI`, onclick: async () => {
      run.disabled = true;
      try {
        const answer = await api("api/comfyui/execute", { method: "POST", body: { workflow_id: w.id } });
        rememberPrompt(answer.prompt_id);
        fill(result, notice("info", "Queued as prompt ", h("code", { text: answer.prompt_id }), ". ",
          h("a", { href: "#/queue", text: "Watch it in the queue" }), "."));
      } catch (error) {
        if (error.status !== 401) fill(result, notice("error", errorView(error), nodeErrors(error.details)));
      } finally {
        run.disabled = false;
      }
    } });
  const check = h("button", { type: "button", class: "button", text: "Check models", "aria-label": `Check the models ${w.name} needs`,
    onclick: () => showRequirements(needs, w) });
  let json = null;
  const jsonBlock = h("details", { class: "json", ontoggle: (event) => {
    if (event.currentTarget.open && !json) {
      json = JSON.stringify(w.workflow, null, 2);
      event.currentTarget.append(h("pre", { tabindex: "0", "aria-label": `JSON of ${w.name}` }, h("code", { text: json })));
    }
  } }, h("summary", { text: "Workflow JSON" }));
  fill(detail,
    h("h2", { text: w.name }),
    h("p", { class: "muted small-text" }, h("code", { text: w.id }), ` · ${w.category} · ${w.source} · ${w.format === "api" ? "API format" : "UI format"}`),
    w.description ? h("p", { text: w.description }) : null,
    w.preset ? h("p", { class: "small-text" }, "Made for the preset ", h("strong", { text: presetName(w.preset) }), ".") : null,
    runnable ? null : notice("info", "This is a ComfyUI template in the editor's UI format: open it in ComfyUI to run it. The dashboard can still install the models it needs."),
    h("div", { class: "actions" }, run, check), result, needs, jsonBlock);
}

function nodeErrors(details) {
  const errors = details && details.node_errors;
  if (!errors || !Object.keys(errors).length) return null;
  return h("ul", { class: "small-text" }, Object.entries(errors).map(([node, e]) =>
    h("li", null, `Node ${node} (${e.class_type || "?"}): ${(e.errors || []).map((x) => x.message || x.details).join("; ")}`)));
}

async function showRequirements(area, w) {
  fill(area, h("p", { class: "muted", text: "Checking…" }));
  let req;
  try {
    req = await api(`api/workflows/${seg(w.id)}/requirements`);
  } catch (error) {
    if (error.status !== 401) fill(area, notice("error", errorView(error)));
    return;
  }
  const table = req.models.length ? h("table", { class: "table" },
    h("caption", { class: "visually-hidden", text: `Models ${w.name} loads` }),
    h("thead", null, h("tr", null, ...["Model", "Type", "Installed", "Provided by"].map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", null, req.models.map((m) => h("tr", null,
      h("td", { "data-label": "Model" }, h("span", { class: "break", text: m.name })),
      h("td", { "data-label": "Type", text: m.type }),
      h("td", { "data-label": "Installed", text: m.installed ? "✓ yes" : "✗ missing" }),
      h("td", { "data-label": "Provided by", text: m.presets.map(presetName).join(", ") || "—" })))))
    : h("p", { class: "muted", text: "This workflow loads no model files." });
  // One preset per missing file is enough: take each file's first provider unless a chosen preset has it.
  // A preset for a newer ComfyUI cannot be installed here: it provides nothing.
  const catalogue = await loadPresets().catch(() => null);
  const unsupported = new Set((catalogue?.presets || []).filter((p) => p.requires).map((p) => p.id));
  const chosen = [];
  const orphans = [];
  const newer = [];
  for (const m of req.models.filter((x) => !x.installed)) {
    const providers = m.presets.filter((id) => !unsupported.has(id));
    if (providers.some((id) => chosen.includes(id))) continue;
    if (providers.length) chosen.push(providers[0]);
    else if (m.presets.length) newer.push(m.path);
    else orphans.push(m.path);
  }
  const newerNotice = newer.length ? notice("warn", `${newer.join(", ")} ${newer.length === 1 ? "comes" : "come"} only with presets that need a newer ComfyUI.`) : null;
  let action = null;
  if (req.satisfied) {
    action = notice("info", "Everything this workflow needs is installed.");
  } else if (chosen.length) {
    const install = h("button", { type: "button", class: "button primary",
      text: `Install what this workflow needs (${chosen.map(presetName).join(", ")})`,
      onclick: async () => {
        install.disabled = true;
        let started = 0;
        for (const id of chosen) {
          const answer = await attempt(() => installPreset(id), `Install ${presetName(id)}`);
          if (answer) started += 1;
        }
        if (started) toast(h("span", null, `Installing ${started} preset${started === 1 ? "" : "s"}. `, h("a", { href: "#/downloads", text: "Follow the downloads" }), "."), "success");
      } });
    action = h("div", null, h("p", null, `Missing: ${req.missing.join(", ")}.`),
      orphans.length ? notice("warn", `No preset provides ${orphans.join(", ")}: add ${orphans.length === 1 ? "it" : "them"} yourself.`) : null,
      newerNotice, install);
  } else if (newer.length) {
    action = h("div", null, h("p", null, `Missing: ${req.missing.join(", ")}.`), newerNotice);
  } else {
    action = notice("warn", `Missing: ${req.missing.join(", ")}. No preset provides ${req.missing.length === 1 ? "it" : "them"}: add the files yourself.`);
  }
  fill(area, h("h3", { text: "Models" }), h("div", { class: "table-wrap" }, table), action);
}
