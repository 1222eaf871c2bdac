// A preset's detail dialog, opened from its card: description and licence, its files (and its dependencies'
// files) with their state, shared files, dependencies, and the install plan of GET /api/presets/{id}/plan:
// bytes to download, free space per volume, access to gated repositories. Its Install button says what an
// install downloads and is disabled, with the reason, when the files do not fit.

import { api, seg } from "./api.js";
import { fill, fmtBytes, h, uid } from "./dom.js";
import { ACTIVE, downloadOfPreset, installPreset, presetName } from "./store.js";
import { attempt, errorView, notice, toast } from "./widgets.js";

/** "Install (36.7 MB)", or "Install" when there is nothing (or nothing known) to download. */
export const installLabel = (bytes) => (bytes > 0 ? `Install (${fmtBytes(bytes)})` : "Install");

/** Open the detail dialog of summary `p`; focus goes back to `opener` (or its card's Details button) on closing. */
export function openPresetDetail(p, opener) {
  const titleId = uid("preset-detail");
  const close = h("button", { type: "button", class: "icon-button", "aria-label": "Close details", text: "×" });
  const body = h("div", { class: "preset-detail-body" }, h("p", { class: "muted", text: "Reading the preset and its plan…" }));
  const actions = h("div", { class: "dialog-actions" });
  const dialog = h("dialog", { class: "dialog preset-detail", "aria-labelledby": titleId, "data-preset": p.id },
    h("header", { class: "dialog-head" }, h("h2", { id: titleId, text: p.name }), close), body, actions);

  const done = () => dialog.close();
  close.addEventListener("click", done);
  dialog.addEventListener("close", () => {
    dialog.remove();
    const back = opener && opener.isConnected ? opener
      : document.querySelector(`article[data-preset="${CSS.escape(p.id)}"] .details-button`);
    if (back) back.focus();
  });
  document.body.append(dialog);
  dialog.showModal(); // Escape closes a modal <dialog> by itself ("close" follows)
  close.focus();

  const path = `api/presets/${seg(p.id)}`;
  Promise.all([api(path), api(`${path}/plan`).catch((error) => ({ error }))]).then(([detail, plan]) => {
    if (!dialog.open) return;
    fill(body, about(detail), files(detail, plan), dependencies(detail, plan), planSection(plan));
    fill(actions, installActions(p, plan, done));
  }, (error) => {
    if (dialog.open && error.status !== 401) fill(body, notice("error", errorView(error)));
  });
  return dialog;
}

function section(title, ...children) {
  const id = uid("preset-section");
  return h("section", { class: "detail-section", "aria-labelledby": id }, h("h3", { id, text: title }), ...children);
}

const newTab = (href, text) => h("a", { href, target: "_blank", rel: "noopener noreferrer", text });

function about(detail) {
  return section("About",
    h("p", { class: detail.description ? "detail-text" : "detail-text muted", text: detail.description || "No description." }),
    h("dl", { class: "facts" },
      h("div", { "data-fact": "licence" }, h("dt", { text: "Licence" }),
        h("dd", null, detail.license || "not stated",
          detail.license_url ? [" (", newTab(detail.license_url, "model page"), ")"] : null)),
      h("div", null, h("dt", { text: "VRAM" }), h("dd", { text: detail.vram_gb === null ? "not stated" : `${detail.vram_gb} GB` })),
      h("div", null, h("dt", { text: "Type" }), h("dd", { text: detail.type }))));
}

/** What a file of the plan is now, for a person. */
function fileState(f) {
  if (f.verified) return ["verified", "Verified"];
  if (f.present) return ["present", "Present"];
  if (f.download) return ["download", `To download: ${fmtBytes(f.bytes_to_download)}`];
  if (f.optional) return ["optional", "Optional, not installed"];
  return ["missing", "Not here"];
}

function files(detail, plan) {
  if (plan.error) { // no plan (e.g. the preset needs a newer ComfyUI): the preset's own files as the detail lists them
    return section("Files", h("ul", { class: "plain-list detail-files" }, detail.files.map((f) => h("li", { "data-path": f.path },
      h("code", { class: "break", text: f.path }), " ", h("span", { class: "muted", text: fmtBytes(f.size_bytes) }),
      f.optional ? h("span", { class: "badge", text: "optional" }) : null))));
  }
  const rows = plan.files.map((f) => {
    const [state, text] = fileState(f);
    const shared = f.shared_with.filter((id) => id !== f.preset_id);
    return h("tr", { "data-path": f.path, "data-state": state },
      h("td", { class: "break" }, h("code", { text: f.path }),
        f.preset_id !== detail.id ? h("div", { class: "muted small-text", text: `from ${presetName(f.preset_id)}` }) : null,
        f.optional ? h("span", { class: "badge", text: "optional" }) : null,
        shared.length ? h("div", { class: "small-text shared", text: `Shared with ${shared.map(presetName).join(", ")}` }) : null),
      h("td", { class: "num", text: fmtBytes(f.size_bytes) }),
      h("td", { class: `file-state file-${state}`, text }));
  });
  return section("Files", h("div", { class: "table-wrap" }, h("table", { class: "table detail-files" },
    h("thead", null, h("tr", null, h("th", { scope: "col", text: "File" }), h("th", { scope: "col", class: "num", text: "Size" }),
      h("th", { scope: "col", text: "State" }))),
    h("tbody", null, rows))));
}

