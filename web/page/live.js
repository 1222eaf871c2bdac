// The live feed: one WebSocket subscribed to a set of channels, reconnecting with exponential backoff (and
// subscribing again: each subscribe answers a fresh snapshot per channel). The page (app.js) and ComfyUI's
// sidebar tab (web/comfyui/dashboard_sidebar.js, which imports it from <dashboard>/assets/live.js) both use
// it, so this module imports nothing and does nothing until a Live is started.

const CLOSE_UNAUTHORIZED = 4401;
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;

/** The ws(s): URL of `path` resolved against `base`: socketUrl("ws") is "ws" beside the page. */
export function socketUrl(path, base = document.baseURI) {
  const url = new URL(path, base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

export class Live {
  /**
   * `url`: the socket's ws(s): URL (see socketUrl). `channels`: what to subscribe to.
   * `beforeRetry(event)`: awaited after the socket closed, before a reconnect is planned; resolving false
   * ends the feed (state "idle"), for a server that says it will not come back by itself.
   */
  constructor(url, channels, { beforeRetry = null } = {}) {
    this.url = url;
    this.channels = channels;
    this.beforeRetry = beforeRetry;
    this.listeners = new Map();
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.round = 0; // counts connects and stops: a close or a check of an earlier round changes nothing
    this.checking = false; // awaiting beforeRetry
    this.stopped = true;
    this.state = "idle"; // idle | connecting | open | waiting | unauthorized
    this.retryAt = 0;
    window.addEventListener("online", () => this.reconnectNow());
  }

  /** Listen to a message type ("download_progress", "snapshot", ...) or to "state" changes; returns an off(). */
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  emit(type, payload) {
    for (const fn of [...(this.listeners.get(type) || [])]) {
      try {
        fn(payload);
      } catch (error) {
        console.error("live listener failed", type, error);
      }
    }
  }

  /** Connect unless a socket is already open or opening (also after "unauthorized": the user may have logged in). */
  start() {
    this.stopped = false;
    if (!this.socket) this.connect();
  }

  stop() {
    this.stopped = true;
    this.round += 1;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "page closed the feed");
    this.socket = null;
    this.setState("idle");
  }

  /** Skip the wait of a pending reconnect. */
  reconnectNow() {
    if (this.stopped || this.state !== "waiting" || this.checking) return;
    this.connect();
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  setState(state) {
    this.state = state;
    this.emit("state", state);
  }

  connect() {
    clearTimeout(this.timer);
    const round = ++this.round;
    this.checking = false;
    this.setState("connecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      socket.send(JSON.stringify({ type: "subscribe", channels: this.channels }));
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "subscribed") this.setState("open");
      this.emit(message.type, message);
    };
    socket.onclose = async (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (event.code === CLOSE_UNAUTHORIZED) {
        this.setState("unauthorized");
        this.emit("unauthorized", event);
        return;
      }
      if (this.stopped) return;
      if (this.beforeRetry) {
        this.setState("waiting");
        this.checking = true;
        const retry = await Promise.resolve().then(() => this.beforeRetry(event)).then((answer) => answer !== false, () => true);
        if (round !== this.round) return; // started again or stopped meanwhile
        this.checking = false;
        if (!retry) {
          this.stop();
          return;
        }
      }
      this.scheduleRetry();
    };
  }

  scheduleRetry() {
    const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    this.attempt += 1;
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.retryAt = Date.now() + delay;
    this.setState("waiting");
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
