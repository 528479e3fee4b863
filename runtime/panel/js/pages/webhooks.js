// Webhook endpoints: the list (enable, disable, delete), and a new endpoint whose signing
// secret is shown once. Each row leads to the endpoint's page (`#/webhooks/ID`) with its
// delivery log. Also exports the endpoint form, which that page reuses to edit.

import { get, post, patch, del } from '../api.js';
import { h, replace, field, time, table, toast, confirmDialog, badge, notice, errorText } from '../dom.js';
import {
  pageHead, disclosure, statusBox, validate, loadInto, cursorPager, codeList, select, secretBox, reveal,
} from './_shared_admin.js';

const MAX_EVENT_TYPES = 64;
const MAX_EVENT_TYPE_LEN = 100;
const MAX_URL_BYTES = 2048;
const PAGE = 50;

export const FORMATS = [
  ['json', 'JSON (Standard Webhooks envelope)'],
  ['discord', 'Discord (channel webhook embeds)'],
];

/** Parses the event-type text: `{types}` (lower-cased, each once) or `{error}`. */
export function parseEventTypes(text) {
  const types = [];
  for (const raw of String(text || '').split(/[\s,]+/)) {
    const t = raw.trim().toLowerCase();
    if (!t) continue;
    if (t.length > MAX_EVENT_TYPE_LEN) return { error: `“${t.slice(0, 20)}…” is longer than ${MAX_EVENT_TYPE_LEN} characters.` };
    if (!/^[a-z0-9_.-]+$/.test(t) || t.startsWith('.') || t.includes('..')) {
      return { error: `“${t}” is not an event type (session.ended) or a prefix ending in “.” (session.).` };
    }
    if (!types.includes(t)) types.push(t);
  }
  if (types.length > MAX_EVENT_TYPES) return { error: `At most ${MAX_EVENT_TYPES} event types (now ${types.length}).` };
  return { types };
}

