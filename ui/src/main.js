// The shell: who is signed in, the navigation, the language switch, the
// connection state, and the router (paths under /ui/, served as index.html
// by the runtime). Each screen mounts into the main area and returns its cleanup.
import { h, clear, toast } from './h.js';
import { t, getLang, setLang } from './i18n.js';
import { call, can, session, whenUnauthorized } from './api.js';
import { connect, disconnect, onWsState } from './ws.js';
import { loginScreen } from './screens/login.js';

const SCREENS = {
  files: { label: 'Projects', load: () => import('./screens/files.js') },
  editor: { label: 'Editor', load: () => import('./screens/editor-screen.js') },
  run: { label: 'Run', load: () => import('./screens/run.js') },
  logs: { label: 'Logs', load: () => import('./screens/logs.js') },
  registry: { label: 'Registry', load: () => import('./screens/registry.js') },
  io: { label: 'I/O', load: () => import('./screens/io.js') },
  system: { label: 'System', load: () => import('./screens/system.js') },
};

const app = document.getElementById('app');
let cleanup = null;
let mountId = 0;

export function go(path, replace = false) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route();
}

function parse() {
  const parts = location.pathname.replace(/^\/ui\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || 'files', args: parts.slice(1), query: new URLSearchParams(location.search) };
}

async function whoAmI() {
  try {
    const r = await call('GET', '/api/auth/me');
    const d = r.json?.data || {};
    Object.assign(session, { user: d.user, role: d.role || 'viewer', csrf: d.csrf_token || null, noAuth: !!d.no_auth });
    return true;
  } catch (e) {
    // A runtime without access control has no /api/auth: everyone is admin.
    if (e.status === 404) {
      Object.assign(session, { user: null, role: 'admin', csrf: null, noAuth: true });
      return true;
    }
    return false;
  }
}

function nav(active) {
  const links = Object.entries(SCREENS).map(([name, s]) =>
    h('a', {
      href: `/ui/${name}`, class: name === active ? 'active' : '', 'data-screen': name,
      on: { click: (e) => { e.preventDefault(); go(`/ui/${name}`); } },
    }, t(s.label)));
  const dot = h('span.conn', { title: t('Live connection') });
  const setDot = (s) => { dot.className = `conn ${s}`; dot.title = `${t('Live connection')}: ${t(s)}`; };
  setDot('closed');
  onWsState(setDot);
  return h('header.top',
    h('span.brand', 'VWED Edge'),
    h('nav', links),
    h('span.spacer'),
    dot,
    h('span.user', session.user ? `${session.user} · ${t(session.role)}` : t(session.role)),
    h('button.lang', {
      title: t('Language'),
      on: { click: () => { setLang(getLang() === 'zh' ? 'en' : 'zh'); route(); } },
    }, getLang() === 'zh' ? 'EN' : '中文'),
    session.noAuth ? null : h('button', { on: { click: logout } }, t('Log out')));
}

async function logout() {
  try { await call('POST', '/api/auth/logout', {}); } catch { /* gone already */ }
  Object.assign(session, { user: null, role: 'viewer', csrf: null });
  disconnect();
  go('/ui/login');
}

async function route() {
  const id = ++mountId;
  if (cleanup) { try { cleanup(); } catch { /* screen already gone */ } cleanup = null; }
  const { name, args, query } = parse();
  if (name === 'login') {
    clear(app, loginScreen(async () => { await whoAmI(); connect(); go('/ui/files', true); }));
    return;
  }
  const screen = SCREENS[name] ? name : 'files';
  // The screen's code loads while we ask who is signed in.
  const loading = SCREENS[screen].load();
  loading.catch(() => {});
  if (!session.role || (!session.user && !session.noAuth)) {
    if (!(await whoAmI())) { go('/ui/login', true); return; }
    connect();
  }
  const main = h('main', { 'data-screen': screen });
  clear(app, nav(screen), main);
  document.title = `${t(SCREENS[screen].label)} · VWED Edge`;
  try {
    const mod = await loading;
    if (id !== mountId) return;
    cleanup = (await mod.mount(main, { args, query, go, can })) || null;
  } catch (e) {
    main.append(h('p.error', e.message));
    toast(e.message, 'error');
  }
}

whenUnauthorized(() => {
  if (parse().name !== 'login') {
    Object.assign(session, { user: null, role: null, csrf: null });
    go('/ui/login', true);
  }
});
addEventListener('popstate', route);
if (!location.pathname.startsWith('/ui/')) history.replaceState(null, '', '/ui/files');
route();
