// The audit log: every operator and admin-key action, newest first — who, from where,
// what, on what, and the state before and after — and a check of its hash chain.

import { get } from '../api.js';
import { h, replace, time, fmtNum, table, field, notice, errorText, busy } from '../dom.js';
import { navigate } from '../app.js';
import { KEY_PATTERN, licenseLink, prettyJson, selectOf } from './_shared_licenses.js';

const PAGE_SIZES = [25, 50, 100, 200];

const PROBLEM_WORDS = {
  changed: 'its content no longer matches its hash: it was changed after it was written',
  removed: 'it is missing: it was removed from the log',
  reordered: 'it is out of place: records were reordered or the log was cut',
};

/** A target as a link where the panel has a page for it. */
function targetLink(target) {
  if (!target) return h('span', { class: 'muted' }, '—');
  const m = /^([a-z_]+):(.+)$/.exec(target);
  if (m) {
    const [, kind, id] = m;
    const pages = { customer: 'customers', webhook: 'webhooks', license: 'licenses' };
    if (pages[kind]) return h('a', { href: `#/${pages[kind]}/${encodeURIComponent(id)}` }, target);
    return h('code', {}, target);
  }
  if (KEY_PATTERN.test(target) && target.includes('-')) return licenseLink(target);
  return h('code', {}, target);
}

/** Before and after, folded away until asked for. */
function change(r) {
  const hasBefore = r.before !== null && r.before !== undefined;
  const hasAfter = r.after !== null && r.after !== undefined && !(typeof r.after === 'object' && Object.keys(r.after).length === 0);
  if (!hasBefore && !hasAfter) return h('span', { class: 'muted' }, '—');
  return h('details', { class: 'audit-change' },
    h('summary', {}, hasBefore ? 'Before / after' : 'After'),
    hasBefore ? h('div', {}, h('div', { class: 'hint' }, 'Before'), prettyJson(r.before)) : null,
    hasAfter ? h('div', {}, h('div', { class: 'hint' }, 'After'), prettyJson(r.after)) : null);
}

export async function render(main, params, query) {
  const cursorRaw = (query.get('cursor') || '').trim();
  const cursor = /^\d{1,19}$/.test(cursorRaw) ? cursorRaw : '';
  const limitRaw = Number(query.get('limit'));
  const limit = PAGE_SIZES.includes(limitRaw) ? limitRaw : 50;

  const verifyOut = h('div', { 'aria-live': 'polite', 'data-testid': 'audit-verify' });
  const verify = h('button', { type: 'button', class: 'primary' }, 'Verify chain');
  verify.addEventListener('click', () => busy(verify, async () => {
    replace(verifyOut, h('p', { class: 'loading' }, 'Checking every record…'));
    const r = await get('/api/admin/audit/verify');
    if (r.ok) {
      replace(verifyOut, notice('ok', r.checked
        ? `The chain is intact: all ${fmtNum(r.checked)} records were checked and none was changed, removed or reordered. Head: record #${fmtNum(r.head)}${r.head_hash ? `, hash ${r.head_hash.slice(0, 16)}…` : ''}.`
        : 'The audit log is empty: there is nothing to check yet.'));
    } else {
      const p = r.problem;
      const where = p ? `at record #${fmtNum(p.seq)}: ${PROBLEM_WORDS[p.kind] || p.kind}.` : 'somewhere.';
      replace(verifyOut, h('div', { class: 'notice notice-error', role: 'alert' },
        h('p', {}, h('strong', {}, 'The chain is broken '), where),
        p?.detail ? h('p', {}, 'Found: ', p.detail) : null,
        h('p', {}, `${fmtNum(r.checked)} records checked; head is record #${fmtNum(r.head)}. Records from the break on cannot be trusted; compare them with your backups and the anchored head in the server log.`)));
    }
  }, verifyOut));

  const pageSize = selectOf(PAGE_SIZES.map((n) => [String(n), String(n)]), String(limit), null);
  pageSize.addEventListener('change', () => navigate('audit', { limit: pageSize.value === '50' ? '' : pageSize.value }));

  const list = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading the audit log…'));
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of the audit log' });

  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Audit log')),
    h('section', { class: 'card', 'aria-labelledby': 'audit-verify-h' },
      h('h2', { id: 'audit-verify-h' }, 'Integrity'),
      h('p', { class: 'muted' }, 'Each record carries the hash of the one before it, so a changed, removed or reordered record breaks the chain. Verifying reads the whole log.'),
      verify, verifyOut),
    h('div', { class: 'toolbar' }, field('Records per page', pageSize)),
    list,
    pager);

  let page;
  try {
    page = await get('/api/admin/audit', { cursor: cursor || undefined, limit });
  } catch (e) {
    replace(list, notice('error', `The audit log could not be read: ${errorText(e)}`));
    return undefined;
  }
  const records = page.records || [];
  replace(list,
    records.length
      ? h('p', { class: 'muted' }, `Records #${records[records.length - 1].seq} to #${records[0].seq} of ${fmtNum(page.head)}, newest first.`)
      : null,
    table([
    { label: '#', class: 'num', render: (r) => String(r.seq) },
    { label: 'When', render: (r) => time(r.at) },
    { label: 'Who', render: (r) => r.actor },
    { label: 'From', render: (r) => r.ip || h('span', { class: 'muted' }, '—') },
    { label: 'Action', render: (r) => h('code', {}, r.action) },
    { label: 'Target', render: (r) => targetLink(r.target) },
    { label: 'Summary', class: 'wide', render: (r) => r.summary },
    { label: 'Change', class: 'wide', render: change },
  ], records, {
    empty: cursor ? 'No older records.' : 'The audit log is empty: no operator has changed anything yet.',
    rowAttrs: (r) => ({ dataset: { seq: String(r.seq) } }),
  }));
  const extra = limit === 50 ? {} : { limit: String(limit) };
  replace(pager,
    h('button', { type: 'button', disabled: !cursor, onclick: () => navigate('audit', extra) }, 'Newest records'),
    h('button', { type: 'button', disabled: !page.next_cursor, onclick: () => navigate('audit', { ...extra, cursor: String(page.next_cursor) }) }, 'Older records'),
    h('span', { class: 'muted' }, page.next_cursor ? '' : records.length ? 'These are the oldest records.' : ''));
  return undefined;
}
