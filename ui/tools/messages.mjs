// The Chinese messages the API can answer with, read from the Rust sources:
// every string literal with Chinese text outside tests and the OpenAPI
// descriptions, its `{...}` placeholders turned into `{}`. The English UI
// translates an answer by matching it against these templates
// (src/i18n.js); test/messages.test.mjs checks that each has a translation.
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CJK = /[\u3400-\u9fff\uff00-\uffef]/;

function rustFiles(dir, out = []) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'tests') rustFiles(p, out);
    } else if (name.endsWith('.rs') && name !== 'tests.rs' && name !== 'doc.rs') {
      out.push(p);
    }
  }
  return out;
}

/** The string literals of one line of Rust ("..." with escapes). */
function literals(line) {
  const found = [];
  const re = /"((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(line))) found.push(m[1]);
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

export function extractCatalog(srcDir, outFile) {
  const seen = new Set();
  for (const file of rustFiles(srcDir)) {
    const lines = readFileSync(file, 'utf8').split('\n');
    let inTests = false;
    for (const line of lines) {
      if (/^\s*mod tests\s*\{/.test(line)) inTests = true;
      if (inTests) continue;
      const t = line.trim();
      if (t.startsWith('//') || /\bdescription\s*=/.test(t) || t.startsWith('#[schema')) continue;
      for (const lit of literals(line)) {
        if (CJK.test(lit)) seen.add(template(lit));
      }
    }
  }
  const list = [...seen].sort();
  if (outFile) writeFileSync(outFile, JSON.stringify(list, null, 1) + '\n');
  return list;
}
