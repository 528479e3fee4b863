// Helpers shared by the dashboard, licenses, license, events and audit pages: links to a
// license, the catalog (products and plans) for the pickers, a live list of events, and
// small input checks that answer in words.

import { get } from '../api.js';
import { h, replace, time, badge } from '../dom.js';

/** Statuses the listing filters on (`expired` is derived from `valid_until`). */
export const STATUSES = ['active', 'suspended', 'revoked', 'banned', 'expired'];

/** A license key as the API accepts it. */
export const KEY_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The route of a license's page. */
export function licenseHref(key) {
  return `#/licenses/${encodeURIComponent(key)}`;
}

/** A link to a license's page showing its key. */
export function licenseLink(key) {
  if (!key) return h('span', { class: 'muted', text: '—' });
  return h('a', { href: licenseHref(key), class: 'mono' }, key);
}

/** A link to a customer's page (by id) showing its name, or the name alone. */
export function customerLink(id, name) {
  const text = name || (id != null ? `Customer #${id}` : '');
  if (!text) return h('span', { class: 'muted', text: '—' });
  if (id == null) return document.createTextNode(text);
  return h('a', { href: `#/customers/${encodeURIComponent(id)}` }, text);
}

/** `valid_until` in words: a time, or "Perpetual". */
export function validity(validUntil) {
  return validUntil ? time(validUntil) : h('span', { class: 'muted' }, 'Perpetual');
}

/** A limit where 0 means no limit. */
export function limitText(n) {
  return n === 0 ? 'unlimited' : String(n);
}

let catalog = null;
let catalogAt = 0;

/**
 * Products and plans for pickers: `{products: [id...], plans: [name...], error}`. Read once
 * a minute at most; a failure gives empty lists and the error (the pickers fall back to
 * free text).
 */
export function loadCatalog() {
  if (catalog && Date.now() - catalogAt < 60_000) return catalog;
  catalogAt = Date.now();
  catalog = Promise.all([
    get('/api/admin/products').then((r) => (r?.products || []).map((p) => ({ id: p.id, name: p.name || p.id })),
      (e) => ({ error: e })),
    get('/api/admin/plans').then((r) => (r?.plans || []).map((p) => p.name), (e) => ({ error: e })),
  ]).then(([products, plans]) => ({
    products: Array.isArray(products) ? products : [],
    plans: Array.isArray(plans) ? plans : [],
    error: (!Array.isArray(products) && products.error) || (!Array.isArray(plans) && plans.error) || null,
  }));
  return catalog;
}

/**
 * A `<select>` of `options` (`[value, text]` pairs or plain values) with a first "any" entry
 * (`anyText`, value ''); `current` is selected, and added when it is not among the options
 * (a product that was removed from the catalog still shows in a saved filter).
 */
export function selectOf(options, current, anyText, attrs = {}) {
  const pairs = options.map((o) => (Array.isArray(o) ? o : [o, o]));
  if (current && !pairs.some(([v]) => v === current)) pairs.push([current, current]);
  return h('select', attrs,
    anyText !== null ? h('option', { value: '' }, anyText) : null,
    pairs.map(([v, t]) => h('option', { value: v, selected: v === current }, t)));
}

/**
 * Reads a whole number from an input: `{value}` (null when blank and `optional`) or
 * `{error}` in words naming the field.
 */
export function wholeNumber(input, label, { min = 0, max = 1_000_000, optional = true } = {}) {
  const raw = input.value.trim();
  if (raw === '') return optional ? { value: null } : { error: `${label}: enter a number.` };
  if (!/^\d+$/.test(raw)) return { error: `${label}: enter a whole number without signs or decimals.` };
  const n = Number(raw);
  if (n < min || n > max) return { error: `${label}: must be between ${min.toLocaleString()} and ${max.toLocaleString()}.` };
  return { value: n };
}

/** A date input's `YYYY-MM-DD` as the start of that day in UTC, RFC 3339 (the API's reading). */
export function dateToRfc3339(yyyyMmDd) {
  return yyyyMmDd ? `${yyyyMmDd}T00:00:00Z` : null;
}

/** JSON pretty-printed in a `<pre>` (for before/after and event details). */
export function prettyJson(value) {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}

