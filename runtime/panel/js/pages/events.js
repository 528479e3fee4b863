// Events: the live tail (every event the moment it is stored, with a pause that keeps
// what arrives meanwhile) and the stored log, newest first, page by page. Both take the
// same filters (type or prefix, license, least severity), kept in the address.

import { get, stream } from '../api.js';
import { h, replace, time, fmtNum, table, field, notice, errorText, busy, badge } from '../dom.js';
import { navigate } from '../app.js';
import { KEY_PATTERN, licenseLink, eventList, liveState, prettyJson, selectOf, dateToRfc3339 } from './_shared_licenses.js';

const TAIL_MAX = 200;
const HELD_MAX = 1000;
const PAGE = 50;
const TYPE_ITEM = /^[a-z0-9._]{1,64}$/;

/** Common filters, offered as suggestions for the type field. */
const TYPE_HINTS = [
  'session.', 'session.started', 'session.ended', 'session.rejected',
  'license.', 'license.activated', 'license.activation_rejected', 'license.suspended', 'license.revoked', 'license.banned', 'license.reactivated',
  'policy.denied', 'login.', 'login.failed', 'admin.', 'admin.license.', 'admin.session.kicked',
];

function readFilters(query) {
  return {
    type: (query.get('type') || '').trim(),
    license: (query.get('license') || '').trim(),
    severity: (query.get('severity') || '').trim(),
    since: (query.get('since') || '').trim(),
    until: (query.get('until') || '').trim(),
  };
}

/** Checks the filters; answers an error in words, or null. */
function checkFilters(f) {
  const items = f.type.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length > 32) return 'Type: at most 32 types or prefixes.';
  const bad = items.find((t) => !TYPE_ITEM.test(t));
  if (bad) return `Type: “${bad}” is not an event type like session.ended or a prefix like session. (lower-case letters, digits, . and _).`;
  if (f.license && !KEY_PATTERN.test(f.license)) return 'License: a key holds only letters, digits, - and _ (at most 64).';
  if (f.severity && !['info', 'warning', 'critical'].includes(f.severity)) return 'Severity: choose info, warning or critical.';
  if (f.since && f.until && f.since >= f.until) return 'From must be before Until.';
  return null;
}

