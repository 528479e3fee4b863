// One webhook endpoint (`#/webhooks/ID`): its settings (edit, enable or disable, delete),
// a secret rotation whose new secret is shown once, and the delivery log, newest first,
// with a redelivery per delivery.

import { get, post, patch } from '../api.js';
import { h, replace, notice, errorText, time, fmtTime, table, toast, confirmDialog, badge, fmtNum, field } from '../dom.js';
import { navigate } from '../app.js';
import {
  pageHead, section, disclosure, statusBox, validate, cursorPager, codeList, dash, props, select,
  secretBox, reveal,
} from './_shared_admin.js';
import {
  endpointControls, endpointState, toggleEndpoint, deleteEndpoint, webhookErrorText,
} from './webhooks.js';

const PAGE = 25;

const OVERLAPS = [
  ['86400', '24 hours (default)'],
  ['3600', '1 hour'],
  ['604800', '7 days'],
  ['2592000', '30 days'],
  ['0', 'No overlap: the old secret stops at once'],
];

function detailsCard(ep) {
  return section('Endpoint', props([
    ['URL', h('span', { class: 'mono break' }, ep.url)],
    ['Events', codeList(ep.event_types, 'every event')],
    ['Format', ep.format],
    ['State', endpointState(ep)],
    ep.previous_secret_valid_until ? ['Previous secret signs until', time(ep.previous_secret_valid_until)] : null,
    ['Created', time(ep.created_at)],
    ['Last changed', time(ep.updated_at)],
  ]));
}

function editForm(ep, onSaved) {
  const c = endpointControls(ep);
  const status = statusBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Save changes');
  const form = h('form', { novalidate: true },
    h('div', { class: 'form-grid wide-first' }, c.fields),
    status,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!validate(form, status, c.checks())) return;
    const v = c.values();
    const body = {};
    if (v.url !== ep.url) body.url = v.url;
    if (JSON.stringify(v.event_types) !== JSON.stringify(ep.event_types)) body.event_types = v.event_types;
    if (v.format !== ep.format) body.format = v.format;
    if (Object.keys(body).length === 0) {
      replace(status, notice('info', 'Nothing was changed.'));
      return;
    }
    submit.disabled = true;
    replace(status, notice('info', 'Saving…'));
    try {
      const now = await patch(`/api/admin/webhooks/${ep.id}`, body);
      replace(status);
      toast(`Webhook #${ep.id} saved.`);
      onSaved(now);
    } catch (err) {
      replace(status, notice('error', webhookErrorText(err)));
    } finally {
      submit.disabled = false;
    }
  });
  return disclosure('Edit endpoint', {}, form);
}

function rotateForm(ep, secretArea, onRotated) {
  const overlap = select(OVERLAPS, '86400');
  const status = statusBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Rotate secret');
  const form = h('form', { novalidate: true },
    h('p', {}, 'A new signing secret replaces the current one. During the overlap every delivery carries both signatures, so the receiver keeps accepting them while you give it the new secret.'),
    h('div', { class: 'form-grid' }, field('Old secret keeps signing for', overlap)),
    status,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const secs = Number(overlap.value);
    const ok = await confirmDialog({
      title: `Rotate the secret of webhook #${ep.id}?`,
      message: secs > 0
        ? `The old secret keeps signing for ${overlap.selectedOptions[0].textContent.replace(' (default)', '')}; give the receiver the new one before then.`
        : 'The old secret stops signing at once: deliveries fail verification until the receiver has the new secret.',
      confirmLabel: 'Rotate secret',
      danger: secs === 0,
    });
    if (!ok) return;
    submit.disabled = true;
    replace(status, notice('info', 'Rotating…'));
    try {
      const r = await post(`/api/admin/webhooks/${ep.id}/rotate-secret`, { overlap_secs: secs });
      replace(status);
      reveal(secretArea, secretBox({
        title: `New signing secret of webhook #${ep.id}`,
        secret: r.secret,
        lines: [r.previous_valid_until
          ? `The old secret keeps signing until ${fmtTime(r.previous_valid_until)}: until then each delivery carries both signatures. Give the receiver the new secret before that.`
          : 'The old secret no longer signs: deliveries verify only with this one.'],
      }));
      toast('Secret rotated.');
      onRotated();
    } catch (err) {
      replace(status, notice('error', errorText(err)));
    } finally {
      submit.disabled = false;
    }
  });
  return disclosure('Rotate signing secret', {}, form);
}

function deliveryStatus(d) {
  return h('span', {}, badge(d.status),
    d.status === 'pending' && d.attempts > 0 ? h('small', { class: 'muted block' }, 'retrying') : null);
}

function responseCell(d) {
  if (d.last_status_code == null && d.last_latency_ms == null) return dash();
  return h('span', {},
    d.last_status_code != null ? h('span', { class: 'mono' }, String(d.last_status_code)) : dash('no answer'),
    d.last_latency_ms != null ? h('small', { class: 'muted block' }, `${fmtNum(d.last_latency_ms)} ms`) : null);
}

