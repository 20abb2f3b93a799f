// The Chinese messages the API can answer with, read from the Rust sources:
// every string literal with Chinese text outside tests and the OpenAPI
// descriptions, its `{...}` placeholders turned into `{}`. The English UI
// translates an answer by matching it against these templates
// (src/i18n.js); test/messages.test.mjs checks that each has a translation.
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where the messages come from, relative to the repository. */
export const SOURCES = ['runtime/src', 'crates', 'modules/src', 'modules/python', 'ipc/src'];

const CJK = /[\u3400-\u9fff\uff00-\uffef]/;

function sourceFiles(dir, out = []) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'tests' && name !== '__pycache__') sourceFiles(p, out);
    } else if ((name.endsWith('.rs') && name !== 'tests.rs' && name !== 'doc.rs') || name.endsWith('.py')) {
      out.push(p);
    }
  }
  return out;
}

/** The string literals of one line: "..." (Rust, Python) and '...' (Python). */
function literals(line, python) {
  const found = [];
  const re = python ? /"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'/g : /"((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(line))) found.push(m[1] ?? m[2]);
  return found;
}

export function template(lit) {
  return lit
    .replace(/\\n/g, '\n')
    .replace(/\\"/g, '"')
    .replace(/\{\{/g, '\u0001')
    .replace(/\}\}/g, '\u0002')
    .replace(/\{[^{}]*\}/g, '{}')
    .replace(/\u0001/g, '{')
    .replace(/\u0002/g, '}');
}

/** `dirs`: the runtime's sources and the worker's (whose messages it relays). */
export function extractCatalog(dirs, outFile) {
  const seen = new Set();
  for (const file of [dirs].flat().flatMap((d) => sourceFiles(d))) {
    const python = file.endsWith('.py');
    const lines = readFileSync(file, 'utf8').split('\n');
    let inTests = false;
    for (const line of lines) {
      if (/^\s*mod tests\s*\{/.test(line)) inTests = true;
      if (inTests) continue;
      const t = line.trim();
      if (t.startsWith('//') || /\bdescription\s*=/.test(t) || t.startsWith('#[schema')) continue;
      if (python && (t.startsWith('#') || t.includes('"""'))) continue;
      for (const lit of literals(line, python)) {
        // Lines of shell scripts (job templates) are scripts, not messages.
        if (CJK.test(lit) && !/\$[A-Za-z_{]/.test(lit)) seen.add(template(lit));
      }
    }
  }
  const list = [...seen].sort();
  if (outFile) writeFileSync(outFile, JSON.stringify(list, null, 1) + '\n');
  return list;
}
