// The page: loads a model picked by name (serve.js lists the served and the shipped ones) or a .onnx
// the user picks, shows what its metadata says, and generates with the controls' options, each
// sample appearing as it is drawn; clicking a sample draws its trace as probability bars. Everything
// runs here, with onnxruntime-web's wasm files served by serve.js. The URL's query string can preset
// the controls (?model=names-large&seed=1&count=5&temperature=0.8&topK=10&topP=0.9&prefix=ma&minLength=4
// &suffix=a&contains=l&pattern=...&novel=1&unique=1&exclude=anna&exclude=emma; a labeled model's labels:
// &label=F&label=1950s).

import * as ort from '/ort/ort.wasm.min.mjs';
import { Generator } from '/src/index.js';
import { tracePicture } from './trace.js';

ort.env.wasm.wasmPaths = '/ort/';
ort.env.wasm.numThreads = 1; // the graph's kernels are tiny: one thread is the fastest

const $ = (id) => document.getElementById(id);
const PAGE_BATCH = 64; // samples drawn between two paints, so that they appear as they are drawn
let generator = null;
let opening = 0; // picks of a model so far: a load that a later pick overtook is dropped
// The generation in progress, if any: `stop` asks it to end, `ended` settles once its loop has
// left the generator (it never rejects: its error, if any, is shown or dropped inside).
/** @type {{stop: AbortController, ended: Promise<void>} | null} */
let running = null;

function status(text, error = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', error);
}

/** Stops the generation in progress, if any, and waits until it has stopped. */
async function stopRunning() {
  const run = running;
  run?.stop.abort();
  await run?.ended;
}

/** Loads a model in place of the current one; false if a later pick took over meanwhile. */
async function open(source) {
  const ticket = ++opening;
  await stopRunning(); // its samples are the old model's
  $('generate').disabled = true;
  status('Loading the model…');
  const started = performance.now();
  let loaded;
  try {
    loaded = await Generator.load(source, { ort });
  } finally { // a file that fails to load leaves the model before it in place
    $('generate').disabled = generator === null;
  }
  if (ticket !== opening) {
    await loaded.release();
    return false;
  }
  await stopRunning(); // once more, for a run started while loading: the old generator must be idle to release
  await generator?.release();
  generator = loaded;
  describe(generator);
  $('generate').disabled = false;
  status(`Loaded ${generator.name} in ${Math.round(performance.now() - started)} ms.`);
  return true;
}

function describe(gen) {
  const { info } = gen;
  const { val_loss: heldOut, held_out: documents } = info.training ?? {};
  // wte and lm_head (V, C), wpe (T, C), and per layer four (C, C) attention and two (4C, C) MLP matrices
  const parameters = (2 * info.vocabSize + info.blockSize) * info.nEmbd + 12 * info.nLayer * info.nEmbd ** 2;
  const shape = {
    parameters: parameters.toLocaleString('en'),
    'vocabulary size': `${info.vocabSize} (${gen.vocab.chars.length} characters + BOS` +
      (gen.vocab.labels.length ? ` + ${info.vocabSize - info.drawable} labels)` : ')'),
    ...(gen.vocab.labels.length ? { labels: gen.vocab.describeLabels() } : {}),
    'block size': info.blockSize, layers: info.nLayer, heads: `${info.nHead} × ${info.headDim}`,
    'embedding width': info.nEmbd,
    'held-out NLL': typeof heldOut === 'number'
      ? `${heldOut.toFixed(3)} nats per token${Number.isInteger(documents) ? ` on ${documents.toLocaleString('en')} documents` : ''}`
      : '—',
    producer: info.producer || '—',
  };
  $('shape').replaceChildren(...Object.entries(shape).flatMap(([k, v]) => [element('dt', k), element('dd', String(v))]));
  $('vocab').textContent = gen.vocab.chars.map((c) => JSON.stringify(c).slice(1, -1)).join(' ');
  $('training').textContent = JSON.stringify(info.training, null, 2);
  $('description').hidden = false;
  pickLabels(gen.vocab.labels);
}

/** A picker per label group of a labeled model (none otherwise), set from the address's `label`
 * values where they name one of the group's labels, else to the group's first. */
function pickLabels(groups) {
  const wanted = query.getAll('label');
  const pickers = groups.map((group, g) => {
    const select = Object.assign(document.createElement('select'), { id: `label-${g}` });
    select.append(...group.map((label) => Object.assign(element('option', label), { value: label })));
    select.value = group.find((label) => wanted.includes(label)) ?? group[0];
    const label = element('label', `Group ${g + 1} `);
    label.append(select);
    return label;
  });
  $('labels').replaceChildren($('labels').querySelector('legend'), ...pickers);
  $('labels').hidden = groups.length === 0;
}

function element(tag, text) {
  const e = document.createElement(tag);
  e.textContent = text;
  return e;
}

/** The controls' values as the Generator's options (empty fields: the defaults). Without a seed the
 * page draws one, so that a sample's trace can be drawn again. */
