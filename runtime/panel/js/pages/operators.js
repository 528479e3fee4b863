// Operators & keys (super admins only): operator accounts (create, disable, enable, new
// password) and admin API keys for automation (create with scopes, the key shown once;
// revoke).

import { get, post, del, can, session } from '../api.js';
import { h, replace, field, notice, errorText, time, table, toast, confirmDialog, badge } from '../dom.js';
import {
  pageHead, section, disclosure, statusBox, validate, submitting, dash, select, secretBox, reveal,
  checkField, chars, codeList, hasControl,
} from './_shared_admin.js';

const USERNAME = /^[A-Za-z0-9._@-]{1,64}$/;
const MIN_PASSWORD = 12;
const MAX_PASSWORD = 256;

const ROLES = [
  ['admin', 'Admin: everything but operators, security changes and deleting licenses'],
  ['super_admin', 'Super admin: everything, including emergency controls'],
];

/** The fixed scope set of admin keys (runtime/src/auth/scopes.rs), in documentation order. */
const SCOPES = [
  ['licenses:read', 'Read licenses, customers, devices, sessions and resource pools'],
  ['licenses:write', 'Issue and change licenses; manage resource pools'],
  ['licenses:delete', 'Delete licenses'],
  ['products:write', 'Create and change products and plans, publish releases'],
  ['events:read', 'Read the event stream'],
  ['audit:read', 'Read the audit log'],
  ['webhooks:write', 'Manage webhooks, their secrets and deliveries'],
  ['security:read', 'Read the security settings and feature flags'],
  ['security:write', 'Change the security settings and feature flags'],
  ['operators:write', 'Manage operator accounts and admin keys'],
  ['*', 'Every scope, including ones added later'],
];

function roleText(role) {
  return role === 'super_admin' ? 'super admin' : role;
}

function operatorState(o) {
  if (o.disabled) return badge('disabled');
  if (o.locked_until && o.locked_until * 1000 > Date.now()) {
    return h('span', {}, badge('locked'), h('small', { class: 'muted block' }, 'until ', time(o.locked_until)));
  }
  return badge('active');
}

