// Customers: search by name, email or company (20 a page), and a new customer for roles
// that may write. Each row leads to the customer's page (`#/customers/ID`).

import { get, post, can } from '../api.js';
import { h, replace, field, time, table, toast } from '../dom.js';
import { navigate } from '../app.js';
import {
  pageHead, disclosure, statusBox, validate, submitting, loadInto, dash,
} from './_shared_admin.js';
import { customerFields, customerChecks, customerBody } from './customer.js';

/** Deepest page the server serves (a search is refined, not paged through). */
const MAX_PAGE = 50;

function searchForm(q) {
  const input = h('input', {
    type: 'search', name: 'q', value: q, maxlength: 200, autocomplete: 'off',
    placeholder: 'Name, email or company',
  });
  const form = h('form', { class: 'toolbar', role: 'search' },
    field('Search customers', input, 'Matches the start of any word of the name, email or company.'),
    h('button', { type: 'submit', class: 'primary' }, 'Search'),
    q ? h('button', { type: 'button', onclick: () => navigate('customers') }, 'Clear') : null);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    navigate('customers', { q: input.value.trim() });
  });
  return form;
}

function createForm() {
  const f = customerFields({});
  const status = statusBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create customer');
  const form = h('form', { novalidate: true },
    h('div', { class: 'form-grid' }, f.nameField, f.emailField, f.companyField),
    f.noteField,
    status,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!validate(form, status, customerChecks(f))) return;
    const res = await submitting(submit, status, () => post('/api/admin/customers', customerBody(f, null)));
    if (!res) return;
    toast(`Customer “${res.value.name}” created.`);
    navigate(`customers/${res.value.id}`);
  });
  return disclosure('New customer', {}, form);
}

function results(page, q, pageNo) {
  const list = table([
    { label: 'Name', render: (c) => h('a', { href: `#/customers/${c.id}` }, c.name) },
    { label: 'Email', render: (c) => c.email || dash() },
    { label: 'Company', render: (c) => c.company || dash() },
    { label: 'Created', render: (c) => time(c.created_at) },
    { label: 'ID', class: 'num', render: (c) => String(c.id) },
  ], page.customers, {
    caption: q ? `Customers matching “${q}”` : 'All customers, oldest first',
    empty: pageNo > 1
      ? `Page ${pageNo} is past the last page of ${q ? 'this search' : 'customers'}: go back with “Previous page”.`
      : q
      ? `No customer’s name, email or company has a word starting with “${q}”. Try fewer or shorter words.`
      : 'There are no customers yet.' + (can('licenses:write') ? ' Create the first one with “New customer” above.' : ''),
  });
  const more = page.more && pageNo < MAX_PAGE;
  const pager = (pageNo > 1 || more)
    ? h('nav', { class: 'pager', 'aria-label': 'Pages' },
      h('button', { type: 'button', disabled: pageNo <= 1, onclick: () => navigate('customers', { q, page: pageNo - 1 }) }, 'Previous page'),
      h('span', { class: 'muted' }, `Page ${pageNo}`),
      h('button', { type: 'button', disabled: !more, onclick: () => navigate('customers', { q, page: pageNo + 1 }) }, 'Next page'))
    : null;
  const deep = page.more && pageNo >= MAX_PAGE
    ? h('p', { class: 'muted' }, `Only the first ${MAX_PAGE} pages are shown: narrow the search to find the rest.`)
    : null;
  return [list, pager, deep];
}

export async function render(main, _params, query) {
  main.classList.add('adm');
  const q = (query.get('q') || '').trim();
  let pageNo = Number.parseInt(query.get('page') || '1', 10);
  if (!Number.isFinite(pageNo) || pageNo < 1) pageNo = 1;
  if (pageNo > MAX_PAGE) pageNo = MAX_PAGE;
  const list = h('div', { class: 'customer-results' });
  replace(main,
    pageHead('Customers', { sub: 'Who licenses belong to. Open a customer to change it or see its licenses.' }),
    can('licenses:write') ? createForm() : null,
    searchForm(q),
    list);
  await loadInto(list,
    () => get('/api/admin/customers', { q, page: pageNo }),
    (page) => results(page, q, pageNo),
    q ? 'Searching…' : 'Loading customers…');
}
