// Queue: ComfyUI's running and pending prompts with per-node progress, interrupt, clear, and recent prompts
// with their output images; and the dashboard's control of it (queue-control.js): pause and resume, hold,
// release and move prompts (buttons, drag and drop), export and import, free ComfyUI's memory.

import { api } from "./api.js";
import { fill, fmtDate, h, throttle } from "./dom.js";
import { exportQueue, freeMemoryControl, heldRow, importControl, keepFocus, pendingRow, queueActions, reorderByDrag,
  restoredText } from "./queue-control.js";
import { loadHistory, on, refreshQueue, store, viewUrl } from "./store.js";
import { attempt, bar, confirmDialog, errorView, notice, toast } from "./widgets.js";

export const title = "Queue";

export function mount(root) {
  const interrupt = h("button", { type: "button", class: "button", text: "Interrupt", "aria-label": "Interrupt the running prompt" });
  const clear = h("button", { type: "button", class: "button danger", text: "Clear pending", "aria-label": "Clear all pending prompts" });
  const pause = h("button", { type: "button", class: "button", text: "Pause queue", "aria-label": "Pause the queue" });
  const exporter = h("button", { type: "button", class: "button", text: "Export", "aria-label": "Export the queue as JSON",
    onclick: exportQueue });
  const importer = importControl();
  const state = h("div");
  const control = h("div", { class: "queue-control-state" });
  const running = h("div");
  const pending = h("div");
  const held = h("div");
  const recent = h("div");
  const section = (id, heading, body) => h("section", { class: "panel", "aria-labelledby": id, tabindex: "-1" },
    h("h2", { id, text: heading }), body);
  fill(root,
    h("div", { class: "view-head" }, h("h1", { class: "view-title", text: "Queue" }),
      h("div", { class: "queue-head-actions" }, h("span", { class: "button-group" }, pause, interrupt, clear),
        h("span", { class: "button-group" }, exporter, importer, freeMemoryControl()))),
    state,
    control,
    section("queue-running", "Running", running),
    section("queue-pending", "Pending", pending),
    section("queue-held", "Held", held),
    section("queue-recent", "Recent", recent));

  let pendingKey = null;
  let heldKey = null;
  let order = [];
  const drag = reorderByDrag(() => order);
  const drawControl = (q, items) => {
    pause.textContent = q.paused ? "Resume queue" : "Pause queue";
    pause.setAttribute("aria-label", q.paused ? "Resume the queue" : "Pause the queue");
    pause.classList.toggle("primary", !!q.paused);
    const restored = restoredText(items && items.restored);
    fill(control,
      q.paused ? notice("warn", h("strong", { text: "Paused: new prompts wait here" }),
        " in Held until the queue resumes; the running prompt finishes.") : null,
      restored ? notice("info", `${restored}`, items.restored.at ? ` (${fmtDate(items.restored.at)}).` : ".") : null);
  };
  const drawLists = (items) => {
    const waiting = items.queue_pending;
    const kept = items.held || [];
    const nextPending = JSON.stringify(waiting.map((i) => [i.prompt_id, i.type, i.priority]));
    const nextHeld = JSON.stringify([!!store.queue.paused, ...kept.map((i) => [i.prompt_id, i.reason, i.priority])]);
    if (nextPending === pendingKey && nextHeld === heldKey) return; // unchanged: keep the rows (a drag, the focus)
    pendingKey = nextPending;
    heldKey = nextHeld;
    order = waiting.map((i) => i.prompt_id);
    const restore = keepFocus(root);
    fill(pending, waiting.length > 1
      ? h("p", { class: "muted small-text", text: "Drag a prompt onto another to put it there, or use its buttons." }) : null,
    waiting.length
      ? h("ol", { class: "plain-list queue-list", "aria-label": "Pending prompts" }, waiting.map((item, index) => pendingRow(item, index, waiting, drag)))
      : h("p", { class: "muted", text: "No pending prompts." }));
    fill(held, kept.length
      ? h("ul", { class: "plain-list queue-list", "aria-label": "Held prompts" }, kept.map(heldRow))
      : h("p", { class: "muted", text: store.queue.paused ? "Nothing waits yet: prompts queued now are held here."
        : "No held prompts. Hold a pending prompt to keep it out of ComfyUI's queue until you release it." }));
    restore();
  };

  const draw = () => {
    const q = store.queue;
    interrupt.disabled = clear.disabled = pause.disabled = exporter.disabled = importer.querySelector("button").disabled =
      !!q.error || !q.loaded;
    if (!q.loaded) {
      fill(state, h("p", { class: "muted", text: "Asking ComfyUI…" }));
      return;
    }
    if (q.error) {
      fill(state, notice("warn", errorView(q.error)));
      fill(running, h("p", { class: "muted", text: "Nothing can run until ComfyUI answers." }));
      fill(pending, h("p", { class: "muted", text: "Unknown." }));
      fill(held, h("p", { class: "muted", text: "Unknown." }));
      fill(control);
      pendingKey = heldKey = null;
      drawRecent();
      return;
    }
    fill(state);
    const items = q.items || { queue_running: [], queue_pending: [], held: [] };
    fill(running, items.queue_running.length ? items.queue_running.map(runningItem) : h("p", { class: "muted", text: "Idle." }));
    drawControl(q, q.items);
    drawLists(items);
    drawRecent();
  };

  let recentKey = null;
  const drawRecent = () => {
    const records = store.recent.map((id) => store.history.get(id)).filter(Boolean)
      .filter((r) => !["pending", "running"].includes(r.status));
    const key = records.map((r) => `${r.prompt_id}:${r.status}`).join(",");
    if (key === recentKey) return; // unchanged: keep the links (and the focus on them)
    recentKey = key;
    fill(recent, records.length ? h("ul", { class: "history-list" }, records.map(historyItem))
      : h("p", { class: "muted", text: "Prompts that finish while this page is open show up here." }));
  };

  interrupt.addEventListener("click", async () => {
    const answer = await attempt(() => api("api/comfyui/interrupt", { method: "POST" }), "Interrupt");
    if (answer) toast(answer.status === "idle" ? "Nothing was running." : "Interrupted the running prompt.", "info");
  });
  clear.addEventListener("click", async () => {
    if (!(await confirmDialog({ title: "Clear pending prompts?", body: h("p", null, "Every prompt waiting in ComfyUI's queue is removed. The running one continues."),
      confirmLabel: "Clear", danger: true }))) return;
    const answer = await attempt(() => api("api/comfyui/queue", { method: "DELETE", query: { type: "pending" } }), "Clear queue");
    if (answer) {
      toast(`Removed ${answer.cleared} pending prompt${answer.cleared === 1 ? "" : "s"}.`, "success");
      refreshQueue();
    }
  });

  pause.addEventListener("click", () => (store.queue.paused ? queueActions.resume() : queueActions.pause()));

  const refetch = throttle(() => refreshQueue().catch(() => {}), 1000);
  draw();
  refreshQueue().catch(() => {});
  for (const id of store.recent) if (!store.history.has(id)) loadHistory(id);
  const offs = [on("queue", draw), on("prompts", draw), on("queue_update", (update) => (update && update.controlChanged ? refreshQueue().catch(() => {}) : refetch())), on("reconnected", refetch)];
  return () => offs.forEach((off) => off());
}

