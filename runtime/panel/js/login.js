// The login page: seed 001's challenge login done by the browser. The password is encrypted
// with WebCrypto (RSA-OAEP, SHA-256) to the server's login key over
// "{nonce}:{challenge_ts}:{password}", so it never crosses the wire in the clear, even
// without TLS; the server answers with the session cookie (HttpOnly) and a CSRF value.

import { api, get } from './api.js';
import { h, replace, field, notice, errorText } from './dom.js';

function pemToDer(pem) {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

function toBase64(buf) {
  const bytes = new Uint8Array(buf);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** Encrypts the password for a challenge; returns seed 001's login body. */
export async function encryptedLogin(username, password) {
  const c = await get('/api/auth/challenge', { username });
  const key = await crypto.subtle.importKey(
    'spki', pemToDer(c.public_key), { name: 'RSA-OAEP', hash: 'SHA-256' }, false, ['encrypt']);
  const ts = Math.floor(Date.now() / 1000);
  const plain = new TextEncoder().encode(`${c.nonce}:${ts}:${password}`);
  const sealed = await crypto.subtle.encrypt({ name: 'RSA-OAEP' }, key, plain);
  return {
    username,
    encrypted_password: toBase64(sealed),
    login_nonce: c.nonce,
    key_id: c.key_id,
    challenge_ts: ts,
  };
}

/** Shows the login form in `main`; calls `done(session)` after a successful login. */
export function renderLogin(main, message, done) {
  const user = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, maxlength: 64 });
  const pass = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const status = h('div', { class: 'status', 'aria-live': 'polite' },
    message ? notice('info', message) : null);
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h('form', { class: 'login', novalidate: true },
    h('h1', {}, 'Tessera'),
    h('p', { class: 'muted' }, 'Log in with your operator account.'),
    status,
    field('Username', user),
    field('Password', pass),
    submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!user.value.trim() || !pass.value) {
      replace(status, notice('error', 'Enter your username and password.'));
      (user.value.trim() ? pass : user).focus();
      return;
    }
    if (!globalThis.crypto?.subtle) {
      replace(status, notice('error',
        'This browser cannot encrypt the password here: WebCrypto needs HTTPS (or localhost). Open the panel over HTTPS.'));
      return;
    }
    submit.disabled = true;
    replace(status, notice('info', 'Logging in…'));
    try {
      const body = await encryptedLogin(user.value.trim(), pass.value);
      const session = await api('POST', '/api/panel/session', body, { quiet401: true });
      pass.value = '';
      done(session);
    } catch (err) {
      const words = err.code === 'INVALID_CREDENTIALS'
        ? 'The username or password is wrong, or the account is locked or disabled.'
        : err.code === 'LOGIN_CHALLENGE_INVALID'
          ? 'The login expired before it was sent. Try again.'
          : errorText(err);
      replace(status, notice('error', words));
      pass.focus();
    } finally {
      submit.disabled = false;
    }
  });
  replace(main, h('div', { class: 'login-wrap' }, form));
  user.focus();
}
