// Run: start a script (start_params checked as a JSON object first), stop,
// restart; status, pid, uptime, restarts, RSS and CPU% of every worker, pushed
// over the WebSocket (`metrics` and `status` topics), never polled.
import { h, clear, toast, bytes, duration } from '../h.js';
import { t, tr } from '../i18n.js';
import { get, post, can } from '../api.js';
import { subscribe, onMessage } from '../ws.js';

export async function mount(el) {
  const operator = can('operator');
  const body = h('tbody');
  const table = h('table.grid', { 'data-testid': 'running' },
    h('thead', h('tr', ['Script', 'Status', 'PID', 'Uptime', 'Restarts', 'RSS', 'CPU %', 'Registrations', ''].map((c) => h('th', t(c))))),
    body);

  function render(list) {
    clear(body, list.length ? list.map((s) => h('tr', { 'data-script': s.script_path },
      h('td', h('div', s.script_path), h('small.muted', s.script_id)),
      h('td', h(`span.tag.${s.status === 'running' ? 'good' : ['crashed', 'broken'].includes(s.status) ? 'bad' : ''}`, { title: s.last_failure ? tr(s.last_failure.reason) : '' }, t(s.status)),
        s.exit_reason ? h('div', h('small.error', tr(s.exit_reason.message))) : null,
        s.next_restart_at ? h('div', h('small.muted', t('restarts at {0}', s.next_restart_at))) : null),
      h('td', s.pid || '–'),
      h('td', duration(s.uptime_s)),
      h('td', { title: t('{0} in the policy window', s.restarts ?? 0) }, s.restarts_total ?? s.restarts ?? '–'),
      h('td', bytes(s.rss_bytes)),
      h('td', s.cpu_percent == null ? '–' : s.cpu_percent.toFixed(1)),
      h('td', `${s.registrations.apis}/${s.registrations.functions}/${s.registrations.events}/${s.registrations.timers}`),
      h('td', operator ? [
        h('button.small', { on: { click: () => act(`/api/script/scripts/${encodeURIComponent(s.script_id)}/restart`) } }, t('Restart')),
        h('button.small.danger', { 'data-action': 'stop', on: { click: () => act(`/api/script/scripts/${encodeURIComponent(s.script_id)}/stop`) } }, t('Stop'))] : null)))
      : h('tr', h('td', { colSpan: 9 }, h('p.muted', t('No script is running')))));
  }

  async function act(path, body) {
    try { toast(tr((await post(path, body)).message)); } catch (e) { toast(e.message, 'error'); }
    render(await get('/api/script/scripts/running'));
  }

  const pathSel = h('select', { name: 'script_path', 'data-testid': 'start-path' });
  const params = h('textarea', { rows: 4, name: 'start_params', placeholder: '{"greeting": "Hello"}', spellcheck: false }, '{}');
  const err = h('p.error');
  const startForm = h('form.card', {
    on: {
      submit: async (e) => {
        e.preventDefault();
        err.textContent = '';
        let p;
        try {
          p = JSON.parse(params.value || '{}');
          if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new Error(t('start_params must be a JSON object'));
        } catch (x) { err.textContent = `${t('Invalid JSON')}: ${x.message}`; return; }
        act('/api/script/scripts/start', { script_path: pathSel.value, start_params: p });
      },
    },
  }, h('h3', t('Start a script')), h('label', h('span', t('Script')), pathSel), h('label', h('span', 'start_params (JSON)'), params), err,
  h('div.row.end', h('button.primary', { type: 'submit' }, t('Start'))));

  if (operator) {
    const found = await get('/api/script/files/search?keyword=&has_boot=true');
    clear(pathSel, found.files.map((f) => h('option', { value: `${f.project_name}/${f.file_path}` }, `${f.project_name}/${f.file_path}`)));
  }
  clear(el, h('div.row.toolbar', h('h2', t('Running scripts'))), table, operator ? startForm : null);
  render(await get('/api/script/scripts/running'));
  const off = onMessage((m) => {
    if (m.type === 'scripts_running') render(m.data);
    if (m.type === 'script_status') get('/api/script/scripts/running').then(render, () => {});
  });
  const u1 = subscribe({ script_id: 'metrics' });
  const u2 = subscribe({ script_id: 'status' });
  return () => { off(); u1(); u2(); };
}
