// moldlab engineer workspace, live floor: a tile per injection-moulding machine, every signal.
// Plain ES2020, no dependencies: it must run on a factory network with no internet.
'use strict';

const API_URL = '/api/v1/machines';
const PAGE_SIZE = 200; // the API's largest page
// The live socket follows the first MOLDLAB_LIVE_MAX_MACHINES machines by place (default 200):
// the page shows those, so that every tile it shows is kept live.
const MAX_MACHINES = 200;
const WS_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/live`;
const STALE_AFTER_S = 30;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;

// What the tiles show, in display order, with friendly labels. The engineering signals
// (heater outputs, screw position, alarm word, mould counter...) stay off the tiles.
const LABELS = {
  TempZone2: 'Barrel zone 2', TempZone3: 'Barrel zone 3', TempZone4: 'Barrel zone 4',
  TempNozzle: 'Nozzle', TempMould: 'Mould', TempOil: 'Hydraulic oil',
  MotorPower: 'Motor power',
  CounterShots: 'Shots', CounterGood: 'Good parts', CounterBad: 'Bad parts',
};
const LABEL_ORDER = Object.keys(LABELS);
const UNITS = { degC: '°C', '1': '' };
const STATES = {
  running: 'Running', idle: 'Idle', setup: 'Setup', planned_stop: 'Planned stop',
  unplanned_stop: 'Unplanned stop', fault: 'Fault', offline: 'Offline',
};
const QUALITY = { good: 'good', bad: 'bad', test: 'test sample' };

const fmtTemp = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const fmtCount = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const fmtOther = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const fmtCycle = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });

const $ = (id) => document.getElementById(id);
const grid = $('machines');
// A machine is its place, site/area/line/machine: two sites' imm-01 are two tiles.
const tiles = new Map(); // place -> { data, el, rows: Map(signal -> {row, val}) }

// ---------- small helpers ----------

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Set text; when it really changed (and is not the first render), flash the element.
function setText(node, text, flash = true) {
  if (node.textContent === text) return;
  const first = node.textContent === '';
  node.textContent = text;
  if (!flash || first) return;
  node.classList.add('changed');
  clearTimeout(node._flashTimer);
  node._flashTimer = setTimeout(() => node.classList.remove('changed'), 700);
}

function formatValue(name, value, unit) {
  if (value === null || value === undefined) return '—';
  if (typeof value !== 'number' || !Number.isFinite(value)) return String(value);
  if (unit === 'degC' || name.startsWith('Temp')) return fmtTemp.format(value);
  if (name.startsWith('Counter')) return fmtCount.format(Math.round(value));
  return fmtOther.format(value);
}

function parseTime(iso) {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? null : t;
}

function formatSince(iso) {
  const t = parseTime(iso);
  if (t === null) return '';
  const d = new Date(t);
  const hhmm = d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', hour12: false });
  const today = new Date().toDateString() === d.toDateString();
  return today ? `since ${hhmm}` : `since ${d.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })} ${hhmm}`;
}

function formatAge(seconds) {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} days`;
}

function signalOrder(a, b) {
  const ia = LABEL_ORDER.indexOf(a), ib = LABEL_ORDER.indexOf(b);
  if (ia !== -1 || ib !== -1) return (ia === -1 ? 1e9 : ia) - (ib === -1 ? 1e9 : ib);
  return a.localeCompare(b);
}

const byPlace = (a, b) => a.localeCompare(b, undefined, { numeric: true });

// ---------- tiles ----------

