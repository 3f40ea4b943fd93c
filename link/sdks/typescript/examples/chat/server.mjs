// The chat example's backend: serves the page and the SDK, proxies the
// KalamDB API (HTTP and WebSocket) so the page talks to one origin, and
// runs the two writes a user may not do alone — posting to the SHARED room
// table and telling the others you are typing (into their STREAM table) —
// as the `chatbot` service account, after checking who the caller is.
//
//   node examples/chat/server.mjs [--kalamdb http://127.0.0.1:8080] [--port 5173]
import { readFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Auth, createClient } from '../../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const USERS = [
  ['ann', 'Ann-Chat-Pass-1'],
  ['bob', 'Bob-Chat-Pass-1'],
];
const SERVICE = ['chatbot', 'Chatbot-Pass-1'];

/** Creates the schema and accounts (idempotent), as root on localhost. */
export async function setup(kalamdb) {
  const root = createClient({ url: kalamdb, auth: Auth.basic('root', '') });
  await root.query(`CREATE NAMESPACE IF NOT EXISTS chat;
    CREATE SHARED TABLE IF NOT EXISTS chat.messages (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), room TEXT NOT NULL, author TEXT NOT NULL, body TEXT NOT NULL);
    ALTER TABLE chat.messages SET TBLPROPERTIES (ACCESS_LEVEL = 'PUBLIC');
    CREATE USER TABLE IF NOT EXISTS chat.notes (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), body TEXT NOT NULL);
    CREATE STREAM TABLE IF NOT EXISTS chat.typing (room TEXT, who TEXT) WITH (TTL_SECONDS = 10)`);
  const existing = new Set((await root.queryAll('SELECT username FROM system.users')).map((u) => u.username));
  for (const [name, password] of USERS) {
    if (!existing.has(name)) await root.query(`CREATE USER '${name}' WITH PASSWORD '${password}' ROLE user`);
  }
  if (!existing.has(SERVICE[0])) await root.query(`CREATE USER '${SERVICE[0]}' WITH PASSWORD '${SERVICE[1]}' ROLE service`);
}

/** Starts the example's server; resolves to its URL. */
export async function start({ kalamdb, port = 0 }) {
  await setup(kalamdb);
  const upstream = new URL(kalamdb);
  const service = createClient({ url: kalamdb, auth: Auth.basic(...SERVICE) });
  const files = {
    '/': ['index.html', 'text/html'],
    '/app.js': ['app.js', 'text/javascript'],
    '/sdk/index.js': ['../../dist/index.js', 'text/javascript'],
  };

  /** The user a bearer token belongs to (asked of KalamDB itself). */
  async function caller(authorization) {
    const r = await fetch(`${kalamdb}/v1/api/auth/me`, { headers: { authorization: authorization ?? '' } });
    if (!r.ok) return undefined;
    return (await r.json()).username;
  }

  async function body(req) {
    let text = '';
    for await (const chunk of req) {
      text += chunk;
      if (text.length > 10_000) throw new Error('too large');
    }
    return JSON.parse(text || '{}');
  }

  const server = createServer(async (req, res) => {
    try {
      const path = new URL(req.url, 'http://x').pathname;
      if (files[path]) {
        const [file, type] = files[path];
        res.writeHead(200, { 'content-type': `${type}; charset=utf-8` });
        res.end(await readFile(join(here, file)));
        return;
      }
      const api = /^\/api\/rooms\/([a-z0-9-]{1,32})\/(messages|typing)$/.exec(path);
      if (api && req.method === 'POST') {
        const who = await caller(req.headers.authorization);
        if (!who) {
          res.writeHead(401).end();
          return;
        }
        const [, room, what] = api;
        if (what === 'messages') {
          const { text } = await body(req);
          if (typeof text !== 'string' || !text.trim() || text.length > 2000) {
            res.writeHead(400).end();
            return;
          }
          await service.insert('chat.messages', { room, author: who, body: text });
        } else {
          for (const [other] of USERS.filter(([u]) => u !== who)) {
            await service.executeAsUser('INSERT INTO chat.typing (room, who) VALUES ($1, $2)', other, [room, who]);
          }
        }
        res.writeHead(204).end();
        return;
      }
      if (path.startsWith('/v1/')) {
        // the KalamDB API, same origin for the page
        const proxied = httpRequest(
          { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers },
          (up) => {
            res.writeHead(up.statusCode ?? 502, up.headers);
            up.pipe(res);
          },
        );
        proxied.on('error', () => res.writeHead(502).end());
        req.pipe(proxied);
        return;
      }
      res.writeHead(404).end();
    } catch (e) {
      res.writeHead(500).end(String(e));
    }
  });
  // WebSocket upgrades go through to KalamDB untouched
  server.on('upgrade', (req, socket, head) => {
    const up = connect(Number(upstream.port), upstream.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(lines.join('\r\n') + '\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    const close = () => {
      up.destroy();
      socket.destroy();
    };
    up.on('error', close);
    socket.on('error', close);
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { url, close: () => new Promise((r) => server.close(r)) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : fallback;
  };
  const { url } = await start({ kalamdb: arg('--kalamdb', 'http://127.0.0.1:8080'), port: Number(arg('--port', 5173)) });
  console.log(`chat example on ${url} (users: ${USERS.map(([u, p]) => `${u} / ${p}`).join(', ')})`);
}
