// Licenses: find them (search and filters kept in the address, so reload and Back work),
// page through them, issue new ones, and act on many at once: select rows or take every
// license the filters match, preview the action (a dry run), confirm, run it.

import { get, post, can } from '../api.js';
import { h, replace, time, fmtNum, table, field, notice, errorText, toast, confirmDialog, busy, badge } from '../dom.js';
import { navigate } from '../app.js';
import {
  STATUSES, licenseLink, licenseHref, customerLink, validity, loadCatalog, selectOf, wholeNumber,
  dateToRfc3339, requestId,
} from './_shared_licenses.js';

const FILTERS = ['q', 'status', 'product', 'plan', 'customer', 'expires_before'];
const PAGE_SIZES = [25, 50, 100, 200];
const PREVIEW_SHOWN = 100;

/** The bulk actions the API offers: verb for the menu, past tense for results. */
const ACTIONS = {
  activate: { label: 'Activate (resume)', done: 'activated', destructive: false },
  suspend: { label: 'Suspend', done: 'suspended', destructive: true, warn: 'Their live sessions end at once.' },
  revoke: { label: 'Revoke', done: 'revoked', destructive: true, warn: 'Their live sessions end at once and clients are refused from now on.' },
  renew: { label: 'Renew', done: 'renewed', destructive: false },
  'hwid-reset': { label: 'Reset devices', done: 'had their devices reset', destructive: true, warn: 'Every device is deactivated and its sessions end.' },
  delete: { label: 'Delete', done: 'deleted', destructive: true, warn: 'This cannot be undone: live sessions end, devices go, held resources return to their pools.' },
};

/**
 * The rows the operator ticked, kept while the filters stay the same (so moving between
 * pages keeps the selection); other filters start a new selection.
 */
const selection = { filterKey: null, keys: new Set() };
/** The cursors of the pages passed with "Next page" under one set of filters. */
const trail = { key: null, cursors: [] };

function readFilters(query) {
  const f = {};
  for (const k of FILTERS) {
    const v = (query.get(k) || '').trim();
    if (v) f[k] = v;
  }
  return f;
}

function plural(n, one, many = `${one}s`) {
  return `${fmtNum(n)} ${n === 1 ? one : many}`;
}

/** The listing filter as the bulk API takes it (`expires_before` as an RFC 3339 time). */
function bulkFilter(filters) {
  const f = { ...filters };
  if (f.expires_before && /^\d{4}-\d{2}-\d{2}$/.test(f.expires_before)) f.expires_before = dateToRfc3339(f.expires_before);
  return f;
}

