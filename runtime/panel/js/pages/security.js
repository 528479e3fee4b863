// Security: the login and protection controls every server applies, the public feature
// flags, and (super admins only) the emergency controls, each behind a typed
// confirmation. Roles without `security:write` see the settings read-only.

import { get, put, post, can, session } from '../api.js';
import { h, replace, field, notice, errorText, toast, confirmDialog, badge, fmtNum, time } from '../dom.js';
import {
  pageHead, section, statusBox, validate, readInt, submitting, props, select, checkField, codeList,
} from './_shared_admin.js';

const MODES = [
  ['off', 'Off'],
  ['standard', 'Standard'],
  ['strict', 'Strict'],
];
const FLAG = /^[a-z0-9_.-]{1,64}$/;
const MAX_FLAGS = 200;

function modeText(v) {
  return (MODES.find(([k]) => k === v) || [v, v])[1];
}

function settingsReadOnly(s) {
  return section('Login and protection',
    props([
      ['Encrypted logins', s.enforce_login_payload_encryption ? 'Required: plaintext logins are refused' : 'Not required: plaintext logins are accepted'],
      ['Failed logins before a lock', fmtNum(s.max_login_attempts)],
      ['Login challenge lifetime', `${fmtNum(s.replay_window_secs)} s`],
      ['IP reputation', modeText(s.ip_reputation_mode)],
      ['Network protection', modeText(s.network_protection_mode)],
    ]),
    h('p', { class: 'muted' }, 'Your role may read these controls; a super admin changes them.'));
}

function settingsForm(initial) {
  let s = initial;
  const enforce = h('input', { type: 'checkbox', checked: s.enforce_login_payload_encryption });
  const attempts = h('input', { type: 'number', min: 1, max: 1000, step: 1, inputmode: 'numeric', required: true, value: s.max_login_attempts });
  const replay = h('input', { type: 'number', min: 10, max: 86400, step: 1, inputmode: 'numeric', required: true, value: s.replay_window_secs });
  const ipMode = select(MODES, s.ip_reputation_mode);
  const netMode = select(MODES, s.network_protection_mode);
  const status = statusBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Save controls');
  const form = h('form', { novalidate: true },
    checkField('Require encrypted logins', enforce, 'Refuse logins whose password is not encrypted to the server’s login key (the panel always encrypts).'),
    h('div', { class: 'form-grid' },
      field('Failed logins before a lock', attempts, '1 to 1000; the account is then locked for a while.'),
      field('Login challenge lifetime (s)', replay, '10 to 86400: how long a challenge is good and how far the client’s clock may be off.'),
      field('IP reputation', ipMode, 'Read by policy plugins.'),
      field('Network protection', netMode, 'Read by plugins; front ends see it too.')),
    status,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const a = readInt(attempts, { name: 'Failed logins', min: 1, max: 1000, required: true });
    const r = readInt(replay, { name: 'The challenge lifetime', min: 10, max: 86400, required: true });
    if (!validate(form, status, [[attempts, a.error || null], [replay, r.error || null]])) return;
    const body = {};
    if (enforce.checked !== s.enforce_login_payload_encryption) body.enforce_login_payload_encryption = enforce.checked;
    if (a.value !== s.max_login_attempts) body.max_login_attempts = a.value;
    if (r.value !== s.replay_window_secs) body.replay_window_secs = r.value;
    if (ipMode.value !== s.ip_reputation_mode) body.ip_reputation_mode = ipMode.value;
    if (netMode.value !== s.network_protection_mode) body.network_protection_mode = netMode.value;
    if (Object.keys(body).length === 0) {
      replace(status, notice('info', 'Nothing was changed.'));
      return;
    }
    if (body.enforce_login_payload_encryption === false) {
      const ok = await confirmDialog({
        title: 'Accept plaintext logins?',
        message: 'Passwords may then be sent unencrypted to the login route. Only do this for a client that cannot encrypt, and only over TLS.',
        confirmLabel: 'Accept plaintext logins',
        danger: true,
      });
      if (!ok) return;
    }
    const res = await submitting(submit, status, () => put('/api/admin/security', body));
    if (!res) return;
    s = res.value;
    replace(status, notice('ok', 'Saved. The controls hold on every server within a second.'));
  });
  return section('Login and protection', form);
}

