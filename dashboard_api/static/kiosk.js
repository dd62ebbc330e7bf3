// moldlab kiosk: the floor for visitors, live, in their language, rotating by itself.
// Reads only the public kiosk API (GET /api/v1/kiosk, WebSocket /api/v1/kiosk/live).
// Plain ES2020 and uPlot, both served by moldlab: it runs with no internet.
'use strict';

const VIEWS = ['floor', 'time', 'parts', 'trend', 'energy', 'maintenance'];
// ?rotate=N: the next view every N seconds (at least 2; default 15); ?rotate=0 or ?view=X: stay.
const ROTATE_MS = 1000 * Math.max(2, Number(new URLSearchParams(location.search).get('rotate')) || 15);
const STALE_AFTER_S = 60;
const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

let lang = pickLanguage();
let view = VIEWS.includes(params.get('view')) ? params.get('view') : 'floor';
let rotating = !params.has('view') && params.get('rotate') !== '0';
let picture = null; // the newest Floor
let skew = 0; // server time - our time, ms
let receivedAt = 0;
let chart = null;
let connState = 'connecting';

function pickLanguage() {
  const asked = params.get('lang') || localStorage.getItem('moldlab.lang') ||
    (navigator.language || 'en').slice(0, 2);
  return asked in LANGUAGES ? asked : 'en';
}

function t(key, vars) {
  let text = key.split('.').reduce((o, k) => (o ? o[k] : undefined), WORDS[lang]);
  if (text === undefined) text = key.split('.').reduce((o, k) => (o ? o[k] : undefined), WORDS.en);
  if (text === undefined) return key.split('.').pop().replace(/_/g, ' ');
  return text.replace(/\{(\w+)\}/g, (_, k) => (vars && k in vars ? vars[k] : ''));
}

const fmt = {
  pct: (x) => (x == null ? '–' : `${new Intl.NumberFormat(lang, { maximumFractionDigits: 0 }).format(x * 100)} %`),
  int: (x) => new Intl.NumberFormat(lang, { maximumFractionDigits: 0 }).format(x),
  one: (x) => new Intl.NumberFormat(lang, { maximumFractionDigits: 1, minimumFractionDigits: 1 }).format(x),
  kwh: (x) => new Intl.NumberFormat(lang, { maximumSignificantDigits: 2 }).format(x),
  time: (d) => new Intl.DateTimeFormat(lang, { hour: '2-digit', minute: '2-digit' }).format(d),
  day: (d) => new Intl.DateTimeFormat(lang, { day: 'numeric', month: 'short' }).format(d),
};

