// One machine: SPC of a cycle parameter per mould (limits, rule violations, capability),
// a signal's history from an hour to a year (coarser buckets from the aggregates over longer
// windows), and its job and mould history. Reads /api/v1/machines/{place}/...
'use strict';

const { $, el, api, pct, num, when, table, exportButton, error } = WS;
const PARAMETERS = ['CushionStroke', 'CycleTime', 'InjectionTime', 'DosingTime', 'CoolingTime',
  'CushionVolume', 'PlastificationVolume', 'SpecificPressureMaximum', 'HoldPressure',
  'MeltTemperature', 'MouldTemperature', 'EjectionForceMaximum', 'CycleEnergy', 'PartWeight'];
const params = new URLSearchParams(location.search);
let machines = [];
let spcChart = null;
let historyChart = null;

function options(select, values, chosen) {
  select.replaceChildren(...values.map((v) => {
    const o = el('option', null, v);
    o.value = v;
    if (v === chosen) o.selected = true;
    return o;
  }));
}

const machine = () => machines.find((m) => m.place === $('machine').value);

function chartOptions(box, series, height = 280) {
  return {
    width: Math.max(320, box.parentElement.clientWidth - 40), height,
    axes: [{ stroke: '#9ba7b4', grid: { stroke: '#2a313c' } }, { stroke: '#9ba7b4', grid: { stroke: '#2a313c' } }],
    series: [{}, ...series],
  };
}

async function jobs() {
  const body = await api(`/api/v1/machines/${machine().place}/jobs?days=90&limit=500`);
  const t = table(body.jobs, [
    { label: 'Time', value: (j) => when(j.time), csv: (j) => j.time },
    { label: 'Job', value: (j) => j.job_name },
    { label: 'Mould', value: (j) => j.mould },
    { label: 'Status', value: (j) => j.status },
    { label: 'Cavities', value: (j) => j.active_cavities },
    { label: 'Order parts', value: (j) => j.nominal_parts },
    { label: 'Material', value: (j) => j.material || '' },
  ]);
  t.dataset.table = 'jobs';
  $('jobs').replaceChildren(body.jobs.length ? t : el('p', 'caption', 'No job messages in 90 days.'));
  $('jobs-csv').replaceChildren(exportButton(`jobs-${machine().machine_id}`, () => t));
  const moulds = [...new Set(body.jobs.map((j) => j.mould))];
  options($('mould'), moulds, params.get('mould') || moulds[0]);
}

async function spc() {
  const mould = $('mould').value;
  const box = $('spc');
  if (!mould) { $('spc-summary').textContent = 'No mould known for this machine: no job messages.'; return; }
  const to = new Date();
  const from = new Date(to - Number($('spc-days').value) * 86400000);
  const q = new URLSearchParams({ mould, from: from.toISOString(), to: to.toISOString(), chart: $('chart').value });
  const parameter = $('parameter').value;
  let s;
  try {
    s = await api(`/api/v1/machines/${machine().place}/spc/${parameter}?${q}`);
  } catch (e) {
    $('spc-summary').textContent = e.message;
    if (spcChart) { spcChart.destroy(); spcChart = null; }
    $('capability').replaceChildren();
    return;
  }
  const ewma = s.chart === 'ewma';
  const xs = s.points.map((p) => Date.parse(p.ts) / 1000);
  const ys = s.points.map((p) => (ewma ? p.ewma : p.value));
  const bad = s.points.map((p, i) => (p.rules.length ? ys[i] : null));
  $('spc-summary').textContent = `${s.points.length} cycles of mould ${s.mould}, ${s.parameter} in ${s.unit}: centre ${num(s.limits.centre, 3)}, ` +
    `limits ${num(s.points.length ? s.points[s.points.length - 1].lcl : s.limits.lcl, 3)} – ${num(s.points.length ? s.points[s.points.length - 1].ucl : s.limits.ucl, 3)}; ` +
    `${s.violations} points break a rule (red).`;
  document.body.dataset.spcPoints = String(s.points.length);
  document.body.dataset.spcViolations = String(s.violations);
  if (spcChart) spcChart.destroy();
  spcChart = new uPlot(chartOptions(box, [
    { label: ewma ? 'EWMA' : s.parameter, stroke: '#58a6ff', width: 1, points: { size: 3 } },
    { label: 'UCL', stroke: '#f85149', dash: [6, 4], points: { show: false } },
    { label: 'centre', stroke: '#9ba7b4', dash: [2, 4], points: { show: false } },
    { label: 'LCL', stroke: '#f85149', dash: [6, 4], points: { show: false } },
    { label: 'rule broken', stroke: 'transparent', paths: () => null, points: { show: true, size: 8, fill: '#f85149', stroke: '#f85149' } },
  ]), [xs, ys, s.points.map((p) => p.ucl), s.points.map(() => (ewma ? s.limits.centre : s.limits.centre)),
    s.points.map((p) => p.lcl), bad], box);
  const t = table(s.points.filter((p) => p.rules.length), [
    { label: 'Time', value: (p) => when(p.ts), csv: (p) => p.ts },
    { label: s.parameter, value: (p) => num(p.value, 3), csv: (p) => p.value },
    { label: 'Rules', value: (p) => p.rules.join(' ') },
  ]);
  $('spc-csv').replaceChildren(exportButton(`spc-${machine().machine_id}-${parameter}`, () => t));
  try {
    const c = await api(`/api/v1/machines/${machine().place}/capability/${parameter}?${new URLSearchParams({ mould, from: from.toISOString(), to: to.toISOString() })}`);
    const ct = table(c.periods, [
      { label: 'From', value: (p) => when(p.start), csv: (p) => p.start },
      { label: 'LSL', value: (p) => num(p.lower, 3) }, { label: 'USL', value: (p) => num(p.upper, 3) },
      { label: 'Points', value: (p) => p.points }, { label: 'Mean', value: (p) => num(p.mean, 3) },
      { label: 'Cp', value: (p) => num(p.cp, 2) }, { label: 'Cpk', value: (p) => num(p.cpk, 2) },
      { label: 'Pp', value: (p) => num(p.pp, 2) }, { label: 'Ppk', value: (p) => num(p.ppk, 2) },
      { label: 'Out of spec', value: (p) => (p.out_of_spec == null ? '–' : `${p.out_of_spec} (${pct(p.out_of_spec_fraction)})`) },
    ]);
    ct.dataset.table = 'capability';
    $('capability').replaceChildren(el('h3', null, 'Capability against the plant file\u2019s limits'), ct);
  } catch (e) {
    $('capability').replaceChildren(el('p', 'caption', `Capability: ${e.message}`));
  }
}

