// The TypeScript declarations (index.d.ts, reached through package.json's "exports") compile against
// an app's typical use under `tsc --strict`, and the sources against their own JSDoc types.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const tsc = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url));

function check(project) {
  const done = spawnSync(process.execPath, [tsc, '-p', fileURLToPath(new URL(project, import.meta.url))], { encoding: 'utf8' });
  assert.equal(done.status, 0, done.stdout + done.stderr);
}

test('an app using the package type-checks with tsc --strict', () => check('types/tsconfig.json'));

test('the sources agree with their JSDoc types (tsc --checkJs)', () => check('types/tsconfig.src.json'));
