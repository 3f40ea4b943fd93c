// The chat example in a real browser: Debian's chromium driven by
// playwright-core (no browser download), two contexts as two users.
// Screenshots go to test-artifacts/.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { start } from '../examples/chat/server.mjs';
import { Server } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = new URL('../test-artifacts/', import.meta.url);

let kalamdb;
let chat;
let browser;
before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (scripts/test.sh installs Debian's chromium)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  kalamdb = await Server.start();
  chat = await start({ kalamdb: kalamdb.url });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
});
after(async () => {
  await browser?.close();
  await chat?.close();
  await kalamdb?.stop();
});

async function logIn(user, password) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[${user}] page error: ${e.message}`));
  await page.goto(chat.url);
  await page.fill('#user', user);
  await page.fill('#password', password);
  await page.click('#login button');
  await page.waitForSelector('#chat:not([hidden])', { timeout: 10_000 });
  return page;
}

test('two users chat live in a room, never see each other’s notes, and see each other typing', async () => {
  const ann = await logIn('ann', 'Ann-Chat-Pass-1');
  const bob = await logIn('bob', 'Bob-Chat-Pass-1');

  // a post by ann appears for bob within 1 s
  await ann.fill('#text', 'hello from ann');
  const sent = Date.now();
  await ann.click('#post button');
  await bob.waitForFunction(() => document.querySelector('#messages').textContent.includes('hello from ann'), null, {
    timeout: 1000,
  });
  const latency = Date.now() - sent;
  assert.ok(latency <= 1000, `${latency} ms`);
  await bob.fill('#text', 'hi ann');
  await bob.click('#post button');
  await ann.waitForFunction(() => document.querySelector('#messages').textContent.includes('hi ann'), null, { timeout: 1000 });
  assert.deepEqual(
    await ann.$$eval('#messages li', (lis) => lis.map((li) => li.textContent)),
    ['annhello from ann', 'bobhi ann'],
  );

  // private notes stay private
  await ann.fill('#note-text', 'ann secret note');
  await ann.click('#note button');
  await ann.waitForFunction(() => document.querySelector('#notes').textContent.includes('ann secret note'), null, {
    timeout: 2000,
  });
  await bob.fill('#note-text', 'bob secret note');
  await bob.click('#note button');
  await bob.waitForFunction(() => document.querySelector('#notes').textContent.includes('bob secret note'), null, {
    timeout: 2000,
  });
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(!(await bob.textContent('body')).includes('ann secret'), "bob's page never shows ann's note");
  assert.ok(!(await ann.textContent('body')).includes('bob secret'), "ann's page never shows bob's note");

  // typing reaches the other one through their STREAM table
  await bob.type('#text', 'typing…', { delay: 20 });
  await ann.waitForFunction(() => document.querySelector('#typing').textContent.includes('bob is typing'), null, {
    timeout: 2000,
  });
  await ann.screenshot({ path: new URL('chat-ann.png', ARTIFACTS).pathname, fullPage: true });
  await bob.screenshot({ path: new URL('chat-bob.png', ARTIFACTS).pathname, fullPage: true });
});