function operatorsSection() {
  const list = h('div', {});
  const status = statusBox();

  const setDisabled = async (o, disabled, button) => {
    if (disabled) {
      const ok = await confirmDialog({
        title: `Disable ${o.username}?`,
        message: `${o.username} is logged out at once on every server and cannot log in until enabled again.`,
        confirmLabel: 'Disable operator',
        typed: o.username,
        danger: true,
      });
      if (!ok) return;
    }
    const res = await submitting(button, status,
      () => post(`/api/admin/operators/${encodeURIComponent(o.username)}/${disabled ? 'disable' : 'enable'}`),
      disabled ? 'Disabling…' : 'Enabling…');
    if (!res) return;
    toast(disabled ? `${o.username} is disabled.` : `${o.username} may log in again.`);
    load();
  };

  const load = async () => {
    try {
      const data = await get('/api/admin/operators');
      const me = session.current?.username;
      replace(list, table([
        { label: 'Username', render: (o) => [h('span', { class: 'mono' }, o.username), o.username === me ? h('span', { class: 'muted' }, ' (you)') : null] },
        { label: 'Role', render: (o) => roleText(o.role) },
        { label: 'State', render: operatorState },
        { label: 'Created', render: (o) => time(o.created_at) },
        {
          label: 'Change',
          render: (o) => {
            if (o.username === me) return dash('—');
            const b = h('button', {
              type: 'button', class: o.disabled ? '' : 'danger',
              'aria-label': `${o.disabled ? 'Enable' : 'Disable'} ${o.username}`,
            }, o.disabled ? 'Enable' : 'Disable');
            b.addEventListener('click', () => setDisabled(o, !o.disabled, b));
            return b;
          },
        },
      ], data.operators || [], { caption: 'Operators in the order they were created', empty: 'There are no operators.' }));
    } catch (e) {
      if (e?.status !== 401) replace(list, notice('error', errorText(e)));
    }
  };

  const username = h('input', { type: 'text', maxlength: 64, required: true, autocomplete: 'off', spellcheck: 'false', class: 'mono' });
  const role = select(ROLES, 'admin');
  const password = h('input', { type: 'password', required: true, autocomplete: 'new-password', maxlength: MAX_PASSWORD });
  const again = h('input', { type: 'password', required: true, autocomplete: 'new-password', maxlength: MAX_PASSWORD });
  const formStatus = statusBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create operator');
  const form = h('form', { novalidate: true },
    h('div', { class: 'form-grid' },
      field('Username', username, 'Letters, digits and . _ - @ (up to 64).'),
      field('Role', role),
      field('Password', password, `${MIN_PASSWORD} to ${MAX_PASSWORD} characters; a long passphrase is best. Give it to the operator over a safe channel.`),
      field('Repeat the password', again)),
    formStatus,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const u = username.value.trim();
    const n = chars(password.value);
    const ok = validate(form, formStatus, [
      [username, !u ? 'The username is required.' : (!USERNAME.test(u) ? 'Use 1 to 64 letters, digits or . _ - @ (no spaces).' : null)],
      [password, n < MIN_PASSWORD ? `The password must be at least ${MIN_PASSWORD} characters (now ${n}).`
        : (n > MAX_PASSWORD ? `The password must be at most ${MAX_PASSWORD} characters.` : null)],
      [again, again.value !== password.value ? 'The two passwords differ.' : null],
    ]);
    if (!ok) return;
    const res = await submitting(submit, formStatus,
      () => post('/api/admin/operators', { username: u, role: role.value, password: password.value }), 'Creating…');
    if (!res) return;
    form.reset();
    replace(formStatus, notice('ok', `${res.value.username} can log in now as ${roleText(res.value.role)}.`));
    load();
  });

  // A new password for an operator (a forgotten one, or after a leak): their tokens end.
  const who = h('input', { type: 'text', maxlength: 64, required: true, autocomplete: 'off', spellcheck: 'false', class: 'mono' });
  const newPassword = h('input', { type: 'password', required: true, autocomplete: 'new-password', maxlength: MAX_PASSWORD });
  const newAgain = h('input', { type: 'password', required: true, autocomplete: 'new-password', maxlength: MAX_PASSWORD });
  const resetStatus = statusBox();
  const resetSubmit = h('button', { type: 'submit', class: 'primary' }, 'Set password');
  const resetForm = h('form', { novalidate: true },
    h('div', { class: 'form-grid' },
      field('Operator', who, 'The username whose password changes.'),
      field('New password', newPassword, `${MIN_PASSWORD} to ${MAX_PASSWORD} characters.`),
      field('Repeat the new password', newAgain)),
    resetStatus,
    h('div', { class: 'actions' }, resetSubmit));
  resetForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const u = who.value.trim();
    const n = chars(newPassword.value);
    const ok = validate(resetForm, resetStatus, [
      [who, !u ? 'The username is required.' : (!USERNAME.test(u) ? 'Use 1 to 64 letters, digits or . _ - @ (no spaces).' : null)],
      [newPassword, n < MIN_PASSWORD ? `The password must be at least ${MIN_PASSWORD} characters (now ${n}).`
        : (n > MAX_PASSWORD ? `The password must be at most ${MAX_PASSWORD} characters.` : null)],
      [newAgain, newAgain.value !== newPassword.value ? 'The two passwords differ.' : null],
    ]);
    if (!ok) return;
    const confirmed = await confirmDialog({
      title: `Set a new password for ${u}?`,
      message: `${u} is logged out at once on every server and logs in with the new password; a lockout is cleared.`,
      confirmLabel: 'Set password',
    });
    if (!confirmed) return;
    const res = await submitting(resetSubmit, resetStatus,
      () => post(`/api/admin/operators/${encodeURIComponent(u)}/password`, { password: newPassword.value }), 'Setting…');
    if (!res) return;
    resetForm.reset();
    replace(resetStatus, notice('ok', `${res.value.username} has a new password; their earlier sessions ended.`));
    load();
  });

  replace(list, h('p', { class: 'loading' }, 'Loading operators…'));
  load();
  return section('Operators',
    h('p', { class: 'muted' }, 'People who log in to this panel and the admin API. Disabling one logs them out at once on every server.'),
    status,
    list,
    disclosure('New operator', {}, form),
    disclosure('Set an operator’s password', {}, resetForm));
}

