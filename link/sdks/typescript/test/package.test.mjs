// The package itself: size budget, no global patched, ws only when needed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

test('the core stays within 15 kB min+gzip', () => {
  const size = JSON.parse(readFileSync(new URL('../dist/size.json', import.meta.url)));
  assert.ok(size.gzipped <= 15_000, `${size.gzipped} B min+gzip`);
});

test('importing patches nothing global and loads ws only on demand', async () => {
  const before = Object.getOwnPropertyNames(globalThis).sort();
  await import('../dist/index.js');
  assert.deepEqual(Object.getOwnPropertyNames(globalThis).sort(), before);
  assert.equal(globalThis.window, undefined);
  const esm = readFileSync(new URL('../dist/index.js', import.meta.url), 'utf8');
  assert.doesNotMatch(esm, /^import .* from ["']ws["']/m, 'no static import of ws');
  assert.match(esm, /import\(["']ws["']\)/, 'ws is imported dynamically');
});