function deliveriesSection(ep) {
  const list = h('div', {});
  const status = statusBox();
  const refresh = h('button', { type: 'button' }, 'Refresh');
  let rows = [];
  let pager;
  let timer = null;

  const draw = () => {
    replace(list, table([
      {
        label: 'Event',
        render: (d) => [h('code', {}, d.event_type), h('small', { class: 'muted block mono' }, `delivery ${d.id} · ${d.webhook_id}`)],
      },
      { label: 'Status', render: deliveryStatus },
      { label: 'Attempts', class: 'num', render: (d) => fmtNum(d.attempts) },
      { label: 'Response', render: responseCell },
      { label: 'Last attempt', render: (d) => time(d.last_attempt_at) },
      { label: 'Next attempt', render: (d) => (d.next_attempt_at ? time(d.next_attempt_at) : dash()) },
      { label: 'Error', render: (d) => (d.last_error ? h('span', { class: 'break' }, d.last_error) : dash()) },
      { label: 'Created', render: (d) => time(d.created_at) },
      {
        label: 'Send again',
        render: (d) => {
          const b = h('button', {
            type: 'button',
            disabled: !ep.enabled,
            title: ep.enabled ? null : 'Enable the endpoint to redeliver',
            'aria-label': `Redeliver delivery ${d.id} (${d.event_type})`,
          }, 'Redeliver');
          b.addEventListener('click', () => redeliver(d, b));
          return b;
        },
      },
    ], rows, {
      caption: 'Deliveries, newest first',
      empty: 'No deliveries yet: one is made for each event this endpoint subscribes to.',
    }));
  };

  const load = async (cursor) => {
    refresh.disabled = true;
    replace(status, rows.length ? null : notice('info', 'Loading deliveries…'));
    try {
      const page = await get(`/api/admin/webhooks/${ep.id}/deliveries`, { limit: PAGE, cursor });
      rows = page.items || [];
      replace(status);
      draw();
      pager.shown(page.next_cursor);
    } catch (e) {
      if (e?.status !== 401) replace(status, notice('error', errorText(e)));
    } finally {
      refresh.disabled = false;
    }
  };
  pager = cursorPager(load, { older: 'Older deliveries', newer: 'Newer deliveries' });

  async function redeliver(d, button) {
    button.disabled = true;
    try {
      const now = await post(`/api/admin/webhooks/${ep.id}/deliveries/${d.id}/redeliver`);
      toast(`Delivery ${d.id} queued again (same webhook-id, a fresh retry schedule).`);
      rows = rows.map((r) => (r.id === now.id ? now : r));
      draw();
      // Its first attempt follows at once: show how it went in a moment.
      clearTimeout(timer);
      timer = setTimeout(() => load(pager.cursor), 3000);
    } catch (e) {
      button.disabled = false;
      toast(e?.code === 'CONFLICT'
        ? 'It cannot be sent again now: the endpoint is disabled or an attempt is running.'
        : errorText(e), 'error');
    }
  }

  refresh.addEventListener('click', () => load(pager.cursor));
  const el = section('Deliveries',
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted grow' }, 'A failed attempt is retried: by default after 5 s, 30 s, 2 min … up to 8 h, 12 attempts over about 32 hours.'),
      refresh),
    ep.enabled ? null : notice('info', 'This endpoint is disabled: enable it to send deliveries again.'),
    status, list, pager.el);
  return { el, load, stop: () => clearTimeout(timer) };
}

export async function render(main, params) {
  main.classList.add('adm');
  const id = params[0] || '';
  const back = { href: '#/webhooks', label: 'Webhooks' };
  if (!/^\d{1,19}$/.test(id)) {
    replace(main, pageHead('Webhook', { back }), notice('error', `“${id}” is not a webhook id: ids are numbers.`));
    return undefined;
  }
  const secretArea = h('div', {});
  let deliveries = null;

  const show = (ep) => {
    deliveries?.stop();
    deliveries = deliveriesSection(ep);
    const toggle = h('button', { type: 'button' }, ep.enabled ? 'Disable' : 'Enable');
    toggle.addEventListener('click', async () => {
      const now = await toggleEndpoint(ep, toggle);
      if (now) show(now);
    });
    const remove = h('button', { type: 'button', class: 'danger' }, 'Delete');
    remove.addEventListener('click', async () => {
      if (await deleteEndpoint(ep, remove)) navigate('webhooks');
    });
    replace(main,
      pageHead(`Webhook #${ep.id}`, { back, actions: [toggle, remove], sub: ep.url }),
      secretArea,
      detailsCard(ep),
      editForm(ep, show),
      rotateForm(ep, secretArea, async () => {
        try {
          show(await get(`/api/admin/webhooks/${ep.id}`));
          secretArea.firstElementChild?.focus({ preventScroll: true });
        } catch {
          // The secret is shown; the details refresh on the next visit.
        }
      }),
      deliveries.el);
    deliveries.load(null);
  };

  replace(main, pageHead('Webhook', { back }), h('p', { class: 'loading' }, 'Loading the webhook…'));
  try {
    show(await get(`/api/admin/webhooks/${id}`));
  } catch (e) {
    if (e?.status === 401) return undefined;
    replace(main, pageHead('Webhook', { back }), notice('error', e?.code === 'WEBHOOK_NOT_FOUND'
      ? `There is no webhook #${id}. It may have been deleted.`
      : errorText(e)));
    return undefined;
  }
  return () => deliveries?.stop();
}
