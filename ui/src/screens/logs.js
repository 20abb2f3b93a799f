// Logs: history from the server with its filters (level, script, path, text),
// then live lines through the WebSocket with the same filters applied by the
// server. At most MAX_ROWS rows exist at once; scrolling up pauses following;
// tracebacks are folded; structured fields are shown; export is what the
// filter shows.
import { h, clear, toast } from '../h.js';
import { t, tr } from '../i18n.js';
import { get, q } from '../api.js';
import { subscribe, onMessage } from '../ws.js';

export const MAX_ROWS = 2000;

function fields(f) {
  if (!f || typeof f !== 'object') return null;
  return h('span.fields', Object.entries(f).map(([k, v]) => h('span.field', `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)));
}

export function row(m) {
  const level = (m.level || 'INFO').toUpperCase();
  // The runtime's own lines are messages like the API's: shown in the UI's language.
  const text = m.stream === 'system' ? tr(String(m.message ?? '')) : String(m.message ?? '');
  const tb = text.indexOf('Traceback (most recent call last)');
  let msg;
  if (tb >= 0 || text.split('\n').length > 3) {
    const lines = text.split('\n');
    const summary = tb >= 0 ? lines.filter(Boolean).pop() : lines[0];
    msg = h('details.tb', h('summary', summary), h('pre', text));
  } else {
    msg = h('span.msg', text);
  }
  return h(`div.line.${level.toLowerCase()}`, { 'data-seq': m.seq ?? '' },
    h('span.ts', (m.timestamp || '').replace('T', ' ').slice(0, 23)),
    h('span.lvl', level),
    h('span.src', m.script_path || m.script_id || ''),
    msg, fields(m.fields));
}

export async function mount(el) {
  const level = h('select', { name: 'level' }, ['', 'DEBUG', 'INFO', 'WARNING', 'ERROR'].map((l) => h('option', { value: l }, l ? `≥ ${l}` : t('All levels'))));
  const path = h('input', { name: 'script_path', list: 'paths', placeholder: t('Script path (project/file.py)') });
  const sid = h('input', { name: 'script_id', placeholder: 'script_id' });
  const text = h('input', { name: 'q', type: 'search', placeholder: t('Text') });
  const paths = h('datalist', { id: 'paths' });
  const list = h('div.loglist', { 'data-testid': 'loglist' });
  const more = h('button.resume', { hidden: true, 'data-action': 'resume', on: { click: resume } });
  const info = h('span.muted');
  let follow = true;
  let pending = [];
  let unseen = 0;
  let frame = 0;
  let unsub = () => {};

  const filters = () => ({ level: level.value, script_path: path.value.trim(), script_id: sid.value.trim(), q: text.value.trim() });

  function resume() {
    follow = true;
    unseen = 0;
    more.hidden = true;
    list.scrollTop = list.scrollHeight;
  }

  list.addEventListener('scroll', () => {
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
    if (atBottom && !follow) resume();
    else if (!atBottom) follow = false;
  });

  function flush() {
    frame = 0;
    const batch = pending.slice(-MAX_ROWS);
    stats.rendered += pending.length;
    pending = [];
    const frag = document.createDocumentFragment();
    for (const m of batch) frag.append(row(m));
    list.append(frag);
    let extra = list.childElementCount - MAX_ROWS;
    // Rows dropped from the top while the user reads must not move what they read.
    const before = follow ? 0 : list.scrollHeight;
    while (extra-- > 0) list.firstElementChild.remove();
    if (follow) list.scrollTop = list.scrollHeight;
    else {
      list.scrollTop -= before - list.scrollHeight;
      unseen += batch.length;
      more.hidden = false;
      more.textContent = t('{0} new lines · resume following', unseen);
    }
    info.textContent = t('{0} / {1} rows', list.childElementCount, MAX_ROWS);
  }

  // Counters a benchmark reads: lines received live and lines rendered.
  const stats = (window.__vwedLogStats = { received: 0, rendered: 0, skipped: 0 });

  function push(m) {
    if (!m.history) stats.received++;
    if (m.type === 'notice') stats.skipped += m.skipped || 0;
    pending.push(m);
    if (!frame) frame = requestAnimationFrame(flush);
  }

  async function reload() {
    unsub();
    clear(list);
    pending = [];
    const f = filters();
    try {
      const d = await get(`/api/script/logs${q({ ...f, limit: 500 })}`);
      for (const m of d.logs.reverse()) push(m);
    } catch (e) { toast(e.message, 'error'); }
    const sub = { level: f.level, q: f.q };
    if (f.script_id) sub.script_id = f.script_id;
    else if (f.script_path) sub.script_path = f.script_path;
    else sub.script_id = '*';
    unsub = subscribe(sub);
  }

  const exportHref = (format) => `/api/script/logs/export${q({ ...filters(), order: 'asc', format })}`;
  const exp = (format) => h('a.button', {
    href: '#', 'data-export': format,
    on: { click: (e) => { e.currentTarget.href = exportHref(format); } },
    download: `logs.${format === 'text' ? 'txt' : 'ndjson'}`,
  }, t('Export {0}', format === 'text' ? 'text' : 'NDJSON'));

  for (const x of [level, path, sid, text]) x.addEventListener('change', reload);
  text.addEventListener('keydown', (e) => { if (e.key === 'Enter') reload(); });

  const off = onMessage((m) => {
    if (m.type === 'script_log' && !m.history) push(m);
    if (m.type === 'notice') push({ ...m, message: tr(m.message), script_path: 'websocket' });
  });
  get('/api/script/scripts/running').then((r) => clear(paths, [...new Set(r.map((s) => s.script_path))].map((p) => h('option', { value: p }))), () => {});
  clear(el, h('div.row.toolbar.filters', level, path, paths, sid, text, h('button', { on: { click: reload } }, t('Apply')), h('span.spacer'), info, exp('ndjson'), exp('text')), list, more);
  await reload();
  return () => { off(); unsub(); if (frame) cancelAnimationFrame(frame); };
}
