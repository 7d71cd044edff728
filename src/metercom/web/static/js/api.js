// The REST client of the dashboard (docs/api.md): JSON in and out, the session cookie, the CSRF
// token from /api/v1/auth/me on every unsafe request, RFC 9457 problems turned into ApiError.

const BASE = "api/v1";
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

let csrfToken = null;
let onUnauthorized = () => {};

/** An error answer of the API: an RFC 9457 problem (or what we could make of the body). */
export class ApiError extends Error {
  constructor(status, problem) {
    const title = problem.title || `HTTP ${status}`;
    super(problem.detail ? `${title}: ${problem.detail}` : title);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
    this.title = title;
    this.detail = problem.detail || "";
    this.type = problem.type || "about:blank";
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
    this.retryAfter = problem.retry_after_s ?? null;
  }

  /** Short type slug (`csrf`, `forbidden`, `validation`, ...). */
  get slug() {
    return this.type.split("/").pop();
  }
}

export function setCsrfToken(token) {
  csrfToken = token || null;
}

/** Called on a 401 from anything but the login itself (the session has ended). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

async function problemOf(response) {
  const type = response.headers.get("content-type") || "";
  let body = null;
  try {
    body = type.includes("json") ? await response.json() : { detail: (await response.text()).slice(0, 300) };
  } catch {
    body = {};
  }
  if (!body || typeof body !== "object") body = {};
  if (!body.title) body.title = response.statusText || `HTTP ${response.status}`;
  const retry = response.headers.get("retry-after");
  if (retry && body.retry_after_s == null) body.retry_after_s = Number(retry);
  return body;
}

/**
 * One request. `path` is relative to /api/v1 ("fleet", "meters/m-1/live").
 * Returns the parsed JSON (or null for 204); throws ApiError for an error answer and a plain
 * Error (name "NetworkError") when the server cannot be reached.
 */
export async function request(method, path, { body, query, signal, retried = false } = {}) {
  let url = `${BASE}/${path}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const headers = { Accept: "application/json, application/problem+json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (UNSAFE.has(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    const failure = new Error("The server cannot be reached. Check the connection and try again.");
    failure.name = "NetworkError";
    throw failure;
  }
  if (response.ok) {
    if (response.status === 204) return null;
    const type = response.headers.get("content-type") || "";
    return type.includes("json") ? response.json() : response.text();
  }
  const error = new ApiError(response.status, await problemOf(response));
  if (response.status === 403 && error.slug === "csrf" && !retried) {
    // The token changed (a new session in another tab): fetch the current one and retry once.
    try {
      const me = await request("GET", "auth/me", { retried: true });
      setCsrfToken(me.csrf_token);
      return request(method, path, { body, query, signal, retried: true });
    } catch {
      throw error;
    }
  }
  if (response.status === 401 && path !== "auth/login") onUnauthorized(error);
  throw error;
}

export const get = (path, query, options = {}) => request("GET", path, { ...options, query });
export const post = (path, body = {}, options = {}) => request("POST", path, { ...options, body });

export const enc = encodeURIComponent;
