// The panel's only way to the server: JSON calls to the admin API with the session cookie
// (sent by the browser, never visible here) and, for a change, the session's CSRF value.
// A 401 anywhere means the session ended (expired, logged out elsewhere, forced
// re-authentication): the panel goes back to the login page.

/** An error answer of the API: `{error, code, status}`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The logged-in operator: `{username, role, expires_at, csrf_token}` or null. */
export const session = { current: null };

let onUnauthenticated = () => {};

/** Sets what happens when the server says the session is over. */
export function whenUnauthenticated(fn) {
  onUnauthenticated = fn;
}

function url(path, query) {
  const u = new URL(path, location.origin);
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
    }
  }
  return u.pathname + u.search;
}

/**
 * Calls the API. Resolves with the parsed JSON (or null for an empty body); rejects with
 * an ApiError. `opts.query` adds query parameters; `opts.quiet401` does not leave the page
 * on a 401 (the login call itself).
 */
export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && session.current?.csrf_token) {
    headers['X-CSRF-Token'] = session.current.csrf_token;
  }
  let resp;
  try {
    resp = await fetch(url(path, opts.query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'NETWORK', 'The server could not be reached. Check that it is running and try again.');
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const code = data?.code || `HTTP_${resp.status}`;
    const message = data?.error || `The server answered ${resp.status}.`;
    if (resp.status === 401 && !opts.quiet401) {
      session.current = null;
      onUnauthenticated(message);
    }
    throw new ApiError(resp.status, code, message);
  }
  return data;
}

export const get = (path, query) => api('GET', path, undefined, { query });
export const post = (path, body, query) => api('POST', path, body ?? {}, { query });
export const patch = (path, body) => api('PATCH', path, body);
export const put = (path, body) => api('PUT', path, body);
export const del = (path, body, query) => api('DELETE', path, body, { query });

/** What each role may do (the server enforces it regardless; the pages only hide). */
const ADMIN_LACKS = new Set(['security:write', 'operators:write', 'licenses:delete', 'super_admin']);

/** Whether the logged-in operator's role grants `scope` (`licenses:write`, `super_admin`, ...). */
export function can(scope) {
  const role = session.current?.role;
  if (role === 'super_admin') return true;
  if (role === 'admin') return !ADMIN_LACKS.has(scope);
  return false;
}

/**
 * Follows the live event stream (`/api/admin/events/stream`, server-sent events whose
 * event names are the event types) and calls `onEvent(event)` for each event. Read with
 * fetch rather than EventSource, which cannot listen to every event name at once nor see
 * a 401. Reconnects after a failure with the last event's id, so nothing is missed while
 * the server keeps it. Returns a function that stops it.
 */
export function stream(query, onEvent, onState = () => {}) {
  let stopped = false;
  let lastId = null;
  let controller = null;
  const run = async () => {
    let delay = 500;
    while (!stopped) {
      controller = new AbortController();
      try {
        const headers = { Accept: 'text/event-stream' };
        if (lastId) headers['Last-Event-ID'] = lastId;
        const resp = await fetch(url('/api/admin/events/stream', query), {
          headers,
          credentials: 'same-origin',
          signal: controller.signal,
        });
        if (resp.status === 401) {
          session.current = null;
          onUnauthenticated('Your session ended.');
          return;
        }
        if (!resp.ok || !resp.body) throw new Error(`stream answered ${resp.status}`);
        onState('open');
        delay = 500;
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let data = '';
            let id = null;
            for (const line of block.split('\n')) {
              if (line.startsWith('data:')) data += (data ? '\n' : '') + line.slice(5).replace(/^ /, '');
              else if (line.startsWith('id:')) id = line.slice(3).trim();
            }
            if (id) lastId = id;
            if (!data) continue;
            try {
              onEvent(JSON.parse(data));
            } catch {
              // Not an event (a notice such as stream.dropped without the event shape).
            }
          }
        }
      } catch (e) {
        if (stopped) return;
      }
      if (stopped) return;
      onState('reconnecting');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  };
  run();
  return () => {
    stopped = true;
    controller?.abort();
  };
}
