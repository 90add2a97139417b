// The page: loads the shipped names model (or a .onnx the user picks), shows what its metadata says,
// and generates with the controls' options, each sample appearing as it is drawn. Everything runs
// here, with onnxruntime-web's wasm files served by serve.js. The URL's query string can preset
// the controls (?seed=1&count=5&temperature=0.8&topK=10&topP=0.9&prefix=ma).

import * as ort from '/ort/ort.wasm.min.mjs';
import { Generator } from '/src/index.js';

ort.env.wasm.wasmPaths = '/ort/';
ort.env.wasm.numThreads = 1; // the graph's kernels are tiny: one thread is the fastest

const $ = (id) => document.getElementById(id);
const PAGE_BATCH = 64; // samples drawn between two paints, so that they appear as they are drawn
let generator = null;
let running = null; // the generation in progress, stopped when another starts

function status(text, error = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}

async function open(source) {
  $('generate').disabled = true;
  status('Loading the model…');
  const started = performance.now();
  let loaded;
  try {
    loaded = await Generator.load(source, { ort });
  } finally { // a file that fails to load leaves the model before it in place
    $('generate').disabled = generator === null;
  }
  await generator?.release();
  generator = loaded;
  describe(generator);
  $('generate').disabled = false;
  status(`Loaded ${generator.name} in ${Math.round(performance.now() - started)} ms.`);
}

function describe(gen) {
  const { info } = gen;
  const shape = {
    'vocabulary size': `${info.vocabSize} (${info.vocabSize - 1} characters + BOS)`,
    'block size': info.blockSize, layers: info.nLayer, heads: `${info.nHead} × ${info.headDim}`,
    'embedding width': info.nEmbd, producer: info.producer || '—',
  };
  $('shape').replaceChildren(...Object.entries(shape).flatMap(([k, v]) => [element('dt', k), element('dd', String(v))]));
  $('vocab').textContent = gen.vocab.chars.map((c) => JSON.stringify(c).slice(1, -1)).join(' ');
  $('training').textContent = JSON.stringify(info.training, null, 2);
  $('description').hidden = false;
}

function element(tag, text) {
  const e = document.createElement(tag);
  e.textContent = text;
  return e;
}

/** The controls' values as the Generator's options (empty fields: the defaults). */
function options() {
  const number = (id) => ($(id).value.trim() === '' ? undefined : Number($(id).value));
  const seed = $('seed').value.trim();
  if (seed !== '' && !/^-?\d+$/.test(seed)) throw new RangeError(`seed must be an integer, got "${seed}"`);
  return {
    numSamples: number('count') ?? 20, temperature: number('temperature') ?? 0.5,
    topK: number('top-k'), topP: number('top-p'), prefix: $('prefix').value,
    seed: seed === '' ? undefined : BigInt(seed), batchSize: PAGE_BATCH,
  };
}

async function generate() {
  const run = running = {};
  const list = $('samples');
  list.replaceChildren();
  const started = performance.now();
  let count = 0;
  const stream = generator.samples(options()); // bad options throw here, before anything is drawn
  status('Generating…');
  for await (const text of stream) {
    if (running !== run) return; // a newer generation took over
    list.append(element('li', text));
    document.body.dataset.firstSample ??= String(performance.now()); // ms since navigation started
    if (++count % PAGE_BATCH === 0) await new Promise(requestAnimationFrame); // let the page paint
  }
  status(`${count} samples in ${Math.round(performance.now() - started)} ms.`);
  document.body.dataset.done = String(Number(document.body.dataset.done ?? 0) + 1); // for tests and scripts
}

function fail(error) {
  status(`Error: ${error.message}`, true);
}

$('controls').addEventListener('submit', (event) => {
  event.preventDefault();
  generate().catch(fail);
});
$('model-file').addEventListener('change', () => {
  const file = $('model-file').files[0];
  if (file) open(file).then(generate).catch(fail);
});

const query = new URLSearchParams(location.search);
for (const [key, id] of [['count', 'count'], ['temperature', 'temperature'], ['topK', 'top-k'], ['topP', 'top-p'],
  ['prefix', 'prefix'], ['seed', 'seed']]) {
  if (query.has(key)) $(id).value = query.get(key);
}
open(new URL('/model.onnx', location.href)).then(generate).catch(fail);