function createTile(place) {
  const tile = el('article', 'tile');
  const id = place.split('/').pop();
  tile.dataset.place = place;
  tile.dataset.machineId = id;
  const head = el('header', 'tile-head');
  const names = el('div', 'names');
  names.append(el('h2', 'mid', id), el('div', 'loc'));
  head.append(names, el('span', 'badge'));
  const meta = el('div', 'meta');
  meta.append(el('span', 'since'), el('span', 'seen'));
  const cycle = el('div', 'cycle');
  cycle.hidden = true;
  cycle.append(el('span', 'cycle-label', 'Last cycle'), el('span', 'cycle-time'), el('span', 'quality'));
  tile.append(head, meta, el('dl', 'signals'), cycle);

  // Keep tiles sorted by place, also for machines that appear later.
  const next = [...tiles.keys()].sort(byPlace).find((other) => byPlace(other, place) > 0);
  grid.insertBefore(tile, next ? tiles.get(next).el : null);
  const entry = { data: { place, machine_id: id, signals: {} }, el: tile, rows: new Map() };
  tiles.set(place, entry);
  return entry;
}

function renderTile(entry) {
  const { data, el: tile } = entry;
  const q = (sel) => tile.querySelector(sel);

  q('.loc').textContent = [data.site, data.area, data.line].filter(Boolean).join(' / ');
  const state = data.state || 'unknown';
  tile.dataset.state = state;
  const badge = q('.badge');
  badge.className = `badge state-${state}`;
  setText(badge, STATES[state] || (data.state ? data.state.replace(/_/g, ' ') : 'No data'));
  badge.title = data.state_reason || '';
  setText(q('.since'), formatSince(data.state_since), false);

  renderSignals(entry);

  const c = data.last_cycle;
  const cycle = q('.cycle');
  cycle.hidden = !c;
  if (c) {
    setText(q('.cycle-time'), typeof c.cycle_time_s === 'number' ? `${fmtCycle.format(c.cycle_time_s)} s` : '—');
    const quality = q('.quality');
    quality.className = `quality quality-${c.quality || 'unknown'}`;
    setText(quality, QUALITY[c.quality] || c.quality || '');
  }
  renderAge(entry);
}

function renderSignals(entry) {
  const list = entry.el.querySelector('.signals');
  const signals = entry.data.signals || {};
  const names = Object.keys(signals).filter((n) => n in LABELS).sort(signalOrder);
  // Rebuild rows only when the set of signals changes; otherwise update in place.
  if (names.join() !== [...entry.rows.keys()].join()) {
    const old = entry.rows;
    entry.rows = new Map();
    list.replaceChildren();
    for (const name of names) {
      const row = old.get(name) || makeRow(name);
      entry.rows.set(name, row);
      list.append(row.row);
    }
  }
  for (const name of names) {
    const s = signals[name] || {};
    const row = entry.rows.get(name);
    setText(row.val, formatValue(name, s.value, s.unit));
    row.unit.textContent = s.unit in UNITS ? UNITS[s.unit] : (s.unit || '');
  }
}

function makeRow(name) {
  const row = el('div', 'sig');
  const val = el('span', 'val');
  val.dataset.signal = name;
  const unit = el('span', 'unit');
  const dd = el('dd');
  dd.append(val, unit);
  row.append(el('dt', 'label', LABELS[name] || name), dd);
  return { row, val, unit };
}

function renderAge(entry) {
  const seen = entry.el.querySelector('.seen');
  const t = parseTime(entry.data.last_seen);
  if (t === null) {
    seen.textContent = 'never seen';
    seen.classList.add('stale');
    entry.el.classList.add('is-stale');
    return;
  }
  const age = Math.max(0, Math.round((Date.now() - t) / 1000));
  const stale = age > STALE_AFTER_S;
  seen.textContent = `${stale ? '⚠ ' : ''}last seen ${formatAge(age)} ago`;
  seen.classList.toggle('stale', stale);
  entry.el.classList.toggle('is-stale', stale);
}

// ---------- state: snapshot and merge ----------

function mergeMachine(update, replace = false) {
  if (!update || !update.place) return;
  const entry = tiles.get(update.place) || createTile(update.place);
  const data = replace ? { place: update.place, signals: {} } : entry.data;
  for (const [key, value] of Object.entries(update)) {
    if (key === 'signals') continue;
    data[key] = value;
  }
  data.signals = data.signals || {};
  for (const [name, sig] of Object.entries(update.signals || {})) {
    if (sig === null) delete data.signals[name];
    else data.signals[name] = sig;
  }
  entry.data = data;
  renderTile(entry);
}

