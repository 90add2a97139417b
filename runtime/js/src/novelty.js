// The novelty filter: a Bloom filter of every document the model learned from, carried in the
// .onnx metadata under the key `novelty`, queried as mgpt.runtime's novelty.py queries it (the
// format and the hash are in docs/sampling-controls.md, with test vectors both runtimes check).
//
// A document is keyed by its token ids (no BOS). Its 64-bit hash h gives k probes: with
// h1 = h mod 2^32 and h2 = (h >> 32) | 1, probe i is bit (h1 + i * h2) mod m (exact in doubles:
// every term is below 2^53). "Maybe a document" when all k bits are set; no false negatives.

import { GAMMA_HI, GAMMA_LO, add64, mix, out64 } from './sampling.js';

export const NOVELTY_KIND = 'bloom-splitmix64-v1';
const SEED_HI = 0, SEED_LO = 0x6d677074; // "mgpt"

/** The 64-bit hash of token ids, as [hi, lo]: h = SEED; per id t: h = mix(h ^ t) + GAMMA (mod 2^64).
 * @param {ArrayLike<number>} ids */
export function hashTokens(ids) {
  let hi = SEED_HI, lo = SEED_LO;
  for (let i = 0; i < ids.length; i++) {
    mix(hi, (lo ^ ids[i]) >>> 0);
    add64(out64[0], out64[1], GAMMA_HI, GAMMA_LO);
    hi = out64[0]; lo = out64[1];
  }
  return [hi, lo];
}

export class NoveltyFilter {
  /**
   * @param {{documents: number, bits: number, hashes: number, data: Uint8Array}} filter
   *   checked by `noveltyFrom`: m = bits, k = hashes, data ceil(m / 8) bytes
   */
  constructor({ documents, bits, hashes, data }) {
    this.documents = documents;
    this.bits = bits;
    this.hashes = hashes;
    this.data = data;
  }

  /** Whether the document of token ids `ids` may be one the model learned from (all its bits set). */
  has(ids) {
    const [hi, lo] = hashTokens(ids);
    const h2 = (hi | 1) >>> 0, m = this.bits, data = this.data;
    for (let i = 0; i < this.hashes; i++) {
      const j = (lo + i * h2) % m;
      if (((data[j >>> 3] >> (j & 7)) & 1) === 0) return false;
    }
    return true;
  }
}

const MAX_BITS = 2 ** 32 - 1, MAX_HASHES = 32; // novelty.py's limits

/** The filter of the metadata's `novelty` object (already parsed), or a SyntaxError saying what is
 * wrong with it, in novelty.py's words (the Generator makes it the file's ModelError). */
export function noveltyFrom(value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new SyntaxError('the novelty entry is not a JSON object');
  const { kind, documents, bits, hashes, data } = value;
  if (kind !== NOVELTY_KIND) throw new SyntaxError(`the novelty entry's kind is ${JSON.stringify(kind ?? null)}; this mgpt reads ${JSON.stringify(NOVELTY_KIND)}`);
  if (![documents, bits, hashes].every(Number.isInteger)) throw new SyntaxError('the novelty entry\'s documents, bits and hashes must be integers');
  if (!(documents >= 0 && bits >= 8 && bits <= MAX_BITS && hashes >= 1 && hashes <= MAX_HASHES)) {
    throw new SyntaxError(`the novelty entry has sizes out of range (documents ${documents}, bits ${bits}, hashes ${hashes})`);
  }
  if (typeof data !== 'string' || data.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(data)) {
    throw new SyntaxError('the novelty entry\'s data is not base64');
  }
  const binary = atob(data), bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  if (bytes.length !== Math.ceil(bits / 8)) {
    const n = (x) => x.toLocaleString('en');
    throw new SyntaxError(`the novelty entry's data holds ${n(bytes.length)} bytes; ${n(bits)} bits need ${n(Math.ceil(bits / 8))}`);
  }
  return new NoveltyFilter({ documents, bits, hashes, data: bytes });
}