function featuresReadOnly(f) {
  const names = Object.entries(f.features || {});
  return section('Feature flags',
    h('p', { class: 'muted' }, 'What front ends read from the public configuration (GET /api/public/config).'),
    h('h3', {}, 'Features'),
    names.length
      ? h('ul', { class: 'plain feature-list' }, names.map(([n, on]) => h('li', {}, h('code', {}, n), ' ', badge(on ? 'on' : 'off'))))
      : h('p', { class: 'empty' }, 'No named features are set.'),
    h('h3', {}, 'Enabled flags'),
    (f.enabled_feature_flags || []).length
      ? codeList(f.enabled_feature_flags)
      : h('p', { class: 'empty' }, 'No flags are on.'),
    h('p', { class: 'muted' }, 'Your role may read these flags; a super admin changes them.'));
}

function featuresEditor(initial) {
  const state = {
    features: Object.entries(initial.features || {}).map(([name, on]) => ({ name, on })),
    flags: [...(initial.enabled_feature_flags || [])],
  };
  const status = statusBox();
  const featureBox = h('div', {});
  const flagBox = h('div', {});
  const save = h('button', { type: 'button', class: 'primary' }, 'Save feature flags');
  const dirty = h('span', { class: 'muted', 'aria-live': 'polite' });
  const changed = () => { dirty.textContent = 'Unsaved changes.'; };

  const drawFeatures = () => replace(featureBox, state.features.length
    ? h('ul', { class: 'plain feature-list' }, state.features.map((f, i) => {
      const box = h('input', { type: 'checkbox', checked: f.on });
      box.addEventListener('change', () => { f.on = box.checked; changed(); });
      return h('li', { class: 'feature-row' },
        h('label', { class: 'check' }, box, h('code', {}, f.name), h('span', { class: 'muted' }, ' on')),
        h('button', {
          type: 'button', class: 'link', 'aria-label': `Remove feature ${f.name}`,
          onclick: () => { state.features.splice(i, 1); changed(); drawFeatures(); },
        }, 'Remove'));
    }))
    : h('p', { class: 'empty' }, 'No named features are set.'));

  const drawFlags = () => replace(flagBox, state.flags.length
    ? h('ul', { class: 'plain chips' }, state.flags.map((name, i) => h('li', { class: 'chip' },
      h('code', {}, name),
      h('button', {
        type: 'button', class: 'link', 'aria-label': `Remove flag ${name}`,
        onclick: () => { state.flags.splice(i, 1); changed(); drawFlags(); },
      }, '×'))))
    : h('p', { class: 'empty' }, 'No flags are on.'));

  const total = () => state.features.length + state.flags.length;
  const nameError = (n, taken) => {
    if (!n) return 'Enter a name.';
    if (!FLAG.test(n)) return 'Names are 1 to 64 of lower-case letters, digits, _ . -';
    if (taken.includes(n)) return `“${n}” is there already.`;
    if (total() >= MAX_FLAGS) return `At most ${MAX_FLAGS} features and flags in all.`;
    return null;
  };

  const newFeature = h('input', { type: 'text', maxlength: 64, autocomplete: 'off', spellcheck: 'false', class: 'mono', placeholder: 'guest_login_enabled' });
  const newFeatureOn = h('input', { type: 'checkbox', checked: true });
  const addFeature = h('form', { class: 'inline', novalidate: true },
    field('New feature', newFeature),
    checkField('On', newFeatureOn),
    h('button', { type: 'submit' }, 'Add feature'));
  addFeature.addEventListener('submit', (e) => {
    e.preventDefault();
    const n = newFeature.value.trim();
    if (!validate(addFeature, null, [[newFeature, nameError(n, state.features.map((f) => f.name))]])) return;
    state.features.push({ name: n, on: newFeatureOn.checked });
    state.features.sort((a, b) => a.name.localeCompare(b.name));
    newFeature.value = '';
    changed();
    drawFeatures();
    newFeature.focus();
  });

  const newFlag = h('input', { type: 'text', maxlength: 64, autocomplete: 'off', spellcheck: 'false', class: 'mono', placeholder: 'priority_tickets' });
  const addFlag = h('form', { class: 'inline', novalidate: true },
    field('New flag', newFlag),
    h('button', { type: 'submit' }, 'Add flag'));
  addFlag.addEventListener('submit', (e) => {
    e.preventDefault();
    const n = newFlag.value.trim();
    if (!validate(addFlag, null, [[newFlag, nameError(n, state.flags)]])) return;
    state.flags.push(n);
    state.flags.sort();
    newFlag.value = '';
    changed();
    drawFlags();
    newFlag.focus();
  });

  save.addEventListener('click', async () => {
    const body = {
      features: Object.fromEntries(state.features.map((f) => [f.name, f.on])),
      enabled_feature_flags: state.flags,
    };
    const res = await submitting(save, status, () => put('/api/admin/features', body));
    if (!res) return;
    dirty.textContent = '';
    replace(status, notice('ok', 'Saved. Front ends see the new flags in the public configuration.'));
  });

  drawFeatures();
  drawFlags();
  return section('Feature flags',
    h('p', { class: 'muted' }, 'What front ends read from the public configuration (GET /api/public/config). Saving replaces them all.'),
    h('h3', {}, 'Features'),
    featureBox,
    addFeature,
    h('h3', {}, 'Enabled flags'),
    flagBox,
    addFlag,
    status,
    h('div', { class: 'actions' }, save, dirty));
}

