// From logits to the next token: the sampling rule and the per-sample random streams, bit for bit
// those of mgpt.runtime's sampling.py (its docstring states the rule; this file mirrors draw_one).
//
// 64-bit integers are carried as two uint32 halves (hi, lo): splitmix64 then costs a handful of
// Math.imul calls per draw instead of several BigInt allocations, and gives the same bits.

export const GAMMA_HI = 0x9e3779b9, GAMMA_LO = 0x7f4a7c15; // splitmix64's Weyl increment
const MIX1_HI = 0xbf58476d, MIX1_LO = 0x1ce4e5b9;
const MIX2_HI = 0x94d049bb, MIX2_LO = 0x133111eb;
const TWO_POW_32 = 4294967296;

/** Scratch for the 64-bit helpers' results: [hi, lo] (novelty.js's hash reads it too). */
export const out64 = new Uint32Array(2);

/** (aH, aL) * (bH, bL) mod 2^64 into out64: the low 64 bits of the product from 16-bit pieces
 * (each partial product is exact in a double), plus the cross terms mod 2^32. */
function mul64(aH, aL, bH, bL) {
  const a0 = aL & 0xffff, a1 = aL >>> 16, b0 = bL & 0xffff, b1 = bL >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const carry = a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  out64[0] = carry + Math.imul(aH, bL) + Math.imul(aL, bH);
  out64[1] = ((mid & 0xffff) << 16) | (p00 & 0xffff);
}

/** (aH, aL) + (bH, bL) mod 2^64 into out64. */
export function add64(aH, aL, bH, bL) {
  const lo = aL + bL;
  out64[0] = aH + bH + (lo >= TWO_POW_32 ? 1 : 0);
  out64[1] = lo;
}

/** splitmix64's finalizer of (hi, lo) into out64. */
export function mix(hi, lo) {
  let h = hi ^ (hi >>> 30), l = lo ^ ((lo >>> 30) | (hi << 2));
  mul64(h >>> 0, l >>> 0, MIX1_HI, MIX1_LO);
  hi = out64[0]; lo = out64[1];
  h = hi ^ (hi >>> 27); l = lo ^ ((lo >>> 27) | (hi << 5));
  mul64(h >>> 0, l >>> 0, MIX2_HI, MIX2_LO);
  hi = out64[0]; lo = out64[1];
  out64[0] = hi ^ (hi >>> 31);
  out64[1] = lo ^ ((lo >>> 31) | (hi << 1));
}

/** A seed (a bigint or a safe integer, any sign) taken mod 2^64, as Python's `seed % 2**64` does.
 * @param {bigint | number} seed
 * @returns {bigint} */
export function seedBits(seed) {
  return BigInt.asUintN(64, BigInt(seed));
}

/** The key of sample `index` under `seed` (a bigint in [0, 2^64)), as [hi, lo]: 1) the seed is hashed
 * into a key; 2) sample i's key is the i-th output of a splitmix64 stream started there.
 * @param {bigint} seed
 * @param {number} index a safe integer >= 0
 * @returns {[number, number]} */
export function sampleKey(seed, index) {
  add64(Number(seed >> 32n), Number(seed & 0xffffffffn), GAMMA_HI, GAMMA_LO);
  mix(out64[0], out64[1]);
  const keyHi = out64[0], keyLo = out64[1];
  const n = index + 1; // a safe integer: split it into halves exactly
  mul64(Math.floor(n / TWO_POW_32) >>> 0, n >>> 0, GAMMA_HI, GAMMA_LO);
  add64(keyHi, keyLo, out64[0], out64[1]);
  mix(out64[0], out64[1]);
  return [out64[0], out64[1]];
}

/** Weyl steps (p + 1) * GAMMA for positions p < length, as hi/lo arrays: the stream's counters. */
export function positionSteps(length) {
  const hi = new Uint32Array(length), lo = new Uint32Array(length);
  for (let p = 0; p < length; p++) {
    mul64(0, p + 1, GAMMA_HI, GAMMA_LO);
    hi[p] = out64[0]; lo[p] = out64[1];
  }
  return { hi, lo };
}

