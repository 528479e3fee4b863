// The dashboard: this server's numbers now (live sessions, heartbeats per second,
// activations, refusals by code, bans), a chart of the last hour, and the latest events.
// Live without a reload: the overview is polled every 2 s (each poll adds a point to the
// chart) and the event stream shows each event the moment it is stored, bumping the
// counters it concerns until the next poll gives the exact figures.

import uPlot from '../../vendor/uPlot.esm.js';
import { get, stream } from '../api.js';
import { h, replace, fmtNum, notice, errorText, table } from '../dom.js';
import { eventList, liveState } from './_shared_licenses.js';

const POLL_MS = 2000;
const WINDOW_SECS = 3600;
const TAIL = 20;
const RATE_WINDOW_MS = 10_000;

/** Words for the refusal codes operators meet most; others show as their code. */
const CODE_WORDS = {
  SESSION_LIMIT_REACHED: 'Session limit reached',
  DEVICE_LIMIT_REACHED: 'Device limit reached',
  ACTIVATION_LIMIT_REACHED: 'Activation limit reached',
  NOT_ACTIVATED: 'Device not activated',
  LICENSE_SUSPENDED: 'License suspended',
  LICENSE_REVOKED: 'License revoked',
  LICENSE_BANNED: 'License banned',
  LICENSE_EXPIRED: 'License expired',
  LICENSE_NOT_FOUND: 'Unknown license',
  INVALID_API_KEY: 'Wrong API key',
  SESSION_EXPIRED: 'Session expired',
  SESSION_NOT_FOUND: 'Unknown session',
  RATE_LIMITED: 'Rate limited',
  POLICY_DENIED: 'Denied by policy',
  ACTIVATIONS_FROZEN: 'Activations frozen',
};

