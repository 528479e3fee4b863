// The operator's day on the panel, in Debian's chromium driven by playwright-core.
// Run by tests/tests/panel_browser.rs, which starts the server and passes:
//   BASE_URL, API_KEY (client software's key), SUPER_ADMIN, ADMIN, PASSWORD, CHROMIUM, OUT_DIR.
// Every step prints what it checks; the first failure ends the run with its reason and a
// screenshot named failure.png.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (tests/tests/panel_browser.rs sets it)`);
  return v;
};
const BASE = env('BASE_URL');
const API_KEY = env('API_KEY');
const ROOT = env('SUPER_ADMIN');
const ADMIN = env('ADMIN');
const PASSWORD = env('PASSWORD');
const OUT = env('OUT_DIR');

const step = (s) => console.log(`panel: ${s}`);

/** A client-software call (the system API key), as client programs make them. */
async function client(path, body) {
  const resp = await fetch(BASE + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-API-Key': API_KEY },
    body: JSON.stringify(body),
  });
  const json = await resp.json().catch(() => null);
  return { status: resp.status, body: json };
}

async function startSession(key, machine) {
  const a = await client('/api/license/activate', { license_key: key, hardware_hash: machine, machine_name: machine });
  assert.equal(a.status, 200, `activate: ${JSON.stringify(a.body)}`);
  const s = await client('/api/license/session/start', { license_key: key, machine_id: machine, hardware_hash: machine, version: '1.0.0' });
  assert.equal(s.status, 200, `session start: ${JSON.stringify(s.body)}`);
  return s.body.session_token;
}

const heartbeat = (key, token) => client('/api/license/session/heartbeat', { license_key: key, session_token: token });

