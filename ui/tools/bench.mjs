// Measures the web UI against the real runtime in Debian's Chromium: bundle
// size (gzipped), editor-ready time at 1x and 4x CPU throttling (CDP
// Emulation.setCPUThrottlingRate; from navigation start to the editor holding
// the file, focused), JS heap once ready, and the time for 10,000 log lines
// from a script to arrive over the WebSocket and be rendered on the Logs screen.
// Usage: node tools/bench.mjs  (needs target/debug/vwed-edge or $VWED_BIN; a
// release build gives the runtime's share of the figures their real size).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Accounts, launch, startRuntime } from '../test/harness.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const RUNS = Number(process.env.RUNS || 5);
const LINES = 10_000;

function bundle() {
  const dir = join(root, 'dist', 'assets');
  let total = gzipSync(readFileSync(join(root, 'dist', 'index.html')), { level: 9 }).length;
  const files = {};
  for (const f of readdirSync(dir)) {
    const n = statSync(join(dir, f)).size;
    files[f] = n;
    total += n;
  }
  return { total, files };
}

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

// An engineer signs each browser context in; setup calls use the admin token.
let accounts;
const USER = ['bench', 'bench-password-123'];

async function post(base, path, body) {
  const j = await accounts.post(path, body);
  if (j.success === false) throw new Error(`${path}: ${JSON.stringify(j)}`);
  return j;
}

async function signedIn(browser) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await accounts.signIn(ctx, ...USER);
  return ctx;
}

async function editorReady(browser, url, rate) {
  const ctx = await signedIn(browser);
  const page = await ctx.newPage();
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate });
  await page.goto(url);
  await page.waitForFunction(() => window.__vwedEditorReady, null, { timeout: 60_000 });
  const ready = await page.evaluate(() => window.__vwedEditorReady);
  await cdp.send('HeapProfiler.collectGarbage');
  const heap = await cdp.send('Runtime.getHeapUsage');
  const transferred = await page.evaluate(() => performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/assets/')).reduce((s, e) => s + e.encodedBodySize, 0));
  await ctx.close();
  return { ready, heap: heap.usedSize, transferred };
}

async function logLines(browser, base) {
  const ctx = await signedIn(browser);
  const page = await ctx.newPage();
  await page.goto(`${base}/ui/logs`);
  await page.waitForFunction(() => window.__vwedLogStats, null, { timeout: 30_000 });
  await page.waitForTimeout(500);
  const t0 = Date.now();
  let producerMs = 0;
  const call = post(base, '/api/script/scripts/execute-function', { function_name: 'burst', function_args: { n: LINES } })
    .then((r) => { producerMs = Date.now() - t0; return r; });
  await page.waitForFunction((n) => { const s = window.__vwedLogStats; return s.rendered + s.skipped >= n; }, LINES, { timeout: 120_000, polling: 'raf' });
  const ms = Date.now() - t0;
  await call;
  const stats = await page.evaluate(() => ({ ...window.__vwedLogStats, rows: document.querySelectorAll('.loglist .line').length }));
  await ctx.close();
  // producer_ms: until the script had logged them all (the call returned).
  return { ms, producer_ms: producerMs, ...stats };
}

const SCRIPT = `def boot():
    @VWED.function.register("burst")
    def burst(args):
        for i in range(args["n"]):
            VWED.log.sync_info(f"bench line {i}", i=i)
        return args["n"]
`;

// 10,000 lines at once fit the default rate limit (burst 20,000) but not the
// default per-connection WebSocket queue (1,024 messages or 4 MiB, where a slow
// client skips and is told): a larger queue measures delivery of all of them.
process.env.VWED_WS_CLIENT_QUEUE = process.env.VWED_WS_CLIENT_QUEUE || '16384';
process.env.VWED_WS_CLIENT_QUEUE_BYTES = process.env.VWED_WS_CLIENT_QUEUE_BYTES || String(64 << 20);
const rt = await startRuntime();
const browser = await launch();
try {
  accounts = new Accounts(rt);
  await accounts.add(USER[0], 'engineer', USER[1]);
  const p = await post(rt.base, '/api/script/projects', { project_name: 'bench' });
  const f = await post(rt.base, '/api/script/files', { project_id: p.data.id, file_name: 'main.py', content: SCRIPT });
  const sample = await accounts.json('/api/script/files/search?keyword=main.py');
  const big = sample.data.files.find((x) => x.project_name === 'sample') || f.data;
  const url = `${rt.base}/ui/editor/${big.id}`;
  const out = { bundle: bundle() };
  for (const rate of [1, 4]) {
    const runs = [];
    for (let i = 0; i < RUNS; i++) runs.push(await editorReady(browser, url, rate));
    out[`editor_ready_${rate}x_ms`] = Math.round(median(runs.map((r) => r.ready)));
    out[`editor_heap_${rate}x_bytes`] = median(runs.map((r) => r.heap));
    out.editor_transfer_bytes = runs[0].transferred;
  }
  await post(rt.base, '/api/script/scripts/start', { script_path: 'bench/main.py' });
  out.log_10k = await logLines(browser, rt.base);
  console.log(JSON.stringify(out, null, 2));
} finally {
  await browser.close();
  await rt.stop();
}
