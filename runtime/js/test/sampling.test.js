// The sampling rule and the random stream against Python's: bit for bit.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { drawOne, sampleUniforms } from '../src/index.js';
import { DrawScratch, seedBits } from '../src/sampling.js';
import { reference } from './reference.js';

test('uniforms equal Python\'s for seeds of any sign and size, and for large sample indices', () => {
  let compared = 0;
  for (const { seed, indices, u } of reference.uniforms) {
    indices.forEach((index, i) => {
      assert.deepEqual([...sampleUniforms(seedBits(BigInt(seed)), index, u[i].length)], u[i], `seed ${seed} index ${index}`);
      compared += u[i].length;
    });
  }
  assert.ok(compared >= 400);
});

/** splitmix64 written plainly with BigInt: an independent check of the 32-bit halves. */
function bigintUniform(seed, index, p) {
  const M = (1n << 64n) - 1n, G = 0x9e3779b97f4a7c15n;
  const mix = (z) => {
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M;
    return z ^ (z >> 31n);
  };
  const key = mix((seed + G) & M), row = mix((key + BigInt(index + 1) * G) & M);
  return Number(mix((row + BigInt(p + 1) * G) & M) >> 11n) * 2 ** -53;
}

test('the 32-bit splitmix64 equals a BigInt one over 20,000 random seeds and indices', () => {
  let state = 12345n;
  for (let i = 0; i < 20000; i++) {
    state = BigInt.asUintN(64, state * 6364136223846793005n + 1442695040888963407n);
    const index = Number(state >> 40n) * (i % 3 === 0 ? 4096 : 1); // up to 2^36
    const u = sampleUniforms(state, index, 3);
    for (let p = 0; p < 3; p++) assert.equal(u[p], bigintUniform(state, index, p));
  }
});

test('seeds are taken mod 2^64 as Python takes them', () => {
  assert.equal(seedBits(-1n), 2n ** 64n - 1n);
  assert.equal(seedBits(-7), 2n ** 64n - 7n);
  assert.equal(seedBits(2n ** 64n + 5n), 5n);
  assert.equal(seedBits(2 ** 53 - 1), 2n ** 53n - 1n);
});

test('drawOne gives Python draw_one\'s token for 3,000 random rows, ties, top-k and top-p included', () => {
  const scratch = new Map();
  for (const [i, d] of reference.draws.entries()) {
    const size = d.logits.length;
    if (!scratch.has(size)) scratch.set(size, new DrawScratch(size));
    const token = drawOne(Float32Array.from(d.logits), 0, size, d.u, d.temperature, d.top_k, d.top_p, scratch.get(size));
    assert.equal(token, d.token, `row ${i}: ${JSON.stringify(d)}`);
  }
});
