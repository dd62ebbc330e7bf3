// Maintenance: alerts (acknowledged from here, in the logged-in engineer's name), the newest
// predictions with their evidence, and the model card. Reads /api/v1/maintenance/*.
'use strict';

const { $, el, api, post, pct, num, when, table, exportButton, error } = WS;

function evidence(items) {
  const ul = el('ul', 'evidence');
  (items || []).slice(0, 3).forEach((e) => ul.append(el('li', null, e.text)));
  return ul;
}

async function acknowledge(alert, button) {
  button.disabled = true;
  try {
    await post(`/api/v1/maintenance/alerts/${alert.id}/acknowledge`);
    await alerts();
  } catch (e) {
    error('error', e);
    button.disabled = false;
  }
}

async function alerts() {
  const rows = (await api(`/api/v1/maintenance/alerts?status=${$('status').value.split(',').join('&status=')}`)).alerts;
  const t = table(rows, [
    { label: '#', value: (a) => a.id },
    { label: 'Machine', value: (a) => a.place },
    { label: 'Component', value: (a) => a.component },
    { label: 'Status', value: (a) => a.status + (a.close_reason ? ` (${a.close_reason})` : '') },
    { label: 'Opened', value: (a) => when(a.opened_at), csv: (a) => a.opened_at },
    { label: 'P(8 h)', value: (a) => pct(a.p_8h), csv: (a) => a.p_8h },
    { label: 'RUL h', value: (a) => num(a.rul_h), csv: (a) => a.rul_h },
    { label: 'Evidence', value: (a) => (a.evidence || []).map((e) => e.text).join('; '), cell: (a) => evidence(a.evidence) },
    { label: 'Acknowledged', value: (a) => (a.acknowledged_by ? `${a.acknowledged_by}, ${when(a.acknowledged_at)}` : ''),
      csv: (a) => (a.acknowledged_by ? `${a.acknowledged_by} ${a.acknowledged_at}` : ''),
      cell: (a) => {
        if (a.acknowledged_by || a.status !== 'open') {
          const span = el('span', 'acked', a.acknowledged_by ? `${a.acknowledged_by}, ${when(a.acknowledged_at)}` : '–');
          span.dataset.ackedBy = a.acknowledged_by || '';
          return span;
        }
        const b = el('button', 'tab on', 'Acknowledge');
        b.type = 'button';
        b.dataset.ack = String(a.id);
        b.addEventListener('click', (e) => { e.stopPropagation(); acknowledge(a, b); });
        return b;
      } },
  ]);
  t.dataset.table = 'alerts';
  $('alerts').replaceChildren(rows.length ? t : el('p', 'caption', 'No alerts.'));
  $('alerts-csv').replaceChildren(exportButton('alerts', () => t));
}

async function predictions() {
  const rows = (await api('/api/v1/maintenance/predictions')).predictions;
  const t = table(rows, [
    { label: 'Machine', value: (p) => p.place },
    { label: 'Component', value: (p) => p.component },
    { label: 'Scored', value: (p) => when(p.time), csv: (p) => p.time },
    { label: 'P(8 h)', value: (p) => pct(p.p_8h), csv: (p) => p.p_8h },
    { label: 'P(24 h)', value: (p) => pct(p.p_24h), csv: (p) => p.p_24h },
    { label: 'RUL h', value: (p) => `${num(p.rul_h)} (${num(p.rul_low_h)}–${num(p.rul_high_h)})`, csv: (p) => p.rul_h },
    { label: 'Alarm', value: (p) => (p.alarm ? 'yes' : '') },
    { label: 'Evidence', value: (p) => (p.evidence || []).map((e) => e.text).join('; '), cell: (p) => evidence(p.evidence) },
  ]);
  t.dataset.table = 'predictions';
  $('predictions').replaceChildren(rows.length ? t : el('p', 'caption', 'No predictions yet: is `moldlab pdm score` running?'));
  $('predictions-csv').replaceChildren(exportButton('predictions', () => t));
}

async function model() {
  try {
    const card = await api('/api/v1/maintenance/model');
    $('model').replaceChildren(el('p', 'caption', `${card.name}, in force since ${when(card.in_force_since)}`));
  } catch (e) {
    $('model').replaceChildren(el('p', 'caption', e.message));
  }
}

async function main() {
  await WS.start();
  $('status').addEventListener('change', () => alerts().catch((e) => error('error', e)));
  try {
    await Promise.all([alerts(), predictions(), model()]);
  } catch (e) {
    error('error', e);
  }
  document.body.dataset.loaded = 'yes';
}

main();
