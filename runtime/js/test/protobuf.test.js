// The ModelProto reader: the metadata of real files, and hostile bytes that must end in a
// ProtobufError (never a hang, another exception, or a read past the end).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { modelInfo, readModel } from '../src/index.js';
import { ProtobufError } from '../src/protobuf.js';
import { modelPath, reference } from './reference.js';

const names = readFileSync(modelPath('names.onnx'));

test('reads the metadata of the exported models', () => {
  for (const m of reference.models) {
    const model = readModel(readFileSync(modelPath(m.file)));
    const info = modelInfo(model.props);
    assert.deepEqual([...info.vocab.chars], m.chars);
    assert.deepEqual([info.blockSize, info.nLayer, info.nHead, info.headDim], [m.block_size, m.n_layer, m.n_head, m.head_dim]);
    assert.deepEqual(info.vocab.labels, m.labels);
    if (m.file !== 'labeled.onnx') assert.equal(info.training.steps > 0, true); // labeled.onnx: random weights
  }
});

test('every truncation of a model is refused with a ProtobufError or still reads', () => {
  for (let end = 0; end < names.length; end++) {
    try {
      readModel(names.subarray(0, end));
    } catch (e) {
      assert.ok(e instanceof ProtobufError, `cut at ${end}: ${e}`);
    }
  }
});

test('5,000 random byte mutations: a ProtobufError or a result, nothing else', () => {
  let seed = 7;
  const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  let refused = 0;
  for (let i = 0; i < 5000; i++) {
    const bytes = Uint8Array.from(names);
    for (let k = 0; k < 1 + Math.floor(random() * 8); k++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    try {
      readModel(bytes);
    } catch (e) {
      assert.ok(e instanceof ProtobufError, `mutation ${i}: ${e}`);
      refused++;
    }
  }
  assert.ok(refused > 0);
});

test('hostile lengths and varints are refused quickly', () => {
  const cases = [
    Uint8Array.of(0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f), // a 4 GB string in 6 bytes
    Uint8Array.of(...new Array(11).fill(0xff)), // an endless varint
    Uint8Array.of(0x08, 0x07), // ir_version only: no graph
    Uint8Array.of(0x0b), // wire type 3 (groups)
    Uint8Array.of(0x00), // field 0
    Uint8Array.of(0x08, 0x07, 0x3a, 0x00, 0x72, 0x05, 0x0a, 0x03, 0x61), // metadata entry cut short
    Uint8Array.of(0x08, 0x07, 0x3a, 0x00, 0x72, 0x03, 0x0a, 0x01, 0xff), // a key that is not UTF-8
    Uint8Array.of(0x0a, 0x07), // ir_version with the wrong wire type
  ];
  for (const bytes of cases) assert.throws(() => readModel(bytes), ProtobufError, String(bytes));
});
