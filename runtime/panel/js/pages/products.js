// Products, their releases and the plans: what `version/check` and session start report
// and the limits licenses follow. Roles with `products:write` publish releases, create and
// change products and plans; changes reach every server within a second.

import { get, post, patch, can } from '../api.js';
import { h, replace, field, notice, errorText, time, table, toast, badge, fmtNum } from '../dom.js';
import {
  pageHead, section, disclosure, statusBox, validate, readInt, checkText, submitting, dash, props,
  chars, select, SESSION_LIMIT, sessionLimitText,
} from './_shared_admin.js';

const ID = /^[A-Za-z0-9_.:-]{1,64}$/;
const VERSION = /^[0-9]+(\.[0-9]+){0,3}(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;
const URL_RE = /^https?:\/\/[^\s\u0000-\u001f\u007f-\u009f]+$/;
const MAX_NOTES = 10000;
const MAX_SECS = 86400;
const MAX_LIMIT = 1000000;
const MAX_DAYS = 36525;
const RELEASES_SHOWN = 10;

const STRATEGY_OPTIONS = [['', 'Server default'], ...SESSION_LIMIT];

function secs(v) {
  return v == null ? dash('server default') : `${fmtNum(v)} s`;
}

function limit(v) {
  return v == null ? dash('server default') : fmtNum(v);
}

/** Release notes: short ones as they are, long ones folded. */
function notesCell(text) {
  if (!text) return dash();
  const firstLine = text.split('\n')[0];
  if (text.length <= 120 && !text.includes('\n')) return h('span', { class: 'pre-line' }, text);
  return h('details', { class: 'notes' },
    h('summary', {}, firstLine.length > 80 ? `${firstLine.slice(0, 80)}…` : firstLine),
    h('div', { class: 'pre-line' }, text));
}

function releasesTable(p) {
  const all = [...(p.releases || [])].reverse(); // newest published first
  const wrap = h('div', {});
  let showAll = false;
  const draw = () => {
    const rows = showAll ? all : all.slice(0, RELEASES_SHOWN);
    replace(wrap,
      table([
        { label: 'Version', render: (r) => [h('code', {}, r.version), r.version === p.latest_version ? [' ', badge('latest')] : null] },
        { label: 'Release date', render: (r) => r.release_date || dash() },
        { label: 'Download', render: (r) => (r.download_url ? h('span', { class: 'mono break' }, r.download_url) : dash()) },
        { label: 'Notes', render: (r) => notesCell(r.release_notes) },
        { label: 'Published', render: (r) => (r.published_at ? time(r.published_at) : dash('from the config')) },
      ], rows, {
        caption: `Releases of ${p.name}, newest published first`,
        empty: 'No release yet: clients are told 0.0.0 until the first one is published.',
      }),
      all.length > RELEASES_SHOWN
        ? h('button', { type: 'button', class: 'link', onclick: () => { showAll = !showAll; draw(); } },
          showAll ? `Show the newest ${RELEASES_SHOWN}` : `Show all ${all.length} releases`)
        : null);
  };
  draw();
  return wrap;
}

/** Timing and strategy controls shared by the new-product and edit-product forms. */
function productControls(p = {}) {
  const c = {
    name: h('input', { type: 'text', maxlength: 100, value: p.name || '', autocomplete: 'off' }),
    interval: h('input', { type: 'number', min: 1, max: MAX_SECS, step: 1, inputmode: 'numeric', value: p.heartbeat_interval_secs ?? '' }),
    timeout: h('input', { type: 'number', min: 1, max: MAX_SECS, step: 1, inputmode: 'numeric', value: p.heartbeat_timeout_secs ?? '' }),
    grace: h('input', { type: 'number', min: 0, max: MAX_SECS, step: 1, inputmode: 'numeric', value: p.grace_secs ?? '' }),
    strategy: select(STRATEGY_OPTIONS, p.on_session_limit || ''),
  };
  c.fields = [
    field('Heartbeat interval (s)', c.interval, 'Blank: the server default.'),
    field('Heartbeat timeout (s)', c.timeout, 'At least the interval; blank: default.'),
    field('Grace (s)', c.grace, 'Blank: the server default.'),
    field('At the session limit', c.strategy),
  ];
  return c;
}

function productChecks(c, { nameRequired }) {
  const interval = readInt(c.interval, { name: 'The interval', min: 1, max: MAX_SECS });
  const timeout = readInt(c.timeout, { name: 'The timeout', min: 1, max: MAX_SECS });
  const grace = readInt(c.grace, { name: 'Grace', min: 0, max: MAX_SECS });
  let timeoutErr = timeout.error || null;
  if (!timeoutErr && interval.value != null && timeout.value != null && timeout.value < interval.value) {
    timeoutErr = 'The timeout must be at least the interval.';
  }
  return {
    checks: [
      [c.name, checkText(c.name.value, { name: 'The name', max: 100, required: nameRequired })],
      [c.interval, interval.error || null],
      [c.timeout, timeoutErr],
      [c.grace, grace.error || null],
    ],
    values: { interval: interval.value, timeout: timeout.value, grace: grace.value },
  };
}

function newProductForm(onCreated) {
  const id = h('input', { type: 'text', maxlength: 64, required: true, autocomplete: 'off', spellcheck: 'false', class: 'mono' });
  const c = productControls();
  const status = statusBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create product');
  const form = h('form', { novalidate: true },
    h('div', { class: 'form-grid' },
      field('Product id', id, 'What licenses and clients name: letters, digits, _ . : - (up to 64).'),
      field('Name', c.name, 'Shown to operators; default: the id.'),
      c.fields),
    status,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const idv = id.value.trim();
    const { checks, values } = productChecks(c, { nameRequired: false });
    const ok = validate(form, status, [
      [id, !idv ? 'The product id is required.' : (!ID.test(idv) ? 'The id must be 1 to 64 letters, digits or _ . : -' : null)],
      ...checks,
    ]);
    if (!ok) return;
    const body = { id: idv };
    if (c.name.value.trim()) body.name = c.name.value.trim();
    if (values.interval != null) body.heartbeat_interval_secs = values.interval;
    if (values.timeout != null) body.heartbeat_timeout_secs = values.timeout;
    if (values.grace != null) body.grace_secs = values.grace;
    if (c.strategy.value) body.on_session_limit = c.strategy.value;
    const res = await submitting(submit, status, () => post('/api/admin/products', body));
    if (!res) return;
    toast(`Product “${res.value.name}” created. Publish its first release.`);
    form.reset();
    form.closest('details').open = false;
    onCreated(res.value);
  });
  return disclosure('New product', {}, form);
}

