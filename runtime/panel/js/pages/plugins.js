// Policy plugins: each configured plugin's file and version, hooks, calls by result,
// failures by kind, p99 latency and its last reload error; "Reload plugins" (as a SIGHUP
// does) for roles that may change security. Counters are this server's, since each load.

import { get, post, can } from '../api.js';
import { h, replace, notice, errorText, time, table, toast, badge, fmtNum } from '../dom.js';
import { pageHead, section, dash, props, codeList } from './_shared_admin.js';

const RESULTS = [
  ['allow', 'Allowed'], ['deny', 'Denied'], ['ban', 'Banned'], ['flag', 'Flagged'],
  ['risk', 'Added risk'], ['failure', 'Failed'],
];
const FAILURES = [
  ['trap', 'Traps'], ['timeout', 'Timeouts'], ['memory_limit', 'Memory limit'],
  ['bad_decision', 'Bad decisions'], ['instantiate', 'Could not start'], ['kv_unavailable', 'Store unavailable'],
];

const sum = (o, keys) => keys.reduce((n, [k]) => n + Number(o?.[k] || 0), 0);

function stateBadges(p) {
  const out = [];
  if (!p.enabled) out.push(badge('disabled'));
  else if (p.loaded) out.push(badge('loaded'));
  else out.push(badge('not loaded'));
  if (p.last_reload_error) out.push(badge('reload failed'));
  return out;
}

function stat(label, value, extra = null) {
  return h('div', { class: 'stat' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), extra);
}

function breakdown(title, keys, counts) {
  const rows = keys.filter(([k]) => Number(counts?.[k] || 0) > 0);
  return h('div', { class: 'breakdown' },
    h('h3', {}, title),
    rows.length
      ? h('dl', { class: 'props' }, rows.map(([k, label]) => [h('dt', {}, label), h('dd', { class: 'mono' }, fmtNum(counts[k]))]))
      : h('p', { class: 'muted' }, 'None since it was loaded.'));
}

function pluginCard(p) {
  const calls = sum(p.calls, RESULTS);
  const failures = sum(p.failures, FAILURES);
  const err = p.last_reload_error;
  return h('section', { class: 'card plugin', 'aria-labelledby': `plugin-${p.name}` },
    h('div', { class: 'card-head' },
      h('h2', { id: `plugin-${p.name}` }, p.name),
      stateBadges(p)),
    err ? notice('error', [
      h('strong', {}, 'The last reload failed: '), err.message,
      err.at ? [' (', time(err.at), ')'] : null,
      err.kept_previous ? ' The previous version keeps serving.' : ' No version of it serves.',
    ]) : null,
    p.loaded ? h('div', { class: 'grid plugin-stats' },
      stat('Calls', fmtNum(calls)),
      stat('Denied or banned', fmtNum(Number(p.calls?.deny || 0) + Number(p.calls?.ban || 0))),
      stat('Traps', fmtNum(p.failures?.trap || 0)),
      stat('Failures', fmtNum(failures)),
      stat('p99 latency', p.p99_ms == null ? '—' : `${fmtNum(p.p99_ms, 2)} ms`,
        p.p99_ms == null ? h('div', { class: 'muted small' }, 'no calls yet') : null)) : null,
    props([
      ['File', h('span', { class: 'mono break' }, p.path)],
      ['Version', p.version
        ? h('span', {}, h('code', { title: p.version.sha256 }, `sha256 ${p.version.sha256.slice(0, 12)}…`),
          ` · ${fmtNum(p.version.size_bytes)} bytes`,
          p.version.modified_at ? [' · modified ', time(p.version.modified_at)] : null)
        : dash('not loaded')],
    ['Hooks', codeList(p.hooks, p.loaded ? 'none exported' : 'not loaded')],
      ['Loaded', p.loaded_at ? time(p.loaded_at) : dash('not loaded')],
      ['On failure', p.fail_mode === 'closed'
        ? 'closed: a trap or timeout denies the request (PLUGIN_FAILURE)'
        : 'open: a trap or timeout lets the request through'],
      ['Time budget', `${fmtNum(p.timeout_ms)} ms per call`],
      ['Order', String(p.order)],
    ]),
    p.loaded ? h('div', { class: 'breakdowns' },
      breakdown('Calls by result', RESULTS, p.calls),
      breakdown('Failures by kind', FAILURES, p.failures)) : null);
}

function reloadReport(r) {
  return section('Reload result',
    r.ok
      ? notice('ok', 'Every plugin loaded, or was unchanged or disabled.')
      : notice('error', 'Some plugins failed to load. Where a previous version was loaded, it keeps serving.'),
    table([
      { label: 'Plugin', render: (e) => e.name },
      { label: 'Outcome', render: (e) => badge(e.status) },
      {
        label: 'Details',
        render: (e) => (e.error
          ? h('span', { class: 'break' }, e.error, e.kept_previous ? ' (the previous version keeps serving)' : ' (no version serves)')
          : dash()),
      },
    ], r.plugins, { caption: 'What the reload did to each configured plugin', empty: 'No plugins are configured.' }),
    r.removed?.length ? h('p', {}, 'No longer loaded (removed or disabled): ', codeList(r.removed)) : null);
}

export async function render(main) {
  main.classList.add('adm');
  const list = h('div', {});
  const report = h('div', {});
  const updated = h('span', { class: 'muted' });
  const refresh = h('button', { type: 'button' }, 'Refresh');
  const reload = can('security:write') ? h('button', { type: 'button', class: 'primary' }, 'Reload plugins') : null;

  const load = async () => {
    refresh.disabled = true;
    try {
      const data = await get('/api/admin/plugins');
      const plugins = data.plugins || [];
      replace(list, plugins.length
        ? plugins.map(pluginCard)
        : h('p', { class: 'empty' }, 'No plugins are configured. Add [[plugins]] entries to the server’s configuration, then reload.'));
      replace(updated, 'Counters as of ', time(Date.now()));
    } catch (e) {
      if (e?.status !== 401) replace(list, notice('error', errorText(e)));
    } finally {
      refresh.disabled = false;
    }
  };

  refresh.addEventListener('click', load);
  reload?.addEventListener('click', async () => {
    reload.disabled = true;
    replace(report, notice('info', 'Reloading plugins…'));
    try {
      const r = await post('/api/admin/plugins/reload');
      replace(report, reloadReport(r));
      toast(r.ok ? 'Plugins reloaded.' : 'Plugins reloaded with failures.', r.ok ? 'ok' : 'error');
      await load();
    } catch (e) {
      if (e?.status !== 401) replace(report, notice('error', errorText(e)));
    } finally {
      reload.disabled = false;
    }
  });

  replace(main,
    pageHead('Plugins', {
      actions: [refresh, reload].filter(Boolean),
      sub: 'Policy plugins run in order on the calls whose hooks they export. Reloading reads each file again; a changed one is swapped in, and one that fails to load keeps its previous version serving.',
    }),
    h('p', { class: 'updated' }, updated),
    report,
    list);
  replace(list, h('p', { class: 'loading' }, 'Loading plugins…'));
  await load();
}