/** Polls `fn` until it returns a truthy value (or throws the last error) within `ms`. */
async function until(what, fn, ms = 15000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const problems = [];
let page;

function watch(p, who) {
  p.on('pageerror', (e) => problems.push(`${who}: page error: ${e.message}`));
  p.on('console', (m) => {
    const t = m.text();
    // A refused request is logged by the browser as an error too (a 4xx the page expects);
    // what must never happen is a script error or a policy violation.
    if (m.type() === 'error' && /Content Security Policy|Uncaught|SyntaxError|TypeError|ReferenceError/.test(t)) {
      problems.push(`${who}: console: ${t}`);
    }
  });
  p.on('request', (r) => {
    const u = new URL(r.url());
    if (u.origin !== new URL(BASE).origin && u.protocol !== 'data:') problems.push(`${who}: request to another origin: ${r.url()}`);
  });
}

async function shot(name, p = page) {
  await p.screenshot({ path: join(OUT, `${name}.png`), fullPage: false });
}

/** Goes to `hash` and waits until the page module `module` has rendered its heading
 * without an error notice (a page that failed to load its data shows one). */
async function go(p, hash, module) {
  await p.evaluate((h) => { location.hash = h; }, hash);
  const page = p.locator(`main .page[data-page="${module}"]`);
  await page.locator('h1').first().waitFor();
  await p.waitForLoadState('networkidle').catch(() => {});
  const errors = await page.locator('.notice-error').allTextContents();
  assert.deepEqual(errors, [], `${hash} shows an error`);
  return page;
}

async function logIn(p, username, password = PASSWORD) {
  await p.goto(`${BASE}/panel/`);
  await p.getByLabel('Username').fill(username);
  await p.getByLabel('Password').fill(password);
  const sent = p.waitForRequest((r) => r.url().endsWith('/api/panel/session') && r.method() === 'POST');
  await p.getByRole('button', { name: 'Log in' }).click();
  const body = JSON.parse((await sent).postData() || '{}');
  assert.ok(body.encrypted_password && body.login_nonce && body.key_id && body.challenge_ts, 'seed 001 body');
  assert.equal(body.password, undefined, 'no plaintext password field');
  assert.ok(!JSON.stringify(body).includes(password), 'the password never leaves the browser in the clear');
  await p.getByRole('navigation', { name: 'Sections' }).waitFor();
}

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  watch(page, ROOT);

  step('the login page, then the encrypted login (WebCrypto RSA-OAEP)');
  await page.goto(`${BASE}/panel/`);
  await page.getByLabel('Username').waitFor();
  await shot('login');
  await page.getByLabel('Username').fill(ROOT);
  await page.getByLabel('Password').fill('wrong password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: /wrong/i }).waitFor();
  await logIn(page, ROOT);
  const cookies = await context.cookies();
  const c = cookies.find((k) => k.name === 'tessera_panel');
  assert.ok(c && c.httpOnly && c.sameSite === 'Strict', `cookie: ${JSON.stringify(cookies)}`);
  assert.equal(await page.evaluate(() => document.cookie.includes('tessera_panel')), false, 'scripts cannot read the cookie');

  step('create a license from the licenses page');
  await go(page, '#/licenses', 'licenses');
  await page.getByText('New license', { exact: true }).click();
  await page.getByLabel('Customer name').fill('Browser Test Co');
  await page.getByLabel('Valid for (days)').fill('10');
  await page.getByLabel('Devices at once').fill('3');
  await page.getByLabel('Sessions at once').fill('3');
  await page.getByRole('button', { name: 'Issue license' }).click();
  const keyLink = page.locator('.notice-ok a.mono').first();
  await keyLink.waitFor();
  const key = (await keyLink.textContent()).trim();
  assert.match(key, /^[A-Z0-9-]{8,}$/, `issued key ${key}`);
  step(`issued ${key}`);

  step('a client starts a session: the dashboard shows it without a reload');
  await go(page, '#/dashboard', 'dashboard');
  const live = page.getByTestId('live-sessions');
  await until('the dashboard numbers', async () => /\d/.test((await live.textContent()) || ''));
  const before = Number(((await live.textContent()) || '0').replace(/[^\d]/g, ''));
  await page.evaluate(() => { window.__notReloaded = true; });
  const first = await startSession(key, 'browser-machine-1');
  await until('live sessions to go up on the dashboard', async () =>
    Number(((await live.textContent()) || '0').replace(/[^\d]/g, '')) > before);
  await page.getByTestId('dashboard-events').getByText('session.started').first().waitFor();
  assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the dashboard was not reloaded');
  await shot('dashboard');

  step('the license page shows a second session the moment it starts');
  const licensePage = await go(page, `#/licenses/${encodeURIComponent(key)}`, 'license');
  const rows = page.getByTestId('license-sessions').locator('[data-session-id]');
  await until('the first session on the license page', async () => (await rows.count()) === 1);
  await page.evaluate(() => { window.__notReloaded = true; });
  const second = await startSession(key, 'browser-machine-2');
  await until('the second session to appear', async () => (await rows.count()) === 2);
  await licensePage.getByTestId('license-sessions-count').filter({ hasText: /^2 live of 3$/ }).waitFor();
  assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the license page was not reloaded');
  await shot('license');

  step('kick one session: it ends for its client');
  await rows.first().getByRole('button', { name: /^Kick/ }).click();
  const dialog = page.getByRole('dialog');
  if (await dialog.isVisible().catch(() => false)) {
    await dialog.getByRole('button', { name: /^Kick/ }).click();
  }
  await until('the kicked session to leave the list', async () => (await rows.count()) === 1);
  const beats = await Promise.all([heartbeat(key, first), heartbeat(key, second)]);
  const statuses = beats.map((b) => b.status).sort();
  assert.deepEqual(statuses, [200, 410], `one kicked, one alive: ${JSON.stringify(beats)}`);
  const alive = beats[0].status === 200 ? first : second;

  step('suspend the license: its session ends with reason `suspended`');
  await page.getByRole('button', { name: 'Suspend', exact: true }).click();
  if (await dialog.isVisible().catch(() => false)) {
    await dialog.getByRole('button', { name: 'Suspend', exact: true }).click();
  }
  await until('the sessions list to empty', async () => (await rows.count()) === 0);
  const ended = await until('the session.ended event with reason suspended', async () => {
    const r = await page.request.get(`${BASE}/api/admin/events`, { params: { license: key, type: 'session.ended' } });
    const events = (await r.json()).events || [];
    return events.find((e) => e.data?.reason === 'suspended');
  });
  assert.equal(ended.data.reason, 'suspended');
  const refused = await heartbeat(key, alive);
  assert.notEqual(refused.status, 200, `the suspended session's heartbeat is refused: ${JSON.stringify(refused)}`);
  // The panel itself shows why the session ended, in the license's live events.
  await licensePage.getByText('session ended (suspended)').first().waitFor();
  await licensePage.locator('.page-head .badge').filter({ hasText: 'suspended' }).waitFor();

  step('a bulk dry run, then a confirmed bulk renew');
  await page.getByRole('button', { name: 'Resume', exact: true }).click();
  await licensePage.locator('.page-head .badge').filter({ hasText: 'active' }).waitFor();
  await go(page, `#/licenses?q=${encodeURIComponent('Browser Test Co')}`, 'licenses');
  await page.getByLabel('Every license matching the filters').check();
  await page.getByLabel('Bulk action', { exact: true }).selectOption('renew');
  await page.getByLabel('Days to add').fill('30');
  await page.getByRole('button', { name: 'Preview' }).click();
  const preview = page.getByTestId('bulk-preview');
  await preview.waitFor();
  assert.match(await preview.textContent(), /(^|\D)1 license(?!s)/, 'the dry run names one license');
  await shot('licenses');
  await page.getByRole('button', { name: 'Apply', exact: true }).click();
  await dialog.waitFor();
  await dialog.getByRole('button', { name: /^Renew/ }).click();
  await page.locator('.notice-ok').filter({ hasText: /renewed/ }).first().waitFor();
  const shown = await page.request.get(`${BASE}/api/admin/licenses/${encodeURIComponent(key)}`);
  const lic = await shown.json();
  const days = (Date.parse(lic.valid_until) - Date.now()) / 86400000;
  assert.ok(days > 38 && days < 42, `10 days issued + 30 renewed: ${lic.valid_until}`);

  step('publish a release: version/check reports it');
  await go(page, '#/products', 'products');
  const publish = page.locator('form').filter({ has: page.getByRole('button', { name: 'Publish release' }) }).first();
  await publish.getByLabel('Version').fill('7.3.0');
  await publish.getByRole('button', { name: 'Publish release' }).click();
  await page.getByText('7.3.0').first().waitFor();
  await shot('products');
  const check = await until('version/check to offer 7.3.0', async () => {
    const r = await client('/api/version/check', { current_version: '1.0.0', license_key: key });
    return r.status === 200 && JSON.stringify(r.body).includes('7.3.0') ? r : null;
  });
  step(`version/check: ${JSON.stringify(check.body)}`);

  step('every page renders without an error (screenshots at 1280x800)');
  const rootCsrf = (await (await page.request.get(`${BASE}/api/panel/session`)).json()).csrf_token;
  const asPanel = { 'X-CSRF-Token': rootCsrf, Origin: BASE };
  const customer = await page.request.post(`${BASE}/api/admin/customers`, {
    data: { name: 'Browser Test Co', email: 'ops@browser.test' }, headers: asPanel,
  });
  assert.equal(customer.status(), 201, await customer.text());
  const customerId = (await customer.json()).id;
  // A receiver on loopback that refuses connections: deliveries fail and retry, nothing
  // leaves the machine (the test server allows private targets).
  const hook = await page.request.post(`${BASE}/api/admin/webhooks`, {
    data: { url: 'http://127.0.0.1:9/hook', event_types: ['session.'] }, headers: asPanel,
  });
  assert.equal(hook.status(), 201, await hook.text());
  const hookId = (await hook.json()).id;
  for (const [name, hash, module] of [
    ['events', '#/events', 'events'],
    ['audit', '#/audit', 'audit'],
    ['customers', '#/customers', 'customers'],
    ['customer', `#/customers/${customerId}`, 'customer'],
    ['webhooks', '#/webhooks', 'webhooks'],
    ['webhook', `#/webhooks/${hookId}`, 'webhook'],
    ['plugins', '#/plugins', 'plugins'],
    ['security', '#/security', 'security'],
    ['operators', '#/operators', 'operators'],
  ]) {
    await go(page, hash, module);
    await shot(name);
  }
  await go(page, '#/events', 'events');
  await page.getByTestId('events-tail').waitFor();

  step('a phone-width dashboard in dark mode');
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark' });
  await phone.addCookies(cookies);
  const small = await phone.newPage();
  watch(small, `${ROOT} (phone)`);
  await small.goto(`${BASE}/panel/#/dashboard`);
  await small.getByTestId('live-sessions').waitFor();
  await small.getByRole('button', { name: 'Menu' }).waitFor();
  const overflow = await small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no sideways scrolling at 390 px (${overflow} px too wide)`);
  await shot('dashboard-phone-dark', small);
  await phone.close();

  step('phone-width licenses and license pages in light mode: tables stack, nothing scrolls sideways');
  const phoneLight = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'light' });
  await phoneLight.addCookies(cookies);
  const narrow = await phoneLight.newPage();
  watch(narrow, `${ROOT} (phone, light)`);
  await narrow.goto(`${BASE}/panel/#/licenses`);
  for (const [name, hash, module] of [
    ['licenses-phone-light', '#/licenses', 'licenses'],
    ['license-phone-light', `#/licenses/${encodeURIComponent(key)}`, 'license'],
  ]) {
    await go(narrow, hash, module);
    const wide = await narrow.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(wide <= 1, `${hash}: no sideways scrolling at 390 px (${wide} px too wide)`);
    await shot(name, narrow);
  }
  const background = await narrow.evaluate(() => getComputedStyle(document.body).backgroundColor);
  await phoneLight.close();
  const darkCheck = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark' });
  await darkCheck.addCookies(cookies);
  const darkPage = await darkCheck.newPage();
  await darkPage.goto(`${BASE}/panel/#/licenses`);
  await darkPage.locator('main .page[data-page="licenses"] h1').waitFor();
  const darkBackground = await darkPage.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(background, darkBackground, 'light and dark follow the system setting');
  await darkCheck.close();

  step('keyboard only: log in with typing and Enter, reach a section with Tab and Enter');
  const keys = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  // A clock the test can move, to see the session's expiry without waiting hours for it.
  await keys.clock.install();
  const kb = await keys.newPage();
  watch(kb, `${ROOT} (keyboard)`);
  await kb.goto(`${BASE}/panel/`);
  await kb.getByLabel('Username').waitFor();
  assert.equal(await kb.evaluate(() => document.activeElement?.getAttribute('name')), 'username', 'the login page focuses the username');
  await kb.keyboard.type(ROOT);
  await kb.keyboard.press('Tab');
  assert.equal(await kb.evaluate(() => document.activeElement?.getAttribute('name')), 'password', 'Tab moves to the password');
  await kb.keyboard.type(PASSWORD);
  await kb.keyboard.press('Enter');
  await kb.getByRole('navigation', { name: 'Sections' }).waitFor();
  await kb.locator('main .page[data-page="dashboard"] h1').waitFor();
  let focused = '';
  for (let i = 0; i < 30 && focused !== 'Licenses'; i += 1) {
    await kb.keyboard.press('Shift+Tab');
    focused = await kb.evaluate(() => document.activeElement?.textContent?.trim() || '');
  }
  assert.equal(focused, 'Licenses', 'the sections are reachable with the keyboard');
  await kb.keyboard.press('Enter');
  await kb.locator('main .page[data-page="licenses"] h1').waitFor();

  step('the session expiring sends the page back to the login page, without a click');
  const me = await (await kb.request.get(`${BASE}/api/panel/session`)).json();
  assert.ok(me.expires_at, `the session has an expiry: ${JSON.stringify(me)}`);
  await kb.clock.fastForward(me.expires_at * 1000 - Date.now() + 60_000);
  await kb.getByRole('button', { name: 'Log in' }).waitFor();
  await kb.getByText(/session expired/i).first().waitFor();
  await keys.close();

  step("a super admin sets an admin's password from the panel");
  const NEW_PASSWORD = 'a brand new passphrase for alice';
  const ops = await go(page, '#/operators', 'operators');
  await ops.getByText('Set an operator’s password').click();
  await ops.getByLabel('Operator', { exact: true }).fill(ADMIN);
  await ops.getByLabel('New password', { exact: true }).fill(NEW_PASSWORD);
  await ops.getByLabel('Repeat the new password').fill(NEW_PASSWORD);
  await ops.getByRole('button', { name: 'Set password', exact: true }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Set password', exact: true }).click();
  await ops.locator('.notice-ok').filter({ hasText: 'has a new password' }).waitFor();

  step('an admin sees no operator or emergency controls, and the server refuses them anyway');
  const other = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const adminPage = await other.newPage();
  watch(adminPage, ADMIN);
  await logIn(adminPage, ADMIN, NEW_PASSWORD);
  const nav = adminPage.getByRole('navigation', { name: 'Sections' });
  assert.equal(await nav.getByRole('link', { name: 'Operators & keys' }).count(), 0);
  assert.equal(await nav.getByRole('link', { name: 'Licenses' }).count(), 1);
  const adminSecurity = await go(adminPage, '#/security', 'security');
  await adminSecurity.getByTestId('emergency-state').filter({ hasText: 'Activations are accepted.' }).waitFor();
  assert.equal(await adminSecurity.getByRole('button', { name: 'Freeze activations', exact: true }).count(), 0,
    'an admin sees the emergency state but not its controls');
  const csrf = (await (await adminPage.request.get(`${BASE}/api/panel/session`)).json()).csrf_token;
  const emergency = await adminPage.request.post(`${BASE}/api/admin/emergency`, {
    data: { action: 'freeze_activations' },
    headers: { 'X-CSRF-Token': csrf, Origin: BASE },
  });
  assert.equal(emergency.status(), 403, 'the server refuses an admin the emergency controls');
  assert.equal((await emergency.json()).code, 'FORBIDDEN_ROLE');
  const forged = await adminPage.request.post(`${BASE}/api/admin/licenses`, { data: { owner: 'forged' } });
  assert.equal(forged.status(), 403, 'a change without the CSRF value is refused');
  assert.equal((await forged.json()).code, 'CSRF_FAILED');

  step('forced re-authentication sends the admin back to the login page');
  const forced = await page.request.post(`${BASE}/api/admin/emergency`, {
    data: { action: 'force_reauth_non_admin' },
    headers: asPanel,
  });
  assert.equal(forced.status(), 200, await forced.text());
  await adminPage.evaluate(() => { location.hash = '#/licenses'; });
  await adminPage.getByRole('button', { name: 'Log in' }).waitFor();
  await other.close();

  step('log out: the session ends on the server too');
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('button', { name: 'Log in' }).waitFor();
  const after = await page.request.get(`${BASE}/api/panel/session`);
  assert.equal(after.status(), 401);

  assert.deepEqual(problems, [], 'no script errors, policy violations or third-party requests');
  step('all steps passed');
  await browser.close();
} catch (e) {
  console.error(`panel: FAILED: ${e.stack || e}`);
  if (problems.length) console.error(`panel: also seen:\n  ${problems.join('\n  ')}`);
  try {
    if (page) await page.screenshot({ path: join(OUT, 'failure.png'), fullPage: true });
  } catch {
    // The page is gone; the message above says why.
  }
  await browser.close();
  process.exit(1);
}
