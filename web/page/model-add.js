// The Models view's "Add a model" form: a URL and a folder, Check (the server's dry run: the file, its size and
// its source, nothing queued), then Download (the real request; the download shows on the Downloads view).

import { api } from "./api.js";
import { fill, fmtBytes, h, uid } from "./dom.js";
import { startedDownload } from "./store.js";
import { errorView, notice, toast } from "./widgets.js";

const FIELD_NAMES = { url: "URL", type: "Folder", filename: "File name", subfolder: "Subfolder" };

/** Where a dry run says the file comes from, for a person. */
/** The licence a check names: its name, linked to where it can be read, and Civitai's permissions. */
function licenseView(license) {
  if (!license) return "not stated by the source: check it before use";
  const permissions = license.commercial_use ? [
    license.commercial_use.length ? `commercial use: ${license.commercial_use.join(", ")}` : "no commercial use",
    license.derivatives ? "derivatives allowed" : "no derivatives",
    license.credit_required ? "credit required" : null].filter(Boolean).join("; ") : "";
  return [license.url ? h("a", { href: license.url, target: "_blank", rel: "noopener noreferrer", text: license.name })
    : license.name, permissions ? ` (${permissions})` : ""];
}

export function sourceText(source) {
  if (!source) return "unknown";
  if (source.kind === "huggingface") return `Hugging Face: ${source.repo} (${source.repo_file}, ${source.revision})`;
  if (source.kind === "civitai") return `Civitai: model ${source.model_id}, version ${source.version_id}`;
  try {
    return new URL(source.url).host;
  } catch {
    return source.url || "unknown";
  }
}

/** The form; `setTypes(types)` fills its folder select from GET /api/models/types. */
export function addModelForm() {
  const field = (label, input, grow = true) => {
    input.id = uid("add-model");
    return h("div", { class: grow ? "field grow" : "field" }, h("label", { for: input.id, text: label }), input);
  };
  const url = h("input", { class: "input", type: "text", inputmode: "url", autocomplete: "off", spellcheck: "false",
    placeholder: "Hugging Face, Civitai or AIR URL" });
  const folder = h("select", { class: "select" }, h("option", { value: "", text: "Choose a folder" }));
  const filename = h("input", { class: "input", type: "text", autocomplete: "off", spellcheck: "false" });
  const subfolder = h("input", { class: "input", type: "text", autocomplete: "off", spellcheck: "false" });
  const inputs = { url, type: folder, filename, subfolder };
  const check = h("button", { type: "submit", class: "button", text: "Check" });
  const download = h("button", { type: "button", class: "button primary", text: "Download", disabled: true });
  const result = h("div", { class: "add-model-result", role: "status", "aria-live": "polite" });
  const problem = h("div", { class: "add-model-error" });
  let checked = null; // the body the last successful check was for

  const body = () => {
    const data = { url: url.value.trim(), type: folder.value };
    if (filename.value.trim()) data.filename = filename.value.trim();
    if (subfolder.value.trim()) data.subfolder = subfolder.value.trim();
    return data;
  };
  const reset = () => {
    checked = null;
    download.disabled = true;
    for (const input of Object.values(inputs)) input.removeAttribute("aria-invalid");
    fill(problem);
  };
  const showError = (error) => {
    if (error.status === 401) return;
    const name = error.details && error.details.field;
    const input = inputs[name];
    fill(problem, notice("error", errorView(error),
      name ? h("span", { class: "error-field", text: ` (field: ${FIELD_NAMES[name] || name})` }) : null));
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
  };
  const busy = (on) => {
    check.disabled = on;
    if (on) download.disabled = true;
  };

  const form = h("form", { class: "add-model", "aria-label": "Add a model", novalidate: true, onsubmit: async (event) => {
    event.preventDefault();
    reset();
    fill(result, h("span", { class: "muted", text: "Checking…" }));
    busy(true);
    const data = body();
    try {
      const answer = await api("api/models/download/check", { method: "POST", body: data });
      const name = answer.path.split("/").pop();
      fill(result, h("dl", { class: "add-model-facts" },
        h("dt", { text: "File" }), h("dd", { class: "break", "data-fact": "name", text: name }),
        h("dt", { text: "Path" }), h("dd", { class: "break", "data-fact": "path", text: answer.path }),
        h("dt", { text: "Size" }), h("dd", { "data-fact": "size", text: answer.size_bytes ? fmtBytes(answer.size_bytes) : "unknown" }),
        h("dt", { text: "Source" }), h("dd", { class: "break", "data-fact": "source", text: sourceText(answer.source) }),
        h("dt", { text: "Licence" }), h("dd", { class: "break", "data-fact": "license" }, licenseView(answer.license))),
      answer.exists ? notice("warn", "A file is already at this path.") : null);
      checked = data;
      download.disabled = false;
    } catch (error) {
      fill(result);
      showError(error);
    } finally {
      check.disabled = false;
    }
  } },
  h("div", { class: "filters" },
    field("Model URL", url),
    field("Folder", folder, false)),
  h("div", { class: "filters" },
    field("File name (optional)", filename),
    field("Subfolder (optional)", subfolder)),
  h("div", { class: "actions" }, check, download),
  result, problem);

  for (const input of Object.values(inputs)) {
    input.addEventListener(input.tagName === "SELECT" ? "change" : "input", () => {
      if (checked) reset();
    });
  }
  download.addEventListener("click", async () => {
    if (!checked) return;
    const data = checked;
    busy(true);
    fill(problem);
    try {
      const answer = await api("api/models/download", { method: "POST", body: data });
      startedDownload({ id: answer.download_id, preset_id: null, status: answer.status, progress: 0, priority: "normal",
        files: {}, created_at: Date.now() / 1000, error: null, path: answer.path, source: answer.source });
      const link = h("a", { href: "#/downloads", text: "See it on the Downloads view" });
      fill(result, h("p", { class: "add-model-started", "data-download": answer.download_id },
        `Download of ${answer.path} started. `, link, "."));
      link.focus(); // the Download button it replaces under the keyboard is disabled now
      toast(`Downloading ${answer.path}.`, "success");
      checked = null;
    } catch (error) {
      showError(error);
      download.disabled = false;
    } finally {
      check.disabled = false;
    }
  });

  const el = h("section", { class: "panel add-model-panel", "aria-labelledby": "add-model-title" },
    h("h2", { id: "add-model-title", text: "Add a model" }), form);
  return {
    el,
    setTypes(types) {
      const current = folder.value;
      fill(folder, h("option", { value: "", text: "Choose a folder" }),
        types.map((t) => h("option", { value: t.id, text: `${t.name} (${t.id})` })));
      folder.value = types.some((t) => t.id === current) ? current : "";
    },
  };
}