function uptimeText(secs) {
  const s = Math.max(0, Math.floor(secs || 0));
  const d = Math.floor(s / 86400);
  const hrs = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${hrs} h`;
  if (hrs) return `${hrs} h ${m} min`;
  if (m) return `${m} min`;
  return `${s} s`;
}

/** Colours of the chart, read from the page's CSS variables (light or dark). */
function palette() {
  const css = getComputedStyle(document.documentElement);
  const v = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
  return {
    text: v('--text', '#1b1f24'),
    muted: v('--muted', '#5b6472'),
    border: v('--border', '#d6dae1'),
    sessions: v('--accent', '#2f5fc4'),
    heartbeats: v('--ok', '#1c7c3c'),
  };
}

function chartOptions(width, colors) {
  const axis = (extra) => ({
    stroke: colors.muted,
    grid: { stroke: colors.border, width: 1 },
    ticks: { stroke: colors.border, width: 1 },
    ...extra,
  });
  const whole = (u, v) => (v == null ? '—' : fmtNum(v));
  return {
    width,
    height: width < 500 ? 200 : 260,
    cursor: { drag: { x: false, y: false } },
    scales: {
      // Always the whole hour up to now, also on a server up for a minute: the axis reads
      // as the last hour, and a new point moves the window with it.
      x: { time: true, range: () => { const now = Date.now() / 1000; return [now - WINDOW_SECS, now]; } },
      sessions: { range: (u, min, max) => [0, Math.max(4, Math.ceil(max * 1.15))] },
      heartbeats: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] },
    },
    series: [
      {},
      { label: 'Live sessions', scale: 'sessions', stroke: colors.sessions, width: 2, value: whole, points: { show: false } },
      { label: 'Heartbeats/s', scale: 'heartbeats', stroke: colors.heartbeats, width: 2, value: (u, v) => (v == null ? '—' : fmtNum(v, 1)), points: { show: false } },
    ],
    axes: [
      axis({}),
      axis({ scale: 'sessions', label: 'Live sessions', values: (u, splits) => splits.map((s) => fmtNum(s)) }),
      axis({ scale: 'heartbeats', side: 1, label: 'Heartbeats/s', grid: { show: false }, values: (u, splits) => splits.map((s) => fmtNum(s, 1)) }),
    ],
  };
}

function tile(label, testid) {
  const value = h('div', { class: 'value', 'data-testid': testid || null }, '—');
  const sub = h('div', { class: 'hint' });
  const el = h('div', { class: 'stat' }, h('div', { class: 'label' }, label), value, sub);
  return {
    el,
    set(v, digits = 0) { value.textContent = fmtNum(v, digits); },
    note(text) { sub.textContent = text || ''; },
  };
}

export async function render(main) {
  const state = liveState();
  const uptime = h('span', { class: 'muted' });
  const status = h('div', { class: 'status', 'aria-live': 'polite' });

  const tiles = {
    live: tile('Live sessions', 'live-sessions'),
    hbps: tile('Heartbeats / s'),
    activations: tile('Activations'),
    sessions: tile('Sessions started'),
    bans: tile('Bans by policy'),
    rejections: tile('Requests refused'),
    ws: tile('WebSocket connections'),
    memory: tile('Licenses in memory'),
  };
  tiles.activations.note('since this server started');
  tiles.sessions.note('since this server started');
  tiles.bans.note('since this server started');
  tiles.ws.note('session WebSockets open now');
  tiles.memory.note('held by license actors');

  const chartBox = h('div', { class: 'chart dash-chart', role: 'img', 'aria-label': 'Chart of live sessions and heartbeats per second over the last hour' });
  const chartNote = h('p', { class: 'hint' }, 'One point every 10 s over the last hour, then every 2 s while this page is open (heartbeats per second averaged over 10 s). Times in your zone.');
  const rejections = h('div', { class: 'dash-rejections' }, h('p', { class: 'loading' }, 'Loading…'));
  const tail = eventList({ max: TAIL, testid: 'dashboard-events', label: 'Latest events', empty: 'No events yet. They appear here the moment they happen.' });

  replace(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Dashboard'), state.el, uptime),
    h('p', { class: 'hint', 'data-testid': 'dashboard-scope' },
      'The numbers and the chart are those of the server answering this page (behind a load balancer, each server counts its own); the events are every server\'s.'),
    status,
    h('section', { 'aria-label': 'Numbers now' }, h('div', { class: 'grid dash-tiles' }, Object.values(tiles).map((t) => t.el))),
    h('section', { class: 'card', 'aria-labelledby': 'dash-chart-h' },
      h('h2', { id: 'dash-chart-h' }, 'Last hour'), chartBox, chartNote),
    h('div', { class: 'dash-columns' },
      h('section', { class: 'card', 'aria-labelledby': 'dash-rej-h' },
        h('h2', { id: 'dash-rej-h' }, 'Refusals by code'),
        h('p', { class: 'hint' }, 'Client requests this server answered with an error code, since it started and over the last hour (operators\' sign-in errors are in the audit log).'),
        rejections),
      h('section', { class: 'card dash-events', 'aria-labelledby': 'dash-ev-h' },
        h('div', { class: 'section-head' },
          h('h2', { id: 'dash-ev-h' }, 'Latest events'),
          h('a', { href: '#/events' }, 'All events')),
        tail.el)));

  // ---- numbers: the last poll plus what events said since ----
  let base = null; // the last polled sample
  let oldest = null; // the oldest sample of the hour (for "last hour" figures)
  let bumps = []; // {at, kind, code} from events newer than the last poll

  const showNumbers = () => {
    if (!base) return;
    const extra = { activations: 0, sessions: 0, live: 0, codes: {} };
    for (const b of bumps) {
      if (b.kind === 'activated') extra.activations += 1;
      else if (b.kind === 'started') { extra.sessions += 1; extra.live += 1; }
      else if (b.kind === 'ended') extra.live -= 1;
      else if (b.kind === 'rejected') extra.codes[b.code] = (extra.codes[b.code] || 0) + 1;
    }
    tiles.live.set(Math.max(0, base.live_sessions + extra.live));
    tiles.hbps.set(lastRate, 1);
    tiles.activations.set(base.activations_total + extra.activations);
    tiles.sessions.set(base.sessions_started_total + extra.sessions);
    tiles.bans.set(base.bans_total);
    tiles.ws.set(base.websocket_connections);
    tiles.memory.set(base.licenses_in_memory);
    const codes = { ...(base.rejections_by_code || {}) };
    for (const [c, n] of Object.entries(extra.codes)) codes[c] = (codes[c] || 0) + n;
    const total = Object.values(codes).reduce((a, b) => a + b, 0);
    tiles.rejections.set(total);
    tiles.rejections.note('since this server started');
    const hourAgo = oldest?.rejections_by_code || {};
    const rows = Object.entries(codes)
      .map(([code, n]) => ({ code, n, hour: Math.max(0, n - (hourAgo[code] || 0)) }))
      .sort((a, b) => b.n - a.n || a.code.localeCompare(b.code));
    replace(rejections, table([
      { label: 'Code', render: (r) => h('span', {}, h('code', {}, r.code), CODE_WORDS[r.code] ? h('span', { class: 'muted' }, ` ${CODE_WORDS[r.code]}`) : null) },
      { label: 'Since start', class: 'num', render: (r) => fmtNum(r.n) },
      { label: 'Last hour', class: 'num', render: (r) => fmtNum(r.hour) },
    ], rows, { empty: 'No request has been refused since this server started.' }));
  };

  // ---- the chart ----
  const data = [[], [], []];
  let chart = null;
  let lastRate = 0;
  const polls = []; // {at_ms, heartbeats_total} of the last polls, for the rate

  const pushPoint = (atMs, live, rate) => {
    const x = atMs / 1000;
    const xs = data[0];
    if (xs.length && x <= xs[xs.length - 1]) return;
    xs.push(x);
    data[1].push(live);
    data[2].push(rate);
    const from = x - WINDOW_SECS;
    let cut = 0;
    while (cut < xs.length && xs[cut] < from) cut += 1;
    if (cut) data.forEach((a) => a.splice(0, cut));
  };

  const chartWidth = () => Math.max(240, Math.floor(chartBox.clientWidth || main.clientWidth || 600));
  const buildChart = () => {
    if (chart) chart.destroy();
    replace(chartBox);
    chart = new uPlot(chartOptions(chartWidth(), palette()), data, chartBox);
  };
  const redraw = () => {
    if (chart) chart.setData(data);
    const n = data[0].length;
    if (n) {
      chartBox.setAttribute('aria-label',
        `Chart of the last hour: ${fmtNum(data[1][n - 1])} live sessions and ${fmtNum(data[2][n - 1], 1)} heartbeats per second now.`);
    }
  };

  let resizeTimer = null;
  const onResize = () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (!chart) return;
      const w = chartWidth();
      const height = w < 500 ? 200 : 260;
      if (Math.abs(chart.width - w) > 1 || chart.height !== height) chart.setSize({ width: w, height });
    }, 80);
  };
  window.addEventListener('resize', onResize);
  const observer = typeof ResizeObserver === 'function' ? new ResizeObserver(onResize) : null;
  observer?.observe(chartBox);
  // Light/dark switched while the page is open: the axes and lines take the new colours.
  const scheme = matchMedia('(prefers-color-scheme: dark)');
  const onScheme = () => { if (chart) buildChart(); };
  scheme.addEventListener('change', onScheme);

  // ---- polling ----
  let stopped = false;
  let pollTimer = null;

  const apply = (reply, first) => {
    const now = reply.now;
    uptime.textContent = `Up ${uptimeText(reply.uptime_secs)}`;
    const history = reply.history || [];
    if (history.length) oldest = history[0];
    if (first) {
      oldest = history[0] || now;
      for (const s of history) pushPoint(s.at_ms, s.live_sessions, s.heartbeats_per_sec);
      // The last samples of the hour start the rate's window.
      for (const s of history.slice(-2)) polls.push({ at_ms: s.at_ms, heartbeats_total: s.heartbeats_total });
    }
    // Heartbeats per second over at least the last 10 s (a single 2 s step is too jumpy):
    // measured from the newest earlier poll that is at least that old.
    while (polls.length > 1 && now.at_ms - polls[1].at_ms >= RATE_WINDOW_MS) polls.shift();
    const ref = polls[0];
    const secs = ref ? (now.at_ms - ref.at_ms) / 1000 : 0;
    const diff = ref ? now.heartbeats_total - ref.heartbeats_total : 0;
    if (diff < 0) polls.length = 0; // a counter that went back (a restart) gives no rate
    if (secs >= 1 && diff >= 0) lastRate = diff / secs;
    else if (first) lastRate = now.heartbeats_per_sec || 0;
    pushPoint(now.at_ms, now.live_sessions, lastRate);
    polls.push({ at_ms: now.at_ms, heartbeats_total: now.heartbeats_total });
    base = now;
    bumps = bumps.filter((b) => b.at > now.at_ms);
    showNumbers();
    redraw();
  };

  const poll = async (first = false) => {
    try {
      const reply = await get('/api/admin/overview');
      if (stopped) return;
      apply(reply, first);
      if (first) buildChart();
      replace(status);
    } catch (e) {
      if (stopped) return;
      replace(status, notice('error', `The numbers could not be refreshed: ${errorText(e)} Trying again.`));
    }
    if (!stopped) pollTimer = setTimeout(() => poll(!chart), POLL_MS);
  };

  // ---- events ----
  const onEvent = (ev) => {
    if (stopped || !tail.add(ev)) return;
    const at = Date.parse(ev.created_at) || Date.now();
    if (base && at <= base.at_ms) return; // the last poll counted it already
    const kind = {
      'license.activated': 'activated',
      'session.started': 'started',
      'session.ended': 'ended',
      'session.rejected': 'rejected',
      'license.activation_rejected': 'rejected',
    }[ev.event_type];
    if (!kind) return;
    bumps.push({ at, kind, code: ev.data?.code || 'UNKNOWN' });
    showNumbers();
  };

  let stop = null;
  const startStream = async () => {
    let after = null;
    try {
      const recent = await get('/api/admin/events', { limit: TAIL });
      if (stopped) return;
      const events = recent?.events || [];
      tail.addOlder(events);
      after = events[0]?.id || null;
    } catch (e) {
      if (stopped) return;
      replace(status, notice('error', `The latest events could not be read: ${errorText(e)}`));
    }
    if (stopped) return;
    // Resume after the newest listed event, so none stored meanwhile is missed.
    stop = stream(after ? { last_event_id: after } : {}, onEvent, (s) => state.set(s));
  };

  await poll(true);
  startStream();

  return () => {
    stopped = true;
    clearTimeout(pollTimer);
    clearTimeout(resizeTimer);
    if (stop) stop();
    window.removeEventListener('resize', onResize);
    observer?.disconnect();
    scheme.removeEventListener('change', onScheme);
    if (chart) chart.destroy();
  };
}
