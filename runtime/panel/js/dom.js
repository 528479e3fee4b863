// Small helpers every page builds with: elements without innerHTML (so no text from the
// server is ever parsed as markup), times in the browser's zone, tables with empty states,
// labelled fields, messages in words and a typed confirmation for destructive actions.

/**
 * Builds an element. `attrs`: `class`, `text`, `on<event>` handlers, `dataset`, boolean
 * attributes as true/false, anything else as an attribute. Children: nodes, strings,
 * numbers, arrays, null (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * A time in the browser's zone. Accepts an RFC 3339 string, Unix seconds or Unix
 * milliseconds (numbers above 1e11 are taken as milliseconds). Empty for nothing.
 */
export function fmtTime(t) {
  if (t === null || t === undefined || t === '') return '';
  let d;
  if (typeof t === 'number') d = new Date(t > 1e11 ? t : t * 1000);
  else d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

/** A `<time>` element showing `fmtTime(t)` with the exact instant as its datetime. */
export function time(t) {
  const text = fmtTime(t);
  if (!text) return h('span', { class: 'muted', text: '—' });
  let iso = '';
  try {
    iso = new Date(typeof t === 'number' ? (t > 1e11 ? t : t * 1000) : t).toISOString();
  } catch {
    iso = '';
  }
  return h('time', { datetime: iso || null, title: iso || null }, text);
}

/** A number with the browser's grouping. */
export function fmtNum(n, digits = 0) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
}

/**
 * A table. `columns`: `[{label, render(row) -> node|string, class?}]`. `rows`: array.
 * With no rows, shows `empty` (words saying why the list is empty and what to do).
 */
export function table(columns, rows, { empty = 'Nothing here yet.', caption = null, rowAttrs = null } = {}) {
  if (!rows || rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', {},
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)))),
      h('tbody', {}, rows.map((row) =>
        h('tr', rowAttrs ? rowAttrs(row) : {}, columns.map((c) => h('td', { class: c.class, 'data-label': c.label }, c.render(row))))))));
}

let fieldSeq = 0;

/**
 * A labelled form control. `control` is an input/select/textarea element (an id is given
 * to it when it has none); `hint` is shown under it and tied with aria-describedby.
 */
export function field(label, control, hint = null) {
  if (!control.id) control.id = `f${++fieldSeq}`;
  let hintEl = null;
  if (hint) {
    hintEl = h('small', { id: `${control.id}-hint`, class: 'hint' }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

/** A message box: kind `error`, `ok` or `info`. Errors are announced (role=alert). */
export function notice(kind, text) {
  return h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** Words for an error from the API (or anything thrown). */
export function errorText(err) {
  if (!err) return 'Something went wrong.';
  const words = {
    FORBIDDEN_ROLE: 'Your role does not allow this.',
    INSUFFICIENT_SCOPE: 'This credential does not allow this.',
    CSRF_FAILED: 'The request was not accepted as coming from this panel. Reload the page and try again.',
    RATE_LIMITED: 'Too many requests. Wait a moment and try again.',
    STORE_UNAVAILABLE: 'The store is not answering; nothing was changed. Try again shortly.',
    NETWORK: 'The server could not be reached. Check that it is running and try again.',
  };
  const base = words[err.code] || err.message || String(err);
  return err.code && !words[err.code] ? `${base} (${err.code})` : base;
}

/** A short message at the bottom of the screen that goes away by itself. */
export function toast(text, kind = 'ok') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const el = h('div', { class: `toast toast-${kind}` }, text);
  box.appendChild(el);
  // The newest three: a quick run of actions must not cover the page.
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => el.remove(), 5000);
}

/**
 * Asks for confirmation in a modal dialog. With `typed`, the operator must type that word
 * (a license key, "DELETE", a count) before the confirm button works. Resolves true or false.
 */
export function confirmDialog({ title, message, confirmLabel = 'Confirm', typed = null, danger = false }) {
  return new Promise((resolve) => {
    const input = typed ? h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' }) : null;
    const ok = h('button', { type: 'submit', class: danger ? 'danger' : 'primary', disabled: !!typed }, confirmLabel);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const form = h('form', { method: 'dialog' },
      h('h2', {}, title),
      h('p', {}, message),
      input ? field(`Type ${typed} to confirm`, input) : null,
      h('div', { class: 'actions' }, cancel, ok));
    const dialog = h('dialog', { class: 'confirm', 'aria-label': title }, form);
    if (input) input.addEventListener('input', () => { ok.disabled = input.value.trim() !== String(typed); });
    let answered = false;
    const done = (v) => {
      if (answered) return;
      answered = true;
      dialog.close();
      dialog.remove();
      resolve(v);
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (!ok.disabled) done(true);
    });
    cancel.addEventListener('click', () => done(false));
    dialog.addEventListener('cancel', () => done(false));
    document.body.appendChild(dialog);
    dialog.showModal();
    (input || ok).focus();
  });
}

/**
 * Runs `fn` with `button` disabled meanwhile; shows the error as a toast and in `where`
 * (an element to put a notice into) when it fails. Resolves with fn's result or undefined.
 */
export async function busy(button, fn, where = null) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    if (where) replace(where, notice('error', errorText(e)));
    else toast(errorText(e), 'error');
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** A status badge (license status, session state, delivery outcome). */
export function badge(text) {
  const t = String(text ?? '');
  return h('span', { class: `badge badge-${t.toLowerCase().replace(/[^a-z0-9]+/g, '-')}` }, t || '—');
}