function editProductForm(p, onSaved) {
  const c = productControls(p);
  const status = statusBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Save settings');
  const form = h('form', { novalidate: true },
    h('div', { class: 'form-grid' }, field('Name', c.name), c.fields),
    h('p', { class: 'hint' }, 'Clearing a number returns it to the server default.'),
    status,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const { checks, values } = productChecks(c, { nameRequired: true });
    if (!validate(form, status, checks)) return;
    const body = {};
    if (c.name.value.trim() !== p.name) body.name = c.name.value.trim();
    if (values.interval !== (p.heartbeat_interval_secs ?? null)) body.heartbeat_interval_secs = values.interval;
    if (values.timeout !== (p.heartbeat_timeout_secs ?? null)) body.heartbeat_timeout_secs = values.timeout;
    if (values.grace !== (p.grace_secs ?? null)) body.grace_secs = values.grace;
    if ((c.strategy.value || null) !== (p.on_session_limit ?? null)) body.on_session_limit = c.strategy.value || null;
    if (Object.keys(body).length === 0) {
      replace(status, notice('info', 'Nothing was changed.'));
      return;
    }
    const res = await submitting(submit, status, () => patch(`/api/admin/products/${encodeURIComponent(p.id)}`, body));
    if (!res) return;
    toast(`Settings of “${res.value.name}” saved.`);
    onSaved(res.value);
  });
  return h('details', { class: 'inline-details' }, h('summary', {}, 'Edit settings'), form);
}