/** Checks a webhook URL as the server does before it looks the host up. */
export function urlError(text) {
  const v = String(text || '').trim();
  if (!v) return 'The URL is required.';
  if (new TextEncoder().encode(v).length > MAX_URL_BYTES) return `The URL must be at most ${MAX_URL_BYTES} bytes.`;
  let u;
  try {
    u = new URL(v);
  } catch {
    return 'The URL is not valid: write it in full, like https://hooks.example.com/tessera.';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'Only http:// and https:// URLs are accepted.';
  if (u.username || u.password) return 'The URL must not carry a user name or password.';
  if (!u.hostname) return 'The URL has no host.';
  if (v.includes('#')) return 'The URL must not have a #fragment.';
  return null;
}

/** The endpoint form's controls and fields, filled from `ep`. */
export function endpointControls(ep = {}) {
  const url = h('input', { type: 'url', required: true, autocomplete: 'off', spellcheck: 'false', value: ep.url || '', placeholder: 'https://hooks.example.com/tessera' });
  const events = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', class: 'mono', value: (ep.event_types || []).join(', '), placeholder: 'every event' });
  const format = select(FORMATS, ep.format || 'json');
  return {
    url, events, format,
    fields: [
      field('URL', url, 'Where Tessera POSTs the events. Internal addresses are refused unless the server allows them.'),
      field('Event types', events, 'Types (session.ended) or prefixes ending in “.” (session., license., admin., login., policy., webhook.), comma-separated; empty for every event.'),
      field('Format', format, 'Discord: point the URL at a Discord channel webhook.'),
    ],
    checks() {
      return [[url, urlError(url.value)], [events, parseEventTypes(events.value).error || null]];
    },
    values() {
      return { url: url.value.trim(), event_types: parseEventTypes(events.value).types, format: format.value };
    },
  };
}

/** The state of an endpoint as badges and words. */
export function endpointState(ep) {
  return h('span', { class: 'state' },
    badge(ep.enabled ? 'enabled' : 'disabled'),
    ep.enabled && ep.failing_since ? [' ', badge('failing'), h('small', { class: 'muted block' }, 'failing since ', time(ep.failing_since))] : null,
    !ep.enabled && ep.disabled_reason ? h('small', { class: 'muted block' }, ep.disabled_reason) : null);
}

/** Enables or disables `ep` (asking first before disabling); resolves with the endpoint or null. */
export async function toggleEndpoint(ep, button) {
  if (ep.enabled) {
    const ok = await confirmDialog({
      title: `Disable webhook #${ep.id}?`,
      message: 'No new deliveries are sent to it, and its pending deliveries fail meanwhile. Enable it again to resume.',
      confirmLabel: 'Disable',
      danger: true,
    });
    if (!ok) return null;
  }
  button.disabled = true;
  try {
    const now = await patch(`/api/admin/webhooks/${ep.id}`, { enabled: !ep.enabled });
    toast(now.enabled ? `Webhook #${ep.id} enabled; its failure streak is cleared.` : `Webhook #${ep.id} disabled.`);
    return now;
  } catch (e) {
    toast(errorWords(e), 'error');
    return null;
  } finally {
    button.disabled = false;
  }
}

/** Deletes `ep` after a typed confirmation; resolves true when it is gone. */
export async function deleteEndpoint(ep, button) {
  const ok = await confirmDialog({
    title: `Delete webhook #${ep.id}?`,
    message: `Deliveries to ${ep.url} stop for good and its pending deliveries are not sent. This cannot be undone.`,
    confirmLabel: 'Delete webhook',
    typed: 'DELETE',
    danger: true,
  });
  if (!ok) return false;
  button.disabled = true;
  try {
    await del(`/api/admin/webhooks/${ep.id}`);
    toast(`Webhook #${ep.id} deleted.`);
    return true;
  } catch (e) {
    toast(errorWords(e), 'error');
    return false;
  } finally {
    button.disabled = false;
  }
}

function errorWords(e) {
  if (e?.code === 'WEBHOOK_TARGET_REFUSED') {
    return `The server refused this URL: ${e.message}.`;
  }
  if (e?.code === 'WEBHOOK_NOT_FOUND') return 'This webhook no longer exists. Reload the page.';
  return errorText(e);
}

/** The text for a webhook error from the API (the target refusal explained). */
export { errorWords as webhookErrorText };

/** The one-time secret box of a new endpoint. */
export function createdSecret(ep, onDone) {
  return secretBox({
    title: `Signing secret of webhook #${ep.id}`,
    secret: ep.secret,
    lines: ['The receiver checks each delivery’s webhook-signature header with it (any Standard Webhooks library does).'],
    onDone,
  });
}

function createForm(onCreated) {
  const c = endpointControls();
  const status = statusBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create webhook');
  const form = h('form', { novalidate: true },
    h('div', { class: 'form-grid wide-first' }, c.fields),
    status,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!validate(form, status, c.checks())) return;
    submit.disabled = true;
    replace(status, notice('info', 'Creating…'));
    try {
      const created = await post('/api/admin/webhooks', c.values());
      replace(status);
      form.reset();
      const details = form.closest('details');
      if (details) details.open = false;
      onCreated(created);
    } catch (err) {
      replace(status, notice('error', errorWords(err)));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

export async function render(main) {
  main.classList.add('adm');
  const secretArea = h('div', {});
  const list = h('div', {});
  let pager;
  let open = false;

  const load = (cursor) => loadInto(list,
    () => get('/api/admin/webhooks', { limit: PAGE, cursor }),
    (page) => {
      open = page.items.length === 0 && !cursor;
      const rows = table([
        { label: 'Endpoint', render: (ep) => [h('a', { href: `#/webhooks/${ep.id}`, class: 'break' }, ep.url), h('small', { class: 'muted block' }, `#${ep.id}`)] },
        { label: 'Events', render: (ep) => codeList(ep.event_types, 'every event') },
        { label: 'Format', render: (ep) => ep.format },
        { label: 'State', render: (ep) => endpointState(ep) },
        { label: 'Created', render: (ep) => time(ep.created_at) },
        {
          label: 'Actions',
          render: (ep) => {
            const toggle = h('button', { type: 'button', 'aria-label': `${ep.enabled ? 'Disable' : 'Enable'} webhook #${ep.id}` }, ep.enabled ? 'Disable' : 'Enable');
            toggle.addEventListener('click', async () => { if (await toggleEndpoint(ep, toggle)) load(pager.cursor); });
            const remove = h('button', { type: 'button', class: 'danger', 'aria-label': `Delete webhook #${ep.id}` }, 'Delete');
            remove.addEventListener('click', async () => { if (await deleteEndpoint(ep, remove)) { pager.reset(); load(null); } });
            return h('div', { class: 'row-actions' },
              h('a', { href: `#/webhooks/${ep.id}`, 'aria-label': `Deliveries of webhook #${ep.id}` }, 'Deliveries'), toggle, remove);
          },
        },
      ], page.items, {
        caption: 'Endpoints by id',
        empty: 'No webhook endpoints yet. Create one above to have events POSTed to another system.',
      });
      pager.shown(page.next_cursor);
      return rows;
    });
  pager = cursorPager(load);

  const form = createForm((created) => {
    reveal(secretArea, createdSecret(created, () => list.querySelector('a')?.focus()));
    toast(`Webhook #${created.id} created.`);
    pager.reset();
    load(null);
  });
  replace(main,
    pageHead('Webhooks', { sub: 'Tessera POSTs events to these URLs, signed as the Standard Webhooks specification says. Failed deliveries are retried for about 32 hours.' }),
    secretArea,
    h('div', { id: 'new-webhook' }),
    list,
    pager.el);
  await load(null);
  replace(main.querySelector('#new-webhook'), disclosure('New webhook', { open }, form));
}

