// The web UI in Debian's Chromium against the real runtime: log in, make a
// project and a file, see a syntax error marked as you type, fix and save,
// start, see a log line arrive live, call a function from its form, stop; a
// second browser saves over a stale version and gets the conflict view; a
// viewer sees no edit or run controls; a reload restores an unsaved draft.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, startRuntime } from './harness.mjs';

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

/**
 * The access-control contract, played by the test while the runtime runs
 * without it: /api/auth/me answers 401 until a login with the right body, then
 * the user with `role` and a CSRF token that state-changing calls must carry.
 */
async function playAuth(context, role) {
  const state = { loggedIn: false, csrfSeen: [], logins: [] };
  await context.route('**/api/auth/**', async (route) => {
    const req = route.request();
    const path = new URL(req.url()).pathname;
    if (path === '/api/auth/login') {
      const body = req.postDataJSON();
      state.logins.push({ body, type: req.headers()['content-type'] });
      if (body.username === 'tech' && body.password === 'right-password') {
        state.loggedIn = true;
        return route.fulfill({
          status: 200,
          contentType: 'application/json',
          headers: { 'set-cookie': 'vwed_session=x; HttpOnly; SameSite=Strict; Path=/' },
          body: JSON.stringify({ success: true, data: { user: 'tech', role, csrf_token: 'csrf-123' } }),
        });
      }
      return route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ success: false, error: '用户名或密码错误' }) });
    }
    if (path === '/api/auth/me') {
      if (!state.loggedIn) return route.fulfill({ status: 401, contentType: 'application/json', body: JSON.stringify({ success: false, error: '需要登录' }) });
      return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ success: true, data: { user: 'tech', role, csrf_token: 'csrf-123', via: 'session' } }) });
    }
    return route.fulfill({ status: 200, contentType: 'application/json', body: '{"success":true,"data":{}}' });
  });
  await context.route('**/api/script/**', (route) => {
    const req = route.request();
    if (req.method() !== 'GET') state.csrfSeen.push(req.headers()['x-csrf-token']);
    return route.continue();
  });
  return state;
}

async function login(page, base) {
  await page.goto(`${base}/ui/files`);
  await page.waitForSelector('form.login', WAIT);
  await page.fill('input[name=username]', 'tech');
  await page.fill('input[name=password]', 'wrong');
  await page.click('form.login button[type=submit]');
  await page.waitForSelector('form.login .error:not(:empty)', WAIT);
  await page.fill('input[name=password]', 'right-password');
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
  let fileId;

  before(async () => {
    rt = await startRuntime();
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await rt?.stop();
  });

  test('log in, create a project and a file, see a syntax error, fix and save', async () => {
    const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 800 } });
    const auth = await playAuth(ctx, 'engineer');
    const page = await ctx.newPage();
    await login(page, rt.base);
    assert.deepEqual(auth.logins[0].body, { username: 'tech', password: 'wrong' });
    assert.match(auth.logins[0].type, /application\/json/);

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
    const saved = await (await fetch(`${rt.base}/api/script/files/${fileId}`)).json();
    assert.equal(saved.data.content, SCRIPT);
    assert.ok(auth.csrfSeen.length > 0 && auth.csrfSeen.every((t) => t === 'csrf-123'), `CSRF header on every change: ${auth.csrfSeen}`);
    await ctx.close();
  });

  test('start, see a log line arrive live, call a function from its form, stop', async () => {
    const ctx = await browser.newContext({ locale: 'en-US' });
    await playAuth(ctx, 'engineer');
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
    const running = await (await fetch(`${rt.base}/api/script/scripts/running`)).json();
    assert.ok(!running.data.some((s) => s.script_path === 'uitest/blink.py' && s.status === 'running'));
    await ctx.close();
  });

  test('a save over a newer version gets the conflict view and merges', async (t) => {
    const probe = await fetch(`${rt.base}/api/script/files/${fileId}`);
    if (!probe.headers.get('etag')) {
      t.skip('this runtime does not version files yet (no ETag on GET /api/script/files/{id})');
      return;
    }
    const a = await browser.newContext({ locale: 'en-US' });
    const b = await browser.newContext({ locale: 'en-US' });
    await playAuth(a, 'engineer');
    await playAuth(b, 'engineer');
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
    await pa.click('[data-action=save-merged]');
    await pa.waitForSelector('[data-testid=conflict]', { state: 'detached', timeout: 20_000 });
    const now = await (await fetch(`${rt.base}/api/script/files/${fileId}`)).json();
    assert.match(now.data.content, /tick \(a\)/);
    await a.close();
    await b.close();
  });

  test('a viewer sees no edit or run controls', async () => {
    const ctx = await browser.newContext({ locale: 'en-US' });
    await playAuth(ctx, 'viewer');
    const page = await ctx.newPage();
    await login(page, rt.base);
    await page.waitForSelector('.tree .entry', WAIT);
    assert.equal(await page.locator('[data-action=new-file], [data-action=new-project], .entry .actions').count(), 0);
    await page.goto(`${rt.base}/ui/editor/${fileId}`);
    await page.waitForSelector('.cm-content', WAIT);
    assert.equal(await page.locator('[data-action=save], [data-action=start]:not([hidden]), [data-action=stop]:not([hidden])').count(), 0);
    assert.equal(await page.getAttribute('.cm-content', 'contenteditable'), 'false');
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
    await playAuth(ctx, 'engineer');
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
    const server = await (await fetch(`${rt.base}/api/script/files/${fileId}`)).json();
    assert.doesNotMatch(server.data.content, /not saved yet/);
    await ctx.close();
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
