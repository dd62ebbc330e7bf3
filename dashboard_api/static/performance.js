// Performance: OEE of a site, line or machine over a range, drill-down, loss tree, Pareto,
// MTBF/MTTR. Reads /api/v1/performance/{place}/oee|losses|downtime|reliability.
'use strict';

const { $, el, api, pct, num, hours, when, table, exportButton, bar, error } = WS;
const LEVELS = ['site', 'area', 'line', 'machine'];
const params = new URLSearchParams(location.search);
let place = params.get('place');
let trendChart = null;

function range() {
  const days = Number($('range').value);
  const end = new Date();
  const start = new Date(end);
  start.setHours(0, 0, 0, 0); // the browser's midnight: the API counts by the site's own days
  start.setDate(start.getDate() - (days - 1));
  return { from: start.toISOString(), to: end.toISOString() };
}

function query(extra = {}) {
  return new URLSearchParams({ ...range(), micro_stops: $('micro').value, ...extra }).toString();
}

const KPI_COLUMNS = [
  { label: 'OEE', value: (r) => pct(r.kpis.oee), csv: (r) => r.kpis.oee },
  { label: 'Availability', value: (r) => pct(r.kpis.availability), csv: (r) => r.kpis.availability },
  { label: 'Performance', value: (r) => pct(r.kpis.effectiveness), csv: (r) => r.kpis.effectiveness },
  { label: 'Quality', value: (r) => pct(r.kpis.quality), csv: (r) => r.kpis.quality },
  { label: 'Planned h', value: (r) => hours(r.times.planned_busy_s), csv: (r) => r.times.planned_busy_s / 3600 },
  { label: 'Good parts', value: (r) => r.counts.good },
  { label: 'Scrap', value: (r) => r.counts.bad },
  { label: 'Stops', value: (r) => r.counts.stops },
  { label: 'kWh / good part', value: (r) => num(r.kpis.kwh_per_good_part, 4), csv: (r) => r.kpis.kwh_per_good_part },
];

function crumbs() {
  const nav = $('crumbs');
  nav.replaceChildren();
  const parts = place.split('/');
  parts.forEach((p, i) => {
    const a = el('a', 'crumb', p);
    a.href = `?place=${encodeURIComponent(parts.slice(0, i + 1).join('/'))}`;
    a.addEventListener('click', (e) => { e.preventDefault(); go(parts.slice(0, i + 1).join('/')); });
    nav.append(a);
    if (i < parts.length - 1) nav.append(el('span', 'sep', '/'));
  });
  $('place-name').textContent = `${LEVELS[parts.length - 1]} ${place}`;
}

function go(next) {
  place = next;
  history.replaceState(null, '', `?place=${encodeURIComponent(place)}`);
  load();
}

async function below() {
  const depth = place.split('/').length;
  const level = LEVELS[Math.min(depth, LEVELS.length - 1)];
  const rows = await api(`/api/v1/performance/${place}/oee?${query({ bucket: 'range', level })}`);
  const columns = [{ label: level, value: (r) => r.place.split('/').slice(depth === 4 ? 3 : depth).join('/') || r.place }, ...KPI_COLUMNS];
  const drill = depth < 4 ? (r) => go(r.place) : null;
  const t = table(rows, columns, drill);
  t.dataset.table = 'below';
  $('below').replaceChildren(t);
  $('below-csv').replaceChildren(exportButton(`oee-${place.replace(/\//g, '_')}`, () => t));
}

