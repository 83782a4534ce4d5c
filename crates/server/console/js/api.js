// The console's only way to the server: the public `/v1` API, with the token the user gave.

const TOKEN_KEY = 'kiln.token';

/** An API error: the HTTP status and ML Engine's error message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Calls `method /v1/{path}` and returns the parsed body, or throws an ApiError. */
export async function api(method, path, body) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`/v1/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { error: { message: text } };
  }
  if (!response.ok) {
    const message = typeof data.error === 'string' ? data.error : data.error?.message;
    throw new ApiError(response.status, message || `${response.status} ${response.statusText}`);
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body = {}) => api('POST', path, body);
export const del = (path) => api('DELETE', path);

/** Which of `permissions` the token holds on `resource` (`projects/p`, `projects/p/models/m`). */
export async function allowed(resource, permissions) {
  try {
    const answer = await post(`${resource}:testIamPermissions`, { permissions });
    return new Set(answer.permissions || []);
  } catch {
    return new Set();
  }
}

/** Percent-encodes one path segment. */
export const seg = encodeURIComponent;