function keysSection(secretArea) {
  const list = h('div', {});
  const status = statusBox();
  const showRevoked = h('input', { type: 'checkbox' });
  let keys = [];

  const revoke = async (k, button) => {
    const ok = await confirmDialog({
      title: `Revoke the key “${k.name}”?`,
      message: 'Whatever uses it is refused at once on every server. A revoked key cannot be restored; make a new one instead.',
      confirmLabel: 'Revoke key',
      typed: k.name,
      danger: true,
    });
    if (!ok) return;
    const res = await submitting(button, status, () => del(`/api/admin/keys/${encodeURIComponent(k.id)}`), 'Revoking…');
    if (!res) return;
    toast(`Key “${k.name}” revoked.`);
    load();
  };

  const draw = () => {
    const shown = showRevoked.checked ? keys : keys.filter((k) => !k.revoked_at);
    const revokedCount = keys.length - keys.filter((k) => !k.revoked_at).length;
    replace(list, table([
      { label: 'Name', render: (k) => k.name },
      { label: 'Key', render: (k) => [h('code', {}, `${k.hint}…`), h('small', { class: 'muted block mono' }, k.id)] },
      { label: 'Scopes', render: (k) => codeList(k.scopes) },
      { label: 'Created', render: (k) => time(k.created_at) },
      { label: 'State', render: (k) => (k.revoked_at ? h('span', {}, badge('revoked'), h('small', { class: 'muted block' }, time(k.revoked_at))) : badge('active')) },
      {
        label: 'Change',
        render: (k) => {
          if (k.revoked_at) return dash('—');
          const b = h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke key ${k.name}` }, 'Revoke');
          b.addEventListener('click', () => revoke(k, b));
          return b;
        },
      },
    ], shown, {
      caption: showRevoked.checked ? 'Every admin key, oldest first' : 'Active admin keys, oldest first',
      empty: keys.length
        ? `No active keys (${revokedCount} revoked: tick “Show revoked keys” to see them).`
        : 'No admin keys yet. Make one for each system that calls the admin API.',
    }));
  };
  showRevoked.addEventListener('change', draw);

  const load = async () => {
    try {
      keys = (await get('/api/admin/keys')).keys || [];
      draw();
    } catch (e) {
      if (e?.status !== 401) replace(list, notice('error', errorText(e)));
    }
  };

  const name = h('input', { type: 'text', maxlength: 64, required: true, autocomplete: 'off', placeholder: 'billing-sync' });
  const boxes = SCOPES.map(([scope, words]) => ({ scope, input: h('input', { type: 'checkbox', name: 'scopes', value: scope }), words }));
  const scopeSet = h('fieldset', { class: 'scopes' },
    h('legend', {}, 'Scopes'),
    h('p', { class: 'hint' }, 'Give each key only what its system needs.'),
    h('div', { class: 'scope-grid' }, boxes.map((b) => checkField(h('span', {}, h('code', {}, b.scope), ' ', h('span', { class: 'muted' }, b.words)), b.input))));
  const formStatus = statusBox();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create key');
  const form = h('form', { novalidate: true },
    field('Name', name, 'Who or what uses it (1 to 64 characters); unique among active keys.'),
    scopeSet,
    formStatus,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const n = name.value.trim();
    const scopes = boxes.filter((b) => b.input.checked).map((b) => b.scope);
    const ok = validate(form, formStatus, [
      [name, !n ? 'The name is required.' : (chars(n) > 64 ? 'The name must be at most 64 characters.'
        : (hasControl(n) ? 'The name must not contain control characters.'
          : (keys.some((k) => !k.revoked_at && k.name === n) ? `An active key is named “${n}” already.` : null)))],
      [scopeSet, scopes.length ? null : 'Choose at least one scope.'],
    ]);
    if (!ok) return;
    const res = await submitting(submit, formStatus, () => post('/api/admin/keys', { name: n, scopes }), 'Creating…');
    if (!res) return;
    const k = res.value;
    form.reset();
    reveal(secretArea, secretBox({
      title: `Admin key “${k.name}”`,
      secret: k.secret,
      lines: [
        h('span', {}, 'Send it as ', h('code', {}, 'Authorization: Bearer …'), '. Scopes: ', codeList(k.scopes), '.'),
        'Only its SHA-256 is stored: nobody, not even a super admin, can see it again.',
      ],
    }));
    toast(`Key “${k.name}” created.`);
    load();
  });

  replace(list, h('p', { class: 'loading' }, 'Loading admin keys…'));
  load();
  return section('Admin keys',
    h('p', { class: 'muted' }, 'Keys for automation, sent as a bearer token, each limited to its scopes. The emergency controls need an operator; no key reaches them.'),
    h('div', { class: 'toolbar' }, checkField('Show revoked keys', showRevoked)),
    status,
    list,
    disclosure('New admin key', {}, form));
}

export async function render(main) {
  main.classList.add('adm');
  if (!can('operators:write')) {
    replace(main, pageHead('Operators & keys'),
      notice('error', 'Only a super admin manages operators and admin keys.'));
    return;
  }
  const secretArea = h('div', {});
  replace(main,
    pageHead('Operators & keys', { sub: 'Who may use the admin API and this panel. Every change is audited.' }),
    secretArea,
    operatorsSection(),
    keysSection(secretArea));
}