export async function render(main, params, query) {
  const f = readFilters(query);
  const problem = checkFilters(f);

  // ---- filters ----
  const typeInput = h('input', { type: 'text', value: f.type, list: 'event-types', spellcheck: 'false', autocomplete: 'off', placeholder: 'session., license.banned' });
  const types = h('datalist', { id: 'event-types' }, TYPE_HINTS.map((t) => h('option', { value: t })));
  const licenseInput = h('input', { type: 'text', value: f.license, maxlength: 64, spellcheck: 'false', autocomplete: 'off' });
  const severity = selectOf([['info', 'Info and above'], ['warning', 'Warning and above'], ['critical', 'Critical only']], f.severity, 'Any severity');
  const since = h('input', { type: 'date', value: /^\d{4}-\d{2}-\d{2}$/.test(f.since) ? f.since : '' });
  const until = h('input', { type: 'date', value: /^\d{4}-\d{2}-\d{2}$/.test(f.until) ? f.until : '' });
  const formOut = h('div', { 'aria-live': 'polite' });
  const hasFilter = Object.values(f).some(Boolean);
  const form = h('form', { class: 'toolbar', role: 'search', 'aria-label': 'Filter events', novalidate: true },
    field('Type or prefix', typeInput, 'Comma-separated; a prefix ends in a dot.'),
    types,
    field('License', licenseInput),
    field('Severity', severity),
    field('From (stored)', since),
    field('Until (stored)', until),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Apply filters'),
      hasFilter ? h('button', { type: 'button', onclick: () => navigate('events') }, 'Clear filters') : null));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const next = {
      type: typeInput.value.split(',').map((s) => s.trim()).filter(Boolean).join(','),
      license: licenseInput.value.trim(),
      severity: severity.value,
      since: since.value,
      until: until.value,
    };
    const err = checkFilters(next);
    if (err) {
      replace(formOut, notice('error', err));
      return;
    }
    navigate('events', next);
  });

  // ---- live ----
  const state = liveState();
  const tail = eventList({ max: TAIL_MAX, testid: 'events-tail', label: 'Live events', empty: 'Waiting for events. They appear here the moment they happen.' });
  const pause = h('button', { type: 'button', 'aria-pressed': 'false' }, 'Pause');
  const clear = h('button', { type: 'button' }, 'Clear');
  const held = [];
  let heldDropped = 0;
  const heldNote = h('span', { class: 'muted', 'aria-live': 'polite' });
  let paused = false;
  const showHeld = () => {
    heldNote.textContent = paused
      ? (held.length ? `${fmtNum(held.length)} new while paused${heldDropped ? ` (${fmtNum(heldDropped)} older ones dropped)` : ''}.` : 'Paused: new events are kept until you resume.')
      : '';
  };
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    if (!paused) {
      for (const ev of held) tail.add(ev);
      held.length = 0;
      heldDropped = 0;
    }
    state.set(paused ? 'paused' : 'open');
    showHeld();
  });
  clear.addEventListener('click', () => tail.clear());

  // ---- stored ----
  const stored = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading events…'));
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of stored events' });

  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Events')),
    form,
    formOut,
    problem ? notice('error', `These filters cannot be used: ${problem}`) : null,
    h('section', { class: 'card', 'aria-labelledby': 'ev-live-h' },
      h('div', { class: 'section-head' }, h('h2', { id: 'ev-live-h' }, 'Live'), state.el,
        h('div', { class: 'actions' }, pause, clear)),
      heldNote,
      tail.el),
    h('section', { class: 'card', 'aria-labelledby': 'ev-log-h' },
      h('h2', { id: 'ev-log-h' }, 'Stored events'),
      h('p', { class: 'hint' }, 'Newest first. Kept for the configured retention (30 days by default).'),
      stored, pager));

  if (problem) {
    replace(stored);
    state.set('reconnecting');
    return undefined;
  }

  const apiFilter = {
    type: f.type || undefined,
    license: f.license || undefined,
    severity: f.severity || undefined,
  };
  const listFilter = {
    ...apiFilter,
    since: f.since ? dateToRfc3339(f.since) : undefined,
    // Until the end of the chosen day.
    until: f.until ? new Date(Date.parse(dateToRfc3339(f.until)) + 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z') : undefined,
  };

  const cursors = []; // cursors of the pages before the current one
  let current = null;
  async function loadPage(cursor) {
    let page;
    try {
      page = await get('/api/admin/events', { ...listFilter, cursor: cursor || undefined, limit: PAGE });
    } catch (e) {
      replace(stored, notice('error', `The events could not be read: ${errorText(e)}`));
      replace(pager);
      return;
    }
    current = cursor;
    const rows = page.events || [];
    replace(stored,
      rows.length ? h('p', { class: 'muted' }, `${fmtNum(rows.length)} events${cursor ? ', older page' : ''}, newest first.`) : null,
      table([
      { label: 'Time', render: (e) => time(e.created_at) },
      { label: 'Type', render: (e) => h('code', {}, e.event_type) },
      { label: 'Severity', render: (e) => badge(e.severity) },
      { label: 'License', render: (e) => (e.license ? licenseLink(e.license) : h('span', { class: 'muted' }, '—')) },
      { label: 'Who', render: (e) => e.actor || h('span', { class: 'muted' }, '—') },
      { label: 'From', render: (e) => e.ip || h('span', { class: 'muted' }, '—') },
      { label: 'Summary', class: 'wide', render: (e) => e.summary },
      {
        label: 'Details',
        class: 'wide',
        render: (e) => (e.data && Object.keys(e.data).length
          ? h('details', {}, h('summary', {}, 'Data'), prettyJson(e.data))
          : h('span', { class: 'muted' }, '—')),
      },
    ], rows, {
      empty: hasFilter ? 'No stored events match these filters.' : 'No events stored yet.',
    }),
    page.next_cursor && rows.length < PAGE
      ? notice('info', `This page searched ${fmtNum(page.scanned)} events and stopped there; go on to older events to search further.`)
      : null);
    const newer = h('button', { type: 'button', disabled: !cursor }, 'Newer events');
    const first = h('button', { type: 'button', disabled: !cursor }, 'Back to newest');
    const older = h('button', { type: 'button', disabled: !page.next_cursor }, 'Older events');
    newer.addEventListener('click', () => busy(newer, () => loadPage(cursors.pop() || null)));
    first.addEventListener('click', () => busy(first, () => { cursors.length = 0; return loadPage(null); }));
    older.addEventListener('click', () => busy(older, () => { cursors.push(current); return loadPage(page.next_cursor); }));
    replace(pager, first, newer, older);
  }

  let stopped = false;
  // The live list starts from the newest stored events, then follows.
  let after = null;
  try {
    const recent = await get('/api/admin/events', { ...apiFilter, limit: 20 });
    tail.addOlder(recent.events || []);
    after = recent.events?.[0]?.id || null;
  } catch {
    // The stored list below says why.
  }
  const stop = stream({ ...apiFilter, last_event_id: after || undefined }, (ev) => {
    if (stopped || !ev?.event_type) return;
    if (paused) {
      held.push(ev);
      if (held.length > HELD_MAX) { held.shift(); heldDropped += 1; }
      showHeld();
      return;
    }
    tail.add(ev);
  }, (s) => state.set(paused ? 'paused' : s));

  await loadPage(null);

  return () => {
    stopped = true;
    stop();
  };
}