async function signalHistory() {
  const signal = $('signal').value;
  const box = $('history');
  if (!signal) return;
  let h;
  try {
    h = await api(`/api/v1/machines/${machine().place}/signals/${signal}/history?minutes=${$('minutes').value}`);
  } catch (e) {
    box.replaceChildren(el('p', 'caption', e.message));
    historyChart = null;
    return;
  }
  const xs = h.points.map((p) => Date.parse(p.bucket) / 1000);
  $('history-caption').textContent = `${h.bucket_minutes}-minute buckets: average, with the minimum and maximum (zoom: drag over the chart; double-click to zoom out).`;
  if (historyChart) historyChart.destroy();
  box.replaceChildren();
  historyChart = new uPlot(chartOptions(box, [
    { label: 'avg', stroke: '#58a6ff', width: 2 },
    { label: 'min', stroke: '#2ea04380', width: 1 },
    { label: 'max', stroke: '#f8514980', width: 1 },
  ], 240), [xs, h.points.map((p) => p.avg), h.points.map((p) => p.min), h.points.map((p) => p.max)], box);
  document.body.dataset.historyPoints = String(h.points.length);
}

async function pick() {
  $('error').hidden = true;
  window.history.replaceState(null, '', `?place=${encodeURIComponent(machine().place)}`);
  options($('signal'), Object.keys(machine().signals), params.get('signal') || 'TempNozzle');
  try {
    await jobs();
    await Promise.all([spc(), signalHistory()]);
  } catch (e) {
    error('error', e);
  }
  document.body.dataset.loaded = machine().place;
}

async function main() {
  await WS.start();
  machines = (await api('/api/v1/machines?limit=200')).machines;
  if (!machines.length) { error('error', new Error('no machine has sent data yet')); return; }
  options($('machine'), machines.map((m) => m.place), params.get('place') || machines[0].place);
  options($('parameter'), PARAMETERS, params.get('parameter') || 'CushionStroke');
  $('machine').addEventListener('change', pick);
  ['parameter', 'mould', 'spc-days', 'chart'].forEach((id) => $(id).addEventListener('change', () => spc().catch((e) => error('error', e))));
  ['signal', 'minutes'].forEach((id) => $(id).addEventListener('change', () => signalHistory().catch((e) => error('error', e))));
  await pick();
}

// Charts follow the window's width.
window.addEventListener('resize', () => {
  for (const chart of [spcChart, historyChart]) {
    if (chart) chart.setSize({ width: Math.max(320, chart.root.parentElement.clientWidth - 40), height: chart.height });
  }
});

main();
