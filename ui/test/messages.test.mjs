// Every Chinese message the runtime's sources can answer with has an English
// translation, and the English UI translates composed messages (a template
// whose placeholder holds another template) and leaves other text alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SOURCES, extractCatalog } from '../tools/messages.mjs';
import { EN } from '../src/messages-en.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const committed = JSON.parse(readFileSync(join(root, 'src', 'messages-zh.json'), 'utf8'));

test('the committed catalogue is what the sources say', () => {
  assert.deepEqual(extractCatalog(SOURCES.map((d) => join(root, '..', d))), committed,
    'run npm run build in ui/ to refresh src/messages-zh.json');
});

test('every API message has an English translation with the same placeholders', () => {
  const missing = committed.filter((z) => EN[z] === undefined);
  assert.deepEqual(missing, [], `add these to ui/src/messages-en.js:\n${missing.join('\n')}`);
  for (const [zh, en] of Object.entries(EN)) {
    const n = (zh.match(/\{\}/g) || []).length;
    for (const m of en.matchAll(/\{(\d)\}/g)) assert.ok(+m[1] < n, `${zh} → ${en}: {${m[1]}} has no placeholder`);
  }
  const stale = Object.keys(EN).filter((z) => !committed.includes(z));
  assert.deepEqual(stale, [], 'translations of messages the runtime no longer has');
});

test('composed messages are translated part by part', async () => {
  globalThis.localStorage = { getItem: () => 'en', setItem: () => {} };
  globalThis.navigator = { languages: ['en-US'] };
  globalThis.document = { documentElement: {} };
  const { tr, setLang } = await import('../src/i18n.js');
  setLang('en');
  assert.equal(tr('文件路径不能包含 \'..\' 或 \'.\' 段'), "File path must not contain '..' or '.' segments");
  assert.equal(tr('文件 main.py 创建成功 (第 3 行有语法错误: invalid syntax)'), 'File main.py created (syntax error at line 3: invalid syntax)');
  assert.equal(tr('函数 add 未注册'), 'Function add is not registered');
  assert.equal(tr('plain English stays'), 'plain English stays');
  setLang('zh');
  assert.equal(tr('函数 add 未注册'), '函数 add 未注册');
});
