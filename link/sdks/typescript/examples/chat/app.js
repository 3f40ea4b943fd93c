// The chat page: reads everything live through @kalamdb/client; writes its
// own notes directly, room posts and typing through the example's backend.
import { Auth, createClient } from '/sdk/index.js';

const $ = (id) => document.getElementById(id);
const ROOM = 'lobby';

function item(author, text) {
  const li = document.createElement('li');
  if (author) {
    const b = document.createElement('span');
    b.className = 'author';
    b.textContent = author;
    li.append(b);
  }
  li.append(document.createTextNode(text));
  return li;
}

$('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const user = $('user').value.trim();
  const db = createClient({ url: location.origin, auth: Auth.basic(user, $('password').value) });
  let token;
  try {
    token = (await db.login()).accessToken;
  } catch (err) {
    $('login-error').textContent = err.message;
    return;
  }
  const backend = (path, body) =>
    fetch(path, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
  db.onConnect(async () => {
    token = (await db.login()).accessToken;
  });

  await db.live(`SELECT id, author, body FROM chat.messages WHERE room = '${ROOM}'`, (rows) => {
    $('messages').replaceChildren(...rows.map((r) => item(r.author, r.body)));
  });
  await db.live('SELECT id, body FROM chat.notes', (rows) => {
    $('notes').replaceChildren(...rows.map((r) => item('', r.body)));
  });
  const typing = new Map();
  const showTyping = () => {
    const now = Date.now();
    const who = [...typing].filter(([, at]) => now - at < 3000).map(([w]) => w);
    $('typing').textContent = who.length ? `${who.join(', ')} ${who.length > 1 ? 'are' : 'is'} typing…` : '';
  };
  setInterval(showTyping, 500);
  await db.subscribeWithSql(`SELECT room, who FROM chat.typing WHERE room = '${ROOM}'`, (m) => {
    if (m.type === 'change' && m.change_type === 'insert') {
      for (const r of m.rows) typing.set(r.who, Date.now());
      showTyping();
    }
  });

  let lastTyping = 0;
  $('text').addEventListener('input', () => {
    if (Date.now() - lastTyping > 1000) {
      lastTyping = Date.now();
      backend(`/api/rooms/${ROOM}/typing`);
    }
  });
  $('post').addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = $('text').value.trim();
    if (!text) return;
    $('text').value = '';
    await backend(`/api/rooms/${ROOM}/messages`, { text });
  });
  $('note').addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = $('note-text').value.trim();
    if (!body) return;
    $('note-text').value = '';
    await db.insert('chat.notes', { body });
  });
  $('me').textContent = user;
  $('login').hidden = true;
  $('chat').hidden = false;
});
