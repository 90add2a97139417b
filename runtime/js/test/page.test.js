// The page in a real browser: headless Chromium (Debian's chromium, driven by playwright-core)
// loads it from serve.js, generates with a seed, and the names on the page must equal Python's;
// a model picked with the file input works too, and stops a generation in progress without an error;
// bad input shows an error line, and a screenshot is checked to show more than a blank page.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { decodePng } from './png.js';
import { assertSamples, modelPath, ortWeb, reference } from './reference.js';

const CHROMIUM = process.env.MGPT_CHROMIUM ?? '/usr/bin/chromium';
// as root in a container, with this machine's closed network: no sandbox, no background requests
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

let server, address, browser, page;
const errors = [];

before(async () => {
  server = spawn(process.execPath, [fileURLToPath(new URL('../serve.js', import.meta.url)), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = await once(server.stdout, 'data');
  address = String(line).match(/http:\/\/\S+\//)[0];
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS }); // a fresh profile each launch
  page = await browser.newPage();
  page.on('pageerror', (e) => errors.push(e.message));
});

after(async () => {
  await browser?.close();
  server?.kill();
});

const names = reference.models.find((m) => m.file === 'names.onnx');
const nonAscii = reference.models.find((m) => m.file === 'non_ascii.onnx');

async function samplesAfter(done) {
  await page.waitForSelector(`body[data-done="${done}"]`, { timeout: 30000 });
  return page.$$eval('#samples li', (items) => items.map((li) => li.textContent));
}

test('the page generates with the seed in its address, the same names as Python', async () => {
  const { seed, samples } = names.cases[0]; // temperature 0.5
  await page.goto(`${address}?seed=${seed}&count=100&temperature=0.5`);
  assertSamples(await samplesAfter(1), samples.slice(0, 100), false, 'the page'); // wasm: see assertSamples
  assert.match(await page.textContent('#status'), /^100 samples in \d+ ms\.$/);
  assert.match(await page.textContent('#shape'), /block size\s*8/);
  assert.match(await page.textContent('#shape'), /parameters\s*4,064/); // microgpt's count
  const { val_loss: heldOut, held_out: documents } = names.training; // as Python reads the record
  assert.ok((await page.textContent('#shape'))
    .includes(`held-out NLL${heldOut.toFixed(3)} nats per token on ${documents.toLocaleString('en')} documents`));
  assert.match(await page.textContent('#training'), /"steps": \d+/);
});

test('the controls: top-k, top-p, a prefix and a seed beyond 2^64, then Generate', async () => {
  const { options, seed, samples } = names.cases[3];
  await page.fill('#count', '60');
  await page.fill('#temperature', String(options.temperature));
  await page.fill('#top-k', String(options.top_k));
  await page.fill('#top-p', String(options.top_p));
  await page.fill('#prefix', options.prefix);
  await page.fill('#seed', seed);
  await page.click('#generate');
  assertSamples(await samplesAfter(2), samples.slice(0, 60), false, 'the controls');
});

test('a model picked with the file input is described and sampled', async () => {
  const { seed, samples } = nonAscii.cases[0];
  for (const [id, value] of [['#count', '40'], ['#temperature', '0.5'], ['#top-k', ''], ['#top-p', ''], ['#prefix', ''], ['#seed', seed]]) {
    await page.fill(id, value);
  }
  await page.setInputFiles('#model-file', modelPath('non_ascii.onnx'));
  assertSamples(await samplesAfter(3), samples.slice(0, 40), false, 'a picked model');
  assert.match(await page.textContent('#vocab'), /日 本 😀/);
});

test('a model switch or a new Generate stops the running generation, with no error shown', async () => {
  // every status line the page shows from here on: a stopped run must not flash an error
  await page.evaluate(() => {
    window.statuses = [];
    new MutationObserver(() => window.statuses.push(document.querySelector('#status').textContent))
      .observe(document.querySelector('#status'), { childList: true, characterData: true, subtree: true });
  });
  const longRun = async () => {
    await page.fill('#count', '1000000'); // minutes of work: still running when it is replaced
    await page.click('#generate');
    await page.waitForSelector('#samples li');
  };
  const { seed, samples } = names.cases[0]; // temperature 0.5, as the controls are
  await longRun();
  await page.fill('#count', '30');
  await page.fill('#seed', seed);
  await page.setInputFiles('#model-file', modelPath('names.onnx'));
  assertSamples(await samplesAfter(4), samples.slice(0, 30), false, 'after a model switch');
  await longRun();
  await page.fill('#count', '25');
  await page.click('#generate');
  assertSamples(await samplesAfter(5), samples.slice(0, 25), false, 'after a new Generate');
  await page.waitForTimeout(500); // a stopped run's late failure would show by now
  assert.match(await page.textContent('#status'), /^25 samples in \d+ ms\.$/);
  const shown = await page.evaluate(() => window.statuses);
  assert.deepEqual(shown.filter((line) => line.startsWith('Error')), []);
  assert.deepEqual(errors, []);
});

test('bad input is one error line on the page', async () => {
  await page.fill('#seed', '12x');
  await page.click('#generate');
  await page.waitForSelector('#status.error');
  assert.equal(await page.textContent('#status'), 'Error: seed must be an integer, got "12x"');
  await page.fill('#seed', '1');
  await page.fill('#prefix', 'Q');
  await page.click('#generate');
  await page.waitForFunction(() => document.querySelector('#status').textContent.includes('prefix "Q"'));
  await page.setInputFiles('#model-file', modelPath('text.onnx'));
  await page.waitForFunction(() => document.querySelector('#status').textContent.includes('not an ONNX model'));
  assert.deepEqual(errors, []);
});

test('a screenshot of the page is not blank', async () => {
  await page.goto(`${address}?seed=1&count=20`);
  await samplesAfter(1);
  const { width, height, channels, pixels } = decodePng(await page.screenshot({ fullPage: true }));
  const colors = new Set();
  let sum = 0, squares = 0;
  for (let i = 0; i < width * height * channels; i += channels) {
    colors.add((pixels[i] << 16) | (pixels[i + 1] << 8) | pixels[i + 2]);
    const gray = (pixels[i] + pixels[i + 1] + pixels[i + 2]) / 3;
    sum += gray;
    squares += gray * gray;
  }
  const n = width * height, variance = squares / n - (sum / n) ** 2;
  assert.ok(width >= 800 && height >= 600, `${width}x${height}`);
  assert.ok(colors.size > 50, `${colors.size} distinct colors`); // text is anti-aliased: hundreds of shades
  assert.ok(variance > 100, `gray-level variance ${variance}`);
});

// ----------------------------------------------------------------------------- issue 14: controls, picker, traces

/** The page, fresh, with `query`; resolves once its first generation is done. */
async function fresh(query) {
  await page.goto(`${address}?${query}`);
  return samplesAfter(1);
}

test('the picker offers the shipped models by name, and one picked by name is sampled', async () => {
  await fresh('seed=1&count=5');
  const offered = await page.$$eval('#model-name option', (options) => options.map((o) => o.textContent));
  assert.deepEqual(offered, ['names', 'names-era', 'names-large']);
  const large = reference.models.find((m) => m.file === 'names-large.onnx');
  const { seed, samples } = large.cases[0]; // temperature 0.5
  await page.fill('#count', '50');
  await page.fill('#seed', seed);
  await page.selectOption('#model-name', { label: 'names-large' });
  assertSamples(await samplesAfter(2), samples.slice(0, 50), false, 'names-large picked by name');
  assert.match(await page.textContent('#shape'), /block size\s*16/);
  assert.deepEqual(await fresh(`model=names-large&seed=${seed}&count=20`), await page.$$eval('#samples li', (li) => li.map((x) => x.textContent)));
  assertSamples(await page.$$eval('#samples li', (li) => li.map((x) => x.textContent)), samples.slice(0, 20), false, '?model=names-large');
});

test('a labeled model gets a picker per label group, and its samples are Python\'s for the labels picked', async () => {
  const era = reference.models.find((m) => m.file === 'names-era.onnx');
  const { seed, samples, options } = era.cases[0]; // M, 1950s at temperature 0.5
  const got = await fresh(`model=names-era&label=${options.labels.join('&label=')}&seed=${seed}&count=100&temperature=0.5`);
  assertSamples(got, samples, false, 'names-era from the address');
  assert.deepEqual(await page.$$eval('#labels select', (s) => s.map((x) => x.value)), ['M', '1950s']);
  assert.deepEqual(await page.$$eval('#label-0 option', (o) => o.map((x) => x.value)), ['F', 'M']);
  assert.match(await page.textContent('#shape'), /labels\s*F \| M; 1880s \| 1890s/); // the record lists them
  const { Generator } = await import('../src/index.js');
  const gen = await Generator.load(modelPath('names-era.onnx'), { ort: await ortWeb() }); // the page's engine, in Node
  await page.selectOption('#label-0', 'F');
  await page.selectOption('#label-1', '1910s');
  await page.click('#generate');
  assertSamples(await samplesAfter(2), await gen.generate({ numSamples: 100, seed: BigInt(seed), temperature: 0.5, labels: ['F', '1910s'] }),
    false, 'pickers F, 1910s');
  await fresh('model=names&seed=1&count=5'); // a model without labels: no pickers
  assert.equal(await page.$eval('#labels', (f) => f.hidden), true);
  assert.deepEqual(errors, []);
});

test('every control on the page gives the runtime\'s samples for the same options', async () => {
  const { Generator } = await import('../src/index.js');
  const gen = await Generator.load(modelPath('names.onnx'), { ort: await ortWeb() }); // the page's engine, in Node
  const cases = [
    ['novel=1&minLength=5', { novel: true, minLength: 5 }], // the shipped model carries the novelty filter
    ['minLength=6&suffix=a&contains=l', { minLength: 6, suffix: 'a', contains: 'l' }],
    [`pattern=${encodeURIComponent('[a-z]{4,6}(a|ie)')}&unique=1`, { pattern: '[a-z]{4,6}(a|ie)', unique: true }],
    ['exclude=anna&exclude=emma&unique=true&prefix=ma', { exclude: ['anna', 'emma'], unique: true, prefix: 'ma' }],
  ];
  for (const [query, options] of cases) {
    const got = await fresh(`seed=9&count=60&temperature=0.5&${query}`);
    const want = await gen.generate({ numSamples: 60, seed: 9n, temperature: 0.5, ...options });
    assertSamples(got, want, false, query);
  }
  // typed into the controls: exclude as lines of a text box
  await page.fill('#exclude', 'anna\r\nmaria\n\n');
  await page.fill('#pattern', '');
  await page.click('#generate');
  const got = await samplesAfter(2);
  assertSamples(got, await gen.generate({ numSamples: 60, seed: 9n, temperature: 0.5, exclude: ['anna', 'maria'], unique: true, prefix: 'ma' }), false, 'typed');
  assert.deepEqual(errors, []);
});

test('a bad or unsatisfiable control is one error line in the status', async () => {
  await fresh('seed=1&count=5');
  for (const [id, value, message] of [
    ['#pattern', '\\d+', /^Error: pattern "\\\\d\+" has \\d: character classes, anchors and escapes such as/],
    ['#pattern', 'q{9}', /^Error: no sample of at most 8 characters over the model's vocabulary can match pattern "q\{9\}"; loosen the controls/],
    ['#suffix', 'Z', /^Error: suffix "Z" has characters the model cannot produce \("Z"\)/],
  ]) {
    await page.fill('#pattern', '');
    await page.fill('#suffix', '');
    await page.fill(id, value);
    await page.click('#generate');
    await page.waitForSelector('#status.error');
    const line = await page.textContent('#status');
    assert.match(line, message);
    assert.ok(!line.includes('\n'));
    await page.fill(id, '');
    await page.click('#generate');
    await page.waitForSelector('#status:not(.error)');
  }
});

test('clicking a sample draws its trace as probability bars: a picture of the right size and colours', async () => {
  const { Generator } = await import('../src/index.js');
  const { CELL, COLUMNS, BAR, COLORS } = await import('../web/trace.js');
  const gen = await Generator.load(modelPath('names.onnx'), { ort: await ortWeb() });
  const samples = await fresh('seed=4&count=12&temperature=0.8&unique=1');
  await page.click('#samples li:nth-child(6)');
  await page.waitForSelector('body[data-traced="1"]');
  const want = await gen.trace({ seed: 4n, temperature: 0.8, unique: true, index: 5 });
  assert.equal(await page.textContent('#trace-text'), samples[5]);
  assert.equal(want.text, samples[5]);
  const picture = await page.$('#trace-picture svg');
  assert.equal(await picture.getAttribute('data-steps'), String(want.steps.length));
  const pngDir = mkdtempSync(join(tmpdir(), 'mgpt-trace-'));
  const png = await picture.screenshot({ path: join(pngDir, 'trace.png') });
  assert.ok(statSync(join(pngDir, 'trace.png')).size === png.length);
  const { width, height, channels, pixels } = decodePng(png);
  const rows = Math.ceil((want.steps.length + 1) / COLUMNS);
  // the element's box, to a pixel (it may start at a fraction of one)
  assert.ok(Math.abs(width - COLUMNS * CELL.width) <= 1 && Math.abs(height - rows * CELL.height) <= 1, `${width}x${height}`);
  // the bars' pixels, counted by colour, against the areas the trace's probabilities give them
  const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const count = (hex) => {
    const [r, g, b] = rgb(hex);
    let n = 0;
    for (let i = 0; i < width * height * channels; i += channels) if (pixels[i] === r && pixels[i + 1] === g && pixels[i + 2] === b) n++;
    return n;
  };
  let barArea = 0, pickArea = 0;
  for (const step of want.steps) {
    for (const t of step.top) {
      const area = Math.max(1, Math.round(t.p * BAR.longest)) * BAR.height;
      if (t.token === step.pick.token) pickArea += area;
      else barArea += area;
    }
  }
  const [bars, picks] = [count(COLORS.bar), count(COLORS.pick)];
  assert.ok(Math.abs(bars - barArea) <= 0.05 * barArea, `${bars} pixels of bars, ${barArea} expected`);
  // the pick's colour also writes "→ 'x'" when a pick is outside the top five: at most a few hundred pixels more
  assert.ok(picks >= 0.95 * pickArea && picks <= 1.05 * pickArea + 400, `${picks} pixels of picks, ${pickArea} expected`);
  assert.ok(pickArea > 0);
  const labels = await page.$$eval('#trace-picture text', (ts) => ts.map((t) => t.textContent));
  assert.ok(labels.includes(`Step 1: input BOS`));
  assert.ok(labels.includes(`Output: "${want.text}"`));
  assert.ok(labels.includes(want.stopped ? 'STOP!' : 'END! (the block is full)'));
  const { shown } = await import('../web/trace.js');
  assert.deepEqual([null, 'a', "'", '"', '\\', '\t', 'é'].map(shown), ['BOS', "'a'", "'\\''", `'"'`, "'\\\\'", "'\\t'", "'é'"]);
  assert.ok(labels.some((l) => /^\d+%$|^<1%$/.test(l)));
  process.stdout.write(`# the trace's screenshot: ${join(pngDir, 'trace.png')}\n`);
  if (!process.env.MGPT_KEEP_SCREENSHOT) rmSync(pngDir, { recursive: true });
  assert.deepEqual(errors, []);
});

test('in the page, Python\'s constrained and traced cases (tests/js_reference.py): the same samples and traces', async () => {
  await fresh('seed=1&count=1');
  const files = [...new Set([...reference.controls, ...reference.traces].map((c) => c.file))];
  // each model's bytes, handed to the page as base64 (the reference's models are not served)
  const models = Object.fromEntries(files.map((f) => [f, readFileSync(modelPath(f)).toString('base64')]));
  const camel = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/_([a-z])/g, (_, c) => c.toUpperCase()), v]));
  const cases = reference.controls.map(({ file, options, seed, count }) => ({ file, options: camel(options), seed, count }));
  const traces = reference.traces.map(({ file, options, seed, index }) => ({ file, options: camel(options), seed, index }));
  const got = await page.evaluate(async ({ models, cases, traces }) => {
    const ort = await import('/ort/ort.wasm.min.mjs');
    const { Generator } = await import('/src/index.js');
    const gens = {};
    for (const [file, b64] of Object.entries(models)) gens[file] = await Generator.load(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)), { ort });
    const samples = [];
    for (const { file, options, seed, count } of cases) {
      try {
        samples.push(await gens[file].generate({ numSamples: count, seed: BigInt(seed), batchSize: 64, ...options }));
      } catch (e) {
        samples.push({ name: e.name, samples: e.samples, message: e.message });
      }
    }
    const traced = [];
    for (const { file, options, seed, index } of traces) traced.push(await gens[file].trace({ seed: BigInt(seed), index, ...options }));
    for (const gen of Object.values(gens)) await gen.release();
    return { samples, traced };
  }, { models, cases, traces });
  let compared = 0;
  reference.controls.forEach(({ file, options, samples, error }, i) => {
    const label = `${file} ${JSON.stringify(options)}`;
    if (error) {
      assert.equal(got.samples[i].name, 'SamplingError', label);
      assert.equal(got.samples[i].message, error.message.replaceAll('max_attempts', 'maxAttempts'));
      assertSamples(got.samples[i].samples, error.samples, false, label);
      compared += error.samples.length;
    } else {
      assertSamples(got.samples[i], samples, false, label); // wasm: see assertSamples
      compared += samples.length;
    }
  });
  assert.ok(compared >= 1000, `${compared} samples`);
  reference.traces.forEach(({ trace: want }, i) => {
    const trace = got.traced[i];
    assert.equal(trace.text, want.text);
    assert.deepEqual(trace.steps.map((s) => [s.pick.token, s.uniform, s.top.map((t) => t.token)]),
      want.steps.map((s) => [s.pick.token, s.uniform, s.top.map((t) => t.token)]));
    trace.steps.forEach((s, j) => s.top.forEach((t, k) => assert.ok(Math.abs(t.p - want.steps[j].top[k].p) < 1e-4)));
  });
  assert.deepEqual(errors, []);
});

