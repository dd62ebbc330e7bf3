// The engineer workspace's shared part: the navigation, the session, the API, CSV export.
// Every page reads the same REST API a user could script against (see /docs).
'use strict';

const WS = (() => {
  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // GET (or POST) on the API; a lost session goes to the login page and back here.
  async function api(path, options = {}) {
    const res = await fetch(path, { cache: 'no-store', headers: { Accept: 'application/json', ...(options.headers || {}) }, ...options });
    if (res.status === 401) {
      location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      throw new Error('logged out');
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(typeof body.detail === 'string' ? body.detail : `HTTP ${res.status}`);
    return body;
  }

  let session = null;
  async function csrf() {
    session = session || await api('/api/v1/auth/session');
    return session.csrf_token;
  }

  async function post(path) {
    return api(path, { method: 'POST', headers: { 'X-CSRF-Token': await csrf() } });
  }

  function pct(x) { return x == null ? '–' : `${(x * 100).toFixed(1)} %`; }
  function num(x, digits = 1) { return x == null ? '–' : Number(x).toFixed(digits); }
  function hours(s) { return s == null ? '–' : (s / 3600).toFixed(2); }
  function when(iso) { return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' }) : '–'; }

  // A table from rows and columns [{label, value: row => text}]; the same rows and columns
  // make its CSV.
  function table(rows, columns, onRow) {
    const t = el('table', 'data');
    const head = el('tr');
    columns.forEach((c) => head.append(el('th', null, c.label)));
    t.append(el('thead'), el('tbody'));
    t.tHead.append(head);
    rows.forEach((r) => {
      const tr = el('tr');
      columns.forEach((c) => {
        const cell = c.cell ? c.cell(r) : el('td', null, c.value(r));
        tr.append(cell.tagName === 'TD' ? cell : wrap(cell));
      });
      if (onRow) { tr.classList.add('clickable'); tr.addEventListener('click', () => onRow(r)); }
      t.tBodies[0].append(tr);
    });
    t._csv = () => csv(rows, columns);
    return t;
  }

  function wrap(node) { const td = el('td'); td.append(node); return td; }

  function csv(rows, columns) {
    const quote = (v) => {
      const text = v == null ? '' : String(v);
      return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
    };
    const raw = (c, r) => (c.csv ? c.csv(r) : c.value(r));
    return [columns.map((c) => quote(c.label)), ...rows.map((r) => columns.map((c) => quote(raw(c, r))))]
      .map((line) => line.join(',')).join('\r\n') + '\r\n';
  }

  // A button that downloads what a table shows, as CSV.
  function exportButton(name, getTable) {
    const b = el('button', 'tab', 'CSV');
    b.type = 'button';
    b.title = 'download what this table shows, as CSV';
    b.dataset.csv = name;
    b.addEventListener('click', () => {
      const blob = new Blob([getTable()._csv()], { type: 'text/csv' });
      const a = el('a');
      a.href = URL.createObjectURL(blob);
      a.download = `${name}.csv`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 1000);
    });
    return b;
  }

  function bar(label, share, value, cls) {
    const li = el('li', `bar ${cls || ''}`);
    const track = el('span', 'track');
    const fill = el('span', 'fill');
    fill.style.width = `${Math.max(0, Math.min(1, share || 0)) * 100}%`;
    track.append(fill);
    li.append(el('span', 'label', label), track, el('span', 'value', value));
    return li;
  }

  function error(where, err) {
    const box = $(where);
    box.textContent = err.message;
    box.hidden = false;
  }

  async function start() {
    const who = $('who');
    try {
      session = await api('/api/v1/auth/session');
      if (who) who.textContent = `${session.name} (${session.role})`;
    } catch (e) { /* api() went to the login page */ }
    const out = $('logout');
    if (out) out.addEventListener('click', async () => {
      try { await post('/api/v1/auth/logout'); } finally { location.assign('/'); }
    });
  }

  // The pages of the workspace, in the order of its navigation.
  const PAGES = [['/engineer', 'Live floor'], ['/engineer/performance', 'Performance'],
    ['/engineer/machine', 'Machine'], ['/engineer/maintenance', 'Maintenance'], ['/docs', 'API'],
    ['/', 'Kiosk']];

  function nav() {
    const box = $('nav');
    if (!box) return;
    box.replaceChildren(...PAGES.map(([href, label]) => {
      const a = el('a', `tab${href === location.pathname ? ' on' : ''}`, label);
      a.href = href;
      return a;
    }));
  }
  nav();

  return { $, el, api, post, pct, num, hours, when, table, csv, exportButton, bar, error, start };
})();
