// Sparklines: a percentage over time as a small inline SVG polyline, and the samples they are drawn from, read
// once from GET api/system/history and then added from the live `system_status` messages. The Overview
// (view-overview.js) and ComfyUI's sidebar tab (web/comfyui/dashboard_sidebar.js, which imports it from
// <dashboard>/assets/sparkline.js) both use it, so this module imports nothing and has no side effects.

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 120;
const HEIGHT = 28;

/** How far back the sparklines reach. */
export const SPARK_MINUTES = 10;

/** The samples of the last `minutes`, oldest first, in the history's shape: {timestamp, cpu_percent, memory_percent, gpus}. */
export class SampleHistory {
  constructor(minutes = SPARK_MINUTES) {
    this.minutes = minutes;
    this.samples = [];
  }

  /** Take GET api/system/history's samples, keeping the live ones newer than they are. */
  load(samples) {
    const newest = samples.length ? samples[samples.length - 1].timestamp : -Infinity;
    this.samples = [...samples, ...this.samples.filter((s) => s.timestamp > newest)];
    this.trim();
  }

  /** Add one sample; one not newer than the newest (the same sample, read again) changes nothing. */
  add(sample) {
    const newest = this.samples[this.samples.length - 1];
    if (!sample || typeof sample.timestamp !== "number" || (newest && sample.timestamp <= newest.timestamp)) return false;
    this.samples.push(sample);
    this.trim();
    return true;
  }

  trim() {
    if (!this.samples.length) return;
    const from = this.samples[this.samples.length - 1].timestamp - this.minutes * 60;
    const first = this.samples.findIndex((s) => s.timestamp >= from);
    if (first > 0) this.samples.splice(0, first);
  }

  /** [timestamp, value] for every sample where `pick(sample)` is a number. */
  series(pick) {
    const points = [];
    for (const sample of this.samples) {
      const value = pick(sample);
      if (typeof value === "number") points.push([sample.timestamp, value]);
    }
    return points;
  }

  /** One reading (utilization_percent, memory_percent, ...) of GPU `index` over time. */
  gpu(index, field) {
    return this.series((s) => {
      const gpu = (s.gpus || []).find((g) => g.index === index);
      return gpu ? gpu[field] : null;
    });
  }
}

/** A history sample from a system_status message's data (`sampled_at` is its time). */
export function fromStatusMessage(data) {
  return { timestamp: data.sampled_at, cpu_percent: data.cpu_usage, memory_percent: data.memory_usage,
    gpu_percent: data.gpu_usage, gpus: data.gpus || [] };
}

/** An inline SVG sparkline of percentages (0 to 100) named `label`; set(points) redraws it and its aria-label. */
export function sparkline(label, className = "sparkline") {
  const el = document.createElementNS(SVG_NS, "svg");
  const title = document.createElementNS(SVG_NS, "title");
  const line = document.createElementNS(SVG_NS, "polyline");
  const attrs = { class: className, viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: "none", role: "img", focusable: "false" };
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  line.setAttribute("fill", "none");
  line.setAttribute("vector-effect", "non-scaling-stroke");
  el.append(title, line);
  const set = (points) => {
    const text = describe(label, points);
    line.setAttribute("points", polyline(points));
    el.setAttribute("aria-label", text);
    title.textContent = text;
    el.dataset.points = String(points.length);
  };
  set([]);
  return { el, set };
}

/** "CPU over the last 10 minutes: 12% to 85%, now 40%" */
export function describe(label, points) {
  if (!points.length) return `${label}: no readings yet`;
  const values = points.map((p) => p[1]);
  const now = Math.round(values[values.length - 1]);
  if (points.length === 1) return `${label}: ${now}% (one reading so far)`;
  const low = Math.round(Math.min(...values));
  const high = Math.round(Math.max(...values));
  const range = low === high ? `steady at ${low}%` : `${low}% to ${high}%, now ${now}%`;
  return `${label} over the last ${duration(points[points.length - 1][0] - points[0][0])}: ${range}`;
}

function duration(seconds) {
  if (seconds < 90) {
    const s = Math.max(1, Math.round(seconds));
    return s === 1 ? "second" : `${s} seconds`;
  }
  const minutes = Math.round(seconds / 60);
  return minutes === 1 ? "minute" : `${minutes} minutes`;
}

function polyline(points) {
  if (!points.length) return "";
  const start = points[0][0];
  const span = points[points.length - 1][0] - start || 1;
  return points.map(([t, v]) => {
    const x = points.length === 1 ? WIDTH : ((t - start) / span) * WIDTH;
    const y = HEIGHT - 1 - (Math.max(0, Math.min(100, v)) / 100) * (HEIGHT - 2);
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  }).join(" ");
}