test('README.md\'s page example, served as it says (the page, the model, src/ and three files of onnxruntime-web), shows what it says: Python\'s samples', async () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const html = readme.match(/```html\n([^]*?)```/)[1];
  const shown = readme.match(/It shows `([^`]+)`/)[1];
  const folder = mkdtempSync(join(tmpdir(), 'mgpt-readme-page-'));
  const dist = dirname(fileURLToPath(import.meta.resolve('onnxruntime-web')));
  for (const file of ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm']) {
    cpSync(join(dist, file), join(folder, 'ort', file));
  }
  cpSync(fileURLToPath(new URL('../src', import.meta.url)), join(folder, 'mgpt', 'src'), { recursive: true });
  cpSync(modelPath('names.onnx'), join(folder, 'names.onnx'));
  writeFileSync(join(folder, 'index.html'), `<!doctype html>\n<meta charset="utf-8">\n${html}`);
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };
  const files = createServer((request, response) => { // a plain static server over the folder
    const file = join(folder, decodeURIComponent(new URL(request.url, 'http://x').pathname));
    if (!file.startsWith(folder) || !existsSync(file) || !statSync(file).isFile()) return response.writeHead(404).end();
    response.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
  });
  const readmePage = await browser.newPage();
  try {
    await once(files.listen(0, '127.0.0.1'), 'listening');
    // the first of: the text shown, or an error in the page (its message, at once)
    const failed = readmePage.waitForEvent('pageerror', { timeout: 0 }).then((e) => e.message, () => null);
    await readmePage.goto(`http://127.0.0.1:${files.address().port}/index.html`);
    const shownOrError = readmePage.waitForFunction(() => document.body.textContent.trim() || null, null, { timeout: 30000 });
    assert.equal(await Promise.race([failed, shownOrError.then(() => null)]), null);
    assert.equal((await readmePage.textContent('body')).trim(), shown);
    assertSamples(shown.split(', '), names.cases[0].samples.slice(0, 5), false, 'the README page'); // seed 1, temperature 0.5
  } finally {
    await readmePage.close();
    files.close();
    rmSync(folder, { recursive: true });
  }
});