export async function render(main, params, query) {
  const filters = readFilters(query);
  const cursor = (query.get('cursor') || '').trim();
  const limitRaw = Number(query.get('limit'));
  const limit = PAGE_SIZES.includes(limitRaw) ? limitRaw : 50;
  const filterKey = JSON.stringify(filters);
  if (selection.filterKey !== filterKey) {
    selection.filterKey = filterKey;
    selection.keys.clear();
  }
  const hasFilter = Object.keys(filters).length > 0;
  const mayWrite = can('licenses:write');

  const catalog = await loadCatalog();

  // ---- filters ----
  const q = h('input', { type: 'search', name: 'q', value: filters.q || '', maxlength: 256, placeholder: 'Key, customer or note' });
  const status = selectOf(STATUSES.map((s) => [s, s[0].toUpperCase() + s.slice(1)]), filters.status, 'Any status', { name: 'status' });
  const product = catalog.products.length
    ? selectOf(catalog.products.map((p) => [p.id, p.name === p.id ? p.id : `${p.name} (${p.id})`]), filters.product, 'Any product', { name: 'product' })
    : h('input', { type: 'text', name: 'product', value: filters.product || '', maxlength: 256 });
  const plan = catalog.plans.length
    ? selectOf(catalog.plans, filters.plan, 'Any plan', { name: 'plan' })
    : h('input', { type: 'text', name: 'plan', value: filters.plan || '', maxlength: 256 });
  const customer = h('input', { type: 'text', name: 'customer', value: filters.customer || '', maxlength: 256, placeholder: 'Id or part of the name' });
  const expires = h('input', { type: 'date', name: 'expires_before', value: /^\d{4}-\d{2}-\d{2}$/.test(filters.expires_before || '') ? filters.expires_before : '' });
  const pageSize = selectOf(PAGE_SIZES.map((n) => [String(n), String(n)]), String(limit), null, { name: 'limit' });
  const filterStatus = h('div', { 'aria-live': 'polite' });
  const clear = h('button', { type: 'button', onclick: () => navigate('licenses') }, 'Clear filters');
  const filterForm = h('form', { class: 'toolbar lic-filters', role: 'search', 'aria-label': 'Find licenses' },
    field('Search', q),
    field('Status', status),
    field('Product', product),
    field('Plan', plan),
    field('Customer', customer),
    field('Expires before', expires),
    field('Rows per page', pageSize),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Apply filters'), hasFilter ? clear : null));
  filterForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const next = {
      q: q.value.trim(), status: status.value, product: product.value.trim(), plan: plan.value.trim(),
      customer: customer.value.trim(), expires_before: expires.value,
      limit: pageSize.value === '50' ? '' : pageSize.value,
    };
    if (expires.value === '' && expires.validity && expires.validity.badInput) {
      replace(filterStatus, notice('error', 'Expires before: enter a whole date, or leave it empty.'));
      expires.focus();
      return;
    }
    navigate('licenses', next);
  });
  if (filters.expires_before && !expires.value) {
    replace(filterStatus, notice('info', `Expires before ${filters.expires_before}`));
  }

  // ---- new license ----
  const issueCard = mayWrite ? newLicenseForm(catalog, () => loadList()) : null;

  // ---- the list ----
  const listBox = h('div', { class: 'lic-list', 'aria-live': 'polite', 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading licenses…'));
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of licenses' });
  const bulk = mayWrite ? bulkPanel(filters, hasFilter, () => loadList()) : null;

  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Licenses')),
    filterForm,
    filterStatus,
    catalog.error ? notice('info', `Products and plans could not be read (${errorText(catalog.error)}); type them instead.`) : null,
    issueCard,
    bulk?.el,
    listBox,
    pager);

  const checks = new Map();
  let pageKeys = [];

  async function loadList() {
    listBox.setAttribute('aria-busy', 'true');
    let page;
    try {
      page = await get('/api/admin/licenses', { ...filters, cursor, limit });
    } catch (e) {
      listBox.setAttribute('aria-busy', 'false');
      replace(listBox, notice('error', `The licenses could not be listed: ${errorText(e)}`));
      replace(pager);
      return;
    }
    listBox.setAttribute('aria-busy', 'false');
    const rows = page.licenses || [];
    pageKeys = rows.map((r) => r.license_key);
    checks.clear();
    const columns = [];
    if (mayWrite) {
      columns.push({
        label: 'Select',
        class: 'lic-select',
        render: (r) => {
          const box = h('input', {
            type: 'checkbox',
            'aria-label': `Select ${r.license_key}`,
            checked: selection.keys.has(r.license_key),
            onchange: (e) => {
              if (e.target.checked) selection.keys.add(r.license_key);
              else selection.keys.delete(r.license_key);
              bulk?.selectionChanged();
              syncAll();
            },
          });
          checks.set(r.license_key, box);
          return box;
        },
      });
    }
    columns.push(
      { label: 'License', render: (r) => licenseLink(r.license_key) },
      { label: 'Status', render: (r) => badge(r.status) },
      { label: 'Customer', render: (r) => customerLink(r.customer_id, r.customer_name) },
      { label: 'Product', render: (r) => r.product },
      { label: 'Plan', render: (r) => r.plan },
      { label: 'Valid until', render: (r) => validity(r.valid_until) },
      { label: 'Activations', class: 'num', render: (r) => fmtNum(r.activations_used) },
      { label: 'Warnings', class: 'num', render: (r) => (r.warnings ? h('strong', {}, fmtNum(r.warnings)) : '0') },
      { label: 'Created', render: (r) => time(r.created_at) },
    );
    const empty = hasFilter
      ? 'No licenses match these filters.'
      : cursor ? 'No more licenses.' : (mayWrite ? 'No licenses yet. Issue one with “New license”.' : 'No licenses yet.');
    const selectAll = h('input', { type: 'checkbox', id: 'lic-select-page' });
    const syncAll = () => {
      const n = pageKeys.filter((k) => selection.keys.has(k)).length;
      selectAll.checked = n > 0 && n === pageKeys.length;
      selectAll.indeterminate = n > 0 && n < pageKeys.length;
    };
    selectAll.addEventListener('change', () => {
      for (const k of pageKeys) {
        if (selectAll.checked) selection.keys.add(k);
        else selection.keys.delete(k);
        const box = checks.get(k);
        if (box) box.checked = selectAll.checked;
      }
      bulk?.selectionChanged();
      syncAll();
    });
    const count = rows.length
      ? h('p', { class: 'muted' }, `${plural(rows.length, 'license')} on this page${cursor ? ' (not the first page)' : ''}, in key order.`)
      : null;
    const scanNote = page.next_cursor && rows.length < limit
      ? notice('info', `This page searched ${fmtNum(page.scanned)} licenses and stopped there; go to the next page to search on.`)
      : null;
    replace(listBox,
      h('div', { class: 'lic-listhead' },
        count,
        mayWrite && rows.length ? h('div', { class: 'lic-selectall' }, selectAll, h('label', { for: 'lic-select-page' }, 'Select all on this page')) : null),
      table(columns, rows, { empty, rowAttrs: (r) => ({ dataset: { key: r.license_key } }) }),
      scanNote);
    syncAll();

    const base = { ...filters, limit: limit === 50 ? '' : String(limit) };
    // Cursors only go forward: the pages passed on the way here (same filters) are
    // remembered so "Previous page" goes back one, as the browser's Back does.
    const filterKey = JSON.stringify(base);
    if (trail.key !== filterKey || !cursor) { trail.key = filterKey; trail.cursors = []; }
    const back = trail.cursors.length ? trail.cursors[trail.cursors.length - 1] : '';
    replace(pager,
      h('button', { type: 'button', disabled: !cursor, onclick: () => { trail.cursors = []; navigate('licenses', base); } }, 'First page'),
      h('button', {
        type: 'button',
        disabled: !cursor,
        onclick: () => { trail.cursors.pop(); navigate('licenses', back ? { ...base, cursor: back } : base); },
      }, 'Previous page'),
      h('button', {
        type: 'button',
        disabled: !page.next_cursor,
        onclick: () => { trail.cursors.push(cursor); navigate('licenses', { ...base, cursor: page.next_cursor }); },
      }, 'Next page'),
      h('span', { class: 'muted' }, page.next_cursor ? 'More licenses follow.' : rows.length ? 'End of the list.' : ''));
  }

  await loadList();
}

