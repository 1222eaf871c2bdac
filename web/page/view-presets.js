// Presets: category tabs, search and filters, cards with size, VRAM and gated notice; install, uninstall and
// live progress. A preset for a newer ComfyUI (`requires`) says so instead of offering to install. Install buttons
// say what an install downloads now, dependencies included; Details opens the preset's detail dialog (preset-detail.js).

import { fill, fmtBytes, fmtGb, h, uid } from "./dom.js";
import { installLabel, openPresetDetail } from "./preset-detail.js";
import { ACTIVE, downloadOfPreset, installPreset, loadPresets, on, store, uninstallPreset } from "./store.js";
import { attempt, bar, confirmDialog, downloadControls, errorView, notice, progressText, toast } from "./widgets.js";

export const title = "Presets";

const PAGE = 60;
// Filters survive switching views.
const filters = { category: "", search: "", status: "", source: "", vram: "" };

const SOURCES = [["", "All sources"], ["shipped", "Curated"], ["user", "My presets"], ["template", "ComfyUI templates"]];
const STATUSES = [["", "Any status"], ["installed", "Installed"], ["not_installed", "Not installed"]];
const VRAM = [["", "Any VRAM"], ["8", "Up to 8 GB"], ["12", "Up to 12 GB"], ["16", "Up to 16 GB"], ["24", "Up to 24 GB"],
  ["48", "Up to 48 GB"]];

export function mount(root) {
  const tabs = h("div", { class: "tabs", role: "group", "aria-label": "Category" });
  const search = h("input", { type: "search", id: "preset-search", class: "input", placeholder: "Search name, description, tags",
    value: filters.search, autocomplete: "off" });
  const count = h("p", { class: "muted count", role: "status", "aria-live": "polite" });
  const grid = h("div", { class: "cards" });
  const more = h("div", { class: "more-row" });
  const warnings = h("div");
  fill(root,
    h("h1", { class: "view-title", text: "Presets" }),
    tabs,
    h("div", { class: "filters" },
      h("div", { class: "field grow" }, h("label", { for: "preset-search", text: "Search presets" }), search),
      select("Status", "status", STATUSES), select("Source", "source", SOURCES), select("VRAM", "vram", VRAM)),
    warnings, count, grid, more);

  let shown = PAGE;
  let cards = new Map();

  function select(label, key, options) {
    const id = uid(`preset-${key}`);
    const el = h("select", { id, class: "select", onchange: () => {
      filters[key] = el.value;
      shown = PAGE;
      draw();
    } }, options.map(([value, text]) => h("option", { value, text })));
    el.value = filters[key];
    return h("div", { class: "field" }, h("label", { for: id, text: label }), el);
  }

  search.addEventListener("input", () => {
    filters.search = search.value;
    shown = PAGE;
    draw();
  });

  function drawTabs(categories) {
    if (tabs.dataset.categories !== categories.join("|")) {
      tabs.dataset.categories = categories.join("|");
      fill(tabs, ["", ...categories].map((c) => h("button", {
        type: "button", class: "tab", "data-category": c, text: c ? c.replace(/ Generation$/, "") : "All",
        onclick: () => {
          filters.category = c;
          shown = PAGE;
          draw();
        },
      })));
    }
    for (const tab of tabs.children) tab.setAttribute("aria-pressed", String(tab.dataset.category === filters.category));
  }

  function matches(p) {
    if (filters.category && p.category !== filters.category) return false;
    if (filters.status === "installed" && !p.installed) return false;
    if (filters.status === "not_installed" && p.installed) return false;
    if (filters.source && p.source !== filters.source) return false;
    if (filters.vram && (p.vram_gb === null || p.vram_gb > Number(filters.vram))) return false;
    const words = filters.search.toLowerCase().split(/\s+/).filter(Boolean);
    const text = `${p.id} ${p.name} ${p.description} ${p.tags.join(" ")}`.toLowerCase();
    return words.every((w) => text.includes(w));
  }

  function draw() {
    const data = store.presets;
    if (!data) return;
    drawTabs(data.categories);
    const found = data.presets.filter(matches);
    count.textContent = `${found.length} of ${data.total} presets`;
    cards = new Map(found.slice(0, shown).map((p) => [p.id, presetCard(p)]));
    fill(grid, found.length ? [...cards.values()].map((c) => c.el) : h("p", { class: "muted", text: "No preset matches these filters." }));
    fill(more, found.length > shown ? h("button", { type: "button", class: "button", text: `Show more (${found.length - shown} left)`,
      onclick: () => {
        shown += PAGE;
        draw();
      } }) : null);
    fill(warnings, data.errors && data.errors.length ? notice("warn", `${data.errors.length} preset file(s) were skipped: `,
      data.errors.map((e) => `${e.file}: ${e.error}`).join("; ")) : null);
  }

  const refresh = () => cards.forEach((card) => card.update());
  fill(grid, h("p", { class: "muted", text: "Loading presets…" }));
  if (store.presets) draw();
  else loadPresets().catch((error) => error.status !== 401 && fill(grid, notice("error", errorView(error)))); // emits "presets"
  const offs = [on("downloads", refresh), on("presets", draw), on("reconnected", () => loadPresets(true))];
  return () => offs.forEach((off) => off());
}