const EMERGENCY = [
  {
    action: 'freeze_activations',
    title: 'Freeze activations',
    text: 'New activations are refused with ACTIVATIONS_FROZEN on every server. Devices already activated keep working.',
    typed: 'FREEZE',
  },
  {
    action: 'unfreeze_activations',
    title: 'Unfreeze activations',
    text: 'Activations are accepted again.',
    typed: 'UNFREEZE',
    danger: false,
  },
  {
    action: 'end_all_sessions',
    title: 'End all sessions',
    text: 'Every live client session ends with reason “admin”, on every server; each client must start a new session.',
    typed: 'END SESSIONS',
  },
  {
    action: 'force_reauth_non_admin',
    title: 'Log out every admin',
    text: 'Every operator below super admin is logged out at once, on every server, and must log in again. Super admins stay logged in.',
    typed: 'LOG OUT',
  },
];

/** Words for what the emergency controls have in force (GET /api/admin/emergency). */
function emergencyWords(now) {
  const frozen = now.activations_frozen
    ? 'Activations are frozen: new activations are refused.'
    : 'Activations are accepted.';
  return now.reauth_forced_at
    ? [frozen, ' Operators below super admin were last logged out ', time(now.reauth_forced_at), '.']
    : [frozen];
}

function emergencySection(now, mayAct) {
  const status = statusBox();
  const state = h('p', { 'aria-live': 'polite', 'data-testid': 'emergency-state' }, emergencyWords(now));
  const items = !mayAct ? [] : EMERGENCY.map((e) => {
    const b = h('button', { type: 'button', class: e.danger === false ? '' : 'danger' }, e.title);
    b.addEventListener('click', async () => {
      const ok = await confirmDialog({
        title: `${e.title}?`,
        message: e.text,
        confirmLabel: e.title,
        typed: e.typed,
        danger: e.danger !== false,
      });
      if (!ok) return;
      const res = await submitting(b, status, () => post('/api/admin/emergency', { action: e.action }), 'Working…');
      if (!res) return;
      const r = res.value;
      const words = r.action === 'end_all_sessions'
        ? `Ended ${fmtNum(r.ended_sessions ?? 0)} live session${r.ended_sessions === 1 ? '' : 's'} on this server; the others end theirs too.`
        : r.action === 'force_reauth_non_admin'
          ? 'Every admin below super admin is logged out.'
          : `Done: ${e.title.toLowerCase()}.`;
      replace(status, notice('ok', words));
      replace(state, emergencyWords({ ...now, activations_frozen: r.activations_frozen }));
      toast(words);
    });
    return h('li', { class: 'emergency-item' },
      h('div', {}, h('strong', {}, e.title), h('p', { class: 'muted' }, e.text)),
      b);
  });
  return h('section', { class: 'card danger-zone', 'aria-labelledby': 'emergency-title' },
    h('h2', { id: 'emergency-title' }, 'Emergency controls'),
    mayAct
      ? h('p', {}, 'For an incident: each acts at once on every server and is audited as critical. Each asks you to type a word to confirm.')
      : h('p', { class: 'muted' }, 'Only a super admin can use the emergency controls.'),
    state,
    mayAct ? h('ul', { class: 'plain emergency-list' }, items) : null,
    mayAct ? status : null);
}

export async function render(main) {
  main.classList.add('adm');
  const writable = can('security:write');
  const body = h('div', {});
  replace(main,
    pageHead('Security', { sub: writable ? 'Controls every server applies; a change holds everywhere within a second.' : 'Controls every server applies (read-only for your role).' }),
    body);
  replace(body, h('p', { class: 'loading' }, 'Loading the security controls…'));
  let settings;
  let features;
  let emergency;
  try {
    [settings, features, emergency] = await Promise.all([
      get('/api/admin/security'), get('/api/admin/features'), get('/api/admin/emergency')]);
  } catch (e) {
    if (e?.status !== 401) replace(body, notice('error', errorText(e)));
    return;
  }
  replace(body,
    writable ? settingsForm(settings) : settingsReadOnly(settings),
    writable ? featuresEditor(features) : featuresReadOnly(features),
    emergencySection(emergency, can('super_admin') && session.current?.role === 'super_admin'));
}
