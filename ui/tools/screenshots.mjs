// Screenshots of every screen for docs/ui.md, taken in Debian's Chromium from
// the real runtime (sample project running, simulated I/O from
// boards/examples/sim-demo.toml): 1280x800 in English, a few in Chinese, and
// the phone layout. Usage: node tools/screenshots.mjs  → docs/ui/*.png
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Accounts, launch, startRuntime } from '../test/harness.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const out = join(root, 'docs', 'ui');
mkdirSync(out, { recursive: true });

// Setup calls use the admin token; the browser is an admin (the System
// screen shows users, tokens and the audit log), signed in per context.
let accounts;
const USER = ['lin', 'screenshot-password-1'];
const post = (_base, path, body) => accounts.post(path, body);

async function context(browser, options) {
  const ctx = await browser.newContext(options);
  await accounts.signIn(ctx, ...USER);
  return ctx;
}

/**
 * The conflict view: two browsers edit lib/robots.py; the second save is over
 * a stale version, which the runtime refuses (If-Match, 409).
 */
async function conflictShot(browser, base) {
  const found = await accounts.json('/api/script/files/search?keyword=robots');
  const id = found.data.files[0].id;
  const ctxs = [];
  for (let i = 0; i < 2; i++) {
    ctxs.push(await context(browser, { locale: 'en-US', viewport: { width: 1280, height: 800 } }));
  }
  const [a, b] = await Promise.all(ctxs.map((c) => c.newPage()));
  for (const p of [a, b]) {
    await p.goto(`${base}/ui/editor/${id}`);
    await p.waitForSelector('.cm-content');
  }
  for (const [p, text] of [[b, '    # checked by the night shift\n'], [a, '    # TODO: retry when the robot is busy\n']]) {
    await p.click('.cm-content');
    await p.keyboard.press('Control+End');
    await p.keyboard.insertText(text);
    await p.click('[data-action=save]');
    await p.waitForTimeout(800);
  }
  await a.waitForSelector('[data-testid=conflict] .cm-mergeView');
  await a.waitForTimeout(500);
  await a.screenshot({ path: join(out, 'conflict.png') });
  for (const c of ctxs) await c.close();
}

const rt = await startRuntime(['--io-config', join(root, 'boards', 'examples', 'sim-demo.toml')]);
const browser = await launch();
try {
  const base = rt.base;
  accounts = new Accounts(rt);
  await accounts.add(USER[0], 'admin', USER[1]);
  await accounts.add('wang', 'operator', 'operator-password-1');
  await accounts.post('/api/auth/tokens', { name: 'line-3-mes', role: 'operator', expires_days: 365 });
  await post(base, '/api/script/scripts/start', { script_path: 'sample/main.py', start_params: { greeting: 'Hello' } });
  await post(base, '/api/script/projects/1/dirs', { path: 'lib' });
  await post(base, '/api/script/files', { project_id: 1, file_name: 'robots.py', file_path: 'lib/robots.py', content: 'def pick(robot):\n    return VWED.robot.get(robot)\n' });
  await accounts.fetch('/script-api/hello?name=VWED');
  await post(base, '/api/script/scripts/execute-function', { function_name: 'calculate_sum', function_args: { numbers: [1, 2, 3] } });
  await post(base, '/api/script/scripts/execute-function', { function_name: 'area', function_args: { width: 2, height: 5 } });

  async function shot(name, path, { lang = 'en-US', width = 1280, height = 800, before } = {}) {
    const ctx = await context(browser, { locale: lang, viewport: { width, height }, deviceScaleFactor: 1 });
    const page = await ctx.newPage();
    await page.goto(base + path);
    await page.waitForSelector('main[data-screen] > *', { timeout: 20_000 });
    if (before) await before(page);
    await page.waitForTimeout(1200);
    await page.screenshot({ path: join(out, `${name}.png`) });
    await ctx.close();
  }

  await shot('files', '/ui/files', {
    before: async (p) => {
      await p.fill('[data-testid=grep]', 'VWED.log');
      await p.press('[data-testid=grep]', 'Enter');
      await p.waitForSelector('.hits li');
    },
  });
  await shot('editor', '/ui/editor/1?line=12', {
    before: async (p) => {
      await p.waitForSelector('.cm-content');
      await p.click('.cm-content');
      await p.keyboard.press('Control+End');
      await p.keyboard.insertText('\n\ndef broken(:\n    VWED.log.');
      await p.waitForSelector('.cm-tooltip-autocomplete', { timeout: 5000 }).catch(() => {});
      await p.waitForSelector('.cm-lint-marker-error', { timeout: 5000 }).catch(() => {});
    },
  });
  await conflictShot(browser, base);
  await shot('run', '/ui/run');
  await shot('logs', '/ui/logs');
  await shot('registry', '/ui/registry', {
    before: async (p) => {
      const f = p.locator('form[data-function=area]');
      await f.locator('input[name=width]').fill('3').catch(() => {});
      await f.locator('input[name=height]').fill('4').catch(() => {});
      await f.locator('[data-action=call]').click().catch(() => {});
    },
  });
  await shot('io', '/ui/io');
  await shot('system', '/ui/system');
  await shot('files-zh', '/ui/files', { lang: 'zh-CN' });
  await shot('run-zh', '/ui/run', { lang: 'zh-CN' });
  await shot('phone-logs', '/ui/logs', { width: 390, height: 844 });
  await shot('phone-editor', '/ui/editor/1', { width: 390, height: 844 });
  console.log(`screenshots in ${out}`);
} finally {
  await browser.close();
  await rt.stop();
}
