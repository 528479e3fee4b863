// One license (`#/licenses/KEY`): what it is (status, product, plan, customer, validity,
// limits, bundle, features, warnings, resources), its devices and live sessions, and every
// change an operator makes to it: status (suspend, resume, revoke, ban), kick a session,
// deactivate a device or all of them, renew, warn, edit, apply a bundle preset, delete.
// Its events follow live, and the sessions list follows session starts and ends without a
// reload.

import { get, post, patch, del, stream, can } from '../api.js';
import { h, replace, time, fmtTime, fmtNum, table, field, notice, errorText, toast, confirmDialog, busy, badge } from '../dom.js';
import { navigate } from '../app.js';
import {
  customerLink, validity, limitText, loadCatalog, selectOf, wholeNumber, eventList, liveState, debounce,
} from './_shared_licenses.js';

const enc = encodeURIComponent;

const ON_LIMIT = [
  ['reject', 'Refuse the new session'],
  ['replace_same_device', 'Replace the session of the same device'],
  ['evict_oldest', 'End the oldest session'],
];

const DURATIONS = [
  ['', 'Until changed'],
  ['3600', '1 hour'],
  ['86400', '1 day'],
  ['604800', '7 days'],
  ['2592000', '30 days'],
];

function plural(n, one, many = `${one}s`) {
  return `${fmtNum(n)} ${n === 1 ? one : many}`;
}

/** A long hash shortened for a table, whole in its title and for copying. */
function shortHash(hash) {
  if (!hash) return h('span', { class: 'muted' }, '—');
  const s = String(hash);
  return h('code', { title: s }, s.length > 16 ? `${s.slice(0, 12)}…` : s);
}

