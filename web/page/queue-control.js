// Queue control the dashboard adds to ComfyUI's queue: hold and release, move (buttons and drag and drop),
// pause and resume, export and import, and freeing ComfyUI's memory. The Queue view (view-queue.js) draws
// these; the Free memory buttons are on the Overview too.

import { api, seg } from "./api.js";
import { fmtDate, h } from "./dom.js";
import { refreshQueue } from "./store.js";
import { attempt, toast } from "./widgets.js";

/** What buttons call a prompt: UUIDs by their first 8 characters, shorter ids whole. */
export const shortId = (id) => (id.length > 12 ? id.slice(0, 8) : id);

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Run a queue change, then read the queue again (a move changes no count, so no queue_update may come). */
async function change(what, path, { method = "POST", body } = {}) {
  const answer = await attempt(() => api(path, { method, body }), what);
  await refreshQueue().catch(() => {});
  return answer;
}

export const queueActions = {
  hold: (id) => change(`Hold prompt ${shortId(id)}`, `api/comfyui/queue/${seg(id)}/hold`),
  release: (id) => change(`Release prompt ${shortId(id)}`, `api/comfyui/queue/${seg(id)}/release`),
  /** `place`: exactly one of {priority}, {position: "top"|"bottom"}, {before: id}, {after: id}. */
  move: (id, place) => change(`Move prompt ${shortId(id)}`, `api/comfyui/queue/${seg(id)}`, { method: "PATCH", body: place }),
  pause: () => change("Pause the queue", "api/comfyui/queue/pause"),
  resume: () => change("Resume the queue", "api/comfyui/queue/resume"),
};

// ---- rows ----

/**
 * One pending prompt: its id, type and priority, Hold / Move up / Move down / Top / Bottom, and a drag
 * handle. `index` and `items` (the pending prompts in run order) say who its neighbours are. Buttons that
 * cannot move it say so with aria-disabled (a disabled button would drop the keyboard focus).
 */
export function pendingRow(item, index, items, drag) {
  const id = item.prompt_id;
  const name = shortId(id);
  const first = index === 0;
  const last = index === items.length - 1;
  const button = (text, label, action, off = false) => h("button", {
    type: "button", class: "button small", text, "aria-label": label, "data-action": action,
    "aria-disabled": off ? "true" : null, onclick: off ? null : () => act(action),
  });
  const act = (action) => {
    if (action === "hold") return queueActions.hold(id);
    if (action === "up") return queueActions.move(id, { before: items[index - 1].prompt_id });
    if (action === "down") return queueActions.move(id, { after: items[index + 1].prompt_id });
    return queueActions.move(id, { position: action });
  };
  const el = h("li", { class: "prompt-row queue-row", draggable: "true", "data-prompt": id },
    h("span", { class: "drag-handle", "aria-hidden": "true", title: "Drag to reorder", text: "⠿" }),
    h("span", { class: "queue-place muted small-text", text: `#${index + 1}` }),
    h("code", { text: id }), h("span", { class: "badge", text: item.type }),
    item.priority !== null && item.priority !== undefined ? h("span", { class: "muted", text: `priority ${item.priority}` }) : null,
    h("span", { class: "button-group queue-actions" },
      button("Hold", `Hold prompt ${name}`, "hold"),
      button("↑", `Move prompt ${name} up`, "up", first),
      button("↓", `Move prompt ${name} down`, "down", last),
      button("Top", `Move prompt ${name} to the top`, "top", first),
      button("Bottom", `Move prompt ${name} to the bottom`, "bottom", last)));
  drag.attach(el, id);
  return el;
}

const REASONS = { held: "held", paused: "waiting for resume" };

/** One held prompt: why it waits, since when, and Release. */
export function heldRow(entry) {
  const name = shortId(entry.prompt_id);
  return h("li", { class: "prompt-row held-row", "data-prompt": entry.prompt_id },
    h("code", { text: entry.prompt_id }),
    h("span", { class: "badge", "data-status": entry.reason === "paused" ? "paused" : null, text: REASONS[entry.reason] || entry.reason }),
    entry.priority !== null && entry.priority !== undefined ? h("span", { class: "muted", text: `priority ${entry.priority}` }) : null,
    h("span", { class: "muted small-text", text: entry.held_at ? `since ${fmtDate(entry.held_at)}` : "" }),
    h("span", { class: "button-group queue-actions" },
      h("button", { type: "button", class: "button small primary", text: "Release", "aria-label": `Release prompt ${name}`,
        "data-action": "release", onclick: () => queueActions.release(entry.prompt_id) })));
}

/**
 * Drag and drop between pending rows: dropping a prompt on another puts it in that one's place (before it
 * when dragged up, after it when dragged down, so a drop on the last row moves it to the end). `order()`
 * gives the ids in run order at the time of the drop.
 */
