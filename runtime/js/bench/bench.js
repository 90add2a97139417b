#!/usr/bin/env node
// Speed of the JavaScript runtime beside references measured in the same run, and how often the
// wasm engine's float differences change a seeded sample:
//
//   node runtime/js/bench/bench.js [--repeats 5] [--python python3] [--agreement 20000] [--no-browser]
//                                  [--controls-only]
//
// Prints Markdown tables. A "token" is one drawn token: a sample's characters plus its ending BOS
// (a sample that reaches the block size draws none), counted as benchmarks/bench_generate.py does.
// Figures are medians of --repeats runs, the two sides of a ratio alternating so that load from
// other processes hits both alike. The references: a straightforward JS client (fresh tensors and
// feeds every step, a softmax and Math.random's inverse CDF, no compaction) and mgpt's Python
// runtime (run by --python); the browser is Debian's Chromium, headless, driven by playwright-core.
// Then the shape controls' cost (issue 14): tokens per second with a pattern and with a suffix and
// minLength beside the same call without them, alternating, in Node and in the page
// (--controls-only runs just that table).

import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ortNode from 'onnxruntime-node';

import { Generator } from '../src/index.js';

const MODEL = fileURLToPath(new URL('../../../models/names.onnx', import.meta.url));
const TEMPERATURE = 0.5;
const { values: args } = parseArgs({
  options: {
    repeats: { type: 'string', default: '5' }, python: { type: 'string', default: 'python3' },
    agreement: { type: 'string', default: '20000' }, 'no-browser': { type: 'boolean', default: false },
    'controls-only': { type: 'boolean', default: false },
  },
});
const repeats = Number(args.repeats);

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const tokensOf = (samples, block) => samples.reduce((n, s) => n + Math.min([...s].length + 1, block), 0);
const k = (x) => `${(x / 1000).toFixed(1)} K`;

/** Tokens per second of `fn`, which returns {tokens, ms}: the tokens it drew and the milliseconds
 * its generation took, timed where it ran (counting the tokens and carrying the samples out of the
 * browser are not the generation's cost: returning 8,192 samples from the page took ~35 ms). */
async function rate(fn) {
  const { tokens, ms } = await fn();
  return tokens / (ms / 1000);
}

/** {tokens, ms} of `generate()`, a call that returns samples: timed alone, counted afterwards. */
async function timed(generate, block) {
  const t0 = performance.now();
  const samples = await generate();
  const ms = performance.now() - t0;
  return { tokens: tokensOf(samples, block), ms };
}

/** Medians of each of `fns`' rates, run alternately after one warm-up each (`rounds` times, by
 * default --repeats). */
async function alternate(...fns) {
  return alternateRounds(repeats, ...fns);
}

async function alternateRounds(rounds, ...fns) {
  for (const fn of fns) await fn();
  const rates = fns.map(() => []);
  for (let r = 0; r < rounds; r++) for (const [i, fn] of fns.entries()) rates[i].push(await rate(fn));
  return rates.map(median);
}

// ----------------------------------------------------------------------------- the plain client

/** What one writes first: `n` samples `batch` at a time, fresh tensors every step, rows run until
 * every row of the batch has drawn BOS. Returns the tokens drawn. */
async function plainLoop(ort, session, info, n, batch) {
  const { nHead: H, headDim: D, vocabSize: V, bos, blockSize } = info;
  let drawn = 0;
  for (let first = 0; first < n; first += batch) {
    let feeds = { token: new ort.Tensor('int64', new BigInt64Array(batch).fill(BigInt(bos)), [batch]) };
    for (let i = 0; i < info.nLayer; i++) {
      for (const kind of ['key', 'value']) feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [batch, H, 0, D]);
    }
    const done = new Uint8Array(batch);
    for (let p = 0; p < blockSize; p++) {
      feeds.position = new ort.Tensor('int64', BigInt64Array.of(BigInt(p)), []);
      const out = await session.run(feeds);
      const next = new BigInt64Array(batch);
      let going = 0;
      for (let r = 0; r < batch; r++) {
        const logits = out.logits.data.subarray(r * V, (r + 1) * V);
        const top = Math.max(...logits);
        const probs = Array.from(logits, (l) => Math.exp((l - top) / TEMPERATURE));
        const total = probs.reduce((a, b) => a + b);
        let u = Math.random() * total, t = 0;
        while (t < V - 1 && (u -= probs[t]) >= 0) t++;
        if (!done[r]) drawn++;
        if (t === bos) done[r] = 1;
        going += done[r] ? 0 : 1;
        next[r] = BigInt(t);
      }
      if (!going) break;
      feeds = { token: new ort.Tensor('int64', next, [batch]), position: null };
      for (let i = 0; i < info.nLayer; i++) {
        for (const kind of ['key', 'value']) feeds[`past_key_values.${i}.${kind}`] = out[`present.${i}.${kind}`];
      }
    }
  }
  return drawn;
}

