// Projects and files: the tree of a project, create/rename/move/copy/delete of
// files and folders, upload, download as an archive, and search inside files.
import { h, clear, dialog, toast, bytes } from '../h.js';
import { t } from '../i18n.js';
import { call, get, post, del, q, can } from '../api.js';

const LAST = 'vwed.project';

export async function mount(el, { go, query }) {
  const projects = await get('/api/script/projects');
  let current = +(query.get('project') || localStorage.getItem(LAST) || projects[0]?.id || 0);
  if (!projects.some((p) => p.id === current)) current = projects[0]?.id || 0;
  const treeBox = h('div.tree', { 'data-testid': 'tree' });
  const results = h('div.results');
  const side = h('aside.panel');
  const engineer = can('engineer');

  const project = () => projects.find((p) => p.id === current);

  function projectList() {
    return h('div.projects',
      h('div.row', h('h2', t('Projects')), engineer ? h('button', { 'data-action': 'new-project', on: { click: newProject } }, '+ ' + t('Project')) : null),
      h('ul.list', projects.map((p) => h('li', {
        class: p.id === current ? 'active' : '',
        on: { click: () => { current = p.id; localStorage.setItem(LAST, p.id); render(); } },
      }, p.project_name))));
  }

  async function newProject() {
    const v = await dialog(t('New project'), [{ name: 'name', label: t('Name') }], t('Create'), t('Cancel'));
    if (!v?.name) return;
    try {
      const r = await post('/api/script/projects', { project_name: v.name });
      projects.push(r.data);
      current = r.data.id;
      render();
    } catch (e) { toast(e.message, 'error'); }
  }

  async function act(fn, ok) {
    try { await fn(); if (ok) toast(ok); await render(); } catch (e) { toast(e.message, 'error'); }
  }

  const base = () => `/api/script/projects/${current}`;

  async function newFile(dir) {
    const v = await dialog(t('New file'), [{ name: 'name', label: t('File name'), value: 'main.py' }], t('Create'), t('Cancel'));
    if (!v?.name) return;
    try {
      const r = await post('/api/script/files', { project_id: current, file_name: v.name, file_path: dir ? `${dir}/${v.name}` : v.name });
      go(`/ui/editor/${r.data.id}`);
    } catch (e) { toast(e.message, 'error'); }
  }

  async function newFolder(dir) {
    const v = await dialog(t('New folder'), [{ name: 'name', label: t('Folder name') }], t('Create'), t('Cancel'));
    if (v?.name) act(() => post(`${base()}/dirs`, { path: dir ? `${dir}/${v.name}` : v.name }));
  }

  async function moveOrCopy(entry, copy) {
    const fields = [{ name: 'to', label: t('New path'), value: entry.path }];
    if (copy) fields.push({ name: 'project', label: t('Project'), type: 'select', value: project().project_name, options: projects.map((p) => p.project_name) });
    const v = await dialog(copy ? t('Copy') : t('Rename / move'), fields, copy ? t('Copy') : t('Move'), t('Cancel'));
    if (!v?.to || (v.to === entry.path && !copy)) return;
    const body = { from: entry.path, to: v.to };
    if (copy) body.to_project_id = projects.find((p) => p.project_name === v.project)?.id;
    act(() => post(`${base()}/${copy ? 'copy' : 'move'}`, body), t('Done'));
  }

  async function remove(entry) {
    if (!confirm(t('Delete {0}?', entry.path))) return;
    if (entry.kind === 'dir') act(() => del(`${base()}/dirs${q({ path: entry.path, recursive: true })}`));
    else act(() => del(`/api/script/files/${entry.file.id}`));
  }

  async function upload() {
    const input = h('input', { type: 'file', accept: '.py,.txt,.json,.toml,.yaml,.yml,.md' });
    input.onchange = () => {
      const f = input.files[0];
      if (!f) return;
      const form = new FormData();
      form.append('project_id', String(current));
      form.append('file', f, f.name);
      act(() => call('POST', '/api/script/upload', form), t('Uploaded'));
    };
    input.click();
  }

  function row(e) {
    const depth = e.path.split('/').length - 1;
    const name = e.path.split('/').pop();
    const open = () => { if (e.kind === 'file' && e.file) go(`/ui/editor/${e.file.id}`); };
    return h('div.entry', { class: `entry ${e.kind}${e.missing ? ' missing' : ''}`, style: { paddingLeft: `${depth * 16 + 8}px` }, 'data-path': e.path },
      h('span.name', { on: { click: open } }, e.kind === 'dir' ? `▸ ${name}` : name),
      e.file?.has_boot_function ? h('span.tag', 'boot') : null,
      e.missing ? h('span.tag.bad', t('missing')) : null,
      h('span.size', e.kind === 'file' ? bytes(e.size) : ''),
      engineer ? h('span.actions',
        e.kind === 'dir' ? [h('button.small', { title: t('New file'), on: { click: () => newFile(e.path) } }, '+'),
          h('button.small', { title: t('New folder'), on: { click: () => newFolder(e.path) } }, '+▸')] : null,
        h('button.small', { on: { click: () => moveOrCopy(e, false) } }, t('Rename')),
        h('button.small', { on: { click: () => moveOrCopy(e, true) } }, t('Copy')),
        h('button.small.danger', { on: { click: () => remove(e) } }, t('Delete'))) : null);
  }

  async function search(text) {
    if (!text) { clear(results); return; }
    try {
      const d = await get(`/api/script/grep${q({ q: text, project_id: current, limit: 200 })}`);
      clear(results,
        h('h3', t('{0} matches', d.count) + (d.truncated ? ' +' : '')),
        h('ul.list.hits', d.hits.map((x) => h('li', { on: { click: () => go(`/ui/editor/${x.file_id}?line=${x.line}`) } },
          h('span.path', `${x.file_path}:${x.line}`), h('code', x.text)))));
    } catch (e) { toast(e.message, 'error'); }
  }

  async function render() {
    clear(side, projectList());
    if (!current) { clear(treeBox, h('p.muted', t('No project yet'))); return; }
    const d = await get(`${base()}/tree`);
    const searchBox = h('input', { type: 'search', placeholder: t('Search in files'), 'data-testid': 'grep' });
    searchBox.addEventListener('keydown', (e) => { if (e.key === 'Enter') search(searchBox.value); });
    clear(treeBox,
      h('div.row.toolbar',
        h('h2', d.project.project_name),
        h('span.spacer'),
        engineer ? [h('button', { 'data-action': 'new-file', on: { click: () => newFile('') } }, '+ ' + t('File')),
          h('button', { on: { click: () => newFolder('') } }, '+ ' + t('Folder')),
          h('button', { on: { click: upload } }, t('Upload'))] : null,
        h('a.button', { href: `${base()}/archive`, download: `${d.project.project_name}.tar` }, t('Download')),
        searchBox),
      d.entries.length ? d.entries.map(row) : h('p.muted', t('Empty project')));
  }

  clear(el, h('div.split', side, h('section.grow', treeBox, results)));
  await render();
}
