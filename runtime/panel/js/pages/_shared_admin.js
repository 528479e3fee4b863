// Helpers shared by the administration pages (customers, products, webhooks, plugins,
// security, operators): a page heading with a way back, collapsible forms, field-level
// validation messages, a one-time secret box with a copy button, a loader that shows
// loading and error states in words, and a cursor pager.

import { h, replace, notice, errorText, toast } from '../dom.js';

/** Control characters the server refuses in text (a newline is allowed where noted). */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
const CONTROL_NO_NEWLINE = /[\u0000-\u001f\u007f-\u009f]/;

/** The number of characters as the server counts them (Unicode scalar values). */
export function chars(s) {
  return [...String(s ?? '')].length;
}

/** Whether `s` holds a control character (`newline` allowed or not). */
export function hasControl(s, newline = false) {
  return (newline ? CONTROL : CONTROL_NO_NEWLINE).test(String(s ?? ''));
}

/** A page heading, with an optional link back (`{href, label}`) and buttons beside it. */
export function pageHead(title, { back = null, actions = [], sub = null } = {}) {
  return h('div', { class: 'page-head' },
    back ? h('a', { class: 'back', href: back.href }, `← ${back.label}`) : null,
    h('div', { class: 'page-head-row' },
      h('h1', {}, title),
      actions.length ? h('div', { class: 'actions page-head-actions' }, actions) : null),
    sub ? h('p', { class: 'muted page-sub' }, sub) : null);
}

/** A card with a heading (`h2`) and content. */
export function section(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', {}, title) : null, ...children);
}

/**
 * A collapsible card (`<details>`): a form that is not always wanted, such as "New
 * customer". `open` opens it at first.
 */
export function disclosure(summary, { open = false } = {}, ...children) {
  return h('details', { class: 'card disclosure', open }, h('summary', {}, summary), ...children);
}

/** The place for a form's outcome (announced politely; errors are role=alert notices). */
export function statusBox() {
  return h('div', { class: 'form-status', 'aria-live': 'polite' });
}

/** Removes every field error shown in `root`. */
export function clearErrors(root) {
  for (const el of root.querySelectorAll('.field-error')) {
    const owner = root.querySelector(`[aria-describedby~="${el.id}"]`);
    if (owner) {
      const rest = (owner.getAttribute('aria-describedby') || '').split(/\s+/).filter((x) => x && x !== el.id);
      if (rest.length) owner.setAttribute('aria-describedby', rest.join(' '));
      else owner.removeAttribute('aria-describedby');
    }
    el.remove();
  }
  for (const el of root.querySelectorAll('[aria-invalid="true"]')) el.removeAttribute('aria-invalid');
}

let errSeq = 0;

/** Shows `message` under `control` (an input, select, textarea or fieldset), tied to it. */
export function fieldError(control, message) {
  const holder = control.closest('.field, fieldset') || control.parentElement;
  const id = `${control.id || `c${++errSeq}`}-err${++errSeq}`;
  const el = h('small', { class: 'field-error', id }, message);
  holder.appendChild(el);
  control.setAttribute('aria-invalid', 'true');
  const described = (control.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean);
  control.setAttribute('aria-describedby', [...described, id].join(' '));
}

/**
 * Checks a form: `checks` is a list of `[control, message or null]` (null: fine). Shows each
 * message under its control, focuses the first bad control, says so in `status`; true when
 * everything is fine.
 */
export function validate(form, status, checks) {
  clearErrors(form);
  const bad = checks.filter(([, msg]) => msg);
  for (const [control, msg] of bad) fieldError(control, msg);
  if (bad.length) {
    const first = bad[0][0];
    const focusable = first.matches('fieldset') ? first.querySelector('input, select, textarea, button') : first;
    focusable?.focus();
    if (status) {
      replace(status, notice('error', bad.length === 1
        ? `Check the marked field: ${bad[0][1]}`
        : `Check the ${bad.length} marked fields.`));
    }
    return false;
  }
  if (status) replace(status);
  return true;
}

/**
 * Reads a whole number from an input. Returns `{value}` (null when blank and allowed) or
 * `{error}` in words naming `name`.
 */
export function readInt(input, { name, min = 0, max = Number.MAX_SAFE_INTEGER, required = false }) {
  const raw = String(input.value ?? '').trim();
  if (input.validity?.badInput) return { error: `${name} must be a whole number.` };
  if (raw === '') {
    return required ? { error: `${name} is required.` } : { value: null };
  }
  if (!/^\d+$/.test(raw)) return { error: `${name} must be a whole number.` };
  const n = Number(raw);
  if (n < min || n > max) return { error: `${name} must be between ${min} and ${max}.` };
  return { value: n };
}

/** A text check: required, at most `max` characters, no control characters. */
export function checkText(value, { name, max, required = false, newline = false }) {
  const v = String(value ?? '').trim();
  if (!v) return required ? `${name} is required.` : null;
  if (chars(v) > max) return `${name} must be at most ${max} characters (now ${chars(v)}).`;
  if (hasControl(v, newline)) return `${name} must not contain control characters.`;
  return null;
}

/** Copies `text` to the clipboard (or selects `fallback` for a manual copy). */
export async function copyText(text, fallback = null) {
  try {
    if (!navigator.clipboard) throw new Error('no clipboard');
    await navigator.clipboard.writeText(text);
    toast('Copied to the clipboard.');
    return true;
  } catch {
    if (fallback) {
      fallback.focus();
      fallback.select();
    }
    toast('The browser did not allow copying: the text is selected, press Ctrl+C (⌘C) to copy it.', 'error');
    return false;
  }
}

