// One model file's detail dialog, opened from its name on the Models view: GET /api/models/{path}/info, the
// file's hash (or that the library scan has not hashed it yet), size, presets, source and licence, what its
// safetensors or GGUF header says (title, architecture, base model, its raw keys), usage, the other copies of
// it, a newer version, and what Civitai knows of it, with the preview image the dashboard saved.

import { api } from "./api.js";
import { fill, fmtBytes, fmtDate, h, uid } from "./dom.js";
import { sourceText } from "./model-add.js";
import { errorView, notice } from "./widgets.js";

/** A model path as a URL path: every segment escaped, the slashes kept (the server matches them literally). */
export const modelUrl = (path, what) => `api/models/${path.split("/").map(encodeURIComponent).join("/")}/${what}`;

/** Open the detail of the model at `path`; focus goes back to `opener` (or the name button of its row) on closing. */
export function openModelDetail(path, opener) {
  const titleId = uid("model-detail");
  const close = h("button", { type: "button", class: "icon-button", "aria-label": "Close details", text: "×" });
  const body = h("div", { class: "model-detail-body" }, h("p", { class: "muted", text: "Reading the model file…" }));
  const closeButton = h("button", { type: "button", class: "button", text: "Close" });
  const dialog = h("dialog", { class: "dialog model-detail", "aria-labelledby": titleId, "data-path": path },
    h("header", { class: "dialog-head" }, h("h2", { id: titleId, class: "break", text: path.split("/").pop() }), close),
    h("p", { class: "muted small-text break model-detail-path", text: path }),
    body, h("div", { class: "dialog-actions" }, closeButton));

  const done = () => dialog.close();
  close.addEventListener("click", done);
  closeButton.addEventListener("click", done);
  dialog.addEventListener("close", () => {
    dialog.remove();
    const back = opener && opener.isConnected ? opener
      : document.querySelector(`tr[data-path="${CSS.escape(path)}"] .model-name`);
    if (back) back.focus();
  });
  document.body.append(dialog);
  dialog.showModal(); // Escape closes a modal <dialog> by itself ("close" follows)
  close.focus();

  api(modelUrl(path, "info")).then((info) => {
    if (dialog.open) fill(body, facts(info), header(info.metadata), usage(info), civitai(info.civitai, info.path));
  }, (error) => {
    if (dialog.open && error.status !== 401) fill(body, notice("error", errorView(error)));
  });
  return dialog;
}

function section(title, ...children) {
  const id = uid("model-section");
  return h("section", { class: "detail-section", "aria-labelledby": id }, h("h3", { id, text: title }), ...children);
}

const newTab = (href, text) => h("a", { href, target: "_blank", rel: "noopener noreferrer", text });

/** One row of a definition list; `fact` names it for tests and styles. */
const fact = (name, label, ...value) => h("div", { "data-fact": name }, h("dt", { text: label }), h("dd", { class: "break" }, ...value));

function facts(info) {
  const license = info.license;
  return section("File", h("dl", { class: "model-facts" },
    fact("sha256", "SHA-256", info.sha256 ? h("code", { text: info.sha256 })
      : h("span", { class: "muted", text: "not hashed yet: the library scan hashes it" })),
    fact("size", "Size", fmtBytes(info.size_bytes)),
    fact("modified", "Modified", fmtDate(info.modified)),
    fact("presets", "Presets", info.presets.length ? info.presets.join(", ") : h("span", { class: "muted", text: "none" })),
    fact("source", "Source", sourceLink(info.source)),
    fact("license", "Licence", !license ? h("span", { class: "muted", text: "not known" })
      : license.url ? newTab(license.url, license.name) : license.name),
    fact("duplicates", "Other copies", info.duplicates.length
      ? h("ul", { class: "plain-list" }, info.duplicates.map((p) => h("li", null, h("code", { text: p }))))
      : h("span", { class: "muted", text: info.sha256 ? "none" : "not known until it is hashed" })),
    fact("update", "Update", updateText(info.update))));
}

function sourceLink(source) {
  if (!source) return h("span", { class: "muted", text: "unknown (not downloaded by the dashboard)" });
  const text = sourceText(source);
  if (source.kind === "huggingface" || !source.url) return text;
  return /^https?:\/\//.test(source.url) ? newTab(source.url, text) : text;
}

/** "A newer version is available: v2 (the old file stays until the new one is verified)". */
export function updateText(update) {
  if (!update) return h("span", { class: "muted", text: "none known" });
  const latest = update.latest || {};
  const name = latest.name || (latest.version_id ? `version ${latest.version_id}` : latest.commit ? `commit ${String(latest.commit).slice(0, 10)}` : "");
  return `A newer version is available${name ? `: ${name}` : ""}. Updating keeps the old file until the new one is downloaded and verified.`;
}

function header(metadata) {
  if (!metadata) return section("Header", h("p", { class: "muted", text: "No safetensors or GGUF header metadata." }));
  const keys = Object.entries(metadata.metadata || {});
  const missing = (value) => value || h("span", { class: "muted", text: "not stated" });
  return section("Header",
    h("dl", { class: "model-facts" },
      fact("format", "Format", metadata.format),
      fact("title", "Title", missing(metadata.title)),
      fact("architecture", "Architecture", missing(metadata.architecture)),
      fact("base_model", "Base model", missing(metadata.base_model))),
    keys.length ? h("details", { class: "header-keys" },
      h("summary", { text: `All header keys (${keys.length})` }),
      h("dl", { class: "model-facts raw-keys" }, keys.map(([key, value]) => h("div", null,
        h("dt", null, h("code", { text: key })),
        h("dd", { class: "break", text: typeof value === "string" ? value : JSON.stringify(value) })))))
      : null);
}

function usage(info) {
  return section("Usage", h("dl", { class: "model-facts" },
    fact("last_used", "Last used", info.last_used ? fmtDate(info.last_used) : h("span", { class: "muted", text: "never, as far as the dashboard saw" })),
    fact("use_count", "Prompts that used it", String(info.use_count))));
}

function civitai(found, path) {
  if (!found) return null; // the lookup is off (DASHBOARD_CIVITAI_LOOKUP) or the file is not hashed yet
  if (!found.found) return section("Civitai", h("p", { class: "muted", text: "Civitai does not know this file." }));
  // only ever the image the dashboard saved (a page-relative api/models/.../preview), never another host's
  const preview = /^api\/models\/.+\/preview$/.test(found.preview || "") ? modelUrl(path, "preview") : null;
  const words = found.trained_words || [];
  return section("Civitai",
    h("div", { class: "civitai-info" },
      preview ? h("img", { class: "model-preview", src: preview, alt: `Preview of ${found.name || "the model"} from Civitai`,
        loading: "lazy", width: 160, height: 160 }) : null,
      h("dl", { class: "model-facts" },
        fact("civitai_name", "Model", found.url && /^https:\/\//.test(found.url) ? newTab(found.url, found.name || found.url) : found.name || "?"),
        fact("civitai_version", "Version", found.version || "?"),
        fact("civitai_base", "Base model", found.base_model || h("span", { class: "muted", text: "not stated" })),
        words.length ? fact("trained_words", "Trigger words", words.map((w) => h("code", { class: "chip", text: w }))) : null,
        found.nsfw ? fact("nsfw", "Rating", "NSFW") : null)));
}