/** The uniform in [0, 1) drawn at position p of the sample whose key is (keyHi, keyLo): the top 53
 * bits of the p-th output of the stream started at the key. `steps` comes from positionSteps.
 * @param {number} keyHi
 * @param {number} keyLo
 * @param {{hi: Uint32Array, lo: Uint32Array}} steps
 * @param {number} p
 * @returns {number} */
export function uniformAt(keyHi, keyLo, steps, p) {
  add64(keyHi, keyLo, steps.hi[p], steps.lo[p]);
  mix(out64[0], out64[1]);
  return (out64[0] * 2097152 + (out64[1] >>> 11)) * 2 ** -53; // the top 53 bits: hi·2^21 + lo >> 11
}

/** `length` uniforms of sample `index` under `seed` (a bigint in [0, 2^64)): Python's sample_uniforms. */
export function sampleUniforms(seed, index, length) {
  const [hi, lo] = sampleKey(seed, index);
  const steps = positionSteps(length), u = new Float64Array(length);
  for (let p = 0; p < length; p++) u[p] = uniformAt(hi, lo, steps, p);
  return u;
}

/** A fresh random 64-bit seed, for calls made without one. */
export function newSeed() {
  return globalThis.crypto.getRandomValues(new BigUint64Array(1))[0];
}

/** Throws for a bad sampling option, naming it: a TypeError for a wrong type (a string, a boolean,
 * a fraction where an integer is due), a RangeError for a bad value of the right type, as Python's
 * check_options raises TypeError and ValueError. */