async function trend() {
  const bucket = $('bucket').value;
  $('bucket-name').textContent = bucket;
  const rows = await api(`/api/v1/performance/${place}/oee?${query({ bucket })}`);
  const t = table(rows, [{ label: bucket, value: (r) => r.bucket }, ...KPI_COLUMNS]);
  $('trend-table').replaceChildren(t);
  $('trend-csv').replaceChildren(exportButton(`oee-by-${bucket}-${place.replace(/\//g, '_')}`, () => t));
  const xs = rows.map((r) => Date.parse(r.start) / 1000);
  const ys = ['oee', 'availability', 'effectiveness', 'quality'].map((k) => rows.map((r) => (r.kpis[k] == null ? null : r.kpis[k] * 100)));
  const box = $('trend');
  if (trendChart) trendChart.destroy();
  trendChart = new uPlot({
    width: Math.max(320, box.parentElement.clientWidth - 40), height: 260,
    scales: { y: { range: [0, 110] } },
    axes: [{ stroke: '#9ba7b4', grid: { stroke: '#2a313c' } }, { stroke: '#9ba7b4', grid: { stroke: '#2a313c' } }],
    series: [{}, ...['OEE', 'Availability', 'Performance', 'Quality'].map((label, i) => ({
      label, stroke: ['#58a6ff', '#2ea043', '#d29922', '#a371f7'][i], width: i ? 1.5 : 3, points: { size: 6 },
      value: (u, v) => (v == null ? '–' : `${v.toFixed(1)} %`),
    }))],
  }, [xs, ...ys], box);
}

function node(n) {
  const li = el('li', 'node');
  li.dataset.loss = n.name;
  const share = n.share_of_pbt;
  li.append(bar(`${n.name}${n.count != null ? ` (${n.count})` : ''}`, share, `${hours(n.seconds)} h · ${pct(share)}`, n.name === 'valuable time' ? 'good' : 'loss'));
  if (n.children.length) {
    const ul = el('ul');
    n.children.forEach((c) => ul.append(node(c)));
    li.append(ul);
  }
  return li;
}

async function losses() {
  const tree = await api(`/api/v1/performance/${place}/losses?${query()}`);
  $('losses').replaceChildren(...tree.children.map(node));
}

async function pareto() {
  const rows = await api(`/api/v1/performance/${place}/downtime?${query()}`);
  const t = table(rows, [
    { label: 'Reason', value: (r) => r.reason },
    { label: 'Stops', value: (r) => r.stops },
    { label: 'Downtime h', value: (r) => hours(r.downtime_s), csv: (r) => r.downtime_s / 3600 },
    { label: 'Share', value: (r) => pct(r.share), csv: (r) => r.share },
    { label: 'Cumulative', value: (r) => pct(r.cumulative_share), csv: (r) => r.cumulative_share },
    { label: 'MTTR min', value: (r) => num(r.mttr_s == null ? null : r.mttr_s / 60), csv: (r) => r.mttr_s },
  ]);
  $('pareto').replaceChildren(t);
  $('pareto-csv').replaceChildren(exportButton(`downtime-${place.replace(/\//g, '_')}`, () => t));
}

async function reliability() {
  const rows = await api(`/api/v1/performance/${place}/reliability?${query()}`);
  const t = table(rows, [
    { label: 'Machine', value: (r) => r.place },
    { label: 'Breakdowns', value: (r) => r.failures },
    { label: 'Fault h', value: (r) => hours(r.fault_s), csv: (r) => r.fault_s / 3600 },
    { label: 'MTBF h', value: (r) => hours(r.mtbf_s), csv: (r) => r.mtbf_s },
    { label: 'MTTR min', value: (r) => num(r.mttr_s == null ? null : r.mttr_s / 60), csv: (r) => r.mttr_s },
  ]);
  $('reliability').replaceChildren(t);
  $('reliability-csv').replaceChildren(exportButton(`reliability-${place.replace(/\//g, '_')}`, () => t));
}

async function load() {
  crumbs();
  $('error').hidden = true;
  document.body.dataset.loading = 'yes';
  try {
    await Promise.all([below(), trend(), losses(), pareto(), reliability()]);
  } catch (e) {
    error('error', e);
  }
  document.body.dataset.loading = 'no';
  document.body.dataset.place = place;
}

async function main() {
  await WS.start();
  if (!place) {
    const page = await api('/api/v1/machines?limit=1');
    place = page.machines.length ? page.machines[0].site : null;
  }
  if (!place) { error('error', new Error('no machine has sent data yet')); return; }
  ['range', 'bucket', 'micro'].forEach((id) => $(id).addEventListener('change', load));
  load();
}

window.addEventListener('resize', () => {
  if (trendChart) trendChart.setSize({ width: Math.max(320, trendChart.root.parentElement.clientWidth - 40), height: trendChart.height });
});

main();
