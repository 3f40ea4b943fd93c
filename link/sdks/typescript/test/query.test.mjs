// SQL over HTTP against the real server: auth kinds, result typing, 64-bit
// exactness, the row helpers, errors.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import { Auth, KalamError, createClient, stringify } from '../dist/index.js';
import { Server } from './server.mjs';

let server;
before(async () => {
  server = await Server.start();
  await server.sql(`CREATE NAMESPACE ts;
    CREATE SHARED TABLE ts.nums (id BIGINT PRIMARY KEY, label TEXT, n INT, at TIMESTAMP, doc JSON);
    ALTER TABLE ts.nums SET TBLPROPERTIES (ACCESS_LEVEL = 'PUBLIC');
    CREATE SHARED TABLE ts.pairs (room TEXT, id BIGINT, body TEXT, PRIMARY KEY (room, id));
    CREATE USER TABLE ts.notes (id BIGINT PRIMARY KEY, body TEXT);
    CREATE USER 'ann' WITH PASSWORD 'Ann-Pass-12345' ROLE user;
    CREATE USER 'svc' WITH PASSWORD 'Svc-Pass-12345' ROLE service`);
});
after(() => server.stop());

test('Basic, JWT and an async provider all authenticate; a wrong password is a KalamError', async () => {
  const basic = createClient({ url: server.url, auth: Auth.basic('ann', 'Ann-Pass-12345') });
  assert.deepEqual(await basic.queryOne('SELECT CURRENT_USER() AS me'), { me: 'ann' });
  const pair = await basic.login();
  assert.ok(pair.accessToken && pair.refreshToken && pair.expiresAt > Date.now() / 1000);
  const refreshed = await basic.refreshToken();
  assert.ok(refreshed.accessToken);

  const jwt = createClient({ url: server.url, auth: Auth.jwt(pair.accessToken) });
  assert.deepEqual(await jwt.queryOne('SELECT CURRENT_USER() AS me'), { me: 'ann' });

  let calls = 0;
  const provided = createClient({
    url: server.url,
    authProvider: async () => {
      calls++;
      return Auth.basic('svc', 'Svc-Pass-12345');
    },
  });
  assert.deepEqual(await provided.queryOne('SELECT CURRENT_ROLE() AS role'), { role: 'service' });
  assert.ok(calls >= 1);

  const wrong = createClient({ url: server.url, auth: Auth.basic('ann', 'nope-nope-nope') });
  await assert.rejects(wrong.query('SELECT 1'), (e) => {
    assert.ok(e instanceof KalamError);
    assert.equal(e.code, 'UNAUTHORIZED');
    assert.equal(e.status, 401);
    return true;
  });
});

test('results are typed and 64-bit integers stay exact (strings, or bigint on request)', async () => {
  const root = createClient({ url: server.url, auth: Auth.basic('root', '') });
  const big = '9007199254740993'; // 2^53 + 1: a JavaScript number would round it
  await root.insert('ts.nums', { id: big, label: 'big', n: 7, at: '2026-01-02T03:04:05Z', doc: { a: [1, 2] } });
  await root.insert('ts.nums', { id: 2n ** 62n, label: 'bigger', n: null, at: null, doc: null });
  const reply = await root.query('SELECT id, label, n, doc FROM ts.nums WHERE id = $1', [big]);
  assert.equal(reply.status, 'success');
  const [result] = reply.results;
  assert.deepEqual(
    result.schema.map((c) => [c.name, c.data_type]),
    [['id', 'BigInt'], ['label', 'Text'], ['n', 'Int'], ['doc', 'Json']],
  );
  assert.ok(result.schema[0].flags.includes('pk'));
  assert.deepEqual(result.rows, [[big, 'big', 7, { a: [1, 2] }]]);
  assert.deepEqual(await root.queryOne('SELECT id FROM ts.nums WHERE label = $1', ['bigger']), {
    id: (2n ** 62n).toString(),
  });

  const bigints = createClient({ url: server.url, auth: Auth.basic('root', ''), int64: 'bigint' });
  const rows = await bigints.queryRows('SELECT id, n FROM ts.nums ORDER BY id');
  assert.deepEqual(rows, [
    { id: 9007199254740993n, n: 7 },
    { id: 2n ** 62n, n: null },
  ]);
  assert.equal(stringify(rows), `[{"id":"9007199254740993","n":7},{"id":"${2n ** 62n}","n":null}]`);
  assert.equal((await bigints.query('SELECT id FROM ts.nums WHERE id = $1', [9007199254740993n])).results[0].rows[0][0], 9007199254740993n);
});

