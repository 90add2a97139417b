// The TypeScript declarations (index.d.ts, reached through package.json's "exports") compile against
// an app's typical use under `tsc --strict`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

test('an app using the package type-checks with tsc --strict', () => {
  const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));
  const project = fileURLToPath(new URL('types/tsconfig.json', import.meta.url));
  const done = spawnSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8' });
  assert.equal(done.status, 0, done.stdout + done.stderr);
});