function presetCard(p) {
  const titleId = uid("preset");
  const progress = bar(`Installation of ${p.name}`);
  const progressLine = h("p", { class: "small-text muted progress-line" });
  const status = h("div", { class: "card-status" });
  const buttons = h("span", { class: "button-group" });
  const details = h("button", { type: "button", class: "button details-button", "aria-haspopup": "dialog",
    "aria-label": `Details of ${p.name}`, text: "Details", onclick: () => openPresetDetail(p, details) });
  const actions = h("div", { class: "actions" }, buttons, details);
  const el = h("article", { class: "card", "aria-labelledby": titleId, "data-preset": p.id },
    h("header", { class: "card-head" },
      h("h3", { id: titleId, text: p.name }),
      h("span", { class: "badge", text: p.type })),
    h("p", { class: "card-id muted", text: p.id }),
    h("p", { class: "card-text", text: p.description }),
    h("dl", { class: "facts" },
      h("div", null, h("dt", { text: "Size" }), h("dd", { text: fmtBytes(p.download_bytes) })),
      h("div", null, h("dt", { text: "VRAM" }), h("dd", { text: p.vram_gb === null ? "not stated" : `${p.vram_gb} GB` })),
      h("div", null, h("dt", { text: "Source" }), h("dd", { text: { shipped: "curated", user: "yours", template: "ComfyUI template" }[p.source] || p.source }))),
    installTotal(p),
    p.gated ? notice("warn", h("strong", { text: "Gated model. " }),
      "Set HF_TOKEN and accept the licence on the model's Hugging Face page before installing.") : null,
    p.update_available ? notice("info", h("strong", { text: "Update available. " }),
      "A file of this preset has a newer version at its source: see Models, Updates available.") : null,
    status, actions);

  let shownKey = null;
  const update = () => {
    const d = downloadOfPreset(p.id);
    const running = d && ACTIVE.has(d.status);
    const failed = d && d.status === "failed" && !p.installed;
    el.dataset.state = running ? d.status : failed ? "failed" : p.installed ? "installed"
      : p.requires ? "unsupported" : "available";
    if (running) {
      progress.set(d.progress, progressText(d));
      progressLine.textContent = progressText(d);
    }
    const key = `${el.dataset.state}|${d ? d.id : ""}|${failed && d.error ? d.error.message : ""}`;
    if (key === shownKey) return;
    shownKey = key;
    if (running) {
      fill(status, progress.el, progressLine);
      fill(buttons, downloadControls(d, p.name));
    } else if (failed) {
      fill(status, notice("error", d.error ? errorView(d.error) : "The installation failed."));
      fill(buttons, downloadControls(d, p.name));
    } else if (p.requires) {
      fill(status, notice("info", newerComfyUI(p.requires)));
      fill(buttons);
    } else if (p.installed) {
      fill(status, h("p", { class: "installed", text: "✓ Installed" }));
      fill(buttons, h("button", { type: "button", class: "button danger", "aria-label": `Uninstall ${p.name}`, text: "Uninstall",
        onclick: () => uninstall(p) }));
    } else {
      fill(status);
      const total = p.install_bytes > 0 ? ` (${fmtBytes(p.install_bytes)})` : "";
      fill(buttons, h("button", { type: "button", class: "button primary", "aria-label": `Install ${p.name}${total}`,
        text: installLabel(p.install_bytes),
        onclick: async (event) => {
          event.currentTarget.disabled = true;
          const answer = await attempt(() => installPreset(p.id), `Install ${p.name}`);
          if (answer && answer.status === "installed") toast(`${p.name} is already installed.`, "success");
          update();
        } }));
    }
  };
  update();
  return { el, update };
}

/** What installing downloads now when it is not the preset's own size: dependencies add to it, or files are here. */
function installTotal(p) {
  if (p.installed || p.requires || typeof p.install_bytes !== "number" || p.install_bytes === p.download_bytes) return null;
  return h("p", { class: "small-text install-total" }, p.install_bytes > p.download_bytes
    ? [h("strong", { text: `${fmtBytes(p.install_bytes)} to download` }),
      ` with its dependencies (its own files: ${fmtBytes(p.download_bytes)}).`]
    : [h("strong", { text: `${fmtBytes(p.install_bytes)} to download` }), ": some of its files are already here."]);
}

/** "Needs a newer ComfyUI: this one has no latent_upscale_models model folder." */
function newerComfyUI(requires) {
  const folders = requires.comfyui_folders || [];
  return h("span", null, h("strong", { text: "Needs a newer ComfyUI" }),
    `: this one has no ${folders.join(", ")} model folder${folders.length === 1 ? "" : "s"}. Update ComfyUI to install it.`);
}

async function uninstall(p) {
  const ok = await confirmDialog({
    title: `Uninstall ${p.name}?`,
    body: h("p", null, "Its model files are deleted, except files another installed preset also uses."),
    confirmLabel: "Uninstall",
    danger: true,
  });
  if (!ok) return;
  const answer = await attempt(async () => {
    try {
      return await uninstallPreset(p.id);
    } catch (error) {
      if (error.code !== "MODEL_IN_USE") throw error;
      const anyway = await confirmDialog({
        title: `${p.name} is in use`,
        body: h("p", null, "A queued or running prompt names ", (error.details?.paths || []).join(", "),
          ". Uninstalling now makes that prompt fail."),
        confirmLabel: "Uninstall anyway",
        danger: true,
      });
      return anyway ? uninstallPreset(p.id, true) : undefined;
    }
  }, `Uninstall ${p.name}`);
  if (answer) toast(`${p.name} uninstalled: ${answer.files_removed} file(s) removed, ${fmtGb(answer.space_freed_gb)} freed.`, "success");
}
