// The dashboard page: login when needed, the live feed, and a hash router over one module per view.

import { api, onRateLimited, onUnauthorized } from "./api.js";
import { h } from "./dom.js";
import { Live, socketUrl } from "./live.js";
import { showLogin } from "./login.js";
import { connectStore, emit, loadPresets, presetName, refreshSystem, store } from "./store.js";
import { errorView, toast } from "./widgets.js";
import * as downloads from "./view-downloads.js";
import * as models from "./view-models.js";
import * as overview from "./view-overview.js";
import * as presets from "./view-presets.js";
import * as queue from "./view-queue.js";
import * as workflows from "./view-workflows.js";

const VIEWS = { overview, presets, downloads, models, queue, workflows };
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const liveStatus = document.getElementById("live-status");
const live = new Live(socketUrl("ws"), ["downloads", "queue", "system", "workflows"]);

let unmount = null;
let running = false;
let loggingIn = false;
let everOpen = false;

function route({ focus = true } = {}) {
  const [name, query] = location.hash.replace(/^#\/?/, "").split("?");
  const view = VIEWS[name] || overview;
  const viewName = VIEWS[name] ? name : "overview";
  if (unmount) unmount();
  unmount = null;
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.view === viewName) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${view.title} · ComfyUI Dashboard`;
  main.dataset.view = viewName;
  unmount = view.mount(main, new URLSearchParams(query || "")) || null;
  if (focus) main.focus({ preventScroll: true });
}

const LIVE_TEXT = { idle: "Offline", connecting: "Connecting…", open: "Live", waiting: "Reconnecting…", unauthorized: "Signed out" };

live.on("state", (state) => {
  liveStatus.dataset.state = state;
  liveStatus.textContent = LIVE_TEXT[state] || state;
  liveStatus.title = state === "waiting" ? "The connection to the dashboard was lost; trying again with growing pauses." : "";
  emit("live", state);
  if (state === "open") {
    if (everOpen) {
      emit("reconnected");
      refreshSystem().catch(() => {});
    }
    everOpen = true;
  }
});
live.on("unauthorized", () => login());
onUnauthorized(() => login());

// Reads refused by the rate limit wait and try again by themselves (api.js): say so, counting down.
const rateNotice = h("span", { id: "rate-limit", class: "live", role: "status", "data-state": "waiting", hidden: true });
liveStatus.before(rateNotice);
let rateTimer = null;
onRateLimited((retryAt) => {
  clearInterval(rateTimer);
  rateNotice.hidden = !retryAt;
  if (!retryAt) {
    live.reconnectNow(); // the socket's handshake was likely refused too: no need to wait for its backoff
    return;
  }
  const show = () => {
    const seconds = Math.ceil((retryAt - Date.now()) / 1000);
    rateNotice.textContent = seconds > 0 ? `Rate limited: retrying in ${seconds} s` : "Rate limited: retrying…";
  };
  show();
  rateTimer = setInterval(show, 1000);
});

connectStore(live, (kind, data) => {
  if (kind === "workflow_error") {
    toast(data.message, "error");
    return;
  }
  // Download news names the preset: wait for the preset list (one shared request) if it is not here yet.
  loadPresets().catch(() => null).then(() => {
    if (kind === "download_complete" && data.status === "success") toast(`${presetName(data.preset_id)} is installed.`, "success");
    else if (kind === "download_error") toast(h("span", null, `${presetName(data.details.preset_id)}: `, errorView(data)), "error");
  });
});

function start() {
  if (running) return;
  running = true;
  document.body.classList.remove("signed-out");
  const account = document.getElementById("account");
  account.hidden = !store.authEnabled;
  document.getElementById("user-name").textContent = store.user ? `${store.user.username} (${store.user.role})` : "";
  refreshSystem().catch(() => {});
  live.start();
  route({ focus: false });
}

async function login() {
  if (loggingIn) return;
  loggingIn = true;
  running = false;
  everOpen = false;
  live.stop();
  live.setState("unauthorized");
  if (unmount) unmount();
  unmount = null;
  document.body.classList.add("signed-out");
  document.title = "Log in · ComfyUI Dashboard";
  store.user = await showLogin(main);
  store.authEnabled = true;
  loggingIn = false;
  start();
}

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await api("api/auth/logout", { method: "POST" });
  } catch {
    /* the session may already be gone */
  }
  login();
});

document.getElementById("skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});

window.addEventListener("hashchange", () => running && route());

async function boot() {
  try {
    const verify = await api("api/auth/verify");
    store.user = verify.user;
    store.authEnabled = verify.auth_enabled;
  } catch (error) {
    if (error.status === 401) return; // onUnauthorized shows the form
  }
  if (!loggingIn) start();
}

boot();
