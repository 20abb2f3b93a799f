// What the browser tests run against: the real binary (target/debug/vwed-edge,
// or $VWED_BIN) on a free loopback port with a temporary data dir, and Debian's
// Chromium driven by playwright-core. Nothing is downloaded.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.VWED_BIN || join(root, 'target', 'debug', 'vwed-edge');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts the runtime; resolves once /health answers 200 (at most 60 s). */
export async function startRuntime(extraArgs = []) {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run cargo build first`);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'vwed-ui-test-'));
  let log = '';
  const proc = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dir, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' },
  });
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`runtime exited: ${log}`);
    try {
      const r = await fetch(`${base}/health`);
      if (r.status === 200) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`runtime did not come up: ${log}`);
    await sleep(100);
  }
  return {
    base,
    dir,
    log: () => log,
    async stop() {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
}

/**
 * The runtime's accounts: its first start wrote an admin API token to the data
 * dir, with which users are made; a browser context signs in as one of them
 * through the login endpoint (its cookie jar keeps the session).
 */
export class Accounts {
  constructor(rt) {
    this.rt = rt;
    this.token = readFileSync(join(rt.dir, 'admin.token'), 'utf8').trim();
  }

  /** A call with the admin token; throws on an error status other than those in `allow`. */
  async fetch(path, init = {}, allow = []) {
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${this.token}`, ...(init.headers || {}) };
    const r = await fetch(this.rt.base + path, { ...init, headers });
    if (!r.ok && !allow.includes(r.status)) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return r;
  }

  async json(path) {
    return (await this.fetch(path)).json();
  }

  async post(path, body) {
    return (await this.fetch(path, { method: 'POST', body: JSON.stringify(body) })).json();
  }

  async add(name, role, password) {
    await this.post('/api/auth/users', { name, role, password });
  }

  async signIn(ctx, name, password) {
    const r = await ctx.request.post(`${this.rt.base}/api/auth/login`, { data: { username: name, password } });
    if (!r.ok()) throw new Error(`login of ${name}: ${r.status()} ${await r.text()}`);
  }
}