function productCard(p, { writable, onChanged, onPublish }) {
  return h('section', { class: 'card product', id: `product-${p.id}` },
    h('div', { class: 'card-head' },
      h('h2', {}, p.name, p.name !== p.id ? [' ', h('code', { class: 'muted-code' }, p.id)] : null),
      p.releases?.length ? badge(`latest ${p.latest_version}`) : h('span', { class: 'muted' }, 'no release yet'),
      writable ? h('button', { type: 'button', class: 'card-head-action', onclick: () => onPublish(p.id) }, `Publish a release of ${p.name}`) : null),
    props([
      ['Heartbeat interval', secs(p.heartbeat_interval_secs)],
      ['Heartbeat timeout', secs(p.heartbeat_timeout_secs)],
      ['Grace', secs(p.grace_secs)],
      ['At the session limit', sessionLimitText(p.on_session_limit)],
    ]),
    writable ? editProductForm(p, onChanged) : null,
    h('h3', {}, 'Releases'),
    releasesTable(p));
}

function publishForm(state, onPublished) {
  const product = h('select', { required: true });
  const version = h('input', { type: 'text', maxlength: 64, required: true, autocomplete: 'off', spellcheck: 'false', class: 'mono', placeholder: '1.2.0' });
  const date = h('input', { type: 'date' });
  const url = h('input', { type: 'url', maxlength: 2048, autocomplete: 'off', placeholder: 'https://example.com/download/v1.2.0' });
  const notes = h('textarea', { rows: 3, maxlength: MAX_NOTES });
  const status = statusBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Publish release');
  const fillProducts = (selected = null) => {
    const before = product.value;
    replace(product, state.products.map((p) => h('option', { value: p.id }, p.name === p.id ? p.id : `${p.name} (${p.id})`)));
    if (selected || before) product.value = selected || before;
  };
  fillProducts();
  const form = h('form', { novalidate: true, id: 'publish-release' },
    h('div', { class: 'form-grid' },
      field('Product', product),
      field('Version', version, 'Like 1.2.0 or 1.3.0-rc.1. Clients are offered the highest stable version.'),
      field('Release date', date, 'Default: today (UTC).'),
      field('Download URL', url, 'Optional; http:// or https://.')),
    field('Release notes', notes, `Optional; at most ${MAX_NOTES} characters.`),
    status,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const p = state.products.find((x) => x.id === product.value);
    const v = version.value.trim();
    const u = url.value.trim();
    let versionErr = null;
    if (!v) versionErr = 'The version is required.';
    else if (chars(v) > 64 || !VERSION.test(v)) versionErr = `“${v}” is not a version like 1.2.0 or 1.3.0-rc.1.`;
    else if (p?.releases?.some((r) => r.version === v)) versionErr = `${v} is already published for ${p.name}.`;
    const ok = validate(form, status, [
      [product, p ? null : 'Choose a product.'],
      [version, versionErr],
      [date, date.validity?.badInput ? 'The date is not a valid date.' : null],
      [url, !u ? null : (chars(u) > 2048 ? 'The URL must be at most 2048 characters.' : (!URL_RE.test(u) ? 'The URL must start with http:// or https:// and have no spaces.' : null))],
      [notes, chars(notes.value) > MAX_NOTES ? `The notes must be at most ${MAX_NOTES} characters.` : null],
    ]);
    if (!ok) return;
    const body = { version: v };
    if (date.value) body.release_date = date.value;
    if (u) body.download_url = u;
    if (notes.value.trim()) body.release_notes = notes.value;
    const res = await submitting(submit, status,
      () => post(`/api/admin/products/${encodeURIComponent(p.id)}/releases`, body), 'Publishing…');
    if (!res) return;
    version.value = '';
    date.value = '';
    url.value = '';
    notes.value = '';
    replace(status, notice('ok', `Published ${v} of ${res.value.name}. Clients now get ${res.value.latest_version} as the latest version.`));
    onPublished(res.value);
  });
  const card = section('Publish a release', form);
  return {
    card,
    fillProducts,
    /** Chooses `id` in the form and puts the focus on the version. */
    choose(id) {
      product.value = id;
      card.scrollIntoView?.({ block: 'start' });
      version.focus({ preventScroll: true });
    },
  };
}

