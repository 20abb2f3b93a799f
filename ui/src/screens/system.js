// System: version, uptime, disk, database sizes, board, configuration with
// secrets hidden; for admins, users, API tokens and the audit log.
import { h, clear, toast, dialog, bytes, duration } from '../h.js';
import { t, tr } from '../i18n.js';
import { call, get, post, del, can, session } from '../api.js';

function kv(pairs) {
  return h('table.kv', h('tbody', pairs.map(([k, v]) => h('tr', h('th', k), h('td', v ?? '–')))));
}

async function users(box) {
  const list = await get('/api/auth/users');
  const act = async (fn) => { try { const r = await fn(); if (r?.data?.password) alert(t('Password (shown once): {0}', r.data.password)); } catch (e) { toast(e.message, 'error'); } users(box); };
  clear(box, h('div.row', h('h3', t('Users')), h('span.spacer'), h('button', {
    on: {
      click: async () => {
        const v = await dialog(t('New user'), [{ name: 'name', label: t('User name') }, { name: 'role', label: t('Role'), type: 'select', value: 'viewer', options: ['viewer', 'operator', 'engineer', 'admin'] }, { name: 'password', label: t('Password (empty: generate)'), type: 'password' }], t('Create'), t('Cancel'));
        if (v?.name) act(() => post('/api/auth/users', { name: v.name, role: v.role, ...(v.password ? { password: v.password } : {}) }));
      },
    },
  }, '+ ' + t('User'))),
  h('table.grid', h('thead', h('tr', ['User', 'Role', 'Disabled', 'Last login', ''].map((c) => h('th', t(c))))),
    h('tbody', list.map((u) => h('tr', h('td', u.name), h('td', t(u.role)), h('td', u.disabled ? t('yes') : ''), h('td', u.last_login_at || '–'),
      h('td',
        h('select', { on: { change: (e) => act(() => call('PATCH', `/api/auth/users/${encodeURIComponent(u.name)}`, { role: e.target.value })) } },
          ['viewer', 'operator', 'engineer', 'admin'].map((r) => h('option', { value: r, selected: r === u.role }, t(r)))),
        h('button.small', { on: { click: () => act(() => call('PATCH', `/api/auth/users/${encodeURIComponent(u.name)}`, { disabled: !u.disabled })) } }, u.disabled ? t('Enable') : t('Disable')),
        h('button.small', { on: { click: () => act(() => call('PATCH', `/api/auth/users/${encodeURIComponent(u.name)}`, { password: null })) } }, t('New password')),
        h('button.small.danger', { on: { click: () => confirm(t('Delete {0}?', u.name)) && act(() => del(`/api/auth/users/${encodeURIComponent(u.name)}`)) } }, t('Delete'))))))));
}

async function tokens(box) {
  const list = await get('/api/auth/tokens');
  const act = async (fn) => { try { const r = await fn(); if (r?.data?.token) alert(t('Token (shown once): {0}', r.data.token)); } catch (e) { toast(e.message, 'error'); } tokens(box); };
  clear(box, h('div.row', h('h3', t('API tokens')), h('span.spacer'), h('button', {
    on: {
      click: async () => {
        const v = await dialog(t('New token'), [{ name: 'name', label: t('Name') }, { name: 'role', label: t('Role'), type: 'select', value: 'operator', options: ['viewer', 'operator', 'engineer', 'admin'] }, { name: 'days', label: t('Expires in days (empty: never)'), type: 'number' }], t('Create'), t('Cancel'));
        if (v?.name) act(() => post('/api/auth/tokens', { name: v.name, role: v.role, ...(v.days ? { expires_days: Number(v.days) } : {}) }));
      },
    },
  }, '+ ' + t('Token'))),
  h('table.grid', h('thead', h('tr', ['Name', 'Role', 'State', 'Expires', 'Last used', ''].map((c) => h('th', t(c))))),
    h('tbody', list.map((x) => h('tr', h('td', `${x.name} (${x.hint})`), h('td', t(x.role)), h('td', t(x.state)), h('td', x.expires_at || '–'), h('td', x.last_used_at || '–'),
      h('td', x.state === 'active' ? h('button.small.danger', { on: { click: () => act(() => del(`/api/auth/tokens/${x.id}`)) } }, t('Revoke')) : null))))));
}

async function audit(box, before) {
  const d = await get(`/api/audit?limit=100${before ? `&before=${before}` : ''}`);
  clear(box, h('h3', t('Audit log')),
    h('table.grid', h('thead', h('tr', ['Time', 'User', 'Action', 'Target', 'Status', 'Detail'].map((c) => h('th', t(c))))),
      h('tbody', d.entries.map((e) => h('tr', h('td', e.time), h('td', `${e.user || ''} ${e.role ? `(${t(e.role)})` : ''}`), h('td', e.action), h('td', e.target), h('td', h(`span.tag.${e.result === 'ok' ? 'good' : 'bad'}`, e.status)), h('td', tr(e.detail || '')))))),
    d.next_before ? h('button', { on: { click: () => audit(box, d.next_before) } }, t('Older')) : null);
}

async function changePassword() {
  const v = await dialog(t('Change my password'), [
    { name: 'current', label: t('Current password'), type: 'password' },
    { name: 'next', label: t('Your new password'), type: 'password' },
  ], t('Save'), t('Cancel'));
  if (!v) return;
  try {
    const r = await call('POST', '/api/auth/password', { current_password: v.current, new_password: v.next });
    // The answer is a new session: all others of this user ended.
    if (r.json?.data?.csrf_token) session.csrf = r.json.data.csrf_token;
    toast(t('Password changed'));
  } catch (e) { toast(e.message, 'error'); }
}

export async function mount(el) {
  const d = await get('/api/system/info');
  const cfg = h('pre.config', JSON.stringify(d.config, null, 2));
  const admin = [h('div.card'), h('div.card'), h('div.card')];
  clear(el,
    h('div.row.toolbar', h('h2', t('System'))),
    h('div.cols',
      h('section', h('h3', t('Runtime')), kv([
        [t('Version'), d.version], [t('Uptime'), duration(d.uptime_s)], ['PID', d.pid], [t('Memory (RSS)'), bytes(d.rss_bytes)], [t('Scripts'), d.scripts],
        [t('Signed in as'), session.user ? `${session.user} (${t(session.role)})` : t(session.role)],
      ])),
      h('section', h('h3', t('Board')), kv([
        [t('Profile'), d.board.profile], [t('Model'), d.board.model], [t('Host name'), d.board.hostname], [t('Kernel'), d.board.kernel],
        [t('Architecture'), d.board.arch], ['CPUs', d.board.cpus], [t('Memory'), bytes(d.board.mem_total_bytes)],
      ])),
      h('section', h('h3', t('Storage')), kv([
        [t('Data directory'), d.disk?.path], [t('Disk total'), bytes(d.disk?.total_bytes)], [t('Disk available'), bytes(d.disk?.available_bytes)],
        ...d.databases.map((x) => [x.name, bytes(x.bytes)]),
      ]))),
    h('details', h('summary', t('Configuration (secrets hidden)')), cfg),
    session.user && !session.noAuth ? h('button', { 'data-action': 'password', on: { click: changePassword } }, t('Change my password')) : null,
    can('admin') && !session.noAuth ? admin : null);
  if (can('admin') && !session.noAuth) {
    await Promise.all([users(admin[0]), tokens(admin[1]), audit(admin[2])].map((p) => p.catch((e) => toast(e.message, 'error'))));
  }
  return null;
}
