// Live queries with the SDK against the real server: every subscription
// API, live() converging to a fresh SELECT, a token refreshed under a live
// subscription, and a server killed and restarted mid-stream.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { Auth, ChangeType, MessageType, createClient } from '../dist/index.js';
import { Server, sleep, until } from './server.mjs';

let server;
before(async () => {
  // short-lived access tokens: the refresh test sees several refreshes
  server = await Server.start({ KALAMDB_AUTH_ACCESS_TOKEN_TTL_SECS: '4' });
  await server.sql(`CREATE NAMESPACE lv;
    CREATE SHARED TABLE lv.items (id BIGINT PRIMARY KEY, room TEXT, n INT);
    ALTER TABLE lv.items SET TBLPROPERTIES (ACCESS_LEVEL = 'PUBLIC');
    CREATE USER TABLE lv.notes (id BIGINT PRIMARY KEY, body TEXT);
    CREATE USER 'ann' WITH PASSWORD 'Ann-Pass-12345' ROLE user;
    CREATE USER 'bob' WITH PASSWORD 'Bob-Pass-12345' ROLE user`);
});
after(() => server.stop());

const clientOf = (user, password, extra = {}) =>
  createClient({ url: server.url, auth: Auth.basic(user, password), reconnectDelayMs: 100, ...extra });

test('subscribeWithSql resolves once registered: a write right after is seen; unsubscribe ends it', async () => {
  const ann = clientOf('ann', 'Ann-Pass-12345');
  await server.sql("INSERT INTO lv.items VALUES (1, 'a', 1)");
  const seen = [];
  const stop = await ann.subscribeWithSql("SELECT * FROM lv.items WHERE room = 'a'", (m) => seen.push(m));
  assert.equal(seen[0].type, MessageType.SubscriptionAck);
  await server.sql("INSERT INTO lv.items VALUES (2, 'a', 2), (3, 'b', 3)");
  await until(() => seen.some((m) => m.type === MessageType.Change), 5000, 'the change');
  const initial = seen.filter((m) => m.type === MessageType.InitialDataBatch).flatMap((m) => m.rows);
  assert.deepEqual(initial.map((r) => r.id), ['1']);
  const change = seen.find((m) => m.type === MessageType.Change);
  assert.equal(change.change_type, ChangeType.Insert);
  assert.deepEqual(change.rows.map((r) => [r.id, r.room]), [['2', 'a']]);
  assert.match(change.rows[0]._seq, /^\d+$/);
  assert.deepEqual(ann.getSubscriptions().map((s) => [s.id, s.ready]), [[stop.id, true]]);
  assert.match(ann.getLastSeqId(stop.id), /^\d+$/);
  await stop();
  assert.deepEqual(ann.getSubscriptions(), []);
  const before = seen.length;
  await server.sql("INSERT INTO lv.items VALUES (4, 'a', 4)");
  await sleep(300);
  assert.equal(seen.length, before, 'nothing after unsubscribe');
  ann.close();
});

test('subscribe(table), async iteration with an AbortSignal, unsubscribeAll, and a bad query rejects', async () => {
  const bob = clientOf('bob', 'Bob-Pass-12345');
  await bob.query("INSERT INTO lv.notes VALUES (1, 'bob-1')");
  const ann = clientOf('ann', 'Ann-Pass-12345');
  await ann.query("INSERT INTO lv.notes VALUES (1, 'ann-1')");
  const annSeen = [];
  await ann.subscribe('lv.notes', (m) => annSeen.push(m));
  const controller = new AbortController();
  const events = [];
  const iterating = (async () => {
    for await (const m of bob.subscribeWithSql('SELECT * FROM lv.notes', undefined, { signal: controller.signal })) {
      events.push(m);
      if (m.type === MessageType.Change) controller.abort();
    }
  })();
  await until(() => events.some((m) => m.type === MessageType.InitialDataBatch), 5000, 'bob initial rows');
  await bob.query("INSERT INTO lv.notes VALUES (2, 'bob-2')");
  await iterating;
  const bobRows = events.flatMap((m) => m.rows ?? []).map((r) => r.body);
  assert.deepEqual(bobRows, ['bob-1', 'bob-2'], 'bob sees only his rows');
  await sleep(200);
  const annRows = annSeen.flatMap((m) => m.rows ?? []).map((r) => r.body);
  assert.deepEqual(annRows, ['ann-1'], "ann never sees bob's rows");
  await assert.rejects(ann.subscribeWithSql('SELECT count(*) FROM lv.items', () => {}), (e) => e.code === 'UNSUPPORTED');
  await ann.subscribeWithSql('SELECT id FROM lv.items', () => {});
  assert.equal(ann.getSubscriptions().length, 2);
  await ann.unsubscribeAll();
  assert.equal(ann.getSubscriptions().length, 0);
  ann.close();
  bob.close();
});