function options() {
  const number = (id) => ($(id).value.trim() === '' ? undefined : Number($(id).value));
  const seed = $('seed').value.trim();
  if (seed !== '' && !/^-?\d+$/.test(seed)) throw new RangeError(`seed must be an integer, got "${seed}"`);
  return {
    numSamples: number('count') ?? 20, temperature: number('temperature') ?? 0.5,
    topK: number('top-k'), topP: number('top-p'), prefix: $('prefix').value,
    seed: seed === '' ? crypto.getRandomValues(new BigUint64Array(1))[0] : BigInt(seed), batchSize: PAGE_BATCH,
    minLength: number('min-length'), suffix: $('suffix').value, contains: $('contains').value,
    pattern: $('pattern').value === '' ? undefined : $('pattern').value,
    novel: $('novel').checked, unique: $('unique').checked,
    exclude: $('exclude').value.split('\n').map((line) => line.replace(/\r$/, '')).filter((line) => line !== ''),
    ...(generator?.vocab.labels.length ? { labels: generator.vocab.labels.map((_, g) => $(`label-${g}`).value) } : {}),
  };
}

/** Starts a generation with the controls' options, after stopping the one in progress. */
function generate() {
  const previous = running;
  const stop = new AbortController();
  const ended = (async () => {
    previous?.stop.abort();
    await previous?.ended;
    await draw(stop.signal);
  })().catch((error) => {
    if (!stop.signal.aborted) fail(error); // a stopped run's failure is no one's concern
  }).finally(() => {
    if (running?.stop === stop) running = null;
  });
  running = { stop, ended };
  return ended;
}

/** Draws samples into the list until they are all there or `signal` says stop, which is checked
 * between samples and between paints, so that a stopped run leaves the generator at once. */
async function draw(signal) {
  const list = $('samples');
  list.replaceChildren();
  $('trace').hidden = true;
  const started = performance.now();
  let count = 0;
  const chosen = options();
  const stream = generator.samples(chosen); // bad options throw here, before anything is drawn
  shown = { generator, options: chosen };
  status('Generating…');
  for await (const text of stream) {
    if (signal.aborted) return;
    list.append(element('li', text));
    document.body.dataset.firstSample ??= String(performance.now()); // ms since navigation started
    if (++count % PAGE_BATCH === 0) await new Promise(requestAnimationFrame); // let the page paint
    if (signal.aborted) return;
  }
  status(`${count} samples in ${Math.round(performance.now() - started)} ms.`);
  document.body.dataset.done = String(Number(document.body.dataset.done ?? 0) + 1); // for tests and scripts
}

function fail(error) {
  status(`Error: ${error.message}`, true);
}

// The samples on the page: the generator and options that drew them, for their traces.
/** @type {{generator: Generator, options: object} | null} */
let shown = null;
let tracing = 0; // clicks so far: a trace that a later click overtook is dropped

/** Draws the trace of sample `index` of the list (the same options, so the same sample). */
async function showTrace(index) {
  const ticket = ++tracing;
  const { generator: gen, options: { numSamples, ...chosen } } = shown;
  const trace = await gen.trace({ ...chosen, index });
  if (ticket !== tracing || gen !== generator) return;
  $('trace-text').textContent = trace.text;
  $('trace-picture').replaceChildren(tracePicture(trace));
  $('trace').hidden = false;
  for (const [i, li] of [...$('samples').children].entries()) li.classList.toggle('traced', i === index);
  document.body.dataset.traced = String(Number(document.body.dataset.traced ?? 0) + 1); // for tests
}

/** Opens a model, then generates with it (unless a later pick took over). */
function openAndGenerate(source) {
  open(source).then((current) => current && generate(), fail);
}

$('controls').addEventListener('submit', (event) => {
  event.preventDefault();
  if (generator) generate();
});
$('model-file').addEventListener('change', () => {
  const file = $('model-file').files[0];
  if (file) openAndGenerate(file);
});
$('model-name').addEventListener('change', () => openAndGenerate(new URL($('model-name').value, location.href)));
$('samples').addEventListener('click', (event) => {
  const li = event.target.closest('li');
  if (li && shown) showTrace([...$('samples').children].indexOf(li)).catch(fail);
});

const query = new URLSearchParams(location.search);
for (const [key, id] of [['count', 'count'], ['temperature', 'temperature'], ['topK', 'top-k'], ['topP', 'top-p'],
  ['prefix', 'prefix'], ['seed', 'seed'], ['minLength', 'min-length'], ['suffix', 'suffix'], ['contains', 'contains'],
  ['pattern', 'pattern']]) {
  if (query.has(key)) $(id).value = query.get(key);
}
for (const key of ['novel', 'unique']) $(key).checked = ['1', 'true'].includes(query.get(key) ?? '');
$('exclude').value = query.getAll('exclude').join('\n');

/** The picker's models (the served one first, then the shipped ones), then the one the address names. */
async function start() {
  const models = await (await fetch('/models.json')).json();
  $('model-name').replaceChildren(...models.map(({ name, url }) => Object.assign(element('option', name), { value: url })));
  const named = models.find((m) => m.name === query.get('model'));
  if (query.has('model') && !named) throw new RangeError(`no model named ${JSON.stringify(query.get('model'))}; the page has ${models.map((m) => m.name).join(', ')}`);
  $('model-name').value = (named ?? models[0]).url;
  openAndGenerate(new URL($('model-name').value, location.href));
}
start().catch(fail);
