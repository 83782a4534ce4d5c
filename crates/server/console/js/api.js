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

/**
 * Follows `GET /v1/{path}`, a watch's server-sent events, calling `handlers[event](data)` with each
 * event's parsed data until the server ends the stream or `signal` aborts it. Resolves when the
 * stream ends; throws an ApiError when the watch is refused, or for an `error` event. (The
 * browser's EventSource cannot send the token, so this reads the stream with fetch.)
 */
export async function watch(path, handlers, signal) {
  const headers = { Accept: 'text/event-stream' };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(`/v1/${path}`, { headers, signal });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new ApiError(response.status, data.error?.message || `${response.status} ${response.statusText}`);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length === 0) continue;
      const parsed = JSON.parse(data.join('\n'));
      if (name === 'error') throw new ApiError(parsed.error?.code || 500, parsed.error?.message || 'the watch failed');
      await handlers[name]?.(parsed);
    }
  }
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