function dependencies(detail, plan) {
  const deps = plan.error ? detail.dependencies.map((id) => ({ id, name: presetName(id) })) : plan.dependencies;
  if (!deps.length) return section("Dependencies", h("p", { class: "muted", text: "None." }));
  return section("Dependencies", h("ul", { class: "plain-list detail-deps" }, deps.map((d) => h("li", { "data-dependency": d.id },
    h("strong", { text: d.name }), " ", h("span", { class: "muted small-text", text: d.id }), " · ",
    d.installed ? h("span", { class: "installed-text", text: "✓ Installed" })
      : d.bytes_to_download !== undefined ? `To download: ${fmtBytes(d.bytes_to_download)}` : "Not installed"))));
}

function planSection(plan) {
  if (plan.error) return section("Install plan", notice(plan.error.code === "PRESET_UNSUPPORTED" ? "info" : "error", errorView(plan.error)));
  const summary = plan.bytes_to_download > 0
    ? `Installing downloads ${fmtBytes(plan.bytes_to_download)} of ${fmtBytes(plan.total_bytes)} in all, dependencies included.`
    : "Nothing to download: every file is here.";
  const volumes = plan.volumes.map((v) => h("li", { "data-volume": v.path, "data-fits": String(v.fits) },
    h("code", { class: "break", text: v.path }),
    h("div", null, `${fmtBytes(v.free_bytes)} free, ${fmtBytes(v.needed_bytes)} needed `,
      v.fits ? h("span", { class: "installed-text", text: "✓ fits" }) : null),
    v.fits ? null : notice("error", h("strong", { text: "Not enough space. " }),
      `This disk has ${fmtBytes(v.free_bytes)} free; the install needs ${fmtBytes(v.needed_bytes)} on it. Free some space first.`)));
  const blocked = plan.access.repos.filter((r) => r.status !== "granted");
  return section("Install plan",
    h("p", { class: "plan-summary", text: summary }),
    volumes.length ? h("ul", { class: "plain-list detail-volumes", "aria-label": "Disk space" }, volumes) : null,
    blocked.map((r) => {
      const el = notice("warn", h("strong", { text: `${r.repo}: ` }), r.message,
        r.model_page ? [" (", newTab(r.model_page, "model page"), ")"] : null, ".",
        r.status === "needs_token" && !plan.access.hf_token ? " No HF_TOKEN is set for the dashboard." : null);
      el.dataset.repo = r.repo;
      return el;
    }));
}

function installActions(p, plan, done) {
  const closeButton = h("button", { type: "button", class: "button", text: "Close", onclick: done });
  const d = downloadOfPreset(p.id);
  if (d && ACTIVE.has(d.status)) {
    return [h("p", { class: "muted small-text action-reason", text: "Being installed: its progress shows on its card." }), closeButton];
  }
  if (plan.error) return [closeButton];
  if (p.installed && plan.bytes_to_download === 0) return [h("p", { class: "installed action-reason", text: "✓ Installed" }), closeButton];
  const reasonId = uid("install-reason");
  const short = plan.volumes.filter((v) => !v.fits);
  const blocked = !plan.fits || short.length > 0;
  const reason = blocked ? h("p", { id: reasonId, class: "error-text small-text action-reason",
    text: short.length ? `Cannot install: ${short.map((v) => `${fmtBytes(v.needed_bytes)} needed, ${fmtBytes(v.free_bytes)} free`)
      .join("; ")}.` : "Cannot install: the files do not fit on the disk." }) : null;
  const install = h("button", { type: "button", class: "button primary", text: installLabel(plan.bytes_to_download),
    disabled: blocked, "aria-describedby": reason ? reasonId : null,
    onclick: async () => {
      install.disabled = true;
      const answer = await attempt(() => installPreset(p.id), `Install ${p.name}`);
      if (answer && answer.status === "installed") toast(`${p.name} is already installed.`, "success");
      if (answer) done();
      else install.disabled = false;
    } });
  return [reason, closeButton, install];
}