/** Plan form controls, filled from `p`. */
function planControls(p = {}) {
  const c = {
    devices: h('input', { type: 'number', min: 1, max: MAX_LIMIT, step: 1, inputmode: 'numeric', value: p.max_devices ?? '' }),
    activations: h('input', { type: 'number', min: 0, max: MAX_LIMIT, step: 1, inputmode: 'numeric', value: p.max_activations ?? '' }),
    sessions: h('input', { type: 'number', min: 1, max: MAX_LIMIT, step: 1, inputmode: 'numeric', value: p.max_sessions ?? '' }),
    days: h('input', { type: 'number', min: 1, max: MAX_DAYS, step: 1, inputmode: 'numeric', value: p.valid_days ?? '' }),
    strategy: select(STRATEGY_OPTIONS, p.on_session_limit || ''),
  };
  c.fields = [
    field('Devices per license', c.devices, 'Blank: the server default.'),
    field('Lifetime activations', c.activations, '0: unlimited; blank: the server default.'),
    field('Live sessions per license', c.sessions, 'Blank: the server default.'),
    field('At the session limit', c.strategy),
    field('Valid for (days)', c.days, 'For newly issued licenses; blank: perpetual.'),
  ];
  c.read = () => {
    const d = readInt(c.devices, { name: 'Devices', min: 1, max: MAX_LIMIT });
    const a = readInt(c.activations, { name: 'Activations', min: 0, max: MAX_LIMIT });
    const s = readInt(c.sessions, { name: 'Sessions', min: 1, max: MAX_LIMIT });
    const v = readInt(c.days, { name: 'Validity', min: 1, max: MAX_DAYS });
    return {
      checks: [[c.devices, d.error || null], [c.activations, a.error || null], [c.sessions, s.error || null], [c.days, v.error || null]],
      values: {
        max_devices: d.value, max_activations: a.value, max_sessions: s.value,
        valid_days: v.value, on_session_limit: c.strategy.value || null,
      },
    };
  };
  return c;
}

function newPlanForm(onCreated) {
  const name = h('input', { type: 'text', maxlength: 64, required: true, autocomplete: 'off', spellcheck: 'false', class: 'mono' });
  const c = planControls();
  const status = statusBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create plan');
  const form = h('form', { novalidate: true },
    h('div', { class: 'form-grid' },
      field('Plan name', name, 'What licenses name: letters, digits, _ . : - (not “default”).'), c.fields),
    status,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const n = name.value.trim();
    const { checks, values } = c.read();
    const nameErr = !n ? 'The plan name is required.'
      : !ID.test(n) ? 'The name must be 1 to 64 letters, digits or _ . : -'
        : n === 'default' ? '“default” always exists; edit it in the list instead.' : null;
    if (!validate(form, status, [[name, nameErr], ...checks])) return;
    const body = { name: n };
    for (const [k, v] of Object.entries(values)) if (v != null) body[k] = v;
    const res = await submitting(submit, status, () => post('/api/admin/plans', body));
    if (!res) return;
    toast(`Plan “${res.value.name}” created.`);
    onCreated();
  });
  return disclosure('New plan', {}, form);
}

function editPlanForm(p, { onSaved, onCancel }) {
  const c = planControls(p);
  const status = statusBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Save plan');
  const cancel = h('button', { type: 'button', onclick: onCancel }, 'Cancel');
  const form = h('form', { novalidate: true, class: 'card plan-editor', 'aria-label': `Edit plan ${p.name}` },
    h('h3', {}, 'Edit plan ', h('code', {}, p.name)),
    h('p', { class: 'hint' }, 'Licenses on this plan follow at once; a lowered session limit applies from the next session start. Clearing a number returns it to the server default.'),
    h('div', { class: 'form-grid' }, c.fields),
    status,
    h('div', { class: 'actions' }, submit, cancel));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const { checks, values } = c.read();
    if (!validate(form, status, checks)) return;
    const body = {};
    for (const [k, v] of Object.entries(values)) if (v !== (p[k] ?? null)) body[k] = v;
    if (Object.keys(body).length === 0) {
      replace(status, notice('info', 'Nothing was changed.'));
      return;
    }
    const res = await submitting(submit, status, () => patch(`/api/admin/plans/${encodeURIComponent(p.name)}`, body));
    if (!res) return;
    toast(`Plan “${p.name}” saved.`);
    onSaved();
  });
  form.addEventListener('keydown', (e) => { if (e.key === 'Escape') onCancel(); });
  return form;
}

