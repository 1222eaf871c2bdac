// ComfyUI Dashboard: a sidebar tab in ComfyUI's editor with the machine's vitals and a link to the full page.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const base = () => `${api.api_base || ""}/dashboard`;

async function fetchJson(path) {
  const response = await fetch(base() + path, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function row(label, value) {
  const line = document.createElement("div");
  line.style.cssText = "display:flex;justify-content:space-between;padding:2px 0";
  const name = document.createElement("span");
  name.textContent = label;
  const text = document.createElement("strong");
  text.textContent = value;
  line.append(name, text);
  return line;
}

const percent = (v) => (v === null || v === undefined ? "n/a" : `${Math.round(v)}%`);

async function renderStatus(container) {
  try {
    const status = await fetchJson("/api/system/status");
    const r = status.resources;
    container.replaceChildren(
      row("CPU", percent(r.cpu_percent)),
      row("RAM", percent(r.memory_percent)),
      row("GPU", percent(r.gpu_percent)),
      row("Disk", r.disk_total_gb ? `${r.disk_used_gb} / ${r.disk_total_gb} GB` : "n/a"),
      ...status.gpus.map((g) => row(`GPU ${g.index} VRAM`, `${g.memory_used_gb ?? "?"} / ${g.memory_total_gb ?? "?"} GB`)),
    );
  } catch (error) {
    container.replaceChildren(row("Dashboard", String(error.message || error)));
  }
}

app.registerExtension({
  name: "comfyui-dashboard.sidebar",
  async setup() {
    let timer = null;
    app.extensionManager.registerSidebarTab({
      id: "comfyui-dashboard",
      icon: "pi pi-chart-bar",
      title: "Dashboard",
      tooltip: "ComfyUI Dashboard",
      type: "custom",
      render(el) {
        el.replaceChildren();
        el.style.padding = "8px";
        const heading = document.createElement("h3");
        heading.textContent = "ComfyUI Dashboard";
        const vitals = document.createElement("div");
        vitals.setAttribute("aria-label", "System status");
        const link = document.createElement("a");
        link.href = base() + "/";
        link.target = "_blank";
        link.rel = "noopener";
        link.textContent = "Open the full dashboard";
        el.append(heading, vitals, link);
        clearInterval(timer);
        renderStatus(vitals);
        timer = setInterval(() => (vitals.isConnected ? renderStatus(vitals) : clearInterval(timer)), 2000);
      },
      destroy() {
        clearInterval(timer);
      },
    });
  },
});
