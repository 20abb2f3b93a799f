// Registry: routes with a "try it" form, functions with a form built from
// their declared parameters (result and time shown), listeners, timers and
// the call counters. Refreshed when a script's status changes.
import { h, clear, toast } from '../h.js';
import { t, tr } from '../i18n.js';
import { call, get, can } from '../api.js';
import { subscribe, onMessage } from '../ws.js';

function value(input, type) {
  const v = input.type === 'checkbox' ? input.checked : input.value;
  if (type === 'boolean') return !!v;
  if (v === '') return undefined;
  if (type === 'number' || type === 'integer') return Number(v);
  if (type === 'object' || type === 'array') return JSON.parse(v);
  return v;
}

function functionForm(name, f, operator) {
  const params = Array.isArray(f.parameters) ? f.parameters : [];
  const inputs = {};
  const result = h('pre.result', { 'data-testid': `result-${name}` });
  const raw = h('textarea', { rows: 3, placeholder: '{}', spellcheck: false });
  const fieldsEls = params.map((p) => {
    const type = p.type || 'string';
    const input = type === 'boolean' ? h('input', { type: 'checkbox' })
      : type === 'object' || type === 'array' ? h('textarea', { rows: 2, placeholder: type === 'array' ? '[]' : '{}', spellcheck: false })
        : h('input', { type: type === 'number' || type === 'integer' ? 'number' : 'text', step: 'any', required: !!p.required });
    input.name = p.name;
    inputs[p.name] = { input, type };
    return h('label', h('span', `${p.name}${p.required ? ' *' : ''} (${type})`), input, p.description ? h('small.muted', p.description) : null);
  });
  const form = h('form.card.fn', {
    'data-function': name,
    on: {
      submit: async (e) => {
        e.preventDefault();
        let args;
        try {
          if (params.length) {
            args = {};
            for (const [k, { input, type }] of Object.entries(inputs)) {
              const v = value(input, type);
              if (v !== undefined) args[k] = v;
            }
          } else args = raw.value.trim() ? JSON.parse(raw.value) : {};
        } catch (x) { result.textContent = `${t('Invalid JSON')}: ${x.message}`; return; }
        const t0 = performance.now();
        try {
          const r = await call('POST', '/api/script/scripts/execute-function', { function_name: name, function_args: args, script_id: f.script_id });
          result.className = 'result ok';
          result.textContent = `${JSON.stringify(r.json.result, null, 2)}\n— ${r.json.execution_time_ms} ms (${t('round trip')} ${Math.round(performance.now() - t0)} ms)`;
        } catch (x) {
          result.className = 'result bad';
          result.textContent = `${x.message}${x.body?.execution_time_ms != null ? ` — ${x.body.execution_time_ms} ms` : ''}`;
        }
      },
    },
  },
  h('div.row', h('strong', name), f.is_async ? h('span.tag', 'async') : null, (f.tags || []).map((x) => h('span.tag', x)), h('span.spacer'),
    h('small.muted', t('{0} calls, {1} errors, avg {2} ms', f.call_count ?? 0, f.error_count ?? 0, f.average_execution_time_ms ?? 0))),
  f.description ? h('p.muted', f.description) : null,
  params.length ? fieldsEls : h('label', h('span', t('Arguments (JSON)')), raw),
  operator ? h('div.row.end', h('button.primary', { type: 'submit', 'data-action': 'call' }, t('Call'))) : null,
  result);
  return form;
}

function routeForm(key, r, operator) {
  const out = h('pre.result');
  const query = h('input', { placeholder: 'name=VWED' });
  const body = h('textarea', { rows: 2, placeholder: '{}', spellcheck: false });
  const path = h('input', { value: r.path });
  return h('form.card', {
    on: {
      submit: async (e) => {
        e.preventDefault();
        const init = { method: r.method, headers: {}, credentials: 'same-origin' };
        if (!['GET', 'DELETE'].includes(r.method) && body.value.trim()) {
          init.body = body.value;
          init.headers['Content-Type'] = 'application/json';
        }
        const t0 = performance.now();
        try {
          const res = await fetch(`/script-api${path.value.startsWith('/') ? '' : '/'}${path.value}${query.value ? `?${query.value}` : ''}`, init);
          const text = await res.text();
          out.textContent = `HTTP ${res.status} — ${Math.round(performance.now() - t0)} ms\n${text}`;
        } catch (x) { out.textContent = x.message; }
      },
    },
  },
  h('div.row', h('strong', `${r.method} ${r.path}`), h('span.spacer'), h('small.muted', t('{0} calls, avg {1} ms', r.call_count ?? 0, r.average_response_time_ms ?? 0))),
  r.description ? h('p.muted', r.description) : null,
  h('label', h('span', t('Path')), path), h('label', h('span', t('Query')), query),
  ['GET', 'DELETE'].includes(r.method) ? null : h('label', h('span', t('Body')), body),
  operator ? h('div.row.end', h('button', { type: 'submit' }, t('Try it'))) : null, out);
}

export async function mount(el) {
  const operator = can('operator');
  async function render() {
    const d = await get('/api/script/registry/status');
    const listeners = Object.entries(d.event_listeners);
    const timers = Object.entries(d.timers);
    clear(el,
      h('div.row.toolbar', h('h2', t('Registry')), h('span.spacer'), h('button', { on: { click: render } }, t('Refresh'))),
      h('div.cols',
        h('section', h('h3', t('Functions')), Object.entries(d.registered_functions).map(([n, f]) => functionForm(n, f, operator)),
          Object.keys(d.registered_functions).length ? null : h('p.muted', t('None'))),
        h('section', h('h3', t('Routes')), Object.entries(d.api_routes).map(([k, r]) => routeForm(k, r, operator)),
          Object.keys(d.api_routes).length ? null : h('p.muted', t('None')))),
      h('div.cols',
        h('section', h('h3', t('Event listeners')), h('table.grid', h('thead', h('tr', ['Event', 'Script', 'Priority', 'Calls', 'Dropped'].map((c) => h('th', t(c))))),
          h('tbody', listeners.flatMap(([ev, list]) => list.map((l) => h('tr', h('td', ev), h('td', l.script_id), h('td', l.priority), h('td', l.call_count ?? 0), h('td', l.dropped_count ?? 0))))))),
        h('section', h('h3', t('Timers')), h('table.grid', h('thead', h('tr', ['Timer', 'Schedule', 'Next run', 'Calls', 'Skipped'].map((c) => h('th', t(c))))),
          h('tbody', timers.map(([k, x]) => h('tr', h('td', x.name || k), h('td', JSON.stringify(x.schedule)), h('td', x.next_run || '–'), h('td', x.call_count ?? 0), h('td', x.skipped_count ?? 0))))))));
  }
  await render();
  let pendingRender;
  const off = onMessage((m) => {
    if (m.type === 'script_status') { clearTimeout(pendingRender); pendingRender = setTimeout(() => render().catch((e) => toast(tr(e.message), 'error')), 300); }
  });
  const unsub = subscribe({ script_id: 'status' });
  return () => { off(); unsub(); clearTimeout(pendingRender); };
}
