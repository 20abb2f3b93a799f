// Builds the UI into dist/: hashed, minified bundles (code split: the editor
// loads on demand), each also gzipped at level 9 (the runtime embeds only the
// .gz files of assets), and index.html naming the hashed entry. The output is
// deterministic, so CI can rebuild and compare it with the committed files.
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SOURCES, extractCatalog } from './messages.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist');
const assets = join(out, 'assets');

// The API's Chinese messages, read from the Rust sources, for the English UI.
extractCatalog(SOURCES.map((d) => join(root, '..', d)), join(root, 'src', 'messages-zh.json'));

rmSync(out, { recursive: true, force: true });
mkdirSync(assets, { recursive: true });

const result = await build({
  entryPoints: [join(root, 'src', 'main.js'), join(root, 'src', 'style.css')],
  bundle: true,
  splitting: true,
  format: 'esm',
  minify: true,
  target: ['chrome100', 'firefox100', 'safari15'],
  outdir: assets,
  entryNames: '[name]-[hash]',
  chunkNames: 'chunk-[hash]',
  metafile: true,
  legalComments: 'none',
  charset: 'utf8',
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = outputs.find((n) => n.startsWith('main-') && n.endsWith('.js'));
const css = outputs.find((n) => n.startsWith('style-') && n.endsWith('.css'));
if (!js || !css) throw new Error(`entry bundles missing: ${outputs.join(', ')}`);

// Every chunk is fetched at once instead of after the module that imports it:
// on a slow controller link the waterfall costs more than the bytes.
const preload = outputs.filter((n) => n.startsWith('chunk-') && n.endsWith('.js')).sort()
  .map((n) => `<link rel="modulepreload" href="/assets/${n}">`).join('\n');
const html = readFileSync(join(root, 'src', 'index.html'), 'utf8')
  .replace('%JS%', `/assets/${js}`)
  .replace('%CSS%', `/assets/${css}`)
  .replace('%PRELOAD%', preload);
writeFileSync(join(out, 'index.html'), html);

let raw = html.length;
let gz = gzipSync(html, { level: 9 }).length;
for (const name of readdirSync(assets).sort()) {
  const data = readFileSync(join(assets, name));
  const packed = gzipSync(data, { level: 9 });
  writeFileSync(join(assets, `${name}.gz`), packed);
  rmSync(join(assets, name));
  raw += data.length;
  gz += packed.length;
}
console.log(`ui/dist: ${outputs.length} assets, ${(raw / 1024).toFixed(1)} KiB, ${(gz / 1024).toFixed(1)} KiB gzipped (${gz} bytes)`);
// Issue 11's budget for the whole UI on gateway hardware: 250 KB gzipped.
const BUDGET = 250_000;
if (gz > BUDGET) {
  console.error(`ui/dist is ${gz} bytes gzipped, over the budget of ${BUDGET}`);
  process.exit(1);
}
