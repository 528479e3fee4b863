// The panel's shell: hash routes (`#/licenses/KEY`), the navigation the operator's role
// sees, the login page when there is no session, and one page module at a time. A page is
// `js/pages/NAME.js` exporting `render(main, params, query)`; it may return a function the
// shell calls when the operator leaves the page (to stop a live stream or a timer).

import { get, del, session, whenUnauthenticated, can } from './api.js';
import { h, replace, notice, errorText } from './dom.js';
import { renderLogin } from './login.js';

/** The sections: route, label, module, the scope that shows it in the navigation. */
const SECTIONS = [
  { path: 'dashboard', label: 'Dashboard', module: 'dashboard', need: 'events:read' },
  { path: 'licenses', label: 'Licenses', module: 'licenses', need: 'licenses:read' },
  { path: 'customers', label: 'Customers', module: 'customers', need: 'licenses:read' },
  { path: 'products', label: 'Products', module: 'products', need: 'licenses:read' },
  { path: 'events', label: 'Events', module: 'events', need: 'events:read' },
  { path: 'audit', label: 'Audit', module: 'audit', need: 'audit:read' },
  { path: 'webhooks', label: 'Webhooks', module: 'webhooks', need: 'webhooks:write' },
  { path: 'plugins', label: 'Plugins', module: 'plugins', need: 'security:read' },
  { path: 'security', label: 'Security', module: 'security', need: 'security:read' },
  { path: 'operators', label: 'Operators & keys', module: 'operators', need: 'operators:write' },
];

/** Detail routes: `#/licenses/KEY` → module `license` with params `[KEY]`. */
const DETAILS = {
  licenses: 'license',
  customers: 'customer',
  webhooks: 'webhook',
};

let leave = null;
let rendering = 0;
let expiry = null;

/** Longest delay `setTimeout` takes (2^31 - 1 ms, about 24.8 days). */
const MAX_DELAY_MS = 2 ** 31 - 1;

/**
 * Goes back to the login page the moment the session's token expires, so a page that does
 * not poll (a form, a listing) does not stay on screen as if still logged in. The server
 * refuses the token from then on regardless.
 */
function armExpiry() {
  clearTimeout(expiry);
  const s = session.current;
  if (!s || !s.expires_at) return;
  const left = s.expires_at * 1000 - Date.now();
  expiry = setTimeout(() => {
    if (session.current !== s) return;
    if (s.expires_at * 1000 > Date.now()) { armExpiry(); return; }
    session.current = null;
    showLogin('Your session expired. Log in again.');
  }, Math.min(Math.max(0, left), MAX_DELAY_MS));
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(qs || '') };
}

/** Goes to a route, e.g. `navigate('licenses', {q: 'acme'})` or `navigate('licenses/KEY')`. */
export function navigate(path, query = null) {
  const qs = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== '' && v != null)).toString() : '';
  const target = `#/${path}${qs ? `?${qs}` : ''}`;
  if (location.hash === target) route();
  else location.hash = target;
}

function buildNav(current) {
  const nav = document.getElementById('nav');
  const items = SECTIONS.filter((s) => can(s.need)).map((s) =>
    h('a', {
      href: `#/${s.path}`,
      'aria-current': s.path === current ? 'page' : null,
      onclick: () => closeMenu(),
    }, s.label));
  replace(nav, h('ul', {}, items.map((a) => h('li', {}, a))));
  const who = document.getElementById('who');
  const s = session.current;
  replace(who,
    h('span', { class: 'user', title: `Session until ${new Date(s.expires_at * 1000).toLocaleString()}` },
      s.username, ' ', h('span', { class: 'role' }, s.role === 'super_admin' ? 'super admin' : 'admin')),
    h('button', { type: 'button', class: 'link', onclick: logout }, 'Log out'));
  document.getElementById('top').hidden = false;
  armExpiry();
}

function closeMenu() {
  const toggle = document.getElementById('menu-toggle');
  toggle.setAttribute('aria-expanded', 'false');
  document.getElementById('nav').classList.remove('open');
}

async function logout() {
  try {
    await del('/api/panel/session');
  } catch {
    // Logged out already (expired): the login page is where we go anyway.
  }
  session.current = null;
  showLogin('You are logged out.');
}

function showLogin(message = null) {
  clearTimeout(expiry);
  if (leave) { leave(); leave = null; }
  document.getElementById('top').hidden = true;
  const main = document.getElementById('main');
  const back = location.hash.startsWith('#/login') ? '' : location.hash;
  if (!location.hash.startsWith('#/login')) history.replaceState(null, '', '#/login');
  renderLogin(main, message, async (s) => {
    session.current = s;
    location.hash = back && back !== '#/' ? back : '#/dashboard';
    await route();
  });
}

async function route() {
  const ticket = ++rendering;
  if (leave) { leave(); leave = null; }
  const main = document.getElementById('main');
  if (!session.current) {
    try {
      session.current = await get('/api/panel/session');
    } catch {
      session.current = null;
    }
  }
  if (!session.current) {
    showLogin();
    return;
  }
  let { parts, query } = parseHash();
  if (parts.length === 0 || parts[0] === 'login') {
    history.replaceState(null, '', '#/dashboard');
    parts = ['dashboard'];
  }
  const section = SECTIONS.find((s) => s.path === parts[0]);
  buildNav(section?.path);
  if (!section) {
    replace(main, h('h1', {}, 'Not found'), notice('error', `There is no page “${parts.join('/')}”.`));
    return;
  }
  const module = parts.length > 1 && DETAILS[section.path] ? DETAILS[section.path] : section.module;
  const params = parts.slice(1);
  replace(main, h('p', { class: 'loading' }, 'Loading…'));
  try {
    const page = await import(`./pages/${module}.js`);
    if (ticket !== rendering) return;
    const content = h('div', { class: 'page', dataset: { page: module } });
    replace(main, content);
    const cleanup = await page.render(content, params, query);
    if (ticket !== rendering) {
      if (typeof cleanup === 'function') cleanup();
      return;
    }
    leave = typeof cleanup === 'function' ? cleanup : null;
    const heading = content.querySelector('h1');
    if (heading) document.title = `${heading.textContent} · Tessera`;
    main.focus({ preventScroll: true });
  } catch (e) {
    if (ticket !== rendering) return;
    if (e?.status === 401) return; // the login page is on its way
    replace(main, h('h1', {}, section.label), notice('error', errorText(e)));
  }
}

whenUnauthenticated((message) => showLogin(message || 'Your session ended. Log in again.'));

document.getElementById('menu-toggle').addEventListener('click', (e) => {
  const open = e.currentTarget.getAttribute('aria-expanded') !== 'true';
  e.currentTarget.setAttribute('aria-expanded', String(open));
  document.getElementById('nav').classList.toggle('open', open);
});
window.addEventListener('hashchange', route);
route();