function duration(ms) {
  const min = Math.max(0, Math.floor(ms / 60000));
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  return h < 48 ? `${h} h ${min % 60} min` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function bar(label, value, share, cls) {
  const li = el('li', `bar ${cls || ''}`);
  const fill = el('span', 'fill');
  fill.style.width = `${Math.max(0, Math.min(1, share || 0)) * 100}%`;
  li.append(el('span', 'label', label), el('span', 'track'), el('span', 'value', value));
  li.querySelector('.track').append(fill);
  return li;
}

// ---------- the static words ----------

function translate() {
  document.documentElement.lang = lang;
  document.querySelectorAll('[data-t]').forEach((n) => { n.textContent = t(n.dataset.t); });
  const tabs = $('tabs');
  tabs.replaceChildren(...VIEWS.map((v) => {
    const b = el('button', `tab${v === view ? ' on' : ''}`, t(`views.${v}`));
    b.type = 'button';
    b.dataset.tab = v;
    b.addEventListener('click', () => { rotating = false; show(v); });
    return b;
  }));
  $('langs').replaceChildren(...Object.entries(LANGUAGES).map(([code, label]) => {
    const b = el('button', `lang${code === lang ? ' on' : ''}`, label);
    b.type = 'button';
    b.dataset.lang = code;
    b.addEventListener('click', () => setLanguage(code));
    return b;
  }));
  setConn(connState);
  tick();
}

function setLanguage(code) {
  lang = code;
  localStorage.setItem('moldlab.lang', code);
  translate();
  render();
}

function show(v) {
  view = v;
  document.querySelectorAll('[data-view]').forEach((s) => { s.hidden = s.dataset.view !== v; });
  document.querySelectorAll('[data-tab]').forEach((b) => b.classList.toggle('on', b.dataset.tab === v));
  document.body.dataset.showing = v;
  render();
}

function setConn(state) {
  connState = state;
  const node = $('conn');
  node.className = `conn conn-${state}`;
  node.textContent = t(`conn.${state}`);
}

// ---------- the views ----------

function render() {
  if (!picture) return;
  renderFloor();
  ({ time: renderTime, parts: renderParts, trend: renderTrend, energy: renderEnergy,
     maintenance: renderStory })[view]?.();
  const asOf = new Date(picture.as_of);
  $('asof').textContent = t('as_of', { t: fmt.time(asOf) });
}

function renderFloor() {
  const f = picture.floor;
  $('floor-oee').textContent = fmt.pct(f.oee);
  $('floor-caption').textContent = f.oee == null ? t('oee_none') : t('oee_caption', { n: fmt.int(f.oee * 100) });
  $('floor-factors').replaceChildren(...['availability', 'performance', 'quality'].map((k) => {
    const box = el('div', 'factor');
    box.dataset.factor = k;
    box.append(el('div', 'name', t(k)), el('div', 'value', fmt.pct(f[k])), el('div', 'caption', t(`${k}_caption`)));
    return box;
  }));
  const now = Date.now() + skew;
  const tiles = picture.machines.map((m) => {
    const tile = el('article', `tile kiosk-tile state-${m.state}`);
    tile.dataset.machine = m.name;
    tile.dataset.state = m.state;
    const since = m.state_since ? t('for', { d: duration(now - Date.parse(m.state_since)) }) : '';
    tile.append(
      el('h3', 'mid', m.name), el('div', 'loc', m.line),
      el('div', 'state', t(`states.${m.state}`)), el('div', 'since', since),
      el('div', 'oee', t('oee_of_machine', { n: fmt.pct(m.oee) })),
    );
    const factors = el('div', 'mini');
    for (const k of ['availability', 'performance', 'quality']) {
      factors.append(bar(t(k), fmt.pct(m[k]), m[k], `f-${k}`));
    }
    tile.append(factors, el('div', 'parts', t('good_parts', { n: fmt.int(m.good_parts) })));
    return tile;
  });
  if (picture.more_machines) tiles.push(el('p', 'caption', t('more', { n: picture.more_machines })));
  $('machines').replaceChildren(...tiles);
}

function renderTime() {
  const total = picture.time.reduce((s, x) => s + x.seconds, 0);
  $('time-caption').textContent = t('time_caption', { h: fmt.one(total / 3600) });
  $('time-stack').replaceChildren(...picture.time.map((x) => {
    const part = el('span', `piece where-${x.where}`);
    part.style.flexGrow = String(x.seconds);
    part.title = t(`where.${x.where}`);
    return part;
  }));
  $('time-legend').replaceChildren(...picture.time.map((x) => {
    const li = el('li', `where-${x.where}`);
    li.dataset.where = x.where;
    li.append(el('span', 'swatch'), el('span', 'value', fmt.pct(x.share)), el('span', 'label', t(`where.${x.where}`)));
    return li;
  }));
}

function renderParts() {
  const all = picture.parts.reduce((s, p) => s + p.parts, 0);
  const good = picture.floor.good_parts;
  $('parts-caption').textContent = all ? t('parts_caption', { good: fmt.int(good), all: fmt.int(all) }) : t('parts_none');
  $('parts-bars').replaceChildren(...picture.parts.map((p) =>
    bar(t(`what.${p.what}`), fmt.int(p.parts), all ? p.parts / all : 0, p.what === 'good' ? 'good' : 'bad')));
}

function renderTrend() {
  const box = $('trend-chart');
  const xs = picture.trend.map((p) => Date.parse(p.start) / 1000);
  const series = ['oee', 'availability', 'performance', 'quality'].map(
    (k) => picture.trend.map((p) => (p.factors[k] == null ? null : p.factors[k] * 100)));
  const data = [xs, ...series];
  const width = Math.max(300, box.clientWidth || 800);
  const height = Math.max(220, Math.min(480, window.innerHeight * 0.55));
  if (chart && chart._lang === lang) {
    chart.setSize({ width, height });
    chart.setData(data);
    return;
  }
  if (chart) chart.destroy();
  const colours = ['#58a6ff', '#2ea043', '#d29922', '#a371f7'];
  const names = ['OEE', t('availability'), t('performance'), t('quality')];
  chart = new uPlot({
    width, height,
    scales: { y: { range: [0, 110] } },
    axes: [{ stroke: '#9ba7b4', grid: { stroke: '#2a313c' } },
           { stroke: '#9ba7b4', grid: { stroke: '#2a313c' }, values: (u, v) => v.map((x) => `${x} %`) }],
    series: [{}, ...names.map((label, i) => ({
      label, stroke: colours[i], width: i === 0 ? 4 : 2, spanGaps: false,
      points: { size: i === 0 ? 8 : 5 },
      value: (u, v) => (v == null ? '–' : `${Math.round(v)} %`),
    }))],
  }, data, box);
  chart._lang = lang;
}

function renderEnergy() {
  const f = picture.floor;
  $('energy-floor').textContent = f.kwh_per_good_part == null ? '–' : `${fmt.kwh(f.kwh_per_good_part)} kWh`;
  $('energy-caption').textContent = f.kwh_per_good_part == null ? t('energy_none') :
    t('energy_caption', { x: fmt.kwh(f.kwh_per_good_part), s: fmt.int(f.kwh_per_good_part / 2 * 3600) });
  const most = Math.max(0, ...picture.machines.map((m) => m.kwh_per_good_part || 0));
  $('energy-bars').replaceChildren(...picture.machines.map((m) =>
    bar(m.name, m.kwh_per_good_part == null ? '–' : `${fmt.kwh(m.kwh_per_good_part)} kWh`,
        most ? (m.kwh_per_good_part || 0) / most : 0, 'energy')));
}

function renderStory() {
  const s = picture.maintenance;
  $('story-caption').textContent = s.breakdowns === 0 ? t('story_none', { days: s.days }) :
    t('story', { days: s.days, w: s.warned,
                 n: s.breakdowns === 1 ? t('times.one') : t('times.many', { n: s.breakdowns }),
                 h: s.median_lead_h == null ? '–' : fmt.one(s.median_lead_h) });
  const longest = Math.max(1, ...s.recent.map((r) => r.lead_h));
  $('story-list').replaceChildren(...s.recent.map((r) =>
    bar(t('story_item', { machine: r.machine, h: fmt.one(r.lead_h), when: fmt.day(new Date(r.failed_at)) }),
        `${fmt.one(r.lead_h)} h`, r.lead_h / longest, 'lead')));
}

// ---------- data ----------

function take(next) {
  picture = next;
  receivedAt = Date.now();
  skew = Date.parse(next.as_of) - receivedAt;
  $('banner').hidden = true;
  render();
}

async function first() {
  try {
    const res = await fetch('/api/v1/kiosk', { cache: 'no-store', headers: { Accept: 'application/json' } });
    if (res.ok) take(await res.json());
  } catch (e) { /* the socket retries */ }
}

let backoff = BACKOFF_MIN_MS;
function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/kiosk/live`);
  ws.onopen = () => { backoff = BACKOFF_MIN_MS; setConn('live'); };
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type !== 'ping') take(frame);
  };
  ws.onclose = () => {
    setConn('reconnecting');
    setTimeout(connect, backoff);
    backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
  };
}

function tick() {
  $('clock').textContent = fmt.time(new Date());
  if (picture && (Date.now() - receivedAt) / 1000 > STALE_AFTER_S) {
    const banner = $('banner');
    banner.textContent = t('stale', { s: fmt.int((Date.now() - receivedAt) / 1000) });
    banner.hidden = false;
  }
}

window.addEventListener('resize', () => { if (view === 'trend') renderTrend(); });
translate();
show(view);
first();
connect();
tick();
setInterval(tick, 1000);
setInterval(() => {
  if (rotating) show(VIEWS[(VIEWS.indexOf(view) + 1) % VIEWS.length]);
  else if (view === 'floor') renderFloor(); // the durations move on
}, ROTATE_MS);
