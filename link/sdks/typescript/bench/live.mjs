// How fast one Node.js client takes changes through live(), and how long an
// INSERT takes to reach its live() callback, against a running server.
//
//   node bench/live.mjs --url http://127.0.0.1:18080 [--rows 200000] [--samples 2000]
import { Worker } from 'node:worker_threads';
import { Auth, createClient } from '../dist/index.js';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const url = arg('--url', 'http://127.0.0.1:8080');
const ROWS = Number(arg('--rows', 200_000));
const SAMPLES = Number(arg('--samples', 2000));
const sql = async (text) => {
  const r = await fetch(`${url}/v1/api/sql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Basic ${btoa('root:')}` },
    body: JSON.stringify({ sql: text }),
  });
  if (!r.ok) throw new Error(`${text}: ${await r.text()}`);
};
const pct = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * q))];

const suffix = Date.now();
await sql(`CREATE NAMESPACE IF NOT EXISTS sdkbench;
  CREATE SHARED TABLE sdkbench.flood${suffix} (id BIGINT PRIMARY KEY, body TEXT);
  CREATE SHARED TABLE sdkbench.ping${suffix} (id BIGINT PRIMARY KEY, sent DOUBLE)`);

// ---- throughput: a writer thread floods 1000-row INSERTs
{
  const client = createClient({ url, auth: Auth.basic('root', '') });
  let size = 0;
  let first = 0;
  let done;
  const finished = new Promise((r) => (done = r));
  await client.live(`SELECT id, body FROM sdkbench.flood${suffix}`, (rows) => {
    if (!first && rows.length) first = performance.now();
    size = rows.length;
    if (size >= ROWS) done(performance.now());
  });
  const writer = new Worker(
    `const { workerData: { url, table, rows } } = require('node:worker_threads');
     (async () => {
       for (let start = 0; start < rows; start += 1000) {
         const values = [];
         for (let i = start; i < Math.min(rows, start + 1000); i++) values.push('(' + i + ", 'row-" + i + "')");
         const r = await fetch(url + '/v1/api/sql', { method: 'POST',
           headers: { 'content-type': 'application/json', authorization: 'Basic ' + btoa('root:') },
           body: JSON.stringify({ sql: 'INSERT INTO ' + table + ' VALUES ' + values.join(',') }) });
         if (!r.ok) throw new Error(await r.text());
       }
     })();`,
    { eval: true, workerData: { url, table: `sdkbench.flood${suffix}`, rows: ROWS } },
  );
  const end = await finished;
  await writer.terminate();
  const seconds = (end - first) / 1000;
  console.log(`sdk live() throughput: rows=${ROWS} seconds=${seconds.toFixed(2)} changes_per_s=${Math.round(ROWS / seconds)}`);
  client.close();
}

// ---- latency: one INSERT at a time, to the live() callback that shows it
{
  const client = createClient({ url, auth: Auth.basic('root', '') });
  const writer = createClient({ url, auth: Auth.basic('root', '') });
  const waiting = new Map();
  await client.live(`SELECT id FROM sdkbench.ping${suffix}`, (rows) => {
    const last = rows[rows.length - 1];
    const resolve = last && waiting.get(last.id);
    if (resolve) {
      waiting.delete(last.id);
      resolve(performance.now());
    }
  });
  const latencies = [];
  for (let i = 0; i < SAMPLES + 100; i++) {
    const seen = new Promise((r) => waiting.set(String(i), r));
    const t = performance.now();
    await writer.query(`INSERT INTO sdkbench.ping${suffix} (id, sent) VALUES ($1, $2)`, [i, t]);
    const at = await seen;
    if (i >= 100) latencies.push((at - t) * 1000);
  }
  latencies.sort((a, b) => a - b);
  console.log(
    `sdk insert->live() latency: samples=${SAMPLES} p50_us=${pct(latencies, 0.5).toFixed(0)} p99_us=${pct(latencies, 0.99).toFixed(0)}`,
  );
  client.close();
  writer.close();
}
// ---- the same through a plain subscribeWithSql callback (no live() set)
{
  const client = createClient({ url, auth: Auth.basic('root', '') });
  const writer = createClient({ url, auth: Auth.basic('root', '') });
  const waiting = new Map();
  await client.subscribeWithSql(`SELECT id FROM sdkbench.ping${suffix}`, (m) => {
    for (const r of m.type === 'change' ? m.rows ?? [] : []) {
      const resolve = waiting.get(r.id);
      if (resolve) {
        waiting.delete(r.id);
        resolve(performance.now());
      }
    }
  });
  const latencies = [];
  const base = 1_000_000;
  for (let i = 0; i < SAMPLES + 100; i++) {
    const seen = new Promise((r) => waiting.set(String(base + i), r));
    const t = performance.now();
    await writer.query(`INSERT INTO sdkbench.ping${suffix} (id, sent) VALUES ($1, $2)`, [base + i, t]);
    const at = await seen;
    if (i >= 100) latencies.push((at - t) * 1000);
  }
  latencies.sort((a, b) => a - b);
  console.log(
    `sdk insert->subscribeWithSql callback latency: samples=${SAMPLES} p50_us=${pct(latencies, 0.5).toFixed(0)} p99_us=${pct(latencies, 0.99).toFixed(0)}`,
  );
  client.close();
  writer.close();
}
process.exit(0);
