// ComfyUI Dashboard: what the workflow open in the editor needs. When a workflow is opened, loaded or its tab
// switched (the frontend's afterConfigureGraph hook), the graph as the editor saves it goes to the dashboard's
// POST /api/workflows/requirements; the sidebar tab shows the model files it loads, which are missing and why,
// and one button that installs every missing file that can be (POST /api/workflows/install-missing). While the
// tab is closed, a toast says so, once per workflow. When a download lands, the editor's loader lists are
// refreshed, so the new file is in the dropdowns without a reload.
//
// The sidebar (web/comfyui/dashboard_sidebar.js) imports it from <dashboard>/assets/, like dom.js and live.js,
// and owns the tab and the feed: it hands this module its request function, toasts and a redraw, and calls
// drawNeeds() with the page's h() and fmtBytes. It imports nothing and does nothing until followWorkflows().

const state = {
  answer: null, // the last requirements answer, for `workflow`
  workflow: null,
  checking: false,
  error: null, // why the last check failed
  installing: false,
  told: new Set(), // workflows whose missing files a toast already named
};
let deps = null; // { app, call, notify, tabOpen, redraw }
let timer = null;
let checks = 0; // the newest check wins when several overlap

/** Start following the editor's workflows; `deps` are the sidebar's helpers. */
export function followWorkflows(helpers) {
  deps = helpers;
}

/** The editor opened, loaded or switched to a workflow: check it once the graph settles. */
export function workflowChanged() {
  clearTimeout(timer);
  timer = setTimeout(check, 250);
}

/** A download ended: on success, refresh the editor's model lists, then check the workflow again. */
export async function downloadEnded(data) {
  if (data.status !== "success") return;
  await refreshModelLists();
  if (state.workflow) workflowChanged();
}

/** A name for a download of a workflow's missing files (it has no preset). */
function labelOf(paths) {
  return paths.length === 1 ? paths[0].split("/").pop() : `${paths.length} model files for this workflow`;
}

async function check() {
  const graph = deps && deps.app.graph;
  if (!graph || typeof graph.serialize !== "function") return;
  const workflow = graph.serialize();
  const mine = ++checks;
  state.checking = true;
  deps.redraw();
  try {
    const answer = await deps.call("POST", "/api/workflows/requirements", { workflow });
    if (mine !== checks) return;
    Object.assign(state, { answer, workflow, error: null });
  } catch (error) {
    if (mine !== checks) return;
    Object.assign(state, { answer: null, workflow, error: error.message });
  } finally {
    if (mine === checks) state.checking = false;
  }
  deps.redraw();
  tellIfClosed();
}

function missingOf(answer) {
  const missing = answer.files.filter((f) => !f.installed);
  const ready = missing.filter((f) => f.installable && !f.download_id);
  return { missing, ready, bytes: ready.reduce((sum, f) => sum + (f.size || 0), 0) };
}

function tellIfClosed() {
  const answer = state.answer;
  if (!answer || !answer.missing.length || deps.tabOpen()) return;
  const key = JSON.stringify([state.workflow && state.workflow.id, answer.missing]);
  if (state.told.has(key)) return;
  state.told.add(key);
  const { missing, ready } = missingOf(answer);
  const n = missing.length;
  deps.notify("warn", `This workflow is missing ${n} model file${n === 1 ? "" : "s"}`,
    ready.length ? "Open the Dashboard tab in the sidebar to install them."
      : "Open the Dashboard tab in the sidebar to see which, and why they cannot be installed from here.");
}

async function install() {
  state.installing = true;
  deps.redraw();
  try {
    const answer = await deps.call("POST", "/api/workflows/install-missing", { workflow: state.workflow });
    if (answer.download_id && answer.files.length) deps.started(answer.download_id, labelOf(answer.files));
  } catch (error) {
    deps.notify("error", "Install the missing models", error.message);
  } finally {
    state.installing = false;
  }
  workflowChanged();
}

/** The editor's loader lists read again from ComfyUI (whose file-list cache the dashboard cleared). */
async function refreshModelLists() {
  const { app } = deps;
  const command = app.extensionManager && app.extensionManager.command;
  try {
    if (command && typeof command.execute === "function") {
      await command.execute("Comfy.RefreshNodeDefinitions");
      return;
    }
  } catch {
    // an older frontend without the command: the app's own call below
  }
  if (typeof app.refreshComboInNodes === "function") await app.refreshComboInNodes();
}

/** The "This workflow" section's content, with the page's h() and fmtBytes. */
export function drawNeeds(h, fmtBytes) {
  const muted = (text) => h("p", { class: "cdash-muted", text });
  const answer = state.answer;
  if (state.error) return [muted(`Could not check this workflow: ${state.error}`)];
  if (!answer) return [muted(state.checking ? "Checking the models this workflow needs…" : "Open a workflow to see the models it needs.")];
  const total = answer.files.length;
  if (!total) return [muted("This workflow loads no model files.")];
  const { missing, ready, bytes } = missingOf(answer);
  if (!missing.length) return [h("p", { text: `✓ All ${total} model file${total === 1 ? " it loads is" : "s it loads are"} installed.` })];
  const why = (f) => {
    if (f.download_id) return "downloading";
    if (f.error) return f.error.message;
    if (!f.installable) return "no download source: the workflow names no URL and no preset has it";
    return f.size ? fmtBytes(f.size) : "size unknown";
  };
  const list = h("ul", { class: "cdash-needs", "aria-label": "Missing model files" }, missing.map((f) => h("li", { "data-path": f.path },
    h("span", { class: "cdash-need-name", title: f.path, text: f.name }), " ",
    h("span", { class: "cdash-muted", text: `${f.type} · ${why(f)}` }))));
  const n = ready.length;
  const button = n ? h("button", { type: "button", text: `Install ${n} missing file${n === 1 ? "" : "s"} (${fmtBytes(bytes)})`,
    disabled: state.installing, onclick: install }) : null;
  return [h("p", { text: `${missing.length} of ${total} model files missing.` }), list, button && h("div", { class: "cdash-buttons" }, button)];
}
