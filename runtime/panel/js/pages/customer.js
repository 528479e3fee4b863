// One customer (`#/customers/ID`): its record, an edit form and delete for roles that may
// write, and its licenses (in id order, 50 at a time) leading to each license's page.
// Also exports the customer form's fields and checks, which the customers page reuses.

import { get, patch, del, can } from '../api.js';
import { h, replace, field, notice, errorText, time, table, toast, confirmDialog, badge, fmtNum } from '../dom.js';
import { navigate } from '../app.js';
import {
  pageHead, section, disclosure, statusBox, validate, checkText, submitting, dash, props, chars,
} from './_shared_admin.js';

const MAX_FIELD = 200;
const MAX_NOTE = 2000;
const MAX_METADATA = 32;
const MAX_META_VALUE = 256;
const META_KEY = /^[A-Za-z0-9_.:-]{1,64}$/;
const EMAIL = /^[^@\s]+@[^@\s]+$/;
const LICENSES_PAGE = 50;

/** The metadata map as editable text: one `key=value` a line. */
function metadataText(m) {
  return Object.entries(m || {}).map(([k, v]) => `${k}=${v}`).join('\n');
}

/** Parses the metadata text: `{map}` or `{error}` in words. */
function parseMetadata(text) {
  const map = {};
  const lines = String(text || '').split('\n').map((l) => l.trim()).filter(Boolean);
  for (const [i, line] of lines.entries()) {
    const at = line.indexOf('=');
    if (at < 0) return { error: `Line ${i + 1} has no “=”: write key=value.` };
    const k = line.slice(0, at).trim();
    const v = line.slice(at + 1).trim();
    if (!META_KEY.test(k)) return { error: `Line ${i + 1}: the key “${k}” must be 1 to 64 letters, digits or _ . : -` };
    if (k in map) return { error: `The key “${k}” appears twice.` };
    if (chars(v) > MAX_META_VALUE) return { error: `Line ${i + 1}: the value is longer than ${MAX_META_VALUE} characters.` };
    map[k] = v;
  }
  if (Object.keys(map).length > MAX_METADATA) return { error: `At most ${MAX_METADATA} entries (now ${Object.keys(map).length}).` };
  return { map };
}

/** The customer form's controls and their labelled fields, filled from `c`. */
export function customerFields(c, { withMetadata = false } = {}) {
  const name = h('input', { type: 'text', name: 'name', value: c.name || '', maxlength: MAX_FIELD, required: true, autocomplete: 'off' });
  const email = h('input', { type: 'email', name: 'email', value: c.email || '', maxlength: MAX_FIELD, autocomplete: 'off' });
  const company = h('input', { type: 'text', name: 'company', value: c.company || '', maxlength: MAX_FIELD, autocomplete: 'off' });
  const note = h('textarea', { name: 'note', maxlength: MAX_NOTE, rows: 3, value: c.note || '' });
  const metadata = withMetadata
    ? h('textarea', { name: 'metadata', rows: 4, class: 'mono', spellcheck: 'false', value: metadataText(c.metadata) })
    : null;
  return {
    name, email, company, note, metadata,
    nameField: field('Name', name, 'A person or an organization; required.'),
    emailField: field('Email', email, 'Optional contact address.'),
    companyField: field('Company', company, 'Optional.'),
    noteField: field('Note', note, `Only operators see it; at most ${MAX_NOTE} characters.`),
    metadataField: metadata
      ? field('Metadata', metadata, `One key=value a line (keys: letters, digits, _ . : -), at most ${MAX_METADATA}. Saving replaces them all.`)
      : null,
  };
}

/** The checks of the customer form, as `validate` takes them. */
export function customerChecks(f) {
  const email = f.email.value.trim();
  const checks = [
    [f.name, checkText(f.name.value, { name: 'Name', max: MAX_FIELD, required: true })],
    [f.email, checkText(email, { name: 'Email', max: MAX_FIELD })
      || (email && !EMAIL.test(email) ? 'Email must be an address like name@example.com.' : null)],
    [f.company, checkText(f.company.value, { name: 'Company', max: MAX_FIELD })],
    [f.note, checkText(f.note.value, { name: 'Note', max: MAX_NOTE, newline: true })],
  ];
  if (f.metadata) checks.push([f.metadata, parseMetadata(f.metadata.value).error || null]);
  return checks;
}

/**
 * The request body: for a new customer (`before` null) the fields given; for an edit only
 * what changed, a cleared field as null. Empty object: nothing changed.
 */
export function customerBody(f, before) {
  const out = {};
  const text = (k, el) => {
    const v = el.value.trim();
    if (!before) {
      if (v) out[k] = v;
    } else if (v !== (before[k] || '')) {
      out[k] = k === 'name' ? v : (v || null);
    }
  };
  text('name', f.name);
  text('email', f.email);
  text('company', f.company);
  text('note', f.note);
  if (f.metadata && before) {
    const { map } = parseMetadata(f.metadata.value);
    const same = JSON.stringify(Object.entries(map).sort()) === JSON.stringify(Object.entries(before.metadata || {}).sort());
    if (!same) out.metadata = map;
  }
  return out;
}