/** A short label for a live state: open or reconnecting. */
export function liveState() {
  const dot = h('span', { class: 'live-dot', 'aria-hidden': 'true' });
  const text = h('span', {}, 'Connecting…');
  const el = h('span', { class: 'live-state', role: 'status' }, dot, text);
  return {
    el,
    set(state) {
      dot.classList.toggle('open', state === 'open');
      text.textContent = state === 'open' ? 'Live' : state === 'paused' ? 'Paused' : 'Reconnecting…';
    },
  };
}

/** One line of an event's details (besides its summary) for people. */
function eventDetail(ev) {
  const bits = [];
  const d = ev.data && typeof ev.data === 'object' ? ev.data : {};
  if (d.machine_name && !String(ev.summary || '').includes(d.machine_name)) bits.push(d.machine_name);
  else if (d.hardware_hash && !d.machine_name) bits.push(`device ${d.hardware_hash}`);
  if (ev.actor) bits.push(`by ${ev.actor}`);
  if (ev.ip) bits.push(`from ${ev.ip}`);
  return bits.join(' · ');
}

/** The `<li>` of one event in a live list. */
function eventItem(ev, { showLicense }) {
  const sev = ev.severity && ev.severity !== 'info' ? badge(ev.severity) : null;
  const detail = eventDetail(ev);
  return h('li', { dataset: { eventId: ev.id || '', type: ev.event_type || '' } },
    h('span', { class: 'ev-time' }, time(ev.created_at)),
    h('span', { class: 'ev-type' }, h('code', {}, ev.event_type || '?'), sev ? ' ' : null, sev),
    showLicense && ev.license ? h('span', { class: 'ev-license' }, licenseLink(ev.license)) : null,
    h('span', { class: 'ev-message' }, ev.summary || '', detail ? h('span', { class: 'muted' }, ` · ${detail}`) : null));
}

/**
 * A live list of events, newest first, at most `max`: `add(event)` puts one on top,
 * `addOlder(events)` adds older ones at the bottom, `clear()`. An event seen before (same
 * id) is not shown twice. `el` carries `testid` as `data-testid`; `announce` makes a
 * screen reader read new events out.
 */
export function eventList({ max = 20, showLicense = true, empty = 'No events yet.', testid = null, label = 'Events', announce = false } = {}) {
  const list = h('ol', { class: 'ev-list', 'aria-label': label });
  const emptyEl = h('p', { class: 'empty' }, empty);
  // A busy tail read out event by event would drown a screen reader: only low-volume
  // lists (one license's) announce new events.
  const el = h('div', { class: 'ev-wrap', role: 'log', 'data-testid': testid, 'aria-live': announce ? 'polite' : 'off', 'aria-relevant': 'additions' }, emptyEl);
  const seen = new Set();
  const show = () => {
    if (list.childElementCount > 0 && list.parentNode !== el) replace(el, list);
    if (list.childElementCount === 0 && emptyEl.parentNode !== el) replace(el, emptyEl);
  };
  const trim = () => {
    while (list.childElementCount > max) {
      const last = list.lastElementChild;
      seen.delete(last.dataset.eventId);
      last.remove();
    }
  };
  return {
    el,
    add(ev) {
      if (!ev?.event_type || (ev.id && seen.has(ev.id))) return false;
      if (ev.id) seen.add(ev.id);
      list.prepend(eventItem(ev, { showLicense }));
      trim();
      show();
      return true;
    },
    addOlder(events) {
      for (const ev of events) {
        if (!ev?.event_type || (ev.id && seen.has(ev.id))) continue;
        if (ev.id) seen.add(ev.id);
        list.append(eventItem(ev, { showLicense }));
      }
      trim();
      show();
    },
    clear() {
      seen.clear();
      list.replaceChildren();
      show();
    },
    get size() {
      return list.childElementCount;
    },
  };
}

/**
 * Calls `fn` at most once per `ms` (the last call wins), for refreshing a section after a
 * burst of events. `cancel()` drops a pending call.
 */
export function debounce(fn, ms) {
  let timer = null;
  const run = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => { timer = null; fn(...args); }, ms);
  };
  run.cancel = () => { clearTimeout(timer); timer = null; };
  return run;
}

/** A random id for `request_id` (a retried bulk run is answered, not run again). */
export function requestId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return `r${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`;
}
