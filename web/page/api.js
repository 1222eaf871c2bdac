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

/** fn(error) runs whenever a request answers 401 (the session expired or was never there). */
export function onUnauthorized(fn) {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

/**
 * Call the API; resolves with the JSON answer, rejects with an ApiError.
 * State-changing calls always send `Content-Type: application/json` and a JSON body (`{}` when there is
 * nothing to say): with a session cookie the server accepts nothing else.
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
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, "NETWORK", "The dashboard server is not reachable");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || {};
    const failure = new ApiError(response.status, error.code || `HTTP_${response.status}`,
      error.message || response.statusText || "Request failed", error.details);
    if (response.status === 401) unauthorizedListeners.forEach((fn) => fn(failure));
    throw failure;
  }
  return data;
}

/** Path segment escaping for ids in URLs. */
export const seg = (value) => encodeURIComponent(value);