/** `datetime-local` value (the browser's zone) of an RFC 3339 time. */
function toLocalInput(rfc) {
  if (!rfc) return '';
  const d = new Date(rfc);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export async function render(main, params) {
  const wanted = params[0];
  if (!wanted) {
    navigate('licenses');
    return undefined;
  }
  let lic;
  try {
    lic = await get(`/api/admin/licenses/${enc(wanted)}`);
  } catch (e) {
    if (e.code === 'LICENSE_NOT_FOUND' || e.status === 404) {
      replace(main, h('h1', {}, 'License not found'),
        notice('error', `There is no license “${wanted}”. It may have been deleted, or the key is mistyped.`),
        h('p', {}, h('a', { href: '#/licenses' }, 'Back to the licenses')));
    } else {
      replace(main, h('h1', {}, 'License'), notice('error', `The license could not be read: ${errorText(e)}`),
        h('p', {}, h('a', { href: '#/licenses' }, 'Back to the licenses')));
    }
    return undefined;
  }
  const key = lic.license_key;
  const mayWrite = can('licenses:write');
  const mayDelete = can('licenses:delete');
  let stopped = false;
  let gone = false;

  // ---- the sections, each re-drawn from fresh data ----
  const headBadge = h('span', {});
  const banner = h('div', { 'aria-live': 'polite' });
  const summary = h('div', {});
  const statusCard = mayWrite ? statusActions() : null;
  const sessionsBox = h('div', { 'data-testid': 'license-sessions', 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading sessions…'));
  const devicesBox = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading devices…'));
  const resourcesBox = h('div', {}, h('p', { class: 'loading' }, 'Loading resources…'));
  const live = liveState();
  const tail = eventList({ max: 500, showLicense: false, announce: true, label: `Events of ${key}`, empty: 'No events for this license yet.' });
  const olderBox = h('div', { class: 'pager' });
  const sessionsStatus = h('span', { class: 'muted' });

  const resetRefund = h('input', { type: 'checkbox', id: 'hwid-refund' });
  const resetButton = h('button', { type: 'button', class: 'danger' }, 'Reset all devices');
  let activeDevices = 0;
  let editDetails = null;

  replace(main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/licenses' }, 'Licenses'), ' / '),
    h('div', { class: 'page-head' }, h('h1', {}, 'License ', h('span', { class: 'mono' }, key)), headBadge),
    banner,
    h('div', { class: 'lic-columns' },
      h('section', { class: 'card', 'aria-labelledby': 'lic-sum-h' }, h('h2', { id: 'lic-sum-h' }, 'Details'), summary),
      statusCard),
    h('section', { class: 'card', 'aria-labelledby': 'lic-ses-h' },
      h('div', { class: 'section-head' },
        h('h2', { id: 'lic-ses-h' }, 'Live sessions'), sessionsStatus,
        h('button', { type: 'button', class: 'link', onclick: () => refreshSessions() }, 'Refresh')),
      sessionsBox),
    h('section', { class: 'card', 'aria-labelledby': 'lic-dev-h' },
      h('div', { class: 'section-head' }, h('h2', { id: 'lic-dev-h' }, 'Devices')),
      devicesBox,
      mayWrite ? h('div', { class: 'toolbar lic-reset' },
        h('div', { class: 'check' }, resetRefund, h('label', { for: 'hwid-refund' }, 'Also start the lifetime activation count again')),
        resetButton) : null),
    h('section', { class: 'card', 'aria-labelledby': 'lic-ev-h' },
      h('div', { class: 'section-head' }, h('h2', { id: 'lic-ev-h' }, 'Events'), live.el),
      tail.el, olderBox),
    h('section', { class: 'card', 'aria-labelledby': 'lic-res-h' }, h('h2', { id: 'lic-res-h' }, 'Resources'), resourcesBox),
    mayWrite ? await changeForms() : null,
    mayDelete ? deleteZone() : null);

  // The details' session count follows the live list below (which updates from events).
  const sessionsCount = h('span', { 'data-testid': 'license-sessions-count' });
  const countSessions = (n) => { sessionsCount.textContent = `${fmtNum(n)} live of ${limitText(lic.max_sessions)}`; };

  function drawSummary() {
    replace(headBadge, badge(lic.status));
    countSessions((lic.sessions || []).length);
    const meta = { ...(lic.metadata || {}) };
    const bundle = meta.bundle;
    const cycle = meta.bundle_cycle;
    delete meta.bundle;
    delete meta.bundle_cycle;
    const features = lic.features || [];
    const metaEntries = Object.entries(meta);
    const row = (label, ...value) => [h('dt', {}, label), h('dd', {}, ...value)];
    replace(summary, h('dl', { class: 'props' },
      row('Status', badge(lic.status),
        lic.status_reason ? h('span', {}, ' — ', lic.status_reason) : null,
        lic.status_until ? h('span', { class: 'muted' }, ' until ', time(lic.status_until)) : null),
      row('Product', lic.product),
      row('Plan', lic.plan),
      row('Customer', customerLink(lic.customer_id, lic.customer_name)),
      row('Valid until', validity(lic.valid_until)),
      row('Created', time(lic.created_at)),
      row('Devices', `${fmtNum(lic.active_devices)} active of ${limitText(lic.max_devices)}`),
      row('Activations', `${fmtNum(lic.activations_used)} used of ${limitText(lic.max_activations)} (lifetime)`),
      row('Sessions', sessionsCount),
      row('At the session limit', (ON_LIMIT.find(([v]) => v === lic.on_session_limit) || [null, lic.on_session_limit || '—'])[1]),
      row('Warnings', lic.warnings ? h('strong', {}, fmtNum(lic.warnings)) : '0'),
      row('Bundle', bundle ? h('span', {}, bundle, cycle ? h('span', { class: 'muted' }, ` (${cycle})`) : null) : h('span', { class: 'muted' }, 'None')),
      row('Features', features.length
        ? h('ul', { class: 'chips' }, features.map((f) => h('li', {}, h('code', {}, f))))
        : h('span', { class: 'muted' }, 'None')),
      row('Note', lic.note ? h('span', { class: 'prewrap' }, lic.note) : h('span', { class: 'muted' }, 'None')),
      row('Metadata', metaEntries.length
        ? h('ul', { class: 'chips' }, metaEntries.map(([k, v]) => h('li', {}, h('code', {}, `${k} = ${v}`))))
        : h('span', { class: 'muted' }, 'None')),
      row('Id', h('code', {}, String(lic.id)))));
    statusCard?.update();
    editDetails?.licenseChanged();
  }

  function drawSessions(sessions) {
    countSessions(sessions.length);
    sessionsStatus.textContent = `${plural(sessions.length, 'live session')} · of ${limitText(lic.max_sessions)} allowed`;
    const columns = [
      { label: 'Session', render: (s) => shortHash(s.session_id) },
      { label: 'Machine', render: (s) => h('span', {}, s.machine_id || '—', ' ', shortHash(s.hardware_hash)) },
      { label: 'Version', render: (s) => s.version || '—' },
      { label: 'Started', render: (s) => time(s.started_at) },
      { label: 'Last heartbeat', render: (s) => time(s.last_heartbeat) },
      { label: 'Expires', render: (s) => time(s.expires_at) },
    ];
    if (mayWrite) {
      columns.push({
        label: 'Action',
        render: (s) => h('button', {
          type: 'button',
          'aria-label': `Kick session ${s.session_id.slice(0, 12)} on ${s.machine_id || s.hardware_hash}`,
          onclick: (e) => busy(e.currentTarget, async () => {
            await del(`/api/admin/licenses/${enc(key)}/sessions/${enc(s.session_id)}`);
            toast('Session ended. A client on the session WebSocket is told at once; over HTTP, at its next heartbeat.');
            await refreshSessions();
          }),
        }, 'Kick'),
      });
    }
    replace(sessionsBox, table(columns, sessions, {
      empty: 'No live sessions. A session shows here the moment a client starts one.',
      rowAttrs: (s) => ({ 'data-session-id': s.session_id }),
    }));
  }

  function drawDevices(devices) {
    const columns = [
      { label: 'Machine', render: (d) => d.machine_name || h('span', { class: 'muted' }, 'unnamed') },
      { label: 'Hardware hash', render: (d) => shortHash(d.hardware_hash) },
      { label: 'Version', render: (d) => d.app_version || '—' },
      { label: 'Activated', render: (d) => time(d.activated_at) },
      { label: 'Last heartbeat', render: (d) => time(d.last_heartbeat) },
      { label: 'State', render: (d) => badge(d.is_active ? 'active' : 'inactive') },
    ];
    if (mayWrite) {
      columns.push({
        label: 'Action',
        render: (d) => (d.is_active ? h('button', {
          type: 'button',
          'aria-label': `Deactivate ${d.machine_name || d.hardware_hash}`,
          onclick: async (e) => {
            const button = e.currentTarget;
            const ok = await confirmDialog({
              title: 'Deactivate this device?',
              message: `${d.machine_name || d.hardware_hash} stops being activated on ${key}; its live sessions end. It can be activated again within the license's limits.`,
              confirmLabel: 'Deactivate',
              danger: true,
            });
            if (!ok) return;
            await busy(button, async () => {
              await post(`/api/license/${enc(key)}/deactivate-device/${enc(d.id)}`);
              toast('Device deactivated.');
              await refreshAll();
            });
          },
        }, 'Deactivate') : h('span', { class: 'muted' }, '—')),
      });
    }
    const active = devices.filter((d) => d.is_active).length;
    replace(devicesBox,
      h('p', { class: 'muted' }, `${plural(active, 'active device')} of ${limitText(lic.max_devices)} allowed; ${plural(lic.activations_used, 'activation')} used of ${limitText(lic.max_activations)} for the license's lifetime.`),
      table(columns, devices, { empty: 'No device has been activated on this license.' }));
    activeDevices = active;
    resetButton.disabled = active === 0;
  }

  function drawResources(resources) {
    replace(resourcesBox, table([
      { label: 'Type', render: (r) => r.type },
      { label: 'Identifier', render: (r) => h('code', {}, r.identifier) },
      { label: 'Allocated', render: (r) => time(r.allocated_at) },
    ], resources, { empty: 'This license holds no resources.' }));
  }

  // ---- loading ----
  async function refreshLicense() {
    try {
      lic = await get(`/api/admin/licenses/${enc(key)}`);
      if (stopped) return;
      replace(banner);
      drawSummary();
      drawSessions(lic.sessions || []);
    } catch (e) {
      if (stopped) return;
      if (e.code === 'LICENSE_NOT_FOUND') {
        gone = true;
        replace(banner, notice('error', `License ${key} no longer exists (it was deleted).`));
        main.querySelectorAll('button, input, select, textarea').forEach((el) => { el.disabled = true; });
      } else {
        replace(banner, notice('error', `The license could not be refreshed: ${errorText(e)}`));
      }
    }
  }

  async function refreshSessions() {
    if (gone) return;
    try {
      const r = await get(`/api/admin/licenses/${enc(key)}/sessions`);
      if (stopped) return;
      lic.sessions = r.sessions || [];
      drawSessions(lic.sessions);
    } catch (e) {
      if (!stopped) replace(sessionsBox, notice('error', `The sessions could not be read: ${errorText(e)}`));
    }
  }

  async function refreshDevices() {
    if (gone) return;
    try {
      const r = await get(`/api/license/${enc(key)}/devices`);
      if (!stopped) drawDevices(r.devices || []);
    } catch (e) {
      if (!stopped) replace(devicesBox, notice('error', `The devices could not be read: ${errorText(e)}`));
    }
  }

  async function refreshResources() {
    if (gone) return;
    try {
      const r = await get(`/api/license/${enc(key)}/resources`);
      if (!stopped) drawResources(r.resources || []);
    } catch (e) {
      if (stopped) return;
      // Fall back to what the license's own view lists.
      drawResources(lic.resources || []);
      resourcesBox.prepend(notice('info', `The resource list could not be read (${errorText(e)}); showing the license's copy.`));
    }
  }

  async function refreshAll() {
    await refreshLicense();
    if (gone) return;
    await Promise.all([refreshDevices(), refreshResources()]);
  }

  drawSummary();
  drawSessions(lic.sessions || []);
  await Promise.all([refreshDevices(), refreshResources()]);

  // ---- events: the recent history, then live ----
  let olderCursor = null;
  async function loadOlder() {
    const r = await get('/api/admin/events', { license: key, limit: 50, cursor: olderCursor || undefined });
    if (stopped) return;
    tail.addOlder(r.events || []);
    olderCursor = r.next_cursor || null;
    replace(olderBox, olderCursor
      ? h('button', { type: 'button', onclick: (e) => busy(e.currentTarget, loadOlder, olderBox) }, 'Older events')
      : (tail.size ? h('span', { class: 'muted' }, 'That is every stored event of this license.') : null));
  }
  let newest = null;
  try {
    await loadOlder();
    newest = main.querySelector('.ev-list li')?.dataset.eventId || null;
  } catch (e) {
    replace(olderBox, notice('error', `The license's events could not be read: ${errorText(e)}`));
  }

  const sessionsLater = debounce(refreshSessions, 200);
  const licenseLater = debounce(refreshAll, 400);
  const devicesLater = debounce(refreshDevices, 300);
  const onEvent = (ev) => {
    if (stopped || !tail.add(ev)) return;
    const t = ev.event_type || '';
    if (t.startsWith('session.') || t === 'admin.session.kicked') sessionsLater();
    if (t === 'license.activated' || t.startsWith('admin.device.')) devicesLater();
    if ((t.startsWith('license.') && t !== 'license.activated' && t !== 'license.activation_rejected') ||
        (t.startsWith('admin.license.') || t.startsWith('admin.device.'))) licenseLater();
  };
  const stopStream = stream(newest ? { license: key, last_event_id: newest } : { license: key }, onEvent, (s) => live.set(s));
  // Last heartbeats move without events: read the sessions again now and then.
  const ticker = setInterval(() => { if (!document.hidden) refreshSessions(); }, 15000);

  // ---- the status card ----
  function statusActions() {
    const reason = h('input', { type: 'text', maxlength: 256, autocomplete: 'off' });
    const duration = selectOf(DURATIONS, '', null);
    const out = h('div', { 'aria-live': 'polite' });
    const buttons = {
      active: h('button', { type: 'button', class: 'primary' }, 'Resume'),
      suspended: h('button', { type: 'button' }, 'Suspend'),
      revoked: h('button', { type: 'button', class: 'danger' }, 'Revoke'),
      banned: h('button', { type: 'button', class: 'danger' }, 'Ban'),
    };
    const change = async (to, button) => {
      const words = { active: 'resumed', suspended: 'suspended', revoked: 'revoked', banned: 'banned' }[to];
      const liveCount = (lic.sessions || []).length;
      const ends = to !== 'active' && liveCount
        ? ` Its ${plural(liveCount, 'live session')} end${liveCount === 1 ? 's' : ''} at once.` : '';
      if (to === 'revoked') {
        const ok = await confirmDialog({
          title: 'Revoke this license?',
          message: `${key} will be refused from now on.${ends} You can resume it later, but clients are refused until then.`,
          confirmLabel: 'Revoke',
          typed: key,
          danger: true,
        });
        if (!ok) return;
      } else if (to === 'banned') {
        const ok = await confirmDialog({
          title: 'Ban this license?',
          message: `${key} will be refused as banned.${ends}`,
          confirmLabel: 'Ban',
          typed: key,
          danger: true,
        });
        if (!ok) return;
      } else if (to === 'suspended' && liveCount) {
        const ok = await confirmDialog({
          title: 'Suspend this license?',
          message: `${key} will be refused while suspended.${ends}`,
          confirmLabel: 'Suspend',
          danger: true,
        });
        if (!ok) return;
      }
      const body = { status: to };
      if (reason.value.trim()) body.reason = reason.value.trim();
      if ((to === 'suspended' || to === 'banned') && duration.value) body.duration_secs = Number(duration.value);
      await busy(button, async () => {
        const r = await post(`/api/admin/licenses/${enc(key)}/status`, body);
        const text = `License ${words}.${r.ended_sessions ? ` ${plural(r.ended_sessions, 'live session')} ended.` : ''}`;
        replace(out, notice('ok', text));
        toast(text);
        reason.value = '';
        await refreshAll();
      }, out);
      el.update(); // busy() gave the button back; the current status's stays off
    };
    for (const [to, b] of Object.entries(buttons)) b.addEventListener('click', () => change(to, b));
    let el = null;
    el = h('section', { class: 'card', 'aria-labelledby': 'lic-st-h' },
      h('h2', { id: 'lic-st-h' }, 'Status'),
      h('p', { class: 'muted' }, 'Suspending, revoking or banning ends the live sessions at once and refuses the license until it is resumed.'),
      field('Reason', reason, 'Optional; recorded with the change and shown on the license.'),
      field('A suspension or ban lasts', duration),
      h('div', { class: 'actions' }, buttons.suspended, buttons.active, buttons.revoked, buttons.banned),
      out);
    el.update = () => {
      for (const [to, b] of Object.entries(buttons)) b.disabled = lic.status === to;
    };
    return el;
  }

  // ---- devices: reset all ----
  resetButton.addEventListener('click', async () => {
    const refund = resetRefund.checked;
    const ok = await confirmDialog({
      title: 'Reset all devices?',
      message: `Every device of ${key} is deactivated and its live sessions end.${refund ? ' The lifetime activation count starts again from zero.' : ''} Clients must activate again.`,
      confirmLabel: 'Reset devices',
      danger: true,
    });
    if (!ok) return;
    await busy(resetButton, async () => {
      const r = await post(`/api/admin/licenses/${enc(key)}/hwid-reset`, { refund_activations: refund });
      toast(`${plural(r.deactivated, 'device')} deactivated, ${plural(r.ended_sessions, 'live session')} ended.`);
      resetRefund.checked = false;
      await refreshAll();
    });
    resetButton.disabled = activeDevices === 0;
  });

  // ---- renew, warn, bundle, edit ----
  async function changeForms() {
    const catalog = await loadCatalog();

    // Renew.
    const days = h('input', { type: 'text', inputmode: 'numeric', maxlength: 5, value: '30', autocomplete: 'off' });
    const renewOut = h('div', { 'aria-live': 'polite' });
    const renewBtn = h('button', { type: 'submit', class: 'primary' }, 'Renew');
    const renewForm = h('form', { class: 'mini', novalidate: true, 'aria-labelledby': 'lic-renew-h' },
      h('h3', { id: 'lic-renew-h' }, 'Renew'),
      field('Days to add', days, 'Counted from the later of now and the current end; a perpetual license stays perpetual.'),
      h('div', { class: 'actions' }, renewBtn), renewOut);
    renewForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const d = wholeNumber(days, 'Days to add', { min: 1, max: 36525, optional: false });
      if (d.error) { replace(renewOut, notice('error', d.error)); days.focus(); return; }
      busy(renewBtn, async () => {
        const r = await post(`/api/admin/licenses/${enc(key)}/renew`, { days: d.value });
        replace(renewOut, notice('ok', r.valid_until ? `Renewed: valid until ${fmtTime(r.valid_until)}.` : 'The license is perpetual; nothing to extend.'));
        await refreshLicense();
      }, renewOut);
    });

    // Warning.
    const note = h('input', { type: 'text', maxlength: 256, autocomplete: 'off' });
    const warnOut = h('div', { 'aria-live': 'polite' });
    const warnBtn = h('button', { type: 'submit' }, 'Add warning');
    const warnForm = h('form', { class: 'mini', novalidate: true, 'aria-labelledby': 'lic-warn-h' },
      h('h3', { id: 'lic-warn-h' }, 'Add a warning'),
      field('Why', note, 'Policy (e.g. a ban threshold) may ban the license for it.'),
      h('div', { class: 'actions' }, warnBtn), warnOut);
    warnForm.addEventListener('submit', (e) => {
      e.preventDefault();
      if (!note.value.trim()) { replace(warnOut, notice('error', 'Why: say what the warning is for.')); note.focus(); return; }
      busy(warnBtn, async () => {
        const r = await post(`/api/admin/licenses/${enc(key)}/warnings`, { note: note.value.trim() });
        replace(warnOut, notice(r.banned ? 'error' : 'ok',
          `Warning recorded; ${plural(r.warnings, 'warning')} on this license now.${r.banned ? ' Policy banned the license for it.' : ''}`));
        note.value = '';
        await refreshAll();
      }, warnOut);
    });

    // Bundle preset.
    // The presets in force, from the server (GET /api/admin/presets).
    const preset = h('select', {}, h('option', { value: '' }, 'Loading presets…'));
    const describePreset = (p) => {
      const parts = [];
      if (p.plan) parts.push(`plan ${p.plan}`);
      if (p.features.length) parts.push(p.features.join(', '));
      parts.push(p.cycle);
      return `${p.name} (${parts.join('; ')})`;
    };
    get('/api/admin/presets').then(({ presets }) => {
      if (!presets.length) {
        replace(preset, h('option', { value: '' }, 'No presets are configured'));
        preset.disabled = true;
        return;
      }
      replace(preset, h('option', { value: '' }, 'Choose a preset'),
        presets.map((p) => h('option', { value: p.name }, describePreset(p))));
    }).catch((e) => {
      replace(preset, h('option', { value: '' }, 'Presets could not be read'));
      replace(bundleOut, notice('error', errorText(e)));
    });
    const cycle = selectOf([['monthly', 'Monthly'], ['yearly', 'Yearly'], ['lifetime', 'Lifetime']], '', 'The preset’s own');
    const adminNote = h('input', { type: 'text', maxlength: 2000, autocomplete: 'off' });
    const bundleOut = h('div', { 'aria-live': 'polite' });
    const bundleBtn = h('button', { type: 'submit' }, 'Apply preset');
    const bundleForm = h('form', { class: 'mini', novalidate: true, 'aria-labelledby': 'lic-bundle-h' },
      h('h3', { id: 'lic-bundle-h' }, 'Apply a bundle preset'),
      field('Preset', preset, 'The [presets.NAME] of the server configuration.'),
      field('Cycle', cycle),
      field('Note', adminNote, 'Optional; becomes the license’s note.'),
      h('div', { class: 'actions' }, bundleBtn), bundleOut);
    bundleForm.addEventListener('submit', async (e) => {
      e.preventDefault();
      const name = preset.value.trim();
      if (!name) { replace(bundleOut, notice('error', 'Preset: choose a preset.')); preset.focus(); return; }
      const ok = await confirmDialog({
        title: `Apply preset ${name}?`,
        message: `Its features replace the license's, its plan and limits apply, and validity runs one more ${cycle.value || 'cycle of the preset'}.`,
        confirmLabel: 'Apply preset',
      });
      if (!ok) return;
      const body = { preset: name };
      if (cycle.value) body.cycle = cycle.value;
      if (adminNote.value.trim()) body.admin_note = adminNote.value.trim();
      busy(bundleBtn, async () => {
        lic = await post(`/api/admin/licenses/${enc(key)}/bundle`, body);
        replace(bundleOut, notice('ok', `Preset ${name} applied.`));
        drawSummary();
        await refreshAll();
      }, bundleOut);
    });

    editDetails = editForm(catalog);
    return h('section', { class: 'card', 'aria-labelledby': 'lic-chg-h' },
      h('h2', { id: 'lic-chg-h' }, 'Change'),
      h('div', { class: 'mini-grid' }, renewForm, warnForm, bundleForm),
      editDetails);
  }

  function editForm(catalog) {
    const validUntil = h('input', { type: 'datetime-local', id: 'edit-valid' });
    const perpetual = h('input', { type: 'checkbox', id: 'edit-perpetual' });
    perpetual.addEventListener('change', () => { validUntil.disabled = perpetual.checked; });
    const plan = catalog.plans.length ? selectOf(catalog.plans, lic.plan, null) : h('input', { type: 'text', maxlength: 256 });
    const devices = h('input', { type: 'text', inputmode: 'numeric', maxlength: 7 });
    const activations = h('input', { type: 'text', inputmode: 'numeric', maxlength: 7 });
    const sessions = h('input', { type: 'text', inputmode: 'numeric', maxlength: 7 });
    const onLimit = selectOf(ON_LIMIT, lic.on_session_limit, null);
    const customerName = h('input', { type: 'text', maxlength: 256 });
    const customerId = h('input', { type: 'text', inputmode: 'numeric', maxlength: 19 });
    const noteArea = h('textarea', { rows: 3, maxlength: 2000 });
    const features = h('input', { type: 'text', spellcheck: 'false' });
    const metadata = h('textarea', { rows: 4, spellcheck: 'false' });
    const out = h('div', { 'aria-live': 'polite' });
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save changes');
    const reset = h('button', { type: 'button' }, 'Undo my changes');
    const form = h('form', { novalidate: true },
      h('div', { class: 'form-grid' },
        h('div', { class: 'field' },
          h('label', { for: 'edit-valid' }, 'Valid until'),
          validUntil,
          h('div', { class: 'check' }, perpetual, h('label', { for: 'edit-perpetual' }, 'Perpetual (never expires)')),
          h('small', { class: 'hint' }, 'In your time zone.')),
        field('Plan', plan),
        field('Devices at once', devices),
        field('Lifetime activations', activations, '0 = unlimited'),
        field('Sessions at once', sessions, 'Lowering it ends the excess live sessions at once.'),
        field('At the session limit', onLimit),
        field('Customer name', customerName, 'Blank clears it.'),
        field('Customer id', customerId, 'Blank detaches the license from its customer.'),
        field('Features', features, 'Names separated by commas (letters, digits, _ . : -), at most 64.'),
        field('Note', noteArea, 'Blank clears it.'),
        field('Metadata', metadata, 'One key=value per line, at most 32.')),
      h('div', { class: 'actions' }, save, reset), out);

    // What each control showed when it was filled: only controls that differ from it are
    // sent, so a change made meanwhile (a renewal, another operator) is never undone.
    const inputs = { validUntil, plan, devices, activations, sessions, onLimit, customerName, customerId, noteArea, features, metadata };
    let basis = {};
    let dirty = false;
    const read = () => ({
      ...Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value])),
      perpetual: perpetual.checked,
    });
    const fill = () => {
      validUntil.value = toLocalInput(lic.valid_until);
      perpetual.checked = !lic.valid_until;
      validUntil.disabled = perpetual.checked;
      if (plan.tagName === 'SELECT' && ![...plan.options].some((o) => o.value === lic.plan)) plan.append(h('option', { value: lic.plan }, lic.plan));
      plan.value = lic.plan;
      devices.value = String(lic.max_devices);
      activations.value = String(lic.max_activations);
      sessions.value = String(lic.max_sessions);
      onLimit.value = lic.on_session_limit;
      customerName.value = lic.customer_name || '';
      customerId.value = lic.customer_id != null ? String(lic.customer_id) : '';
      noteArea.value = lic.note || '';
      features.value = (lic.features || []).join(', ');
      metadata.value = Object.entries(lic.metadata || {}).map(([k, v]) => `${k}=${v}`).join('\n');
      basis = read();
      dirty = false;
    };
    fill();
    form.addEventListener('input', () => { dirty = true; });
    form.addEventListener('change', () => { dirty = true; });
    reset.addEventListener('click', () => { fill(); replace(out); });

    const fail = (input, text) => {
      input?.setAttribute('aria-invalid', 'true');
      replace(out, notice('error', text));
      input?.focus();
      return null;
    };
    const changed = (name) => read()[name] !== basis[name];
    const collect = () => {
      form.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
      const body = {};
      if (changed('perpetual') || (!perpetual.checked && changed('validUntil'))) {
        if (perpetual.checked) {
          body.valid_until = null;
        } else {
          if (!validUntil.value) return fail(validUntil, 'Valid until: choose a date and time, or tick Perpetual.');
          const t = new Date(validUntil.value);
          if (Number.isNaN(t.getTime())) return fail(validUntil, 'Valid until: that is not a date and time.');
          body.valid_until = t.toISOString().replace(/\.\d{3}Z$/, 'Z');
        }
      }
      if (changed('plan')) {
        if (!plan.value.trim()) return fail(plan, 'Plan: name a plan.');
        body.plan = plan.value.trim();
      }
      for (const [name, input, label, key] of [
        ['max_devices', devices, 'Devices at once', 'devices'],
        ['max_activations', activations, 'Lifetime activations', 'activations'],
        ['max_sessions', sessions, 'Sessions at once', 'sessions']]) {
        if (!changed(key)) continue;
        const r = wholeNumber(input, label, { optional: false });
        if (r.error) return fail(input, r.error);
        body[name] = r.value;
      }
      if (changed('onLimit')) body.on_session_limit = onLimit.value;
      if (changed('customerName')) body.customer_name = customerName.value.trim() || null;
      if (changed('customerId')) {
        const cid = wholeNumber(customerId, 'Customer id', { min: 1, max: Number.MAX_SAFE_INTEGER });
        if (cid.error) return fail(customerId, cid.error);
        body.customer_id = cid.value;
      }
      if (changed('noteArea')) body.note = noteArea.value.trim() || null;
      if (changed('features')) {
        const names = features.value.split(',').map((x) => x.trim()).filter(Boolean);
        const badName = names.find((f) => !/^[A-Za-z0-9_.:-]{1,64}$/.test(f));
        if (badName) return fail(features, `Features: “${badName}” may hold only letters, digits, _ . : - (at most 64).`);
        if (names.length > 64) return fail(features, 'Features: at most 64.');
        if (new Set(names).size !== names.length) return fail(features, 'Features: a name is listed twice.');
        body.features = names;
      }
      if (changed('metadata')) {
        const meta = {};
        const lines = metadata.value.split('\n').map((l) => l.trim()).filter(Boolean);
        for (const line of lines) {
          const i = line.indexOf('=');
          if (i <= 0) return fail(metadata, `Metadata: “${line}” is not key=value.`);
          const k = line.slice(0, i).trim();
          const v = line.slice(i + 1).trim();
          if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(k)) return fail(metadata, `Metadata: the key “${k}” may hold only letters, digits, _ . : - (at most 64).`);
          if (v.length > 256) return fail(metadata, `Metadata: the value of ${k} is longer than 256 characters.`);
          if (k in meta) return fail(metadata, `Metadata: ${k} is listed twice.`);
          meta[k] = v;
        }
        if (Object.keys(meta).length > 32) return fail(metadata, 'Metadata: at most 32 entries.');
        body.metadata = meta;
      }
      return body;
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const body = collect();
      if (!body) return;
      if (Object.keys(body).length === 0) {
        replace(out, notice('info', 'Nothing to save: no field was changed.'));
        return;
      }
      busy(save, async () => {
        lic = await patch(`/api/admin/licenses/${enc(key)}`, body);
        fill();
        replace(out, notice('ok', `Saved: ${Object.keys(body).join(', ').replaceAll('_', ' ')}.`));
        toast('License saved.');
        drawSummary();
        drawSessions(lic.sessions || []);
        refreshDevices();
      }, out);
    });
    const details = h('details', { class: 'lic-edit' }, h('summary', {}, h('strong', {}, 'Edit the license')), form);
    /** The license changed: an untouched form shows the new values. */
    details.licenseChanged = () => { if (!dirty) fill(); };
    return details;
  }

  // ---- delete ----
  function deleteZone() {
    const button = h('button', { type: 'button', class: 'danger' }, 'Delete license');
    const out = h('div', { 'aria-live': 'polite' });
    button.addEventListener('click', async () => {
      const ok = await confirmDialog({
        title: 'Delete this license?',
        message: `${key} is deleted for good: its live sessions end, its devices go and its resources return to their pools. This cannot be undone.`,
        confirmLabel: 'Delete',
        typed: key,
        danger: true,
      });
      if (!ok) return;
      await busy(button, async () => {
        const r = await del(`/api/admin/licenses/${enc(key)}`, { confirm: key });
        toast(`License ${r.deleted} deleted${r.ended_sessions ? `; ${plural(r.ended_sessions, 'live session')} ended` : ''}.`);
        navigate('licenses');
      }, out);
    });
    return h('section', { class: 'card danger-zone', 'aria-labelledby': 'lic-del-h' },
      h('h2', { id: 'lic-del-h' }, 'Delete'),
      h('p', {}, 'Deleting ends the live sessions, removes the devices and returns held resources. You will be asked to type the key.'),
      button, out);
  }

  return () => {
    stopped = true;
    stopStream();
    clearInterval(ticker);
    sessionsLater.cancel();
    licenseLater.cancel();
    devicesLater.cancel();
  };
}