function runningItem(item) {
  const p = store.prompts.get(item.prompt_id);
  const progress = bar(`Progress of prompt ${item.prompt_id}`);
  const nodes = p ? [...p.nodes.entries()] : [];
  if (p) progress.set(p.max ? (100 * p.value) / p.max : 0, `node ${p.node || "?"}: ${p.value}/${p.max}`);
  return h("div", { class: "running-item" },
    h("div", { class: "prompt-row" }, h("code", { text: item.prompt_id }), h("span", { class: "badge", text: item.type })),
    p && p.node ? h("p", { class: "small-text" }, `Node ${p.node}`, p.max > 1 ? ` · step ${p.value} of ${p.max}` : "") : null,
    p ? progress.el : h("p", { class: "muted small-text", text: "Waiting for ComfyUI's progress…" }),
    nodes.length ? h("ul", { class: "node-chips", "aria-label": "Nodes" }, nodes.map(([node, s]) =>
      h("li", { class: `chip chip-${s}`, text: `${node} ${s}` }))) : null);
}

function historyItem(record) {
  const images = (record.outputs && record.outputs.images) || [];
  const statusBadge = h("span", { class: "badge", "data-status": record.status === "completed" ? "completed" : "failed", text: record.status });
  let outputs = null;
  if (images.length && store.viewBase) {
    outputs = h("div", { class: "thumbs" }, images.map((image) => {
      const url = viewUrl(image);
      return h("a", { href: url, target: "_blank", rel: "noopener" },
        h("img", { src: url, alt: `Output ${image.filename}`, loading: "lazy", width: 96, height: 96 }));
    }));
  } else if (images.length) {
    outputs = h("div", null,
      h("ul", { class: "file-names" }, images.map((image) => h("li", null, h("code", { text: [image.subfolder, image.filename].filter(Boolean).join("/") })))),
      h("p", { class: "muted small-text", text: "In ComfyUI's output folder; previews need a connected ComfyUI (COMFYUI_URL)." }));
  }
  return h("li", { class: "history-item" },
    h("div", { class: "prompt-row" }, h("code", { text: record.prompt_id }), statusBadge,
      h("span", { class: "muted small-text", text: fmtDate(record.completed) })),
    record.error ? h("p", { class: "error-text", text: record.error.message }) : null,
    outputs);
}