function plansSection(plans, { writable, reload }) {
  const editor = h('div', {});
  const openEditor = (p) => {
    const form = editPlanForm(p, {
      onSaved: reload,
      onCancel: () => replace(editor),
    });
    replace(editor, form);
    form.scrollIntoView?.({ block: 'nearest' });
    form.querySelector('input')?.focus({ preventScroll: true });
  };
  const columns = [
    { label: 'Plan', render: (p) => h('code', {}, p.name) },
    { label: 'Devices', class: 'num', render: (p) => limit(p.max_devices) },
    { label: 'Activations', class: 'num', render: (p) => (p.max_activations === 0 ? 'unlimited' : limit(p.max_activations)) },
    { label: 'Sessions', class: 'num', render: (p) => limit(p.max_sessions) },
    { label: 'At the session limit', render: (p) => sessionLimitText(p.on_session_limit) },
    { label: 'Valid for', render: (p) => (p.valid_days == null ? dash('perpetual') : `${fmtNum(p.valid_days)} days`) },
  ];
  if (writable) {
    columns.push({
      label: 'Change',
      render: (p) => h('button', { type: 'button', onclick: () => openEditor(p), 'aria-label': `Edit plan ${p.name}` }, 'Edit'),
    });
  }
  return section('Plans',
    h('p', { class: 'muted' }, 'A plan overrides the server’s license limits for the licenses that name it.'),
    table(columns, plans, { caption: 'Plans by name', empty: 'No plans are defined: licenses follow the server defaults.' }),
    editor,
    writable ? newPlanForm(reload) : null);
}

export async function render(main, _params, query) {
  main.classList.add('adm');
  const writable = can('products:write');
  const body = h('div', {});
  replace(main,
    pageHead('Products', { sub: 'Releases are what clients are offered; plans set license limits. Changes reach every server within a second.' }),
    body);

  const state = { products: [], plans: [] };
  const productsBox = h('div', { class: 'products' });
  const plansBox = h('div', {});
  let publish = null;

  const drawProducts = () => {
    if (state.products.length === 0) {
      replace(productsBox, h('p', { class: 'empty' },
        'There are no products.' + (writable ? ' Create one with “New product” above.' : '')));
      return;
    }
    replace(productsBox, state.products.map((p) => productCard(p, {
      writable,
      onChanged: (np) => { upsert(np); drawProducts(); },
      onPublish: (id) => publish?.choose(id),
    })));
  };
  const upsert = (p, choose = false) => {
    const i = state.products.findIndex((x) => x.id === p.id);
    if (i >= 0) state.products[i] = p;
    else state.products.push(p);
    state.products.sort((a, b) => a.id.localeCompare(b.id));
    publish?.fillProducts(choose ? p.id : null);
  };
  const loadPlans = async () => {
    try {
      state.plans = (await get('/api/admin/plans')).plans || [];
      replace(plansBox, plansSection(state.plans, { writable, reload: loadPlans }));
    } catch (e) {
      if (e?.status !== 401) replace(plansBox, section('Plans', notice('error', errorText(e))));
    }
  };

  replace(body, h('p', { class: 'loading' }, 'Loading products and plans…'));
  let products;
  try {
    [products] = await Promise.all([get('/api/admin/products'), loadPlans()]);
  } catch (e) {
    if (e?.status !== 401) replace(body, notice('error', errorText(e)));
    return;
  }
  state.products = products.products || [];
  if (writable) {
    publish = publishForm(state, (p) => { upsert(p, true); drawProducts(); });
  }
  replace(body,
    writable && state.products.length ? publish.card : null,
    writable ? newProductForm((p) => {
      upsert(p, true);
      if (!publish.card.isConnected) body.prepend(publish.card);
      drawProducts();
      publish.choose(p.id);
    }) : null,
    h('h2', { class: 'section-title' }, 'Products'),
    productsBox,
    plansBox);
  drawProducts();
  const wanted = query.get('product');
  if (wanted && publish && state.products.some((p) => p.id === wanted)) publish.choose(wanted);
}
