// Starts the real kalamdb-server binary on a temporary data directory.
// KALAMDB_SERVER_BIN names it; by default the debug build in
// $CARGO_TARGET_DIR (or ~/.cache/kalamdb-target, or ../../../target).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

function binary() {
  const candidates = [
    process.env.KALAMDB_SERVER_BIN,
    process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, 'debug', 'kalamdb-server'),
    join(homedir(), '.cache', 'kalamdb-target', 'debug', 'kalamdb-server'),
    resolve(import.meta.dirname, '..', '..', '..', '..', 'target', 'debug', 'kalamdb-server'),
  ].filter(Boolean);
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`kalamdb-server not found (build it, or set KALAMDB_SERVER_BIN); looked at ${candidates.join(', ')}`);
  return found;
}

export class Server {
  constructor(env = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'kalamdb-ts-'));
    this.env = env;
    this.port = 0;
  }

  static async start(env = {}) {
    const s = new Server(env);
    await s.launch();
    return s;
  }

  async launch() {
    const child = spawn(binary(), [], {
      env: {
        PATH: process.env.PATH,
        KALAMDB_DATA_DIR: this.dir,
        KALAMDB_SERVER_PORT: String(this.port),
        KALAMDB_LOG_LEVEL: 'warn',
        KALAMDB_LOGGING_STDOUT: 'false',
        KALAMDB_AUTH_BCRYPT_COST: '4',
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.child = child;
    const lines = createInterface({ input: child.stdout });
    this.url = await new Promise((resolveUrl, reject) => {
      child.once('exit', (code) => reject(new Error(`kalamdb-server exited (${code}) before listening`)));
      lines.on('line', (line) => {
        const m = /^kalamdb-server listening on (\S+)/.exec(line);
        if (m) resolveUrl(m[1]);
      });
    });
    this.port = Number(new URL(this.url).port);
  }

  /** SIGKILL, then start again on the same data and port. */
  async crashAndRestart(pauseMs = 0) {
    await this.kill();
    if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
    await this.launch();
  }

  kill() {
    const child = this.child;
    if (!child || child.exitCode !== null) return Promise.resolve();
    return new Promise((r) => {
      child.once('exit', r);
      child.kill('SIGKILL');
    });
  }

  async stop() {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs SQL as root; throws on an error reply. */
  async sql(sql, params) {
    const response = await fetch(`${this.url}/v1/api/sql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${btoa('root:')}` },
      body: JSON.stringify(params ? { sql, params } : { sql }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(`${sql}: ${JSON.stringify(body)}`);
    return body;
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns true (or fails after `ms`). */
export async function until(check, ms = 10_000, what = 'the condition') {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}