test('insert, update and delete bind values and use the real primary key, composite too', async () => {
  const root = createClient({ url: server.url, auth: Auth.basic('root', '') });
  const evil = "x'); DROP TABLE ts.pairs; --";
  await root.insert('ts.pairs', { room: evil, id: 1, body: 'one' });
  await root.insert('ts.pairs', { room: 'b', id: 1, body: 'two' });
  const updated = await root.update('ts.pairs', { room: evil, id: 1 }, { body: 'uno' });
  assert.match(updated.message, /1/);
  assert.deepEqual(await root.queryAll('SELECT room, body FROM ts.pairs ORDER BY room'), [
    { room: 'b', body: 'two' },
    { room: evil, body: 'uno' },
  ]);
  await root.delete('ts.pairs', { room: 'b', id: '1' });
  assert.deepEqual(await root.queryAll('SELECT body FROM ts.pairs'), [{ body: 'uno' }]);
  await assert.rejects(root.update('ts.pairs', { room: 'b' }, { body: 'x' }), /needs id/);
  await root.update('ts.nums', '9007199254740993', { label: 'renamed' });
  assert.deepEqual(await root.queryOne('SELECT label FROM ts.nums WHERE id = 9007199254740993'), { label: 'renamed' });
  await assert.rejects(root.insert('ts.nums; DROP TABLE x', { id: 1 }), (e) => e.code === 'INVALID_PARAMETER');
});

test('errors carry the code, the status and the failing statement of a batch', async () => {
  const root = createClient({ url: server.url, auth: Auth.basic('root', '') });
  await assert.rejects(root.query('SELECT 1; SELECT * FROM ts.missing'), (e) => {
    assert.equal(e.code, 'TABLE_NOT_FOUND');
    assert.equal(e.status, 404);
    assert.equal(e.statementIndex, 2);
    return true;
  });
  await assert.rejects(root.insert('ts.nums', { id: '2', label: 'dup' }).then(() => root.insert('ts.nums', { id: '2' })), (e) => e.code === 'ALREADY_EXISTS' || e.status === 409);
});

test('executeAsUser runs as that user and a USER table keeps each user to their rows', async () => {
  const svc = createClient({ url: server.url, auth: Auth.basic('svc', 'Svc-Pass-12345') });
  await svc.executeAsUser('INSERT INTO ts.notes (id, body) VALUES ($1, $2)', 'ann', [1, 'ann-only']);
  const ann = createClient({ url: server.url, auth: Auth.basic('ann', 'Ann-Pass-12345') });
  assert.deepEqual(await ann.queryAll('SELECT body FROM ts.notes'), [{ body: 'ann-only' }]);
  const root = createClient({ url: server.url, auth: Auth.basic('root', '') });
  assert.deepEqual(await root.queryAll('SELECT body FROM ts.notes'), []);
});

test('the CommonJS build loads and works the same', async () => {
  const require = createRequire(import.meta.url);
  const cjs = require('../dist/index.cjs');
  const client = cjs.createClient({ url: server.url, auth: cjs.Auth.basic('root', '') });
  // a literal 1 is a BIGINT: a string, exact
  assert.deepEqual(await client.queryOne('SELECT 1 AS one'), { one: '1' });
});