/**
 * A secret shown this once (a webhook signing secret, an admin key): read-only, selected
 * on focus, with a copy button and words saying it will not be shown again. `onDone` is
 * called when the operator dismisses it.
 */
export function secretBox({ title, secret, lines = [], onDone = null, doneLabel = 'I have stored it' }) {
  const value = h('input', {
    type: 'text', readonly: true, class: 'mono secret-value', value: secret,
    spellcheck: 'false', autocomplete: 'off',
    onfocus: (e) => e.currentTarget.select(),
  });
  const box = h('section', { class: 'card secret-box', role: 'region', 'aria-label': title, tabindex: '-1' },
    h('h2', {}, title),
    h('p', { class: 'secret-warning' },
      h('strong', {}, 'Copy it now: it will not be shown again.'),
      ' Store it where the receiving system keeps its secrets; if it is lost, make a new one.'),
    lines.map((l) => h('p', {}, l)),
    h('div', { class: 'field' }, h('label', { for: (value.id = `secret${++errSeq}`) }, 'Secret'), value),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'primary', onclick: () => copyText(secret, value) }, 'Copy secret'),
      h('button', { type: 'button', onclick: () => { box.remove(); onDone?.(); } }, doneLabel)));
  return box;
}

/** Puts `box` into `where` and brings it into view with the focus on it. */
export function reveal(where, box) {
  replace(where, box);
  box.scrollIntoView?.({ block: 'nearest' });
  box.focus({ preventScroll: true });
}

/**
 * Runs `load()` and renders what it returns into `where` with `render(data)`; shows
 * "Loading…" meanwhile and the error in words if it fails. Resolves with the data (or
 * undefined on failure).
 */
export async function loadInto(where, load, render, loadingText = 'Loading…') {
  replace(where, h('p', { class: 'loading' }, loadingText));
  try {
    const data = await load();
    replace(where, render(data));
    return data;
  } catch (e) {
    if (e?.status === 401) return undefined;
    replace(where, notice('error', errorText(e)));
    return undefined;
  }
}

/**
 * A pager for cursor listings: keeps the cursors seen so the operator can go back.
 * `go(cursor)` loads a page; call `pager.shown(next_cursor)` after each load and put
 * `pager.el` under the list.
 */
export function cursorPager(go, { older = 'Next page', newer = 'Previous page' } = {}) {
  const stack = []; // cursors of the pages before the one shown
  let current = null;
  let next = null;
  const prevBtn = h('button', { type: 'button' }, newer);
  const nextBtn = h('button', { type: 'button' }, older);
  const where = h('span', { class: 'muted' });
  const el = h('nav', { class: 'pager', 'aria-label': 'Pages' }, prevBtn, where, nextBtn);
  prevBtn.addEventListener('click', () => {
    if (!stack.length) return;
    current = stack.pop();
    go(current);
  });
  nextBtn.addEventListener('click', () => {
    if (!next) return;
    stack.push(current);
    current = next;
    go(current);
  });
  return {
    el,
    /** Call after a page loaded with its `next_cursor`. */
    shown(nextCursor) {
      next = nextCursor || null;
      prevBtn.disabled = stack.length === 0;
      nextBtn.disabled = !next;
      where.textContent = `Page ${stack.length + 1}`;
      el.hidden = stack.length === 0 && !next;
    },
    /** Back to the first page (after a change). */
    reset() {
      stack.length = 0;
      current = null;
      next = null;
    },
    get cursor() {
      return current;
    },
  };
}

/** A placeholder for an absent value. */
export function dash(text = '—') {
  return h('span', { class: 'muted' }, text);
}

/** Values as `<code>` chips, or `empty` words when there are none. */
export function codeList(items, empty = 'none') {
  if (!items || items.length === 0) return dash(empty);
  return h('span', { class: 'chips' }, items.map((i) => h('code', {}, i)));
}

/** A `<dl class="props">` from `[[term, value], ...]` (null rows skipped). */
export function props(rows) {
  return h('dl', { class: 'props' },
    rows.filter(Boolean).map(([t, v]) => [h('dt', {}, t), h('dd', {}, v ?? dash())]));
}

/** A `<select>` from `[[value, label], ...]` with `selected` chosen. */
export function select(options, selected = '', attrs = {}) {
  return h('select', attrs,
    options.map(([v, label]) => h('option', { value: v, selected: String(v) === String(selected ?? '') }, label)));
}

/** The ways a product or plan may treat a session over its limit. */
export const SESSION_LIMIT = [
  ['reject', 'Reject the new session'],
  ['replace_same_device', 'Replace the same device’s session'],
  ['evict_oldest', 'End the oldest session'],
];

/** Words for a session-limit strategy (or the default when unset). */
export function sessionLimitText(v) {
  const found = SESSION_LIMIT.find(([k]) => k === v);
  return found ? found[1] : dash('server default');
}

/**
 * Runs `fn` for a form: disables `button` meanwhile, says `working` in `status`, shows the
 * error in words there if it fails. Resolves with `{value}` (fn's result) or undefined
 * after a failure.
 */
export async function submitting(button, status, fn, working = 'Saving…') {
  if (button) button.disabled = true;
  replace(status, notice('info', working));
  try {
    const value = await fn();
    replace(status);
    return { value };
  } catch (e) {
    replace(status, notice('error', errorText(e)));
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

let checkSeq = 0;

/** A checkbox with its label beside it and an optional hint under it. */
export function checkField(label, input, hint = null) {
  if (!input.id) input.id = `chk${++checkSeq}`;
  let hintEl = null;
  if (hint) {
    hintEl = h('small', { id: `${input.id}-hint`, class: 'hint' }, hint);
    input.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: 'field check-field' },
    h('label', { for: input.id, class: 'check' }, input, h('span', {}, label)), hintEl);
}