function applySnapshot(machines) {
  const present = new Set(machines.map((m) => m.place));
  for (const [id, entry] of tiles) {
    if (!present.has(id)) { entry.el.remove(); tiles.delete(id); }
  }
  machines.forEach((m) => mergeMachine(m, true));
  const empty = $('empty');
  empty.textContent = 'No machines are reporting yet — waiting for data…';
  empty.hidden = tiles.size > 0;
}

function showBanner(text) {
  const banner = $('banner');
  banner.textContent = text || '';
  banner.hidden = !text;
}

// Every machine the page shows, a page at a time: each response says the `next` page's cursor.
async function fetchMachines() {
  const machines = [];
  let after = null;
  do {
    const url = new URL(API_URL, location.href);
    url.searchParams.set('limit', String(Math.min(PAGE_SIZE, MAX_MACHINES - machines.length)));
    if (after) url.searchParams.set('after', after);
    const res = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
    if (res.status === 401) { // the session ended: log in again, then come back here
      location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
      throw new Error('logged out');
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = await res.json();
    machines.push(...(Array.isArray(body.machines) ? body.machines : []));
    after = typeof body.next === 'string' ? body.next : null;
  } while (after && machines.length < MAX_MACHINES);
  return machines;
}

async function loadSnapshot() {
  try {
    applySnapshot(await fetchMachines());
    showBanner('');
    return true;
  } catch (err) {
    console.warn('moldlab: snapshot failed', err);
    showBanner('Cannot reach the moldlab API — retrying');
    if (tiles.size === 0) $('empty').textContent = 'Waiting for the moldlab API…';
    return false;
  }
}

// ---------- connection ----------

let attempt = 0;
let socket = null;

function nextDelay() {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
  attempt += 1;
  return base * (0.5 + Math.random() * 0.5); // "equal jitter": never above the cap
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function setConn(state) {
  const conn = $('conn');
  conn.className = `conn conn-${state}`;
  conn.textContent = state;
}

function openSocket() {
  const ws = new WebSocket(WS_URL);
  socket = ws;
  let queue = []; // updates received while the resync snapshot is loading
  ws.onopen = async () => {
    setConn('live');
    // Resync: anything that changed while we were away comes from the snapshot;
    // updates that arrive meanwhile are replayed on top of it, in order.
    const ok = await loadSnapshot();
    if (socket !== ws) return;
    if (!ok) { ws.close(); return; }
    queue.forEach(applyUpdate);
    queue = null;
    attempt = 0;
  };
  ws.onmessage = (event) => {
    let msg;
    try { msg = JSON.parse(event.data); } catch { return; }
    if (!msg || msg.type !== 'update') return; // "ping" and unknown types
    if (queue) queue.push(msg); else applyUpdate(msg);
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    socket = null;
    setConn('reconnecting');
    setTimeout(openSocket, nextDelay());
  };
  ws.onerror = () => {}; // always followed by close
}

function applyUpdate(msg) {
  (msg.machines || []).forEach((m) => mergeMachine(m));
  if (tiles.size) $('empty').hidden = true;
}

async function start() {
  while (!(await loadSnapshot())) {
    setConn('reconnecting');
    await sleep(nextDelay());
  }
  attempt = 0;
  setConn('connecting');
  openSocket();
}

// ---------- clocks ----------

function tick() {
  tiles.forEach(renderAge);
  $('clock').textContent = new Date().toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', hour12: false });
}

setInterval(tick, 1000);
tick();
start();

// Log out: the session's CSRF token first (GET /api/v1/auth/session), then the logout.
$('logout').addEventListener('click', async () => {
  try {
    const res = await fetch('/api/v1/auth/session', { cache: 'no-store' });
    if (res.ok) {
      const session = await res.json();
      await fetch('/api/v1/auth/logout', { method: 'POST', headers: { 'X-CSRF-Token': session.csrf_token } });
    }
  } finally {
    location.assign('/');
  }
});