/** The “New license” form; `issued()` is called after licenses were issued. */
function newLicenseForm(catalog, issued) {
  const product = catalog.products.length
    ? selectOf(catalog.products.map((p) => [p.id, p.name === p.id ? p.id : `${p.name} (${p.id})`]), '', 'Default product')
    : h('input', { type: 'text', maxlength: 256 });
  const plan = catalog.plans.length ? selectOf(catalog.plans, '', 'Default plan') : h('input', { type: 'text', maxlength: 256 });
  const owner = h('input', { type: 'text', maxlength: 256, autocomplete: 'off' });
  const customerId = h('input', { type: 'text', inputmode: 'numeric', maxlength: 19, autocomplete: 'off' });
  const days = h('input', { type: 'text', inputmode: 'numeric', maxlength: 5, autocomplete: 'off' });
  const devices = h('input', { type: 'text', inputmode: 'numeric', maxlength: 7, autocomplete: 'off' });
  const activations = h('input', { type: 'text', inputmode: 'numeric', maxlength: 7, autocomplete: 'off' });
  const sessions = h('input', { type: 'text', inputmode: 'numeric', maxlength: 7, autocomplete: 'off' });
  const count = h('input', { type: 'text', inputmode: 'numeric', maxlength: 4, value: '1', autocomplete: 'off' });
  const result = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Issue license');
  count.addEventListener('input', () => {
    submit.textContent = count.value.trim() && count.value.trim() !== '1' ? 'Issue licenses' : 'Issue license';
  });
  const form = h('form', { class: 'lic-new', novalidate: true },
    h('div', { class: 'form-grid' },
      field('Product', product),
      field('Plan', plan, 'Limits and validity left blank come from the plan.'),
      field('Customer name', owner, 'Who the license is for.'),
      field('Customer id', customerId, 'Optional: a customer record; without a name the license takes the customer’s.'),
      field('Valid for (days)', days, 'Blank: the plan’s validity, or perpetual. 1 to 36,525.'),
      field('Devices at once', devices, 'max_devices'),
      field('Lifetime activations', activations, '0 = unlimited'),
      field('Sessions at once', sessions, 'max_sessions'),
      field('How many', count, '1 to 1,000 licenses alike.')),
    h('div', { class: 'actions' }, submit),
    result);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const checks = [
      ['customer_id', wholeNumber(customerId, 'Customer id', { min: 1, max: Number.MAX_SAFE_INTEGER }), customerId],
      ['days_valid', wholeNumber(days, 'Valid for (days)', { min: 1, max: 36525 }), days],
      ['max_devices', wholeNumber(devices, 'Devices at once'), devices],
      ['max_activations', wholeNumber(activations, 'Lifetime activations'), activations],
      ['max_sessions', wholeNumber(sessions, 'Sessions at once'), sessions],
      ['count', wholeNumber(count, 'How many', { min: 1, max: 1000 }), count],
    ];
    const body = {};
    for (const [name, r, input] of checks) {
      input.removeAttribute('aria-invalid');
      if (r.error) {
        input.setAttribute('aria-invalid', 'true');
        replace(result, notice('error', r.error));
        input.focus();
        return;
      }
      if (r.value !== null) body[name] = r.value;
    }
    if (product.value.trim()) body.product = product.value.trim();
    if (plan.value.trim()) body.plan = plan.value.trim();
    if (owner.value.trim()) body.owner = owner.value.trim();
    await busy(submit, async () => {
      const reply = await post('/api/admin/licenses', body);
      const issuedKeys = (reply.licenses || []).map((l) => l.license_key);
      const first = reply.licenses?.[0];
      const copy = h('button', {
        type: 'button',
        onclick: async () => {
          try {
            await navigator.clipboard.writeText(issuedKeys.join('\n'));
            toast(issuedKeys.length === 1 ? 'Key copied.' : 'Keys copied.');
          } catch {
            toast('The browser did not allow copying; select the key instead.', 'error');
          }
        },
      }, issuedKeys.length === 1 ? 'Copy key' : 'Copy keys');
      replace(result, h('div', { class: 'notice notice-ok', role: 'status' },
        issuedKeys.length === 1
          ? h('p', {}, 'Issued ', h('a', { href: licenseHref(first.license_key), class: 'mono' }, first.license_key),
            ` (${first.product}, plan ${first.plan}, `, first.valid_until ? h('span', {}, 'valid until ', time(first.valid_until)) : 'perpetual', ').')
          : h('div', {}, h('p', {}, `Issued ${plural(issuedKeys.length, 'license')}:`),
            h('ul', { class: 'key-list' }, issuedKeys.map((k) => h('li', {}, licenseLink(k))))),
        h('div', { class: 'actions' }, copy,
          issuedKeys.length === 1 ? h('a', { href: licenseHref(first.license_key) }, 'Open the license') : null)));
      toast(issuedKeys.length === 1 ? `License ${first.license_key} issued.` : `${issuedKeys.length} licenses issued.`);
      issued();
    }, result);
  });
  return h('details', { class: 'card lic-new-card' },
    h('summary', {}, h('strong', {}, 'New license')),
    form);
}

