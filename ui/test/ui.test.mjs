// The web UI in Debian's Chromium against the real runtime: log in, make a
// project and a file, see a syntax error marked as you type, fix and save,
// start, see a log line arrive live, call a function from its form, stop; a
// second browser saves over a stale version and gets the conflict view; a
// viewer sees no edit or run controls; a reload restores an unsaved draft.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Accounts, launch, startRuntime } from './harness.mjs';

const WAIT = { timeout: 20_000 };

const SCRIPT = `def boot():
    VWED.log.sync_info("boot done")

    @VWED.function.register("add", description="adds", parameters=[
        {"name": "a", "type": "number", "required": True},
        {"name": "b", "type": "number", "required": True},
    ])
    def add(args):
        return {"sum": args["a"] + args["b"]}

    @VWED.timer.interval(0.3)
    def tick():
        VWED.log.sync_info("tick from the ui test")
`;

const PASSWORD = 'right-password-123';
const USERS = { engineer: 'tech', viewer: 'look' };

/**
 * Records what the UI of one browser context sent and got: its logins (body,
 * content type, the CSRF token answered), the CSRF header of every change to
 * /api/script, and each save of a file (If-Match, status).
 */
async function recorded(ctx) {
  const state = { csrfSeen: [], logins: [], saves: [], csrf: null };
  await ctx.route('**/api/script/**', (route) => {
    const req = route.request();
    if (req.method() !== 'GET') state.csrfSeen.push(req.headers()['x-csrf-token']);
    return route.fallback();
  });
  await ctx.route('**/api/auth/login', (route) => {
    const req = route.request();
    state.logins.push({ body: req.postDataJSON(), type: req.headers()['content-type'] });
    return route.fallback();
  });
  ctx.on('response', async (res) => {
    const req = res.request();
    const path = new URL(req.url()).pathname;
    if (req.method() === 'PUT' && /^\/api\/script\/files\/\d+$/.test(path)) {
      state.saves.push({ ifMatch: req.headers()['if-match'], status: res.status() });
    }
    if (path === '/api/auth/login' && res.ok()) state.csrf = (await res.json().catch(() => ({})))?.data?.csrf_token;
  });
  return state;
}

async function login(page, base, role = 'engineer') {
  await page.goto(`${base}/ui/files`);
  await page.waitForSelector('form.login', WAIT);
  await page.fill('input[name=username]', USERS[role]);
  await page.fill('input[name=password]', 'wrong-password-0');
  await page.click('form.login button[type=submit]');
  await page.waitForSelector('form.login .error:not(:empty)', WAIT);
  await page.fill('input[name=password]', PASSWORD);
  await page.click('form.login button[type=submit]');
  await page.waitForSelector('main[data-screen=files]', WAIT);
}