function details(c) {
  const meta = Object.entries(c.metadata || {});
  return section('Details', props([
    ['ID', h('span', { class: 'mono' }, String(c.id))],
    ['Email', c.email || dash()],
    ['Company', c.company || dash()],
    ['Note', c.note ? h('span', { class: 'pre-line' }, c.note) : dash()],
    ['Metadata', meta.length
      ? h('ul', { class: 'plain' }, meta.map(([k, v]) => h('li', {}, h('code', {}, k), ' = ', v)))
      : dash('none')],
    ['Created', time(c.created_at)],
    ['Last changed', time(c.updated_at)],
  ]));
}

function editForm(c, onSaved) {
  const f = customerFields(c, { withMetadata: true });
  const status = statusBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Save changes');
  const form = h('form', { novalidate: true },
    h('div', { class: 'form-grid' }, f.nameField, f.emailField, f.companyField),
    f.noteField,
    f.metadataField,
    status,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!validate(form, status, customerChecks(f))) return;
    const body = customerBody(f, c);
    if (Object.keys(body).length === 0) {
      replace(status, notice('info', 'Nothing was changed.'));
      return;
    }
    const res = await submitting(submit, status, () => patch(`/api/admin/customers/${c.id}`, body));
    if (!res) return;
    toast('Customer saved.' + (body.name ? ' Its licenses carry the new name.' : ''));
    onSaved();
  });
  return disclosure('Edit customer', {}, form);
}

function licenseRows(rows) {
  return table([
    { label: 'License', render: (l) => h('a', { class: 'mono', href: `#/licenses/${encodeURIComponent(l.license_key)}` }, l.license_key) },
    { label: 'Status', render: (l) => badge(l.status) },
    { label: 'Plan', render: (l) => l.plan },
    { label: 'Product', render: (l) => l.product },
    { label: 'Valid until', render: (l) => (l.valid_until ? time(l.valid_until) : dash('perpetual')) },
    { label: 'Activations', class: 'num', render: (l) => fmtNum(l.activations_used) },
    { label: 'Created', render: (l) => time(l.created_at) },
  ], rows, {
    caption: 'Licenses in the order they were issued',
    empty: 'No license belongs to this customer. A license is given to it when it is issued or edited with this customer’s id.',
  });
}

function licensesSection(id, first) {
  const rows = [...first.licenses];
  let cursor = first.next_cursor;
  const list = h('div', {});
  const status = statusBox();
  const more = h('button', { type: 'button' }, 'Show more licenses');
  const draw = () => {
    replace(list, licenseRows(rows));
    more.hidden = !cursor;
  };
  more.addEventListener('click', async () => {
    const res = await submitting(more, status,
      () => get(`/api/admin/customers/${id}/licenses`, { cursor, limit: LICENSES_PAGE }), 'Loading…');
    if (!res) return;
    rows.push(...res.value.licenses);
    cursor = res.value.next_cursor;
    draw();
  });
  draw();
  return section('Licenses', list, status, h('div', { class: 'actions' }, more));
}

function deleteSection(c, hasLicenses) {
  const status = statusBox();
  const button = h('button', { type: 'button', class: 'danger', disabled: hasLicenses }, 'Delete customer');
  button.addEventListener('click', async () => {
    const ok = await confirmDialog({
      title: `Delete ${c.name}?`,
      message: 'The customer record goes for good. This cannot be undone.',
      confirmLabel: 'Delete customer',
      typed: 'DELETE',
      danger: true,
    });
    if (!ok) return;
    const res = await submitting(button, status, () => del(`/api/admin/customers/${c.id}`), 'Deleting…');
    if (!res) return;
    toast(`Customer “${c.name}” deleted.`);
    navigate('customers');
  });
  return h('section', { class: 'card danger-zone' },
    h('h2', {}, 'Delete'),
    h('p', {}, hasLicenses
      ? 'A customer with licenses cannot be deleted: give its licenses to another customer (or delete them) first.'
      : 'Deleting removes the customer record. No license belongs to it.'),
    status,
    h('div', { class: 'actions' }, button));
}

export async function render(main, params) {
  main.classList.add('adm');
  const id = params[0] || '';
  const back = { href: '#/customers', label: 'Customers' };
  if (!/^\d{1,19}$/.test(id)) {
    replace(main, pageHead('Customer', { back }), notice('error', `“${id}” is not a customer id: ids are numbers.`));
    return;
  }
  const load = async () => {
    replace(main, pageHead('Customer', { back }), h('p', { class: 'loading' }, 'Loading the customer…'));
    let data;
    try {
      data = await get(`/api/admin/customers/${id}/licenses`, { limit: LICENSES_PAGE });
    } catch (e) {
      if (e?.status === 401) return;
      replace(main, pageHead('Customer', { back }), notice('error', e?.code === 'CUSTOMER_NOT_FOUND'
        ? `There is no customer #${id}. It may have been deleted.`
        : errorText(e)));
      return;
    }
    const c = data.customer;
    const writable = can('licenses:write');
    replace(main,
      pageHead(c.name, { back, sub: `Customer #${c.id}` }),
      details(c),
      writable ? editForm(c, load) : null,
      licensesSection(c.id, data),
      writable ? deleteSection(c, data.licenses.length > 0) : null);
    document.title = `${c.name} · Tessera`;
  };
  await load();
}