test('live() keeps an ordered row set equal to a fresh SELECT through random writes', async () => {
  await server.sql('CREATE SHARED TABLE lv.board (id INT PRIMARY KEY, v INT, tag TEXT); ALTER TABLE lv.board SET TBLPROPERTIES (ACCESS_LEVEL = \'PUBLIC\')');
  const ann = clientOf('ann', 'Ann-Pass-12345');
  let latest = [];
  let renders = 0;
  const stop = await ann.live("SELECT id, v, tag FROM lv.board WHERE tag <> 'hidden'", (rows) => {
    latest = rows;
    renders++;
  });
  const root = clientOf('root', '');
  let seed = 42;
  const random = (n) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let i = 0; i < 300; i++) {
    const id = random(40);
    const tag = ['a', 'b', 'hidden'][random(3)];
    switch (random(4)) {
      case 0:
      case 1:
        await root.query('INSERT INTO lv.board (id, v, tag) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET v = $2, tag = $3', [id, i, tag]);
        break;
      case 2:
        await root.query('UPDATE lv.board SET v = v + 1, tag = $2 WHERE id = $1', [id, tag]);
        break;
      default:
        await root.query('DELETE FROM lv.board WHERE id = $1', [id]);
    }
  }
  const expected = await root.queryAll("SELECT id, v, tag FROM lv.board WHERE tag <> 'hidden' ORDER BY id");
  const sorted = () => [...latest].sort((a, b) => a.id - b.id);
  await until(() => isDeepStrictEqual(sorted(), expected), 10_000, 'live() to converge');
  assert.ok(renders > 1);
  // a row that did not change is the same object (stable identity for UI keys)
  const before = new Map(latest.map((r) => [r.id, r]));
  const target = expected[0];
  const other = expected[1];
  await root.query('UPDATE lv.board SET v = v + 1000 WHERE id = $1', [target.id]);
  await until(() => latest.find((r) => r.id === target.id)?.v === target.v + 1000, 5000, 'the update');
  assert.notEqual(latest.find((r) => r.id === target.id), before.get(target.id));
  assert.equal(latest.find((r) => r.id === other.id), before.get(other.id));
  await stop();
  ann.close();
});

test('an access token refreshed under a live subscription: the socket is re-authenticated and nothing is missed', async () => {
  const ann = clientOf('ann', 'Ann-Pass-12345');
  const ids = [];
  const disconnects = [];
  ann.onDisconnect((r) => disconnects.push(r));
  const stop = await ann.subscribeWithSql('SELECT id FROM lv.items WHERE id >= 1000', (m) => {
    for (const r of m.rows ?? []) ids.push(r.id);
  });
  const first = (await ann.login()).accessToken;
  // tokens live 4 s: refreshed at 80 % of that, twice in 8 s
  for (let i = 0; i < 8; i++) {
    await server.sql(`INSERT INTO lv.items VALUES (${1000 + i}, 'r', ${i})`);
    await sleep(1000);
  }
  await until(() => ids.length === 8, 5000, 'every change');
  assert.deepEqual(ids, ['1000', '1001', '1002', '1003', '1004', '1005', '1006', '1007']);
  assert.deepEqual(disconnects, [], 'the socket never dropped');
  // the client refreshed on its own (the server counts refreshes)
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const refreshes = Number(/kalamdb_auth_attempts_total\{method="refresh",outcome="success"\} (\d+)/.exec(metrics)?.[1] ?? 0);
  assert.ok(refreshes >= 2, `${refreshes} refreshes in 8 s of 4 s tokens`);
  const current = (await ann.refreshToken()).accessToken;
  assert.notEqual(current, first);
  await stop();
  ann.close();
});

