// HTTP calls to the dashboard API. Every URL is relative to the page ("api/..."), so the page works at
// "/" and under "/dashboard/" (inside ComfyUI, also when ComfyUI itself runs under a sub-path).

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

const unauthorizedListeners = new Set();
const rateLimitListeners = new Set();
let waitingOut = 0; // reads now waiting out a rate limit
let retryAt = 0; // when the last of them tries again (ms since the epoch); 0 when none waits

/** fn(error) runs whenever a request answers 401 (the session expired or was never there). */
export function onUnauthorized(fn) {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

/** fn(retryAt) runs when reads start waiting out a rate limit (retryAt: ms since the epoch), fn(0) when none waits. */
export function onRateLimited(fn) {
  rateLimitListeners.add(fn);
  return () => rateLimitListeners.delete(fn);
}

function setRetryAt(when) {
  retryAt = when;
  rateLimitListeners.forEach((fn) => fn(when));
}

/** Seconds a 429 asks to wait: Retry-After, else the error's details, within 1 s and 10 min. */
function retryAfter(response, error) {
  const seconds = Number(response.headers.get("Retry-After") || (error.details && error.details.retry_after));
  return Math.min(600, Math.max(1, Number.isFinite(seconds) ? seconds : 5));
}

async function waitOut(seconds) {
  const when = Date.now() + seconds * 1000;
  waitingOut += 1;
  if (when > retryAt) setRetryAt(when);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  waitingOut -= 1;
}

/**
 * Call the API; resolves with the JSON answer, rejects with an ApiError.
 * State-changing calls always send `Content-Type: application/json` and a JSON body (`{}` when there is
 * nothing to say): with a session cookie the server accepts nothing else. A read refused by the rate
 * limit (429 RATE_LIMIT_EXCEEDED) is sent again after its Retry-After, as often as it takes; a change
 * is not (the person who asked for it decides).
 */
export async function api(path, { method = "GET", body, query } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  let url = path;
  if (query) {
    const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== ""));
    if ([...params].length) url += `?${params}`;
  }
  try {
    for (;;) {
      let response;
      try {
        response = await fetch(url, init);
      } catch {
        throw new ApiError(0, "NETWORK", "The dashboard server is not reachable");
      }
      const data = await response.json().catch(() => null);
      const error = (data && data.error) || {};
      if (response.status === 429 && error.code === "RATE_LIMIT_EXCEEDED" && method === "GET") {
        await waitOut(retryAfter(response, error));
        continue;
      }
      if (!response.ok) {
        const failure = new ApiError(response.status, error.code || `HTTP_${response.status}`,
          error.message || response.statusText || "Request failed", error.details);
        if (response.status === 401) unauthorizedListeners.forEach((fn) => fn(failure));
        throw failure;
      }
      return data;
    }
  } finally {
    if (retryAt && !waitingOut) setRetryAt(0);
  }
}

/** Path segment escaping for ids in URLs. */
export const seg = (value) => encodeURIComponent(value);