const mgpt = (gen, n, batchSize, controls = {}) => () =>
  timed(() => gen.generate({ numSamples: n, temperature: TEMPERATURE, batchSize, ...controls }), gen.blockSize);

/** The plain client's {tokens, ms}. */
async function plain(ort, session, n, batch) {
  const t0 = performance.now();
  const tokens = await plainLoop(ort, session, info, n, batch);
  return { tokens, ms: performance.now() - t0 };
}

// ----------------------------------------------------------------------------- Python, in the same run

const PYTHON_RATES = `
import json, sys, time
from mgpt.runtime import Generator
g = Generator(sys.argv[1], threads=1)
def rate(n, batch):
    t0 = time.perf_counter()
    tokens = sum(min(len(s) + 1, g.block_size) for s in g.samples(n, 0.5, batch_size=batch))
    return tokens / (time.perf_counter() - t0)
rate(2000, 1), rate(8192, 1024)
print(json.dumps([rate(2000, 1), rate(8192, 1024)]))
`;

function pythonRates() {
  const done = spawnSync(args.python, ['-c', PYTHON_RATES, MODEL], { encoding: 'utf8' });
  if (done.status !== 0) throw new Error(`${args.python} cannot run mgpt.runtime: ${done.stderr.trim().split('\n').at(-1)}`);
  return JSON.parse(done.stdout);
}