/**
 * The bulk panel: which licenses (the selected ones, or all matching the filters), the
 * action, a preview (dry run) and, after it, Apply with the confirmation it needs.
 */
function bulkPanel(filters, hasFilter, changed) {
  const name = 'bulk-target';
  const useSelected = h('input', { type: 'radio', name, id: 'bulk-selected', value: 'selected', checked: true });
  const useFilter = h('input', { type: 'radio', name, id: 'bulk-filter', value: 'filter', disabled: !hasFilter });
  const selectedLabel = h('label', { for: 'bulk-selected' });
  const clearSel = h('button', { type: 'button', class: 'link' }, 'Clear selection');
  const actions = Object.entries(ACTIONS)
    .filter(([a]) => a !== 'delete' || can('licenses:delete'))
    .map(([a, d]) => [a, d.label]);
  const action = selectOf(actions, '', 'Choose an action', { id: 'bulk-action' });
  const days = h('input', { type: 'text', inputmode: 'numeric', maxlength: 5, value: '30', autocomplete: 'off' });
  const daysField = field('Days to add', days, '1 to 36,525, past the later of today and the current end.');
  const preview = h('button', { type: 'button' }, 'Preview');
  const apply = h('button', { type: 'button', class: 'primary', disabled: true }, 'Apply');
  const out = h('div', { class: 'bulk-out', 'aria-live': 'polite' });
  let previewed = null; // {action, target, body, outcome}

  const target = () => (useFilter.checked ? 'filter' : 'selected');
  const refreshLabels = () => {
    const n = selection.keys.size;
    selectedLabel.textContent = n ? `The ${plural(n, 'selected license')}` : 'Selected licenses (none yet: tick rows below)';
    clearSel.hidden = n === 0;
  };
  const invalidate = () => {
    previewed = null;
    apply.disabled = true;
    apply.className = 'primary';
    replace(out);
  };
  const showDays = () => { daysField.hidden = action.value !== 'renew'; };

  const request = () => {
    const a = action.value;
    if (!a) return { error: 'Bulk action: choose what to do first.', focus: action };
    const body = { action: a };
    if (a === 'renew') {
      const d = wholeNumber(days, 'Days to add', { min: 1, max: 36525, optional: false });
      if (d.error) return { error: d.error, focus: days };
      body.days = d.value;
    }
    if (target() === 'filter') {
      if (!hasFilter) return { error: 'Set at least one filter first: an empty filter would take every license.', focus: null };
      body.filter = bulkFilter(filters);
    } else {
      if (selection.keys.size === 0) return { error: 'Select licenses in the list first, or choose “every license matching the filters”.', focus: null };
      body.keys = [...selection.keys];
    }
    return { body };
  };

  preview.addEventListener('click', () => busy(preview, async () => {
    const r = request();
    if (r.error) {
      replace(out, notice('error', r.error));
      r.focus?.focus();
      return;
    }
    const outcome = await post('/api/admin/licenses/bulk', { ...r.body, dry_run: true });
    const a = ACTIONS[r.body.action];
    previewed = { body: r.body, outcome };
    if (outcome.matched === 0) {
      replace(out, notice('info', 'No license matches: there is nothing to do.'));
      apply.disabled = true;
      return;
    }
    const keys = outcome.keys || [];
    const shown = keys.slice(0, PREVIEW_SHOWN);
    const more = outcome.matched - shown.length;
    replace(out,
      h('div', { class: 'notice notice-info', role: 'status', 'data-testid': 'bulk-preview' },
        h('p', {}, h('strong', {}, `${plural(outcome.matched, 'license')} would be ${a.done}`),
          r.body.action === 'renew' ? ` by ${plural(r.body.days, 'day')}` : '', '.', a.warn ? ` ${a.warn}` : ''),
        h('ul', { class: 'key-list' }, shown.map((k) => h('li', {}, licenseLink(k)))),
        more > 0 ? h('p', { class: 'muted' }, `…and ${plural(more, 'more license')}.`) : null,
        h('p', { class: 'muted' }, 'Nothing has changed yet. Check the list, then press Apply.')));
    apply.disabled = false;
    apply.className = a.destructive ? 'danger' : 'primary';
    apply.focus();
  }, out));

  apply.addEventListener('click', async () => {
    if (!previewed) return;
    const { body, outcome } = previewed;
    const a = ACTIONS[body.action];
    const n = outcome.matched;
    // What was previewed is what changes: the listed keys when the preview named them all.
    const exact = (outcome.keys || []).length === n;
    const run = { ...body, dry_run: false, request_id: requestId() };
    if (exact && body.filter) {
      delete run.filter;
      run.keys = outcome.keys;
    }
    if (body.action === 'delete') run.confirm = n;
    const what = `${a.label} ${plural(n, 'license')}`;
    const ok = await confirmDialog({
      title: `${what}?`,
      message: `${plural(n, 'license')} will be ${a.done}${body.action === 'renew' ? ` by ${plural(body.days, 'day')}` : ''}.${a.warn ? ` ${a.warn}` : ''}`,
      confirmLabel: a.label,
      typed: a.destructive ? String(n) : null,
      danger: a.destructive,
    });
    if (!ok) return;
    await busy(apply, async () => {
      let result;
      try {
        result = await post('/api/admin/licenses/bulk', run);
      } catch (e) {
        if (e.code === 'CONFIRMATION_REQUIRED') {
          invalidate();
          replace(out, notice('error', 'The number of matching licenses changed since the preview. Press Preview again.'));
          return;
        }
        throw e;
      }
      const failed = result.failed || [];
      const words = `${plural(result.changed, 'license')} ${a.done}` +
        (failed.length ? `, ${plural(failed.length, 'failure')}` : '') +
        (result.ended_sessions ? `; ${plural(result.ended_sessions, 'live session')} ended` : '') + '.' +
        (result.replayed ? ' (This is the answer of the same request run before; nothing ran twice.)' : '');
      previewed = null;
      apply.disabled = true;
      apply.className = 'primary';
      replace(out,
        notice(failed.length ? 'error' : 'ok', words),
        failed.length ? h('p', { class: 'muted' }, 'Licenses the action failed on:') : null,
        failed.length ? table([
          { label: 'License', render: (f) => licenseLink(f.license_key) },
          { label: 'Code', render: (f) => h('code', {}, f.code) },
          { label: 'Why', render: (f) => f.error },
        ], failed) : null);
      toast(words, failed.length ? 'error' : 'ok');
      if (body.action === 'delete') selection.keys.clear();
      refreshLabels();
      changed();
    }, out);
    // busy() gives the button back; it only works again after a new preview.
    apply.disabled = !previewed;
  });

  for (const el of [useSelected, useFilter, action]) el.addEventListener('change', () => { invalidate(); showDays(); });
  days.addEventListener('input', invalidate);
  clearSel.addEventListener('click', () => {
    selection.keys.clear();
    for (const box of document.querySelectorAll('.lic-list input[type=checkbox]')) {
      box.checked = false;
      box.indeterminate = false;
    }
    refreshLabels();
    invalidate();
  });
  refreshLabels();
  showDays();

  const el = h('section', { class: 'card bulk', 'aria-labelledby': 'bulk-h' },
    h('h2', { id: 'bulk-h' }, 'Bulk actions'),
    h('div', { class: 'toolbar' },
      h('fieldset', { class: 'bulk-target' },
        h('legend', {}, 'Licenses'),
        h('div', { class: 'radio' }, useSelected, selectedLabel, ' ', clearSel),
        h('div', { class: 'radio' }, useFilter, h('label', { for: 'bulk-filter' }, 'Every license matching the filters'),
          hasFilter ? null : h('span', { class: 'hint' }, ' (set a filter first)'))),
      field('Bulk action', action),
      daysField,
      h('div', { class: 'actions' }, preview, apply)),
    out);

  return {
    el,
    selectionChanged() {
      refreshLabels();
      if (target() === 'selected') invalidate();
    },
  };
}
