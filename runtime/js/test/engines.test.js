// Every file form in onnxruntime-node and onnxruntime-web (its wasm engine, in Node) against the
// NumPy reference step (docs/engines.md): the shipped models, fresh exports in both graph forms (a
// non-ASCII vocabulary, 1 and 2 layers, 1 to 4 heads, blocks of 8 and 32) and the default shape at
// every opset the exporter accepts, the files and tokens tests/test_engines.py runs in Python's
// engines (tests/js_reference.py, engine_rollouts). Over a rollout of random tokens at batch 1 and
// batch 7, each engine feeding back its own cache, the logits at every position and the final
// cache come within the tolerance Python's engines are held to (tests/engines.py: 1e-5, plus 1e-6
// of the tensor's largest |value|; float32's rounding grows with the values a step computes, and
// wasm's kernels round unlike native ones. Measured: onnxruntime-node within 8.7e-6, -web within
// 1.11e-5, both on names-large at batch 1).
// Opsets newer than these packages run are refused, as the page's table says.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import * as ortNode from 'onnxruntime-node';

import { runInLane } from '../src/lane.js';
import { modelPath, ortWeb, reference } from './reference.js';

const ATOL = 1e-5, RTOL = 1e-6;
const engines = { 'onnxruntime-node': async () => ortNode, 'onnxruntime-web': ortWeb };

for (const [engine, ortOf] of Object.entries(engines)) {
  describe(`the NumPy reference step on ${engine}`, async () => {
    const ort = await ortOf();
    const rollouts = reference.engine_rollouts;

    test('the files cover both forms, the shipped models and every opset', () => {
      const forms = new Set(rollouts.map((r) => r.form));
      assert.deepEqual([...forms].sort(), ['general', 'shipped', 'small']);
      assert.ok(rollouts.some((r) => r.opset > reference.js_newest_opset), 'an opset these packages refuse');
      assert.ok(rollouts.filter((r) => r.opset <= reference.js_newest_opset).length >= 20);
    });

    for (const r of rollouts) {
      if (r.opset > reference.js_newest_opset) {
        test(`${r.file} is refused (opset ${r.opset} > ${reference.js_newest_opset})`, async () => {
          await assert.rejects(ort.InferenceSession.create(readFileSync(modelPath(r.file))));
        });
        continue;
      }
      test(`${r.file}: logits and cache within tolerance at batch 1 and 7`, async () => {
        const session = await ort.InferenceSession.create(readFileSync(modelPath(r.file)));
        for (const [batch, roll] of Object.entries(r.rollouts)) {
          const { worst, ratio } = await rolloutDifference(ort, session, r, Number(batch), roll);
          assert.ok(ratio <= 1, `batch ${batch}: ${ratio} times the tolerance (largest difference ${worst})`);
        }
        await session.release();
      });
    }
  });
}

/** The largest |engine - reference| over the logits at every position and the final cache, and the
 * largest such difference as a multiple of its tolerance, ATOL + RTOL max |reference| (NaN: Infinity). */
async function rolloutDifference(ort, session, r, rows, roll) {
  const feeds = {};
  for (let i = 0; i < r.n_layer; i++) {
    for (const kind of ['key', 'value']) {
      feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor('float32', new Float32Array(0), [rows, r.n_head, 0, r.head_dim]);
    }
  }
  let worst = 0, ratio = 0, out;
  const compare = (got, want) => {
    const tolerance = ATOL + RTOL * want.reduce((m, w) => Math.max(m, Math.abs(w)), 0);
    want.forEach((w, i) => {
      const error = Math.abs(got[i] - w);
      worst = Math.max(worst, error);
      ratio = Math.max(ratio, error / tolerance);
    });
  };
  for (let p = 0; p < r.block_size; p++) {
    feeds.token = new ort.Tensor('int64', BigInt64Array.from(roll.tokens[p], BigInt), [rows]);
    feeds.position = new ort.Tensor('int64', BigInt64Array.of(BigInt(p)), []);
    out = await runInLane(ort, session, feeds);
    assert.deepEqual(out.logits.dims, [rows, roll.logits[p][0].length]);
    compare(out.logits.data, roll.logits[p].flat());
    for (const name of Object.keys(feeds)) {
      if (name.startsWith('past_key_values')) feeds[name] = out[name.replace('past_key_values', 'present')];
    }
  }
  for (const [name, want] of Object.entries(roll.presents)) {
    assert.equal(out[name].data.length, want.length, name);
    compare(out[name].data, want);
  }
  return { worst, ratio: Number.isNaN(ratio) ? Infinity : ratio };
}