test('the server killed and restarted mid-stream: 0 changes lost, 0 doubled', async () => {
  await server.sql("CREATE SHARED TABLE lv.feed (id INT PRIMARY KEY, n INT); ALTER TABLE lv.feed SET TBLPROPERTIES (ACCESS_LEVEL = 'PUBLIC')");
  const ann = clientOf('ann', 'Ann-Pass-12345');
  const counts = new Map();
  let connects = 0;
  ann.onConnect(() => connects++);
  await ann.subscribeWithSql('SELECT id FROM lv.feed', (m) => {
    if (m.type === MessageType.Change && m.change_type !== ChangeType.Insert) return;
    for (const r of m.rows ?? []) counts.set(r.id, (counts.get(r.id) ?? 0) + 1);
  });
  const total = 400;
  const writer = (async () => {
    for (let id = 0; id < total; id++) {
      for (;;) {
        try {
          const response = await fetch(`${server.url}/v1/api/sql`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Basic ${btoa('root:')}` },
            body: JSON.stringify({ sql: 'INSERT INTO lv.feed VALUES ($1, $1)', params: [id] }),
          });
          // 409: the insert committed before the reply was lost
          if (response.ok || response.status === 409) break;
        } catch {
          // the server is down: try again
        }
        await sleep(50);
      }
    }
  })();
  await until(() => counts.size > 100, 10_000, 'the first changes');
  await server.crashAndRestart(300);
  await writer;
  await until(() => counts.size === total, 20_000, `all ${total} rows (have ${counts.size})`);
  await sleep(500);
  const doubled = [...counts].filter(([, n]) => n !== 1);
  assert.deepEqual(doubled, [], 'each row exactly once');
  assert.ok(connects >= 2, `reconnected (${connects} connects)`);
  ann.close();
});

test('a half-open socket (the server goes silent) is detected by the ping timeout and replaced, nothing lost', async () => {
  // a TCP relay whose current connections can be frozen: bytes stop
  // flowing both ways, nothing is closed — what a dead NAT entry looks like
  const { createServer, connect } = await import('node:net');
  const target = new URL(server.url);
  const frozen = new Set();
  const live = new Set();
  const relay = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    const pair = { client, upstream };
    live.add(pair);
    client.on('data', (d) => frozen.has(pair) || upstream.write(d));
    upstream.on('data', (d) => frozen.has(pair) || client.write(d));
    const end = () => {
      live.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise((r) => relay.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${relay.address().port}`;
  await server.sql("CREATE SHARED TABLE lv.beats (id INT PRIMARY KEY); ALTER TABLE lv.beats SET TBLPROPERTIES (ACCESS_LEVEL = 'PUBLIC')");
  const ann = createClient({
    url,
    auth: Auth.basic('ann', 'Ann-Pass-12345'),
    reconnectDelayMs: 100,
    pingIntervalMs: 200,
    pongTimeoutMs: 1200,
  });
  const reasons = [];
  ann.onDisconnect((r) => reasons.push(r));
  const ids = [];
  await ann.subscribeWithSql('SELECT id FROM lv.beats', (m) => {
    for (const r of m.rows ?? []) ids.push(r.id);
  });
  await server.sql('INSERT INTO lv.beats VALUES (1)');
  await until(() => ids.length === 1, 5000, 'the first row');
  for (const pair of live) frozen.add(pair);
  await server.sql('INSERT INTO lv.beats VALUES (2), (3)');
  await until(() => reasons.length > 0, 5000, 'the silence to be noticed');
  assert.equal(reasons[0], 'no answer from the server');
  await until(() => ids.length === 3, 5000, 'the rows written while frozen');
  assert.deepEqual(ids, [1, 2, 3]);
  ann.close();
  for (const pair of live) {
    pair.client.destroy();
    pair.upstream.destroy();
  }
  await new Promise((r) => relay.close(r));
});

test('subscribeRows gives typed row events, and large (gzip) messages arrive intact', async () => {
  await server.sql("CREATE SHARED TABLE lv.docs (id INT PRIMARY KEY, body TEXT); ALTER TABLE lv.docs SET TBLPROPERTIES (ACCESS_LEVEL = 'PUBLIC')");
  const big = 'x'.repeat(5000) + '✓ end';
  await server.sql(`INSERT INTO lv.docs VALUES (1, '${big}')`);
  const ann = clientOf('ann', 'Ann-Pass-12345');
  const events = [];
  const stop = await ann.subscribeRows('SELECT id, body FROM lv.docs', (e) => events.push(e));
  await server.sql("INSERT INTO lv.docs VALUES (2, 'two'), (3, 'three')");
  await server.sql("UPDATE lv.docs SET body = 'deux' WHERE id = 2");
  await server.sql('DELETE FROM lv.docs WHERE id = 3');
  await until(() => events.some((e) => e.type === 'delete'), 5000, 'the delete');
  const shape = events.map((e) => [e.type, e.rows.map((r) => r.id), (e.oldRows ?? []).map((r) => r.body)]);
  assert.deepEqual(shape, [
    ['initial', [1], []],
    ['insert', [2, 3], []],
    ['update', [2], ['two']],
    ['delete', [3], []],
  ]);
  assert.equal(events[0].rows[0].body, big, 'a 5 kB row (a gzip binary frame) arrives intact');
  assert.equal(events[0].ready, true);
  assert.equal(events[2].rows[0].body, 'deux');
  await stop();
  ann.close();
});

test('liveTableRows, unsubscribe(id), and the reconnect settings: off, and giving up with onError', async () => {
  await server.sql("CREATE SHARED TABLE lv.small (id INT PRIMARY KEY, v TEXT); ALTER TABLE lv.small SET TBLPROPERTIES (ACCESS_LEVEL = 'PUBLIC'); INSERT INTO lv.small VALUES (1, 'a')");
  const ann = clientOf('ann', 'Ann-Pass-12345');
  let rows = [];
  const stop = await ann.liveTableRows('lv.small', (r) => (rows = r));
  await until(() => rows.length === 1, 5000, 'the table rows');
  assert.deepEqual(rows, [{ id: 1, v: 'a' }]);
  await ann.unsubscribe(stop.id);
  assert.deepEqual(ann.getSubscriptions(), []);
  await server.sql("INSERT INTO lv.small VALUES (2, 'b')");
  await sleep(300);
  assert.equal(rows.length, 1, 'nothing after unsubscribe(id)');

  // no reconnect when it is off; giving up is reported through onError
  const quiet = clientOf('ann', 'Ann-Pass-12345');
  quiet.setAutoReconnect(false);
  const giveUp = clientOf('ann', 'Ann-Pass-12345');
  giveUp.setMaxReconnectAttempts(0);
  const events = { quietConnects: 0, quietDown: 0, errors: [] };
  quiet.onConnect(() => events.quietConnects++);
  quiet.onDisconnect(() => events.quietDown++);
  giveUp.onError((e) => events.errors.push(e));
  await quiet.subscribeWithSql('SELECT id FROM lv.small', () => {});
  await giveUp.subscribeWithSql('SELECT id FROM lv.small', () => {});
  await server.crashAndRestart(200);
  await until(() => events.quietDown === 1 && events.errors.length === 1, 5000, 'both to notice');
  await sleep(800);
  assert.equal(events.quietConnects, 1, 'autoReconnect off: it stays down');
  assert.equal(events.errors[0].code, 'CLOSED');
  assert.match(events.errors[0].message, /Gave up reconnecting/);
  quiet.close();
  giveUp.close();
  ann.close();
});
