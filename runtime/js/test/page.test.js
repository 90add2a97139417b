// The page in a real browser: headless Chromium (Debian's chromium, driven by playwright-core)
// loads it from serve.js, generates with a seed, and the names on the page must equal Python's;
// a model picked with the file input works too, and stops a generation in progress without an error;
// bad input shows an error line, and a screenshot is checked to show more than a blank page.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { decodePng } from './png.js';
import { assertSamples, modelPath, reference } from './reference.js';

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
