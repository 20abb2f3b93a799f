// The code editor, loaded on demand: CodeMirror 6 with Python, completion of
// the VWED object from vwed.pyi (members, signatures, docs), syntax errors
// marked as you type from the browser's own parser (@lezer/python error
// nodes), and the runtime's check on save shown the same way.
import { basicSetup, EditorView } from 'codemirror';
import { EditorState, StateEffect, StateField, Compartment } from '@codemirror/state';
import { python, pythonLanguage } from '@codemirror/lang-python';
import { ensureSyntaxTree } from '@codemirror/language';
import { linter, lintGutter, forceLinting } from '@codemirror/lint';
import { MergeView } from '@codemirror/merge';
import { keymap } from '@codemirror/view';

/** Classes of a .pyi file: name → members {name, kind, detail, info, type}. */
export function parseStubs(text) {
  const classes = {};
  const globals = {};
  const lines = text.split('\n');
  let cls = null;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    let m;
    if ((m = /^class (\w+)/.exec(line))) {
      cls = classes[m[1]] = [];
      continue;
    }
    if ((m = /^(\w+): (\w+)/.exec(line))) {
      globals[m[1]] = m[2];
      cls = null;
      continue;
    }
    if (!cls) continue;
    if ((m = /^ {4}(\w+): (.+)$/.exec(line))) {
      const type = /^(?:type\[)?(\w+)/.exec(m[2])?.[1];
      cls.push({ name: m[1], kind: 'property', detail: m[2], type });
      continue;
    }
    if ((m = /^ {4}(async )?def (\w+)\(/.exec(line))) {
      let sig = line.trim();
      while (!/\).*:\s*(\.\.\.)?\s*$/.test(sig) && i + 1 < lines.length) sig += ' ' + lines[++i].trim();
      const name = m[2];
      if (name.startsWith('_')) continue;
      const params = sig.slice(sig.indexOf('(') + 1, sig.lastIndexOf(')')).replace(/^self,?\s*/, '').replace(/,\s*\)/, ')');
      const ret = /->\s*([^:]+):/.exec(sig)?.[1]?.trim() ?? '';
      let info = '';
      if (/^\s*"""/.test(lines[i + 1] ?? '')) {
        const doc = [];
        let j = i + 1;
        doc.push(lines[j].trim().replace(/^"""/, ''));
        while (!/"""\s*$/.test(lines[j]) || (j === i + 1 && lines[j].trim() === '"""')) {
          j++;
          if (j >= lines.length) break;
          doc.push(lines[j].trim());
        }
        info = doc.join(' ').replace(/"""\s*$/, '').trim();
        i = j;
      }
      cls.push({ name, kind: 'method', detail: `(${params})${ret ? ' → ' + ret : ''}`, info, async: !!m[1] });
    }
  }
  return { classes, globals };
}

/** Completion of `VWED.` and its members, from the parsed stubs. */
export function vwedCompletions(stubs) {
  return (ctx) => {
    const before = ctx.matchBefore(/[A-Za-z_][\w.]*\.\w*$/);
    if (!before) return null;
    const parts = before.text.split('.');
    const partial = parts.pop();
    let type = stubs.globals[parts[0]];
    for (const p of parts.slice(1)) {
      const member = stubs.classes[type]?.find((x) => x.name === p);
      type = member?.type;
    }
    const members = stubs.classes[type];
    if (!members) return null;
    return {
      from: before.to - partial.length,
      options: members.map((x) => ({
        label: x.name,
        type: x.kind === 'method' ? 'method' : 'property',
        detail: x.detail,
        info: x.info || undefined,
        apply: x.kind === 'method' ? `${x.name}(` : x.name,
      })),
      validFor: /^\w*$/,
    };
  };
}

/** Syntax errors the browser's parser finds: one per error node, at its line. */
export function syntaxDiagnostics(state) {
  const tree = ensureSyntaxTree(state, state.doc.length, 1000);
  if (!tree) return [];
  const out = [];
  tree.iterate({
    enter(node) {
      if (!node.type.isError) return;
      const line = state.doc.lineAt(node.from);
      if (out.some((d) => d.line === line.number)) return false;
      out.push({
        line: line.number,
        from: node.from,
        to: Math.max(node.to, Math.min(node.from + 1, line.to)),
        severity: 'error',
        message: `Syntax error (line ${line.number})`,
        source: 'parser',
      });
      return false;
    },
  });
  return out;
}

const setServer = StateEffect.define();
const serverField = StateField.define({
  create: () => [],
  update(v, tr) {
    for (const e of tr.effects) if (e.is(setServer)) return e.value;
    return tr.docChanged ? [] : v;
  },
});

export function createEditor(parent, doc, { onChange, onSave, readOnly = false, stubs, parserMessage }) {
  const ro = new Compartment();
  const lint = linter((view) => {
    const local = syntaxDiagnostics(view.state).map((d) => ({ ...d, message: parserMessage(d.line) }));
    return [...local, ...view.state.field(serverField)];
  }, { delay: 300 });
  const extensions = [
    basicSetup,
    python(),
    serverField,
    lint,
    lintGutter(),
    ro.of([EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)]),
    keymap.of([{ key: 'Mod-s', preventDefault: true, run: () => { onSave?.(); return true; } }]),
    EditorView.updateListener.of((u) => { if (u.docChanged) onChange?.(u.state.doc.toString()); }),
  ];
  if (stubs) extensions.push(pythonLanguage.data.of({ autocomplete: vwedCompletions(stubs) }));
  const view = new EditorView({ parent, state: EditorState.create({ doc, extensions }) });
  view.setReadOnly = (r) => view.dispatch({ effects: ro.reconfigure([EditorState.readOnly.of(r), EditorView.editable.of(!r)]) });
  return view;
}

/** The runtime's own finding on save, at its line, until the next edit. */
export function showServerError(view, err, message) {
  const diags = [];
  if (err && err.line) {
    const n = Math.min(Math.max(1, err.line), view.state.doc.lines);
    const line = view.state.doc.line(n);
    const from = Math.min(line.from + Math.max(0, (err.offset || 1) - 1), line.to);
    diags.push({ from, to: Math.min(from + 1, line.to) || from, severity: 'error', message, source: 'runtime' });
  }
  view.dispatch({ effects: setServer.of(diags) });
  forceLinting(view);
}

export function replaceDoc(view, text) {
  view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
}

/** Side by side: `a` read-only on the left, `b` editable on the right. */
export function createMerge(parent, a, b, { onChange } = {}) {
  return new MergeView({
    parent,
    a: { doc: a, extensions: [basicSetup, python(), EditorState.readOnly.of(true), EditorView.editable.of(false)] },
    b: {
      doc: b,
      extensions: [basicSetup, python(), EditorView.updateListener.of((u) => { if (u.docChanged) onChange?.(u.state.doc.toString()); })],
    },
    revertControls: 'a-to-b',
    highlightChanges: true,
    gutter: true,
  });
}
