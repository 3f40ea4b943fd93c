// Builds dist/: ESM and CJS bundles (the optional `ws` stays an import),
// type declarations, and reports the minified + gzipped size of the core.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

rmSync('dist', { recursive: true, force: true });
const common = {
  entryPoints: ['src/index.ts'],
  bundle: true,
  external: ['ws'],
  target: 'es2022',
  sourcemap: true,
  logLevel: 'warning',
};
await build({ ...common, format: 'esm', platform: 'neutral', outfile: 'dist/index.js' });
await build({ ...common, format: 'cjs', platform: 'node', outfile: 'dist/index.cjs' });
const min = await build({ ...common, format: 'esm', platform: 'neutral', minify: true, sourcemap: false, write: false, outfile: 'dist/index.min.js' });
execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
const bytes = min.outputFiles[0].contents;
const size = { minified: bytes.length, gzipped: gzipSync(bytes, { level: 9 }).length };
writeFileSync('dist/size.json', JSON.stringify(size) + '\n');
console.log(`@kalamdb/client: ${size.minified} B minified, ${size.gzipped} B min+gzip`);