function pythonSamples(n, seed, temperature) {
  const code = 'import json, sys; from mgpt.runtime import Generator; ' +
    `print(json.dumps(Generator(sys.argv[1]).generate(${n}, temperature=${temperature}, seed=${seed})))`;
  const done = spawnSync(args.python, ['-c', code, MODEL], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (done.status !== 0) throw new Error(done.stderr);
  return JSON.parse(done.stdout);
}

// ----------------------------------------------------------------------------- the browser

async function withPage(fn) {
  const { chromium } = await import('playwright-core');
  const server = spawn(process.execPath, [fileURLToPath(new URL('../serve.js', import.meta.url)), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const address = String((await once(server.stdout, 'data'))[0]).match(/http:\/\/\S+\//)[0];
  const browser = await chromium.launch({
    executablePath: process.env.MGPT_CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    return await fn(browser, address);
  } finally {
    await browser.close();
    server.kill();
  }
}

/** Milliseconds from navigation to the first sample on the page, in a fresh context (cold caches). */
async function firstSample(browser, address) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${address}?seed=1&count=20`);
  await page.waitForSelector('body[data-first-sample]');
  const ms = Number(await page.getAttribute('body', 'data-first-sample'));
  await context.close();
  return ms;
}

/** A Generator on onnxruntime-web inside the page, as the page uses it (window.mgptBench). */
async function pageGenerator(page) {
  await page.evaluate(async () => {
    const ort = await import('/ort/ort.wasm.min.mjs');
    const { Generator } = await import('/src/index.js');
    window.mgptBench = await Generator.load('/model.onnx', { ort });
  });
}

/** generate(options) inside the page: the samples. */
function pageGenerate(page, options) {
  return page.evaluate(async ({ seed, ...options }) => {
    const gen = window.mgptBench;
    return gen.generate({ ...options, ...(seed === undefined ? {} : { seed: BigInt(seed) }) });
  }, options);
}

/** The page's {tokens, ms} for `n` samples `batchSize` at a time: what `timed` does, in the page. */
const inPage = (page, n, batchSize, controls = {}) => () => page.evaluate(async (options) => {
  const gen = window.mgptBench;
  const t0 = performance.now();
  const samples = await gen.generate(options);
  const ms = performance.now() - t0;
  return { tokens: samples.reduce((count, s) => count + Math.min([...s].length + 1, gen.blockSize), 0), ms };
}, { numSamples: n, temperature: TEMPERATURE, batchSize, ...controls });

// ----------------------------------------------------------------------------- the run

const ortWeb = await import('onnxruntime-web');
ortWeb.env.wasm.numThreads = 1;
const node = await Generator.load(MODEL, { ort: ortNode });
const web = await Generator.load(MODEL, { ort: ortWeb });
const plainSession = await ortNode.InferenceSession.create(MODEL, { intraOpNumThreads: 1, interOpNumThreads: 1 });
const info = node.info;

// ----------------------------------------------------------------------------- the shape controls' cost

// a pattern (a 20-state automaton) and a suffix with a minimum length: every draw masked
const CONTROLS = [['pattern', { pattern: '[a-z]{4,6}(a|ie)' }], ['suffix + minLength', { suffix: 'a', minLength: 6 }]];
const WORK = [['batch 1', 2000, 1], ['batch 1024', 8192, 1024], ['batch 4096', 32768, 4096]];

/** {tokens, ms} of a Node call, `ms` being the process's CPU time (user + system, every thread's)
 * rather than the wall clock's: on a shared machine other processes' load stretches the wall
 * time of one call and not the next, and the CPU time much less. */
const cpuTimed = (gen, n, batchSize, controls) => async () => {
  const t0 = process.cpuUsage();
  const samples = await gen.generate({ numSamples: n, temperature: TEMPERATURE, batchSize, ...controls });
  const { user, system } = process.cpuUsage(t0);
  return { tokens: tokensOf(samples, gen.blockSize), ms: (user + system) / 1000 };
};

/** Per work size, the rates of plain sampling and of each control, alternating round by round, and
 * each control's cost: the median over rounds of plain rate / controlled rate within the round (a
 * round's calls run seconds apart, so they see the same load). Node by CPU time (onnxruntime-node),
 * the page (batch 1 and 1024) by the wall clock. */
async function controlsCost(tab) {
  const rows = [];
  const measure = async (fns) => {
    for (const fn of fns) await fn(); // warm-up
    const rates = fns.map(() => []);
    for (let r = 0; r < repeats; r++) for (const [i, fn] of fns.entries()) rates[i].push(await rate(fn));
    const costs = rates.slice(1).map((rs) => median(rs.map((x, r) => rates[0][r] / x)));
    return [median(rates[0]), ...rates.slice(1).flatMap((rs, i) => [median(rs), costs[i]])];
  };
  for (const [label, n, batch] of WORK) {
    rows.push(['Node (CPU time)', label, ...(await measure([cpuTimed(node, n, batch, { seed: 1 }),
      ...CONTROLS.map(([, c]) => cpuTimed(node, n, batch, { seed: 1, ...c }))]))]);
    if (tab && batch <= 1024) {
      rows.push(['page (wall clock)', label, ...(await measure([inPage(tab, n, batch, { seed: 1 }),
        ...CONTROLS.map(([, c]) => inPage(tab, n, batch, { seed: 1, ...c }))]))]);
    }
  }
  return rows;
}

// ----------------------------------------------------------------------------- novel + unique

const LARGE = fileURLToPath(new URL('../../../models/names-large.onnx', import.meta.url));

/** Names per second returned by plain sampling and by novel + unique (8,192 at batch 1024), per
 * shipped model and temperature; the share of plain samples those controls accept (judged in
 * order, as the runtime judges attempts); and the check's own cost per token (the novelty hash and
 * filter, the set), timed over those samples. */
async function novelCost() {
  const rows = [];
  const { noveltyFrom } = await import('../src/novelty.js');
  const { strictJson } = await import('../src/metadata.js');
  for (const [name, path] of [['names', MODEL], ['names-large', LARGE]]) {
    const gen = await Generator.load(path, { ort: ortNode });
    const filter = noveltyFrom(strictJson(gen.info.noveltyText));
    for (const temperature of [0.5, 1.0]) {
      const call = (controls) => async () => {
        const t0 = performance.now();
        const samples = await gen.generate({ numSamples: 8192, batchSize: 1024, temperature, ...controls });
        return { tokens: samples.length, ms: performance.now() - t0 }; // names, not tokens
      };
      // three rounds: a novel + unique call of names-large at temperature 0.5 takes ~15 s
      const [plainRate, novelRate] = await alternateRounds(3, call({}), call({ novel: true, unique: true }));
      const plainSamples = await gen.generate({ numSamples: 8192, batchSize: 1024, temperature, seed: 1 });
      const ids = plainSamples.map((s) => Array.from(s, (c) => gen.vocab.ids.get(c)));
      const seen = new Set();
      let accepted = 0;
      for (const [i, s] of plainSamples.entries()) if (!filter.has(ids[i]) && !seen.has(s)) { seen.add(s); accepted++; }
      const tokens = ids.reduce((n, x) => n + x.length, 0), times = [];
      for (let r = 0; r < repeats; r++) {
        const t0 = performance.now(), set = new Set();
        for (const [i, s] of plainSamples.entries()) if (!filter.has(Array.from(s, (c) => gen.vocab.ids.get(c))) && !set.has(s)) set.add(s);
        times.push(performance.now() - t0);
      }
      rows.push([name, temperature, plainRate, novelRate, accepted / plainSamples.length, (median(times) * 1e6) / tokens]);
    }
    await gen.release();
  }
  return rows;
}

function printNovel(rows) {
  console.log('\nnovel + unique beside plain sampling (Node, onnxruntime-node, 8,192 names at batch 1024, medians of 3): names returned per ' +
    'second, the share of plain samples they accept, and the check\'s own cost (novelty hash and filter, the set) per token:\n');
  console.log('| model | temperature | plain names/s | novel + unique names/s | accepted | check, ns per token |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const [name, t, plainRate, novelRate, share, ns] of rows) {
    console.log(`| ${name} | ${t} | ${k(plainRate)} | ${k(novelRate)} | ${(100 * share).toFixed(1)}% | ${ns.toFixed(0)} |`);
  }
}

function printControls(rows) {
  console.log(`\nShape controls: tokens per second with each beside plain sampling (medians of ${repeats} rounds), and ` +
    'the cost per drawn token (the median of plain rate / controlled rate within a round; target ≤ 1.25×):\n');
  console.log(`| where | work | plain | ${CONTROLS.map(([name]) => `${name} | cost`).join(' | ')} |`);
  console.log(`|---|---|---:|${CONTROLS.map(() => '---:|---:').join('|')}|`);
  for (const [where, label, plainRate, ...rest] of rows) {
    const cells = [];
    for (let i = 0; i < rest.length; i += 2) cells.push(`${k(rest[i])} | ${rest[i + 1].toFixed(2)}×`);
    console.log(`| ${where} | ${label} | ${k(plainRate)} | ${cells.join(' | ')} |`);
  }
}

if (!args['controls-only']) {
  // every figure of one work size in one alternation: the plain client, mgpt on both engines in
  // Node, and the page (when there is a browser), so that load from other processes hits all alike
  async function measure(tab) {
    const page = tab ? [inPage(tab, 2000, 1)] : [];
    const one = await alternate(() => plain(ortNode, plainSession, 2000, 1), mgpt(node, 2000, 1), mgpt(web, 2000, 1), ...page);
    const pageB = tab ? [inPage(tab, 8192, 1024)] : [];
    const many = await alternate(() => plain(ortNode, plainSession, 8192, 1024), mgpt(node, 8192, 1024),
      mgpt(node, 32768, 4096), mgpt(web, 8192, 1024), ...pageB);
    const loads = [];
    if (tab) for (let r = 0; r < repeats; r++) loads.push(await firstSample(tab.context().browser(), tab.url().replace(/\/web\/.*$/, '/')));
    return { one, many, load: tab ? median(loads) : null };
  }
  const { one: [plain1, node1, web1, page1], many: [plainB, nodeB, nodeBig, webB, pageB], load } = args['no-browser']
    ? await measure(null)
    : await withPage(async (browser, address) => {
      const tab = await browser.newPage();
      await tab.goto(`${address}?count=0`);
      await pageGenerator(tab);
      return measure(tab);
    });

  const rows = [];
  let python = null;
  try {
    python = pythonRates();
  } catch (e) {
    process.stderr.write(`(no Python column: ${e.message})\n`);
  }
  const py = (i) => (python ? k(python[i]) : '—');
  const vsPy = (x, i) => (python ? `${(x / python[i]).toFixed(2)}×` : '—');
  rows.push(['batch 1, tokens/s', k(plain1), k(node1), `${(node1 / plain1).toFixed(2)}×`, py(0), vsPy(node1, 0), '≥ 25 K']);
  rows.push(['batch 1024, tokens/s', k(plainB), k(nodeB), `${(nodeB / plainB).toFixed(2)}×`, py(1), vsPy(nodeB, 1), '≥ 300 K']);
  rows.push(['batch 4096, tokens/s', '', k(nodeBig), `${(nodeBig / plainB).toFixed(2)}×`, '', '', '']);
  console.log(`model ${MODEL}: temperature ${TEMPERATURE}, medians of ${repeats}; node ${process.version}, ` +
    `onnxruntime-node and -web ${ortNode.env.versions?.common ?? ''}\n`);
  console.log('Node, onnxruntime-node (one thread); Python measured right after, in the same run:\n');
  console.log('| work | plain JS client | mgpt JS | mgpt / plain | mgpt Python | JS / Python | target |');
  console.log('|---|---:|---:|---:|---:|---:|---|');
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);

  console.log('\nonnxruntime-web (wasm, one thread), beside onnxruntime-node, alternating with the rows above:\n');
  console.log('| work | Node, onnxruntime-node | Node, onnxruntime-web | Chromium page | Node / page (target ≤ 2×) |');
  console.log('|---|---:|---:|---:|---:|');
  for (const [label, n, w, p] of [['batch 1, tokens/s', node1, web1, page1], ['batch 1024, tokens/s', nodeB, webB, pageB]]) {
    console.log(`| ${label} | ${k(n)} | ${k(w)} | ${p ? k(p) : '—'} | ${p ? `${(n / p).toFixed(2)}×` : '—'} |`);
  }
  if (load !== null) console.log(`\npage load to first sample (fresh browser context, cold caches): ${Math.round(load)} ms (target < 1,500 ms)`);

}

// ----------------------------------------------------------------------------- agreement with Python
const n = args['controls-only'] ? 0 : Number(args.agreement);
if (n > 0) {
  console.log(`\nSeeded samples equal to Python's (${n.toLocaleString('en')} samples per row, seed 2024):\n`);
  console.log('| temperature | onnxruntime-node | onnxruntime-web in Node | Chromium page |');
  console.log('|---|---:|---:|---:|');
  const same = (a, b) => a.filter((s, i) => s === b[i]).length;
  const pages = {};
  const temperatures = [0.5, 1.0, 2.0];
  if (!args['no-browser']) {
    await withPage(async (browser, address) => {
      const tab = await browser.newPage();
      await tab.goto(`${address}?count=0`);
      await pageGenerator(tab);
      for (const t of temperatures) pages[t] = await pageGenerate(tab, { numSamples: n, temperature: t, seed: '2024' });
    });
  }
  for (const t of temperatures) {
    const want = pythonSamples(n, 2024, t);
    const options = { numSamples: n, temperature: t, seed: 2024n };
    const [a, b] = [await node.generate(options), await web.generate(options)];
    const c = pages[t];
    console.log(`| ${t} | ${same(a, want).toLocaleString('en')} | ${same(b, want).toLocaleString('en')} | ${c ? same(c, want).toLocaleString('en') : '—'} |`);
  }
  // how far apart the engines' logits are: a rollout of 256 rows of random tokens, every position
  const { nHead: H, headDim: D, vocabSize: V } = info;
  let worst = 0;
  const feeds = { node: {}, web: {} };
  for (const [name, ort] of [['node', ortNode], ['web', ortWeb]]) {
    for (const kind of ['key', 'value']) feeds[name][`past_key_values.0.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [256, H, 0, D]);
  }
  let seed = 1;
  for (let p = 0; p < info.blockSize; p++) {
    const tokens = BigInt64Array.from({ length: 256 }, () => BigInt((seed = (Math.imul(seed, 48271) >>> 0) % 2147483647) % V));
    const outs = {};
    for (const [name, ort, gen] of [['node', ortNode, node], ['web', ortWeb, web]]) {
      Object.assign(feeds[name], { token: new ort.Tensor('int64', tokens, [256]), position: new ort.Tensor('int64', BigInt64Array.of(BigInt(p)), []) });
      outs[name] = await gen.session.run(feeds[name]);
      for (const kind of ['key', 'value']) feeds[name][`past_key_values.0.${kind}`] = outs[name][`present.0.${kind}`];
    }
    outs.node.logits.data.forEach((x, i) => { worst = Math.max(worst, Math.abs(x - outs.web.logits.data[i])); });
  }
  console.log(`\nlargest |logit difference| between onnxruntime-web and onnxruntime-node over a rollout of 256 rows: ${worst.toExponential(2)}`);
}
printControls(args['no-browser'] ? await controlsCost(null) : await withPage(async (browser, address) => {
  const tab = await browser.newPage();
  await tab.goto(`${address}?count=0`);
  await pageGenerator(tab);
  return controlsCost(tab);
}));
printNovel(await novelCost());
await Promise.all([node.release(), web.release(), plainSession.release()]);