export function reorderByDrag(order) {
  let dragged = null;
  const clear = (list) => list && list.querySelectorAll(".drop-target").forEach((el) => el.classList.remove("drop-target"));
  return {
    attach(el, id) {
      el.addEventListener("dragstart", (event) => {
        dragged = id;
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", id);
        el.classList.add("dragging");
      });
      el.addEventListener("dragend", () => {
        dragged = null;
        el.classList.remove("dragging");
        clear(el.parentElement);
      });
      el.addEventListener("dragover", (event) => {
        if (!dragged || dragged === id) return;
        event.preventDefault(); // this row takes the drop
        event.dataTransfer.dropEffect = "move";
        el.classList.add("drop-target");
      });
      el.addEventListener("dragleave", () => el.classList.remove("drop-target"));
      el.addEventListener("drop", (event) => {
        event.preventDefault();
        const moving = dragged || event.dataTransfer.getData("text/plain");
        clear(el.parentElement);
        if (!moving || moving === id) return;
        const ids = order();
        const downwards = ids.indexOf(moving) < ids.indexOf(id);
        queueActions.move(moving, downwards ? { after: id } : { before: id });
      });
    },
  };
}

// ---- the view's head: pause, export, import, free memory ----

/** Download the queue export as a JSON file. */
export async function exportQueue() {
  const doc = await attempt(() => api("api/comfyui/queue/export"), "Export the queue");
  if (!doc) return;
  const stamp = new Date().toISOString().slice(0, 16).replace(/[:T]/g, "-");
  const url = URL.createObjectURL(new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" }));
  const link = h("a", { href: url, download: `comfyui-queue-${stamp}.json`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  toast(`Exported ${plural(doc.pending.length, "pending prompt")} and ${plural(doc.held.length, "held prompt")}.`, "success");
}

/** An Import button with its (hidden) file input: the file is sent to POST import, a toast says the counts. */
export function importControl() {
  const input = h("input", { type: "file", accept: "application/json,.json", hidden: true, "aria-label": "Queue export to import" });
  const button = h("button", { type: "button", class: "button", text: "Import…", "aria-label": "Import a queue export",
    onclick: () => input.click() });
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    input.value = "";
    if (!file) return;
    let doc;
    try {
      doc = JSON.parse(await file.text());
    } catch {
      toast(`Import: ${file.name} is not JSON.`, "error");
      return;
    }
    const answer = await change(`Import ${file.name}`, "api/comfyui/queue/import", { body: doc });
    if (answer) {
      toast(`Imported ${file.name}: ${answer.queued.length} queued, ${answer.held.length} held, `
        + `${answer.skipped.length} skipped (already there).`, "success");
    }
    button.focus();
  });
  return h("span", { class: "import-control" }, button, input);
}

/** Unload models / Free memory (ComfyUI's /free; it acts before its next prompt, at once when idle). */
export function freeMemoryControl() {
  const ask = async (body, done) => {
    const answer = await attempt(() => api("api/comfyui/free", { method: "POST", body }), "Free memory");
    if (answer) toast(done, "success");
  };
  return h("span", { class: "button-group free-memory", role: "group", "aria-label": "ComfyUI memory" },
    h("button", { type: "button", class: "button", text: "Unload models", title: "Unload every model from VRAM",
      onclick: () => ask({ unload_models: true }, "Asked ComfyUI to unload its models.") }),
    h("button", { type: "button", class: "button", text: "Free memory", title: "Unload the models and free ComfyUI's cached memory",
      onclick: () => ask({ unload_models: true, free_memory: true }, "Asked ComfyUI to unload its models and free its memory.") }));
}

/** "3 prompts that were pending when ComfyUI went away were queued again", or null. */
export function restoredText(restored) {
  const n = restored && restored.prompt_ids ? restored.prompt_ids.length : 0;
  if (!n) return null;
  return n === 1 ? "1 prompt that was pending when ComfyUI went away was queued again"
    : `${n} prompts that were pending when ComfyUI went away were queued again`;
}

// ---- keeping the focus across a redraw ----

/** Before a list is drawn again: what had the focus in `root`; `restore()` afterwards puts it back, on the
 * same control (by its accessible name) or, when that went (a held prompt's row), on the same action of the
 * row now in its place, else on the list's section. */
export function keepFocus(root) {
  const el = document.activeElement;
  if (!el || !root.contains(el) || el === document.body) return () => {};
  const label = el.getAttribute("aria-label");
  const action = el.dataset.action;
  const row = el.closest("li");
  const list = row && row.parentElement;
  const index = row && list ? [...list.children].indexOf(row) : -1;
  const section = el.closest("section");
  return () => {
    if (root.contains(document.activeElement) && document.activeElement !== document.body) return;
    const same = label && [...root.querySelectorAll("[aria-label]")].find((node) => node.getAttribute("aria-label") === label);
    if (same) return same.focus();
    const rows = section ? [...section.querySelectorAll("li")] : [];
    const near = rows.length && action ? rows[Math.min(index, rows.length - 1)].querySelector(`[data-action="${action}"]`) : null;
    if (near) return near.focus();
    if (section) section.focus();
  };
}
