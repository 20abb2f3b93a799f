// The editor: a file's content with drafts kept as you type, saves that say
// which version they started from (If-Match), a 409 shown as a diff to merge,
// version history with diff and restore, start/stop of the script and its
// live output underneath.
import { h, clear, toast } from '../h.js';
import { t, tr } from '../i18n.js';
import { call, get, post, can, ApiError } from '../api.js';
import { loadDraft, saveDraft, dropDraft } from '../drafts.js';
import { subscribe, onMessage } from '../ws.js';

let stubsText;
async function stubs() {
  stubsText ??= fetch('/api/script/stubs/vwed.pyi', { credentials: 'same-origin' }).then((r) => (r.ok ? r.text() : ''));
  return stubsText;
}

function versionOf(res) {
  const tag = res.headers.get('etag');
  const fromTag = tag ? Number(tag.replace(/^W\//, '').replace(/"/g, '')) : NaN;
  if (Number.isFinite(fromTag)) return fromTag;
  const v = res.json?.data?.file?.version;
  return typeof v === 'number' ? v : null;
}

export async function mount(el, { args, query, go }) {
  const id = Number(args[0] || localStorage.getItem('vwed.lastFile'));
  if (!id) { go('/ui/files', true); return null; }
  localStorage.setItem('vwed.lastFile', String(id));
  const [cm, res, stubText, projects] = await Promise.all([
    import('../editor.js'),
    call('GET', `/api/script/files/${id}`),
    stubs(),
    get('/api/script/projects'),
  ]);
  const file = res.json.data.file;
  const project = projects.find((p) => p.id === file.project_id);
  const scriptPath = `${project?.project_name}/${file.file_path}`;
  const state = { version: versionOf(res), serverContent: res.json.data.content, dirty: false, running: null };
  const draft = await loadDraft(id);
  let base = { version: state.version, content: state.serverContent };
  let initial = state.serverContent;
  const banner = h('div.banner', { hidden: true });
  if (draft && draft.content !== state.serverContent) {
    initial = draft.content;
    base = { version: draft.base_version ?? state.version, content: draft.base_content ?? state.serverContent };
    state.dirty = true;
    banner.hidden = false;
    clear(banner, t('Unsaved draft restored (from {0}).', new Date(draft.saved_at).toLocaleString()), ' ',
      h('button.small', { 'data-action': 'discard-draft', on: { click: discard } }, t('Discard draft')));
  }
  const engineer = can('engineer');
  const operator = can('operator');
  const status = h('span.status', { 'data-testid': 'save-state' });
  const runState = h('span.tag', { 'data-testid': 'run-state' });
  const host = h('div.editor-host', { 'data-testid': 'editor' });
  const side = h('div.side', { hidden: true });
  const output = h('div.output', { 'data-testid': 'output' });
  let draftTimer;

  function setStatus() {
    status.textContent = state.dirty ? t('Unsaved changes') : t('Saved') + (state.version != null ? ` · v${state.version}` : '');
    status.className = `status ${state.dirty ? 'dirty' : 'clean'}`;
  }

  const view = cm.createEditor(host, initial, {
    readOnly: !engineer || matchMedia('(max-width: 760px)').matches,
    stubs: cm.parseStubs(stubText),
    parserMessage: (line) => t('Syntax error at line {0}', line),
    onSave: save,
    onChange(text) {
      state.dirty = text !== state.serverContent;
      setStatus();
      clearTimeout(draftTimer);
      draftTimer = setTimeout(() => {
        if (text === state.serverContent) dropDraft(id);
        else saveDraft({ file_id: id, content: text, base_version: base.version, base_content: base.content });
      }, 250);
    },
  });
  window.__vwedEditorView = view;

  async function discard() {
    await dropDraft(id);
    cm.replaceDoc(view, state.serverContent);
    base = { version: state.version, content: state.serverContent };
    banner.hidden = true;
  }

  async function put(content, version) {
    const headers = version != null ? { 'If-Match': `"${version}"` } : {};
    const body = { content };
    if (version != null) body.base_version = version;
    return call('PUT', `/api/script/files/${id}`, body, headers);
  }

  function saved(r, content) {
    state.version = versionOf(r) ?? (state.version != null ? state.version + 1 : null);
    state.serverContent = content;
    base = { version: state.version, content };
    state.dirty = view.state.doc.toString() !== content;
    dropDraft(id);
    banner.hidden = true;
    const se = r.json?.data?.syntax_error;
    cm.showServerError(view, se, se ? tr(se.error) + (se.line ? ` (${t('line {0}', se.line)})` : '') : '');
    toast(tr(r.json?.message || t('Saved')), se ? 'warn' : 'info');
    setStatus();
  }

  async function save() {
    if (!engineer) return;
    const content = view.state.doc.toString();
    try {
      saved(await put(content, base.version), content);
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) conflict(content);
      else toast(e.message, 'error');
    }
  }

  async function conflict(mine) {
    const cur = await call('GET', `/api/script/files/${id}`);
    const theirs = cur.json.data.content;
    const theirVersion = versionOf(cur);
    let merged = mine;
    const box = h('div.merge', { 'data-testid': 'merge' });
    const panel = h('div.conflict', { 'data-testid': 'conflict' },
      h('h3', t('Someone saved this file after you opened it (now version {0}).', theirVersion ?? '?')),
      h('p', t('Left: the saved version. Right: yours. Take changes from the left with the arrows, edit the right, then save.')),
      box,
      h('div.row.end',
        h('button', { on: { click: () => { panel.remove(); host.hidden = false; } } }, t('Cancel')),
        h('button', {
          'data-action': 'take-theirs',
          on: { click: () => { cm.replaceDoc(view, theirs); finish(theirs, theirVersion); state.serverContent = theirs; state.dirty = false; setStatus(); } },
        }, t('Discard mine, take saved')),
        h('button.primary', {
          'data-action': 'save-merged',
          on: {
            click: async () => {
              try {
                const r = await put(merged, theirVersion);
                cm.replaceDoc(view, merged);
                finish(merged, theirVersion);
                saved(r, merged);
              } catch (e) { toast(e.message, 'error'); }
            },
          },
        }, t('Save merged'))));
    function finish(content, v) {
      base = { version: v, content };
      state.version = v;
      panel.remove();
      host.hidden = false;
    }
    host.hidden = true;
    host.after(panel);
    cm.createMerge(box, theirs, mine, { onChange: (text) => { merged = text; } });
  }

  async function history() {
    if (!side.hidden) { side.hidden = true; return; }
    const d = await get(`/api/script/files/${id}/versions`);
    side.hidden = false;
    const diffBox = h('div.merge');
    clear(side,
      h('h3', t('Versions')),
      d.pruned ? h('p.muted', t('{0} older versions pruned', d.pruned)) : null,
      h('ul.list', [...d.versions].reverse().map((v) => h('li', {
        on: {
          click: async () => {
            const one = await get(`/api/script/files/${id}/versions/${v.version}`);
            clear(diffBox,
              h('div.row', h('strong', `v${v.version} · ${v.saved_at}`), h('span.spacer'),
                engineer ? h('button', { on: { click: () => { cm.replaceDoc(view, one.content); side.hidden = true; } } }, t('Restore this version')) : null),
              h('p.muted', t('Left: version {0}. Right: the editor now.', v.version)));
            const m = h('div');
            diffBox.append(m);
            cm.createMerge(m, one.content, view.state.doc.toString());
          },
        },
      }, `v${v.version}`, h('span.muted', ` ${v.saved_at} ${v.saved_by || ''}`)))),
      diffBox);
  }

  async function start() {
    let params = {};
    const raw = prompt(t('start_params (JSON object)'), '{}');
    if (raw === null) return;
    try {
      params = JSON.parse(raw || '{}');
      if (typeof params !== 'object' || Array.isArray(params) || params === null) throw new Error(t('start_params must be a JSON object'));
    } catch (e) { toast(`${t('Invalid JSON')}: ${e.message}`, 'error'); return; }
    try {
      const r = await post('/api/script/scripts/start', { script_path: scriptPath, start_params: params });
      toast(tr(r.message));
      refreshRun();
    } catch (e) { toast(e.message, 'error'); }
  }

  async function stop() {
    if (!state.running) return;
    try {
      const r = await post(`/api/script/scripts/${encodeURIComponent(state.running.script_id)}/stop`);
      toast(tr(r.message));
    } catch (e) { toast(e.message, 'error'); }
    refreshRun();
  }

  async function refreshRun() {
    const list = await get('/api/script/scripts/running');
    state.running = list.find((s) => s.script_path === scriptPath && ['running', 'starting'].includes(s.status)) || null;
    runState.textContent = state.running ? t(state.running.status) : t('not running');
    runState.className = `tag ${state.running ? 'good' : ''}`;
    startBtn.hidden = !operator || !!state.running;
    stopBtn.hidden = !operator || !state.running;
  }

  const startBtn = h('button', { 'data-action': 'start', hidden: true, on: { click: start } }, t('Start'));
  const stopBtn = h('button', { 'data-action': 'stop', hidden: true, on: { click: stop } }, t('Stop'));
  const toolbar = h('div.row.toolbar',
    h('a', { href: '/ui/files', on: { click: (e) => { e.preventDefault(); go('/ui/files'); } } }, `← ${project?.project_name ?? ''}`),
    h('h2', file.file_path), status, runState,
    h('span.spacer'),
    engineer ? h('button.primary', { 'data-action': 'save', on: { click: save } }, t('Save')) : null,
    h('button', { 'data-action': 'history', on: { click: history } }, t('History')),
    file.file_type === 'python' ? [startBtn, stopBtn] : null);

  const lines = [];
  function addLine(m) {
    const row = h(`div.line.${(m.level || 'info').toLowerCase()}`, h('span.ts', (m.timestamp || '').slice(11, 19)), ' ', h('span.lvl', m.level || ''), ' ', m.stream === 'system' ? tr(m.message) : m.message);
    lines.push(row);
    output.append(row);
    while (lines.length > 500) lines.shift().remove();
    output.scrollTop = output.scrollHeight;
  }
  const offMsg = onMessage((m) => {
    if (m.script_path !== scriptPath) return;
    if (m.type === 'script_log') addLine(m);
    if (m.type === 'script_status') { addLine({ ...m, level: 'STATUS', message: `${m.status} ${tr(m.message || '')}` }); refreshRun(); }
  });
  const unsub = subscribe({ script_path: scriptPath, last: 50 });

  clear(el, toolbar, banner, h('div.editor-wrap', host, side), h('h3.outhead', t('Output of this script')), output);
  setStatus();
  refreshRun().catch((e) => toast(e.message, 'error'));
  const line = Number(query.get('line'));
  if (line > 0 && line <= view.state.doc.lines) {
    const pos = view.state.doc.line(line).from;
    view.dispatch({ selection: { anchor: pos }, scrollIntoView: true });
  }
  view.focus();
  window.__vwedEditorReady = performance.now();
  const beforeUnload = (e) => { if (state.dirty) e.preventDefault(); };
  addEventListener('beforeunload', beforeUnload);
  return () => {
    clearTimeout(draftTimer);
    if (state.dirty) saveDraft({ file_id: id, content: view.state.doc.toString(), base_version: base.version, base_content: base.content });
    removeEventListener('beforeunload', beforeUnload);
    offMsg();
    unsub();
    view.destroy();
  };
}
