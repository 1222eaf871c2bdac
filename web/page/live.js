// The live feed: one WebSocket to "ws" beside the page, subscribed to every channel, reconnecting with
// exponential backoff (and subscribing again: each subscribe answers a fresh snapshot per channel).

const CLOSE_UNAUTHORIZED = 4401;
const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;

export class Live {
  constructor(channels) {
    this.channels = channels;
    this.listeners = new Map();
    this.socket = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
    this.state = "idle"; // idle | connecting | open | waiting | unauthorized
    this.retryAt = 0;
    window.addEventListener("online", () => this.reconnectNow());
  }

  /** URL of the socket: the page's own location with ws(s): and "ws" as the last segment. */
  static url() {
    const url = new URL("ws", document.baseURI);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
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

  start() {
    this.stopped = false;
    if (!this.socket) this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000, "page closed the feed");
    this.socket = null;
    this.setState("idle");
  }

  /** Skip the wait of a pending reconnect. */
  reconnectNow() {
    if (this.stopped || this.state !== "waiting") return;
    clearTimeout(this.timer);
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
    this.setState("connecting");
    const socket = new WebSocket(Live.url());
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
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (event.code === CLOSE_UNAUTHORIZED) {
        this.setState("unauthorized");
        this.emit("unauthorized", event);
        return;
      }
      if (!this.stopped) this.scheduleRetry();
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
