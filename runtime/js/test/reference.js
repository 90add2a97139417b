// The reference the Python runtime wrote for these tests (tests/js_reference.py), found through
// MGPT_JS_REFERENCE: `npm test` (test/run.js) and pytest's tests/test_js.py set it; for node --test by hand,
//   python tests/js_reference.py /tmp/ref && MGPT_JS_REFERENCE=/tmp/ref node --test test/sampling.test.js
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const directory = process.env.MGPT_JS_REFERENCE;
if (!directory) {
  throw new Error('MGPT_JS_REFERENCE is not set: run these tests with `npm test` (which writes the reference) or ' +
    'through pytest (tests/test_js.py), or write one with `python tests/js_reference.py DIR` and set MGPT_JS_REFERENCE=DIR');
}
export const reference = JSON.parse(readFileSync(join(directory, 'reference.json'), 'utf8'));
export const modelPath = (file) => join(directory, file);

/** A Python option dict as the JavaScript runtime's options. */
export function jsOptions({ temperature, top_k, top_p, prefix, max_length, labels, min_length, suffix, contains, pattern }) {
  const options = { temperature };
  if (labels != null) options.labels = labels;
  if (min_length != null) options.minLength = min_length;
  for (const [name, value] of Object.entries({ suffix, contains, pattern })) if (value != null) options[name] = value;
  if (top_k != null) options.topK = top_k;
  if (top_p != null) options.topP = top_p;
  if (prefix != null) options.prefix = prefix;
  if (max_length != null) options.maxLength = max_length;
  return options;
}

/**
 * Asserts that `got` are Python's samples `want`: all of them where the engine's logits are
 * Python's to the bit (`exact`), else all but at most 1 in 500 (rounded up): logits that differ
 * by ~5e-6 (wasm's kernels) draw another token where a uniform falls that close to a step of the
 * cumulative distribution (measured: 2 samples in 60,000, each at a distance of 1.4e-7 or less).
 */
export function assertSamples(got, want, exact, message) {
  assert.equal(got.length, want.length, message);
  const differ = got.flatMap((s, i) => (s === want[i] ? [] : [`${i}: ${JSON.stringify(s)} vs ${JSON.stringify(want[i])}`]));
  if (exact) assert.deepEqual(differ, [], message);
  else assert.ok(differ.length <= Math.ceil(got.length / 500), `${message}: ${differ.length} differ (${differ.slice(0, 5)})`);
}

/** onnxruntime-web in Node runs the browser's wasm engine: one thread, as in a page. */
export async function ortWeb() {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = 1;
  return ort;
}
