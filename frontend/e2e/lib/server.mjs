// Start and stop a real `retake serve` for the end-to-end suite, and talk to its API.
import { spawn, execFile } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export function freePort() {
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

/** Poll `fn` until it returns a truthy value or `timeoutMs` passes. Bounded; never a fixed sleep. */
export async function waitFor(what, fn, { timeoutMs = 30_000, intervalMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function startServer({ bin, dataDir, uiDir, logPath, speed = 0.02 }) {
  if (!existsSync(bin)) throw new Error(`retake binary not found at ${bin} (set RETAKE_BIN or build it with cargo build)`);
  const port = await freePort();
  const log = createWriteStream(logPath);
  const child = spawn(bin, ['--data-dir', dataDir, 'serve', '--listen', `127.0.0.1:${port}`, '--speed', String(speed)], {
    env: { ...process.env, RETAKE_UI_DIR: uiDir, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  let exited = null;
  child.on('exit', (code, signal) => {
    exited = { code, signal };
  });
  const base = `http://127.0.0.1:${port}`;
  await waitFor('the server to answer /api/health', async () => {
    if (exited) throw new Error(`retake exited early (${JSON.stringify(exited)}); see ${logPath}`);
    const r = await fetch(`${base}/api/health`);
    return r.ok;
  }, { timeoutMs: 30_000, intervalMs: 150 });

  return {
    base,
    port,
    child,
    async createToken(role) {
      const { stdout } = await execFileP(bin, ['--data-dir', dataDir, 'token', 'create', '--role', role], { timeout: 30_000 });
      const m = /rtk_[A-Za-z0-9]+/.exec(stdout);
      if (!m) throw new Error(`no token in the output of token create: ${stdout}`);
      return m[0];
    },
    async stop() {
      if (exited) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await done;
      clearTimeout(killer);
      log.end();
    },
  };
}

/** A tiny API client for setting up data (not what the UI uses). */
export function apiClient(base, token) {
  return async function call(method, path, body) {
    const r = await fetch(base + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await r.text();
    const json = text ? JSON.parse(text) : null;
    if (!r.ok) throw new Error(`${method} ${path} → ${r.status}: ${text}`);
    return json;
  };
}
