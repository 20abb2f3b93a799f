// I/O: points with value, quality and age, updated live (`io:*` topic); writes
// for roles that may; devices and their counters; the write audit.
import { h, clear, toast } from '../h.js';
import { t, tr } from '../i18n.js';
import { get, post, can } from '../api.js';
import { subscribe, onMessage } from '../ws.js';

function age(iso) {
  if (!iso) return '–';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return s < 60 ? `${s.toFixed(0)} s` : s < 3600 ? `${(s / 60).toFixed(0)} min` : `${(s / 3600).toFixed(1)} h`;
}

export async function mount(el) {
  const operator = can('operator');
  const [points, devices, writes, status] = await Promise.all([
    get('/api/io/points'), get('/api/io/devices'), get('/api/io/writes'), get('/api/io/status'),
  ]);
  const rows = new Map();
  const tbody = h('tbody');
  function pointRow(p) {
    const val = h('td.val', p.value == null ? '–' : String(p.value));
    const q = h('td', h(`span.tag.${p.quality === 'good' ? 'good' : 'bad'}`, p.quality));
    const ageEl = h('td', age(p.last_change));
    let write = null;
    if (operator && p.writable) {
      const input = h('input', { size: 6, placeholder: t('value') });
      write = h('form.inline', {
        on: {
          submit: async (e) => {
            e.preventDefault();
            let v = input.value.trim();
            v = v === 'true' ? true : v === 'false' ? false : Number(v);
            try { toast(tr((await post(`/api/io/points/${encodeURIComponent(p.tag)}`, { value: v })).message)); } catch (x) { toast(x.message, 'error'); }
          },
        },
      }, input, h('button.small', { type: 'submit' }, t('Write')));
    }
    const tr_ = h('tr', h('td', p.tag), val, q, ageEl, h('td', p.error ? tr(p.error) : ''), h('td', write));
    rows.set(p.tag, { val, q, ageEl, p });
    return tr_;
  }
  clear(tbody, points.map(pointRow));
  const timer = setInterval(() => { for (const r of rows.values()) r.ageEl.textContent = age(r.p.last_change); }, 1000);
  const off = onMessage((m) => {
    if (m.type !== 'io_point') return;
    const r = rows.get(m.tag);
    if (!r) return;
    r.p.value = m.value; r.p.quality = m.quality; r.p.last_change = m.timestamp || new Date().toISOString();
    r.val.textContent = m.value == null ? '–' : String(m.value);
    clear(r.q, h(`span.tag.${m.quality === 'good' ? 'good' : 'bad'}`, m.quality));
  });
  const unsub = subscribe({ script_id: 'io:*' });
  clear(el,
    h('div.row.toolbar', h('h2', t('I/O')), h('span.spacer'), status.configured === false ? h('span.muted', tr(status.message)) : h('span.muted', `${t('Board')}: ${status.board ?? ''} · ${t('{0} points', status.points ?? 0)}`)),
    h('table.grid', h('thead', h('tr', ['Tag', 'Value', 'Quality', 'Age', 'Error', ''].map((c) => h('th', t(c))))), tbody),
    h('div.cols',
      h('section', h('h3', t('Devices')), devices.length ? h('table.grid', { 'data-testid': 'devices' },
        h('thead', h('tr', ['Device', 'Kind', 'Bus', 'Connected', 'Points', 'Counters', 'Last error'].map((c) => h('th', t(c))))),
        h('tbody', devices.map((d) => h('tr',
          h('td', d.device ?? d.name ?? ''), h('td', d.kind ?? ''), h('td', d.bus ?? ''),
          h('td', h(`span.tag.${d.connected ? 'good' : 'bad'}`, d.connected ? t('yes') : t('no'))),
          h('td', d.points ?? ''),
          h('td', h('small', Object.entries(d.counters || {}).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(' '))),
          h('td', d.last_error ? tr(d.last_error) : ''))))) : h('p.muted', t('None'))),
      h('section', h('h3', t('Write audit')), writes.length ? h('table.grid', h('tbody', writes.slice(-50).reverse().map((w) => h('tr', h('td', w.time || w.timestamp || ''), h('td', w.writer || ''), h('td', w.target || ''), h('td', JSON.stringify(w.value)), h('td', w.error ? tr(w.error) : 'ok'))))) : h('p.muted', t('None')))));
  return () => { clearInterval(timer); off(); unsub(); };
}
