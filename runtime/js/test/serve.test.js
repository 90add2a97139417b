// serve.js: one Error line and the documented exit status for bad options or a missing model, only
// its own files served (no path escapes the served folders), to GET and HEAD.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SERVE = fileURLToPath(new URL('../serve.js', import.meta.url));
const run = (...args) => spawnSync(process.execPath, [SERVE, ...args], { encoding: 'utf8', timeout: 10000 });

async function serving(fn, ...args) {
  const server = spawn(process.execPath, [SERVE, '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const address = String((await once(server.stdout, 'data'))[0]).match(/http:\/\/127\.0\.0\.1:(\d+)\//);
    assert.ok(address, 'no address printed');
    await fn(address[0], Number(address[1]));
  } finally {
    server.kill();
  }
}

test('bad options: one Error line, exit status 2; a missing model or a busy port: exit status 1', async () => {
  for (const [args, status, message] of [
    [['--port', 'x'], 2, /^Error: --port must be an integer from 0 to 65535, got "x"\n$/],
    [['--port', '70000'], 2, /^Error: --port must be/],
    [['--bogus'], 2, /^Error: Unknown option '--bogus'; usage: node serve.js/],
    [['--model', '/nonexistent.onnx'], 1, /^Error: model file "\/nonexistent.onnx" does not exist; pass an .onnx/],
    [['--model', '/tmp'], 1, /^Error: model path "\/tmp" is not a regular file/],
  ]) {
    const done = run(...args);
    assert.equal(done.status, status, `${args}: ${done.stderr}`);
    assert.match(done.stderr, message);
    assert.equal(done.stderr.trim().split('\n').length, 1);
  }
  await serving(async (_, port) => {
    const done = run('--port', String(port));
    assert.equal(done.status, 1);
    assert.equal(done.stderr, `Error: port ${port} on 127.0.0.1 is in use; pass another with --port (0 picks a free one)\n`);
  });
});

test('outside mgpt\'s repository, where the default model is missing, it says to pass --model FILE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mgpt-serve-'));
  try {
    const copy = join(dir, 'node_modules', 'mgpt', 'serve.js'); // as installed: no ../../models/names.onnx
    mkdirSync(dirname(copy), { recursive: true });
    copyFileSync(SERVE, copy);
    const done = spawnSync(process.execPath, [copy, '--port', '0'], { encoding: 'utf8', timeout: 10000 });
    assert.equal(done.status, 1);
    assert.match(done.stderr, /^Error: the default model ".*names\.onnx" \(.*\) does not exist here; pass --model FILE with an \.onnx written by mgpt-export\n$/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('HEAD is answered as GET without the body; other methods are 405 with Allow', async () => {
  await serving(async (address) => {
    const model = new URL('/model.onnx', address);
    const [get, head] = [await fetch(model), await fetch(model, { method: 'HEAD' })];
    assert.equal(head.status, 200);
    for (const header of ['content-type', 'content-length']) assert.equal(head.headers.get(header), get.headers.get(header), header);
    assert.equal(Number(head.headers.get('content-length')), (await get.arrayBuffer()).byteLength);
    assert.equal((await head.arrayBuffer()).byteLength, 0);
    assert.equal((await fetch(new URL('/nope', address), { method: 'HEAD' })).status, 404);
    const post = await fetch(model, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
  });
});

test('serves the page, the runtime, onnxruntime-web\'s three files and the model, and nothing else', async () => {
  await serving(async (address) => {
    const get = async (path) => (await fetch(new URL(path, address), { redirect: 'manual' })).status;
    for (const path of ['/web/', '/web/page.js', '/web/page.css', '/src/index.js', '/src/generator.js', '/model.onnx',
      '/models.json', '/models/names-large.onnx',
      '/ort/ort.wasm.min.mjs', '/ort/ort-wasm-simd-threaded.mjs', '/ort/ort-wasm-simd-threaded.wasm']) {
      assert.equal(await get(path), 200, path);
    }
    assert.equal(await get('/?seed=1'), 302);
    for (const path of ['/serve.js', '/package.json', '/ort/ort.min.mjs', '/src/', '/models/', '/models/names.npz',
      '/models/names.onnx', '/models/%2e%2e/README.md', '/src/%2e%2e/serve.js', '/src/..%2fserve.js',
      '/web/%2e%2e/%2e%2e/%2e%2e/README.md', '/etc/passwd', '/web/%00', '/web/%zz']) {
      assert.equal(await get(path), 404, path);
    }
    const wasm = await fetch(new URL('/ort/ort-wasm-simd-threaded.wasm', address));
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
  });
});

test('the picker\'s list: the served model first, then the repository\'s shipped ones other than it', async () => {
  const models = async (address) => (await fetch(new URL('/models.json', address))).json();
  await serving(async (address) => {
    assert.deepEqual(await models(address), [{ name: 'names', url: '/model.onnx' }, { name: 'names-era', url: '/models/names-era.onnx' },
      { name: 'names-large', url: '/models/names-large.onnx' }]);
  });
  const large = fileURLToPath(new URL('../../../models/names-large.onnx', import.meta.url));
  await serving(async (address) => {
    assert.deepEqual(await models(address), [{ name: 'names-large', url: '/model.onnx' }, { name: 'names-era', url: '/models/names-era.onnx' },
      { name: 'names', url: '/models/names.onnx' }]);
    const [a, b] = await Promise.all(['/model.onnx', '/models/names.onnx'].map(async (p) => (await fetch(new URL(p, address))).arrayBuffer()));
    assert.ok(a.byteLength > b.byteLength); // the large model is served as the model, the small one by name
  }, '--model', large);
});