/** Replaces the editor's content the way typing does (through the DOM input path). */
async function typeAll(page, text) {
  await page.click('.cm-content');
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

describe('web UI', () => {
  let rt;
  let browser;
  let accounts;
  let fileId;

  before(async () => {
    rt = await startRuntime();
    accounts = new Accounts(rt);
    for (const [role, name] of Object.entries(USERS)) await accounts.add(name, role, PASSWORD);
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await rt?.stop();
  });

  test('log in, create a project and a file, see a syntax error, fix and save', async () => {
    const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 800 } });
    const seen = await recorded(ctx);
    const page = await ctx.newPage();
    await login(page, rt.base);
    assert.deepEqual(seen.logins[0].body, { username: 'tech', password: 'wrong-password-0' });
    assert.match(seen.logins[0].type, /application\/json/);

    await page.click('[data-action=new-project]');
    await page.fill('form.dialog input[name=name]', 'uitest');
    await page.click('form.dialog button[type=submit]');
    await page.waitForSelector('.tree h2:text("uitest")', WAIT);
    await page.click('[data-action=new-file]');
    await page.fill('form.dialog input[name=name]', 'blink.py');
    await page.click('form.dialog button[type=submit]');
    await page.waitForSelector('main[data-screen=editor] .cm-content', WAIT);
    fileId = Number(new URL(page.url()).pathname.split('/').pop());
    assert.ok(fileId > 0);
    // A new file starts from the template with boot().
    assert.match(await page.textContent('.cm-content'), /def boot\(\)/);

    await typeAll(page, 'def boot(:\n    pass\n');
    await page.waitForSelector('.cm-lintRange-error, .cm-lint-marker-error', WAIT);
    await page.click('[data-action=save]');
    // The runtime's own check on save confirms it.
    await page.waitForFunction(() => document.querySelector('[data-testid=save-state]')?.textContent.includes('Saved'), null, WAIT);

    await typeAll(page, SCRIPT);
    await page.waitForFunction(() => !document.querySelector('.cm-lintRange-error'), null, WAIT);
    await page.click('[data-action=save]');
    await page.waitForFunction(() => /Saved · v\d|Saved/.test(document.querySelector('[data-testid=save-state]')?.textContent), null, WAIT);
    const saved = await accounts.json(`/api/script/files/${fileId}`);
    assert.equal(saved.data.content, SCRIPT);
    const csrf = seen.csrfSeen;
    assert.ok(seen.csrf, 'the login answered a CSRF token');
    assert.ok(csrf.length > 0 && csrf.every((t) => t === seen.csrf), `CSRF header on every change: ${csrf}`);
    await ctx.close();
  });

  test('start, see a log line arrive live, call a function from its form, stop', async () => {
    const ctx = await browser.newContext({ locale: 'en-US' });
    await recorded(ctx);
    const page = await ctx.newPage();
    await login(page, rt.base);
    await page.goto(`${rt.base}/ui/editor/${fileId}`);
    await page.waitForSelector('[data-action=start]:not([hidden])', WAIT);
    page.once('dialog', (d) => d.accept('{"who": "ui"}'));
    await page.click('[data-action=start]');
    await page.waitForFunction(() => document.querySelector('[data-testid=run-state]')?.textContent === 'running', null, WAIT);
    await page.waitForSelector('[data-testid=output] .line:has-text("tick from the ui test")', WAIT);

    await page.click('nav a[data-screen=registry]');
    const form = page.locator('form[data-function=add]');
    await form.waitFor(WAIT);
    await form.locator('input[name=a]').fill('2');
    await form.locator('input[name=b]').fill('40');
    await form.locator('[data-action=call]').click();
    await page.waitForFunction(() => document.querySelector('[data-testid=result-add]')?.textContent.includes('"sum": 42'), null, WAIT);

    await page.click('nav a[data-screen=run]');
    const row = page.locator('tr[data-script="uitest/blink.py"]');
    await row.waitFor(WAIT);
    await row.locator('[data-action=stop]').click();
    await row.waitFor({ state: 'detached', timeout: 20_000 });
    const running = await accounts.json('/api/script/scripts/running');
    assert.ok(!running.data.some((s) => s.script_path === 'uitest/blink.py' && s.status === 'running'));
    await ctx.close();
  });

  test('a save over a newer version gets the conflict view and merges', async () => {
    const probe = await accounts.fetch(`/api/script/files/${fileId}`);
    const opened = Number(probe.headers.get('etag')?.replace(/"/g, ''));
    assert.ok(Number.isInteger(opened), `the runtime versions files (ETag): ${probe.headers.get('etag')}`);
    const a = await browser.newContext({ locale: 'en-US' });
    const b = await browser.newContext({ locale: 'en-US' });
    const seenA = await recorded(a);
    await recorded(b);
    const pa = await a.newPage();
    const pb = await b.newPage();
    await login(pa, rt.base);
    await login(pb, rt.base);
    await pa.goto(`${rt.base}/ui/editor/${fileId}`);
    await pb.goto(`${rt.base}/ui/editor/${fileId}`);
    await pa.waitForSelector('.cm-content', WAIT);
    await pb.waitForSelector('.cm-content', WAIT);
    await typeAll(pb, SCRIPT.replace('boot done', 'boot done (b)'));
    await pb.click('[data-action=save]');
    await pb.waitForFunction(() => document.querySelector('[data-testid=save-state]')?.textContent.startsWith('Saved'), null, WAIT);

    await typeAll(pa, SCRIPT.replace('tick from the ui test', 'tick (a)'));
    await pa.click('[data-action=save]');
    await pa.waitForSelector('[data-testid=conflict] .cm-mergeView', WAIT);
    assert.match(await pa.textContent('[data-testid=conflict]'), /boot done \(b\)/);
    // The runtime refused A's save: B's version is still the file's.
    const refused = seenA.saves.find((s) => s.status === 409);
    assert.equal(refused?.ifMatch, `"${opened}"`, JSON.stringify(seenA.saves));
    const between = await accounts.fetch(`/api/script/files/${fileId}`);
    assert.equal(between.headers.get('etag'), `"${opened + 1}"`);
    assert.match((await between.json()).data.content, /boot done \(b\)/);
    await pa.click('[data-action=save-merged]');
    await pa.waitForSelector('[data-testid=conflict]', { state: 'detached', timeout: 20_000 });
    const now = await accounts.fetch(`/api/script/files/${fileId}`);
    assert.equal(now.headers.get('etag'), `"${opened + 2}"`);
    assert.match((await now.json()).data.content, /tick \(a\)/);
    // The merged save said it started from B's version.
    assert.equal(seenA.saves.at(-1).ifMatch, `"${opened + 1}"`);
    await a.close();
    await b.close();
  });

  test('a viewer sees no edit or run controls', async () => {
    const ctx = await browser.newContext({ locale: 'en-US' });
    await recorded(ctx);
    const page = await ctx.newPage();
    await login(page, rt.base, 'viewer');
    await page.waitForSelector('.tree .entry', WAIT);
    assert.equal(await page.locator('[data-action=new-file], [data-action=new-project], .entry .actions').count(), 0);
    await page.goto(`${rt.base}/ui/editor/${fileId}`);
    await page.waitForSelector('.cm-content', WAIT);
    assert.equal(await page.locator('[data-action=save], [data-action=start]:not([hidden]), [data-action=stop]:not([hidden])').count(), 0);
    assert.equal(await page.getAttribute('.cm-content', 'contenteditable'), 'false');
    // What the page does not show, the server refuses anyway.
    const refused = await page.evaluate(async (id) => {
      const me = await (await fetch('/api/auth/me')).json();
      const r = await fetch(`/api/script/files/${id}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', 'x-csrf-token': me.data.csrf_token },
        body: JSON.stringify({ content: 'x = 1\n' }),
      });
      return { status: r.status, role: me.data.role };
    }, fileId);
    assert.deepEqual(refused, { status: 403, role: 'viewer' });
    await page.click('nav a[data-screen=run]');
    await page.waitForSelector('[data-testid=running]', WAIT);
    assert.equal(await page.locator('form.card, [data-action=stop]').count(), 0);
    await page.click('nav a[data-screen=registry]');
    await page.waitForSelector('main[data-screen=registry] h2', WAIT);
    assert.equal(await page.locator('[data-action=call]').count(), 0);
    await ctx.close();
  });

  test('a reload after typing without saving restores the draft', async () => {
    const ctx = await browser.newContext({ locale: 'en-US' });
    await recorded(ctx);
    const page = await ctx.newPage();
    await login(page, rt.base);
    await page.goto(`${rt.base}/ui/editor/${fileId}`);
    await page.waitForSelector('.cm-content', WAIT);
    await page.click('.cm-content');
    await page.keyboard.press('Control+End');
    await page.keyboard.insertText('\n# not saved yet 1234\n');
    await page.waitForTimeout(600);
    await page.reload();
    await page.waitForSelector('[data-action=discard-draft]', WAIT);
    assert.match(await page.textContent('.cm-content'), /not saved yet 1234/);
    const server = await accounts.json(`/api/script/files/${fileId}`);
    assert.doesNotMatch(server.data.content, /not saved yet/);
    await ctx.close();
  });

  test('every screen fits a 1280x800 panel, and a phone shows without edit or run controls', async () => {
    const screens = ['files', `editor/${fileId}`, 'run', 'logs', 'registry', 'io', 'system'];
    for (const [width, height] of [[1280, 800], [390, 844]]) {
      const ctx = await browser.newContext({ locale: 'en-US', viewport: { width, height } });
      await recorded(ctx);
      const page = await ctx.newPage();
      await login(page, rt.base);
      for (const s of screens) {
        await page.goto(`${rt.base}/ui/${s}`);
        await page.waitForSelector('main[data-screen] > *', WAIT);
        if (s.startsWith('editor')) await page.waitForSelector('.cm-content', WAIT);
        const wide = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(wide <= width, `${s} at ${width}x${height} is ${wide} px wide`);
        if (width > 760) continue;
        // Visible controls that change something: none on a phone.
        const controls = await page.locator('[data-action]:visible, .actions:visible, form.card:not(.fn):visible, .fn button:visible').count();
        assert.equal(controls, 0, `${s} on a phone shows controls`);
        if (s.startsWith('editor')) assert.equal(await page.getAttribute('.cm-content', 'contenteditable'), 'false');
      }
      await ctx.close();
    }
  });

  test('the page is served offline from the binary, with long caching of hashed bundles', async () => {
    const r = await fetch(`${rt.base}/`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('cache-control'), 'no-cache');
    assert.match(r.headers.get('content-security-policy'), /default-src 'self'/);
    const html = await r.text();
    const js = /src="(\/assets\/main-[^"]+)"/.exec(html)[1];
    const a = await fetch(`${rt.base}${js}`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(a.status, 200);
    assert.match(a.headers.get('cache-control'), /max-age=31536000, immutable/);
    const again = await fetch(`${rt.base}${js}`, { headers: { 'if-none-match': a.headers.get('etag') } });
    assert.equal(again.status, 304);
    assert.equal((await fetch(`${rt.base}/ui/logs`)).status, 200);
  });
});