export function checkOptions(temperature, topK, topP) {
  if (typeof temperature !== 'number') throw new TypeError(`temperature must be a number, got ${typed(temperature)}`);
  if (!Number.isFinite(temperature) || temperature < 0) {
    throw new RangeError(`temperature must be a finite number >= 0 (0 is greedy), got ${show(temperature)}`);
  }
  if (topK != null) {
    if (!Number.isInteger(topK)) throw new TypeError(`topK must be an integer >= 1, got ${typed(topK)}`);
    if (topK < 1) throw new RangeError(`topK must be an integer >= 1, got ${show(topK)}`);
  }
  if (topP != null) {
    if (typeof topP !== 'number') throw new TypeError(`topP must be a number in (0, 1], got ${typed(topP)}`);
    if (!(topP > 0 && topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${show(topP)}`);
  }
}

/** How a bad argument is shown in a message. */
export function show(value) {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'function') return 'a function';
  if (value !== null && typeof value === 'object') return `an object (${value.constructor?.name ?? 'no prototype'})`;
  return String(value);
}

/** A bad argument with its type, for a TypeError's message ("string \"3\"", "boolean true"), as
 * Python's show type(value).__name__. */
export function typed(value) {
  return value === null || value === undefined || typeof value === 'object' || typeof value === 'function'
    ? show(value) : `${typeof value} ${show(value)}`;
}

/** Scratch arrays of one vocabulary size, so that drawing allocates nothing. */
export class DrawScratch {
  /** @param {number} size the vocabulary size V */
  constructor(size) {
    this.w = new Float64Array(size);
    this.sorted = new Float64Array(size);
    this.order = Array.from({ length: size }, (_, i) => i);
    this.masked = new Float32Array(size); // a row of logits with a shape mask applied
  }
}

/**
 * The next token of one row: Python's draw_one, the same operations in the same order, on row
 * `row` of (B, V) float32 `logits` with the uniform `u`. Temperature 0 is greedy (the first most
 * likely token); otherwise exp((l - max l) / T), zero outside top-k and then outside top-p, and the
 * inverse CDF: the number of cumulative weights <= u * total.
 * @param {ArrayLike<number>} logits (B, V) row-major
 * @param {number} row
 * @param {number} size V
 * @param {number} u in [0, 1)
 * @param {number} temperature
 * @param {number | null | undefined} topK
 * @param {number | null | undefined} topP
 * @param {DrawScratch} scratch
 * @returns {number} the token id
 */
export function drawOne(logits, row, size, u, temperature, topK, topP, scratch) {
  if (temperature === 0) return greedy(logits, row, size);
  return pick(cumulativeWeights(logits, row, size, temperature, topK, topP, scratch), 0, size, u);
}

/** The first most likely token of row `row` of (B, V) `logits`: the draw at temperature 0. */
export function greedy(logits, row, size) {
  const base = row * size;
  let top = logits[base], at = 0;
  for (let i = 1; i < size; i++) if (logits[base + i] > top) { top = logits[base + i]; at = i; }
  return at;
}

/**
 * The running sums of row `row`'s weights (temperature > 0), in scratch.w (V float64, returned):
 * Python's cumulative(weights(...)) for one row. The last sum is the total, added in the same order
 * as every running sum before it. A batch whose rows share logits shares these: only `pick` differs.
 * @param {ArrayLike<number>} logits (B, V) row-major
 * @param {number} row
 * @param {number} size V
 * @param {number} temperature > 0
 * @param {number | null | undefined} topK
 * @param {number | null | undefined} topP
 * @param {DrawScratch} scratch
 * @returns {Float64Array} (V) running sums, their last the total
 */
export function cumulativeWeights(logits, row, size, temperature, topK, topP, scratch) {
  const base = row * size, w = scratch.w;
  let top = logits[base];
  for (let i = 1; i < size; i++) if (logits[base + i] > top) top = logits[base + i];
  const plain = (topK == null || topK >= size) && (topP == null || topP >= 1);
  if (plain) { // the common case in one pass: each weight is added to the running sum as it is made
    let sum = 0;
    for (let i = 0; i < size; i++) w[i] = sum += Math.exp((logits[base + i] - top) / temperature);
    return w;
  }
  if (topK != null && topK < size) {
    // keep the tokens whose scaled logit reaches the k-th largest (ties at the edge are all kept)
    const z = scratch.sorted;
    for (let i = 0; i < size; i++) z[i] = (logits[base + i] - top) / temperature;
    w.set(z);
    z.sort(); // ascending: the k-th largest is z[size - k]
    const kth = z[size - topK];
    for (let i = 0; i < size; i++) w[i] = w[i] >= kth ? Math.exp(w[i]) : 0;
  } else {
    for (let i = 0; i < size; i++) w[i] = Math.exp((logits[base + i] - top) / temperature);
  }
  if (topP != null && topP < 1) {
    // the most likely tokens, in order (a stable sort), until the mass before the next reaches p
    const order = scratch.order;
    for (let i = 0; i < size; i++) order[i] = i;
    order.sort((a, b) => w[b] - w[a]);
    let total = 0;
    for (let j = 0; j < size; j++) total += w[order[j]];
    const bar = topP * total;
    let mass = 0, kept = 1;
    for (let j = 0; j < size - 1; j++) { mass += w[order[j]]; if (mass < bar) kept++; }
    for (let j = kept; j < size; j++) w[order[j]] = 0;
  }
  let sum = 0;
  for (let i = 0; i < size; i++) w[i] = sum += w[i];
  return w;
}

/** The inverse CDF: the number of running sums in row `row` of (B, V) `cdf` (each row as
 * cumulativeWeights makes them) that are <= u * total. They only rise, so it is the index of the
 * first one above.
 * @param {Float64Array} cdf (B, V) row-major
 * @param {number} row
 * @param {number} size V
 * @param {number} u in [0, 1)
 * @returns {number} the token id */
export function pick(cdf, row, size, u) {
  const base = row * size, bar = u * cdf[base + size - 1];
  for (let i = 0; i < size; i++) if (cdf[base + i] > bar) return i;
  return size;
}
