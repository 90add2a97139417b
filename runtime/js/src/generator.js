// The Generator: samples and scores text with an mgpt step graph, as mgpt.runtime's Generator does.
//
// Shapes: B rows in a batch, V vocabulary entries, H heads, P cached positions, D head_dim.
// The loop is the seed's: every sample starts with BOS at position 0 (then the prefix's characters),
// each step feeds one token per row with the rows' cache and draws the next token; BOS ends a sample.
// All rows of a batch share the position; rows that end leave the batch and its cache, so they stop
// costing work, and at most `batchSize` samples are in memory whatever the count.

import { PatternError, Shape, checkText, parsePattern } from './constraints.js';
import { runInLane } from './lane.js';
import { LOGITS, POSITION, TOKEN, grouped, pastNames, presentNames, strictJson } from './metadata.js';
import { noveltyFrom } from './novelty.js';
import { ModelError, firstLine, openModel, readSource } from './modelfile.js';
import {
  DrawScratch, checkOptions, cumulativeWeights, drawOne, greedy, newSeed, pick, positionSteps, sampleKey, seedBits, show,
  typed, uniformAt,
} from './sampling.js';
import { VocabError, codePoints } from './vocab.js';

export const DEFAULT_BATCH_SIZE = 4096;

// onnxruntime's fastest settings for this graph's tiny kernels: one thread, no parallel executor;
// its log only for fatal errors, as failures become ModelErrors (its lines would land in the app's output)
const SESSION_OPTIONS = Object.freeze({
  intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  logSeverityLevel: 4,
});

// the options of one sample's shape (characters takes these), then the set controls, which judge whole samples
const SHAPE_OPTIONS = ['temperature', 'topK', 'topP', 'seed', 'prefix', 'maxLength', 'minLength', 'suffix', 'contains', 'pattern', 'labels'];
const SET_OPTIONS = ['novel', 'unique', 'exclude', 'maxAttempts'];
const SAMPLE_OPTIONS = [...SHAPE_OPTIONS, ...SET_OPTIONS];
// what each method's options object holds, for the TypeError of an argument that is none
const SAMPLES_TAKES = `{ numSamples, ${SAMPLE_OPTIONS.join(', ')}, batchSize }`;
const CHARACTERS_TAKES = `{ index, ${SHAPE_OPTIONS.join(', ')} }`;
const TRACE_TAKES = `{ index, ${SAMPLE_OPTIONS.join(', ')}, batchSize }`;

/** The cap on attempts of a call with set controls when maxAttempts is not given. */
export const defaultMaxAttempts = (numSamples) => Math.max(1000, 50 * numSamples);

/** Set controls that rejected attempt after attempt until maxAttempts: a RangeError (a bad value:
 * controls too tight for the model) carrying the samples found, in order. */
export class SamplingError extends RangeError {
  name = 'SamplingError';

  constructor(samples, wanted, attempts) {
    super(`found ${grouped(samples.length)} of ${grouped(wanted)} samples in ${grouped(attempts)} attempts (maxAttempts); ` +
      'the controls reject almost every sample: loosen them or raise maxAttempts');
    /** The samples accepted before the cap, in order. */
    this.samples = samples;
    /** Their number. */
    this.found = samples.length;
    this.attempts = attempts;
  }
}

export class Generator {
  /**
   * Opens and checks a model: from a path (Node), a URL, a Blob/File, or bytes.
   * `ort` is the onnxruntime namespace to use (onnxruntime-web or onnxruntime-node); without it the
   * installed one is imported (onnxruntime-node first in Node).
   * @param {string | URL | Blob | ArrayBuffer | ArrayBufferView} source
   * @param {{ort?: any, sessionOptions?: object}} [options]
   * @returns {Promise<Generator>}
   */
  static async load(source, options) {
    let { ort, sessionOptions } = optionsOf('Generator.load', options, '{ ort, sessionOptions } after the source');
    ort ??= await importOrt();
    if (typeof ort?.InferenceSession?.create !== 'function' || typeof ort.Tensor !== 'function') {
      throw new TypeError("ort must be onnxruntime's namespace (onnxruntime-node or onnxruntime-web, e.g. " +
        `import * as ort from 'onnxruntime-node'), with InferenceSession and Tensor; got ${show(ort)}`);
    }
    if (sessionOptions !== undefined && !isPlainObject(sessionOptions)) {
      throw new TypeError(`sessionOptions must be an object of onnxruntime's session options, got ${typed(sessionOptions)}`);
    }
    const { bytes, name } = await readSource(source);
    const { session, info } = await openModel(ort, bytes, name, { ...SESSION_OPTIONS, ...sessionOptions });
    return new Generator(ort, session, info, name);
  }

  /** Use Generator.load; this wraps a session already checked by openModel. */
  constructor(ort, session, info, name) {
    this.ort = ort;
    this.session = session;
    /** Everything the file's metadata says, the training record too. */
    this.info = info;
    /** How errors name the model: its path, URL or file name. */
    this.name = name;
    this.past = [], this.present = [];
    for (let i = 0; i < info.nLayer; i++) {
      this.past.push(...pastNames(i));
      this.present.push(...presentNames(i));
    }
    this.positions = Array.from({ length: info.blockSize }, (_, p) => new ort.Tensor('int64', BigInt64Array.of(BigInt(p)), []));
    this.scratch = new DrawScratch(info.drawable);
    this.ids = Array.from({ length: info.vocabSize }, (_, t) => BigInt(t)); // token t as a bigint, made once
  }

  get vocab() { return this.info.vocab; }

  get blockSize() { return this.info.blockSize; }

  /** Frees onnxruntime's session; the Generator cannot be used afterwards. */
  async release() {
    await this.session.release?.();
  }

  // ------------------------------------------------------------------------- sampling

  /** `numSamples` samples as an array (see samples). */
  async generate(options) {
    const texts = [];
    // a batch's samples at a time: one turn of an async iterator per sample costs 2-4 ms per 8,192 samples, ~5% at batch 1024
    for await (const batch of this.#batches(...this.#sampling(optionsOf('generate', options, SAMPLES_TAKES)))) {
      for (const text of batch) texts.push(text);
    }
    return texts;
  }

  /**
   * Samples 0..numSamples-1 in order, each batch's as soon as it ends, with at most `batchSize` in
   * memory. Each starts with `prefix` and has at most `maxLength` characters (default and limit:
   * the block size). With a `seed` (a bigint or a safe integer, any sign, taken mod 2^64) sample i
   * is the same whatever numSamples and batchSize, and the same as Python's. Bad options throw here.
   * The shape controls (minLength, suffix, contains, pattern) mask each step; the set controls
   * (novel, unique, exclude) reject attempts, at most maxAttempts of them (docs/sampling-controls.md).
   */
  samples(options) {
    return this.#stream(...this.#sampling(optionsOf('samples', options, SAMPLES_TAKES)));
  }

  /** samples' options, checked: [plan, numSamples, batchSize]. */
  #sampling(options) {
    const { numSamples = 20, batchSize = DEFAULT_BATCH_SIZE, ...rest } = options;
    checkCount('numSamples', numSamples, 0);
    checkCount('batchSize', batchSize, 1);
    return [this.#plan(rest, SAMPLE_OPTIONS, numSamples), numSamples, batchSize];
  }

  /** One sample, character by character as each is drawn (the prefix's first): with a `seed`,
   * sample `index` of generate. The shape controls apply; the set controls, which judge a whole
   * sample, do not (trace gives sample `index` of a call with them, step by step). */
  characters(options) {
    const { index = 0, ...rest } = optionsOf('characters', options, CHARACTERS_TAKES);
    checkCount('index', index, 0);
    return this.#characters(this.#plan(rest, SHAPE_OPTIONS), index);
  }

  async *#characters(plan, index) {
    yield* plan.prefix;
    for await (const t of this.#tokens(plan, index, await this.#prefill(plan))) yield this.vocab.chars[t];
  }

  /**
   * Sample `index` of generate with the same options, step by step, as data: which attempt it was,
   * and for each draw its input, the five most likely tokens of the distribution drawn from (after
   * the mask, temperature, top-k and top-p; ties by token id) with their probabilities, the uniform
   * and the token picked. docs/sampling-controls.md describes the fields.
   */
  async trace(options) {
    const { index = 0, batchSize = DEFAULT_BATCH_SIZE, ...rest } = optionsOf('trace', options, TRACE_TAKES);
    checkCount('index', index, 0);
    checkCount('batchSize', batchSize, 1);
    const plan = this.#plan(rest, SAMPLE_OPTIONS, index + 1);
    const prefilled = await this.#prefill(plan);
    let attempt = index;
    if (plan.judge) { // the attempt that became sample `index`: found as generate finds it
      const attempts = [];
      for await (const _ of this.#accepted(plan, index + 1, batchSize, prefilled, attempts));
      attempt = attempts[index];
    }
    const { chars, bos } = this.vocab;
    const labels = this.vocab.labels.flat(); // token bos + 1 + i is labels[i]
    // BOS: no char; a label token (a labeled model's step 1 input): no char, its label, as tracing.py
    const token = (t) => (t > bos ? { token: t, char: null, label: labels[t - bos - 1] } : { token: t, char: t === bos ? null : chars[t] });
    const steps = [];
    let text = plan.prefix, input = plan.context.at(-1), stopped = false;
    const record = (logits, row, u, t, p) => {
      const { top, more } = topTokens(plan, logits, row, this.info.drawable, this.scratch);
      if (t !== bos) text += chars[t];
      steps.push({ step: steps.length + 1, position: p, input: token(input), top: top.map(([i, q]) => ({ ...token(i), p: q })), more,
        uniform: plan.temperature > 0 ? u : null, pick: token(t), sample: text });
      input = t;
    };
    for await (const t of this.#tokens(plan, attempt, prefilled, record)) void t;
    stopped = steps.length > 0 && steps.at(-1).pick.token === bos;
    return { text, index, attempt, prefix: plan.prefix, stopped, steps };
  }

  /** The options of a call, checked, as the loops read them. `known`: the options the method
   * takes; `numSamples`: how many it asks for (the default cap on attempts depends on it). */
  #plan(options, known, numSamples = 1) {
    for (const key of Object.keys(options)) {
      if (!known.includes(key)) {
        const hint = SET_OPTIONS.includes(key) && !known.includes(key) ? ' (set controls judge whole samples: use generate, samples or trace)' : '';
        throw new TypeError(`unknown option ${JSON.stringify(key)}; the options are ${known.join(', ')}${hint}`);
      }
    }
    const {
      temperature = 0.5, topK = null, topP = null, seed = null, prefix = '', maxLength = null,
      minLength = 0, suffix = '', contains = '', pattern = null, novel = false, unique = false, exclude = [], maxAttempts = null,
      labels = null,
    } = options;
    checkOptions(temperature, topK, topP);
    const labelIds = this.vocab.labelTokens(labels); // [] for a model without labels
    if (typeof prefix !== 'string') throw new TypeError(`prefix must be a string, got ${typed(prefix)}`);
    let ids;
    try {
      ids = this.vocab.encode(prefix);
    } catch (e) {
      if (!(e instanceof VocabError)) throw e;
      throw new RangeError(`prefix ${show(prefix)} has ${e.message}; the model knows ${show(this.vocab.chars.join(''))}`);
    }
    const longest = this.blockSize - labelIds.length; // the label tokens take positions of the block
    const length = maxLength ?? longest;
    checkCount('maxLength', length, 1);
    if (length > longest) {
      throw new RangeError(`maxLength ${length} exceeds the model's block size ${this.blockSize}` +
        (labelIds.length ? ` less its ${labelIds.length} label tokens` : ''));
    }
    if (ids.length >= length) {
      throw new RangeError(`prefix ${show(prefix)} has ${ids.length} characters; it must be shorter than ` +
        `${maxLength != null ? 'maxLength' : 'the block size'} ${length} to leave room for a drawn character`);
    }
    if (seed !== null && typeof seed !== 'bigint' && !Number.isSafeInteger(seed)) {
      throw new TypeError(`seed must be an integer (a bigint, or a number that is a safe integer), got ${typed(seed)}`);
    }
    let shape = this.#shape({ minLength, suffix, contains, pattern, length, prefix });
    if (shape && labelIds.length) shape = afterLabels(shape, labelIds.length);
    const judge = this.#judge({ novel, unique, exclude });
    if (maxAttempts !== null) checkCount('maxAttempts', maxAttempts, 1);
    return {
      seed: seed === null ? newSeed() : seedBits(seed), temperature, topK, topP, prefix,
      context: [this.vocab.bos, ...labelIds, ...ids], // fed at positions 0.. before the first draw
      length: length + labelIds.length, // positions at most: the most characters (prefix included) and the label tokens
      steps: positionSteps(length + labelIds.length), // the random stream's counters
      shape, // the shape controls' automaton, or null: then no mask code runs
      judge, // the set controls' judge of an attempt (a function of its text), or null: then sample k is attempt k
      maxAttempts: maxAttempts ?? defaultMaxAttempts(numSamples),
    };
  }

  /** The shape controls, checked and compiled: null when they constrain nothing beyond the prefix
   * and the length limit (then no mask code runs). Refusals in constraints.py's order and words. */
  #shape({ minLength, suffix, contains, pattern, length, prefix }) {
    checkCount('minLength', minLength, 0);
    checkText('suffix', suffix);
    checkText('contains', contains);
    checkText('pattern', pattern, true);
    if (pattern === null && suffix === '' && contains === '' && minLength <= codePoints(prefix)) return null;
    if (pattern !== null) parsePattern(pattern); // a pattern outside the subset: its own error first
    const knows = `the model knows ${show(this.vocab.chars.join(''))}`;
    for (const [name, text] of [['suffix', suffix], ['contains', contains]]) {
      const missing = this.vocab.missing(text);
      if (missing.length) {
        throw new PatternError(`${name} ${show(text)} has characters the model cannot produce (${show(missing.slice(0, 10).join(''))}); ${knows}`);
      }
    }
    if (minLength > length) throw new PatternError(`minLength ${minLength} exceeds the longest sample, ${length} characters`);
    const shape = new Shape(this.vocab.chars, { pattern, suffix, contains, minLength, maxLength: length, prefix });
    if (!shape.satisfiable) {
      const parts = [];
      if (prefix) parts.push(`start with ${show(prefix)}`);
      if (suffix) parts.push(`end with ${show(suffix)}`);
      if (contains) parts.push(`contain ${show(contains)}`);
      if (pattern !== null) parts.push(`match pattern ${show(pattern)}`);
      const lengths = minLength ? `${minLength} to ${length}` : `at most ${length}`;
      throw new PatternError(`no sample of ${lengths} characters over the model's vocabulary can ${parts.join(', ') || 'exist'}; ` +
        `loosen the controls (${knows})`);
    }
    return shape;
  }

  /** The set controls, checked: a judge of attempts in order (true: accepted), or null. */
  #judge({ novel, unique, exclude }) {
    if (typeof novel !== 'boolean') throw new TypeError(`novel must be a boolean, got ${typed(novel)}`);
    if (typeof unique !== 'boolean') throw new TypeError(`unique must be a boolean, got ${typed(unique)}`);
    if (!Array.isArray(exclude) || exclude.some((s) => typeof s !== 'string')) {
      throw new TypeError(`exclude must be an array of strings, got ${Array.isArray(exclude) ? 'an array holding ' + typed(exclude.find((s) => typeof s !== 'string')) : typed(exclude)}`);
    }
    const filter = novel ? this.#novelty() : null;
    if (!novel && !unique && exclude.length === 0) return null;
    const excluded = new Set(exclude), seen = new Set(), ids = this.vocab.ids;
    return (text) => {
      if (excluded.has(text) || (unique && seen.has(text))) return false;
      if (novel && filter.has(Array.from(text, (c) => ids.get(c)))) return false;
      if (unique) seen.add(text);
      return true;
    };
  }

  /** The model's novelty filter, read from its metadata on first use (a file without one, or with
   * a malformed one, loads as before: only `novel` needs it, and is then a ModelError). */
  #novelty() {
    if (this.noveltyFilter === undefined) {
      const text = this.info.noveltyText;
      if (text === null) {
        throw new ModelError(`${this.name} has no novelty filter, which novel needs: train with this mgpt (without ` +
          '--no-novelty) and export again');
      }
      try {
        this.noveltyFilter = noveltyFrom(strictJson(text));
      } catch (e) {
        if (!(e instanceof SyntaxError)) throw e;
        throw new ModelError(`${this.name} has a malformed novelty filter (${e.message}); export it again with this mgpt`);
      }
    }
    return this.noveltyFilter;
  }

  /** Feeds the context (BOS, then the prefix's ids) at positions 0, 1, ... to a batch of one: the
   * cache after it, one Float32Array (1, H, P, D) per cache input, and the logits (V) at its last
   * position. Every sample of a call starts from these: its first token is drawn from `logits`
   * (the same computation for every sample, so it runs once per call instead of once per sample:
   * a seventh of the runs for names at batch 1), and every row's cache starts as `cache`. */
  async #prefill(plan) {
    const { nHead: H, headDim: D, drawable: V } = this.info;
    const feeds = {};
    for (const name of this.past) feeds[name] = new this.ort.Tensor('float32', new Float32Array(0), [1, H, 0, D]);
    let out;
    for (let p = 0; p < plan.context.length; p++) {
      feeds[TOKEN] = new this.ort.Tensor('int64', BigInt64Array.of(BigInt(plan.context[p])), [1]);
      feeds[POSITION] = this.positions[p];
      out = await this.#run(feeds, p, 1);
      this.past.forEach((name, j) => { feeds[name] = out[this.present[j]]; });
    }
    return { cache: this.past.map((name) => feeds[name].data), logits: out[LOGITS].data.subarray(0, V) };
  }

  async *#stream(plan, n, batchSize) {
    for await (const batch of this.#batches(plan, n, batchSize)) yield* batch;
  }

  /** The samples 0..n-1 of `plan`, `batchSize` at a time: each batch's as an array, as it ends. */
  async *#batches(plan, n, batchSize) {
    if (n === 0) return;
    const prefilled = await this.#prefill(plan);
    if (plan.judge) {
      yield* this.#accepted(plan, n, batchSize, prefilled);
      return;
    }
    const batch = Math.min(batchSize, n);
    for (let first = 0; first < n; first += batch) yield await this.#attempts(plan, first, Math.min(batch, n - first), prefilled);
  }

  /** Attempts first..first+rows-1: their texts. */
  async #attempts(plan, first, rows, prefilled) {
    if (rows > 1) return this.#batch(plan, first, rows, prefilled);
    let text = plan.prefix;
    for await (const t of this.#tokens(plan, first, prefilled)) text += this.vocab.chars[t];
    return [text];
  }

  /** With set controls: attempts 0, 1, 2, ... judged in order, the accepted ones' texts as each
   * batch of attempts ends, until n are accepted; past maxAttempts, a SamplingError with those
   * found. The attempt of each accepted sample goes into `attempts` if given. */
  async *#accepted(plan, n, batchSize, prefilled, attempts = null) {
    const found = [];
    let made = 0;
    while (found.length < n) {
      if (made >= plan.maxAttempts) throw new SamplingError(found, n, made);
      // attempts past the last needed are discarded, so a batch may be any size: at least what is still needed
      const rows = Math.min(batchSize, plan.maxAttempts - made, Math.max(n - found.length, 64));
      const texts = await this.#attempts(plan, made, rows, prefilled);
      const accepted = [];
      for (let i = 0; i < rows && found.length < n; i++) {
        if (!plan.judge(texts[i])) continue;
        found.push(texts[i]);
        accepted.push(texts[i]);
        attempts?.push(made + i);
      }
      made += rows;
      if (accepted.length) yield accepted;
    }
  }

  /** The draw of sample `index` at position p from row `row` of `logits`, its row in automaton
   * state s (with shape controls): the mask, the sample's uniform at p (none at temperature 0) and
   * the sampling rule. Returns a function of (logits, row, p, s); `record`, if given, is called
   * with what was drawn from (logits and row, masked), the uniform and the token. */
  #drawer(plan, index, record = null) {
    const { temperature, topK, topP, steps, shape } = plan;
    const V = this.info.drawable, scratch = this.scratch;
    const [keyHi, keyLo] = temperature > 0 ? sampleKey(plan.seed, index) : [0, 0];
    return (logits, row, p, s) => {
      if (shape) {
        const mask = shape.allowed(s, p);
        if (!mask.all) [logits, row] = [masked(logits, row, V, mask.flags, scratch.masked), 0];
      }
      const u = temperature > 0 ? uniformAt(keyHi, keyLo, steps, p) : 0;
      const t = drawOne(logits, row, V, u, temperature, topK, topP, scratch);
      record?.(logits, row, u, t, p);
      return t;
    };
  }

  /** One sample's drawn token ids, as they are drawn: the batch-1 loop, which reuses its token
   * tensor and feeds each step's present cache back as it is. */
  async *#tokens(plan, index, { cache, logits }, record = null) {
    const { nHead: H, headDim: D, bos } = this.info;
    const start = plan.context.length; // the first position run here; the draw before it is the prefill's
    const draw = this.#drawer(plan, index, record);
    const shape = plan.shape;
    let s = shape?.start ?? 0; // the automaton's state after the sample so far
    let t = draw(logits, 0, start - 1, s);
    if (t === bos) return;
    yield t;
    if (shape) s = shape.next(s, t);
    const token = BigInt64Array.of(BigInt(t));
    const feeds = { [TOKEN]: new this.ort.Tensor('int64', token, [1]) };
    this.past.forEach((name, j) => { feeds[name] = new this.ort.Tensor('float32', cache[j], [1, H, start, D]); });
    for (let p = start; p < plan.length; p++) {
      feeds[POSITION] = this.positions[p];
      const out = await this.#run(feeds, p, 1);
      t = draw(out[LOGITS].data, 0, p, s);
      if (t === bos) return;
      yield t;
      if (shape) s = shape.next(s, t);
      token[0] = BigInt(t);
      this.past.forEach((name, j) => { feeds[name] = out[this.present[j]]; });
    }
  }

  /** Samples first..first+B-1, run together as one batch. */
  async #batch(plan, first, B, { cache, logits }) {
    const { nHead: H, headDim: D, drawable: V, bos } = this.info;
    const { temperature, topK, topP, steps, shape } = plan;
    const chars = this.vocab.chars, ids = this.ids, scratch = this.scratch, start = plan.context.length; // as in #tokens
    const keys = new Uint32Array(2 * B); // row r's sample key at 2r (hi) and 2r + 1 (lo); none at temperature 0
    if (temperature > 0) for (let r = 0; r < B; r++) keys.set(sampleKey(plan.seed, first + r), 2 * r);
    const texts = new Array(B).fill(plan.prefix);
    const alive = new Int32Array(B); // alive[j]: the sample in row j
    const state = new Int32Array(B); // state[j]: row j's automaton state (shape controls only)
    const tokens = new BigInt64Array(B);
    // Rows with the same token history so far are fed the same inputs, so they normally get the same
    // logits: a row whose logits are, bit for bit, those of the first row of its history reuses that
    // row's running sums and draws with its own uniform (the same sums, so the same token, as summing
    // them again). At temperature 0.5, two draws in three reuse (names, batch 1024). With shape
    // controls the mask is shared too: the same history is the same automaton state, so the same mask.
    const sums = new Float64Array(B * V); // (B, V): the running sums of row j, or of its history's first row
    const root = new Int32Array(B); // root[j]: the first row of this step with row j's history
    // then[q * V + t]: the next step's first row of history q followed by token t, if stamp[...] is the position
    const then = new Int32Array(B * V), stamp = new Int32Array(B * V).fill(-1);
    const follow = (q, t, p, j) => {
      const at = q * V + t;
      if (stamp[at] !== p) { stamp[at] = p; then[at] = j; }
      return then[at];
    };
    // the row of logits a row draws from: its own, or a copy with the tokens its mask removes at -inf
    const source = (from, row, s, p) => {
      if (!shape) return [from, row];
      const mask = shape.allowed(s, p);
      return mask.all ? [from, row] : [masked(from, row, V, mask.flags, scratch.masked), 0];
    };
    let n = 0; // rows alive
    // the first draw: every row draws from the prefill's logits (one history), so their running sums
    // are summed once and only each row's uniform differs
    const s0 = shape?.start ?? 0;
    const [first0, row0] = source(logits, 0, s0, start - 1);
    const cdf = temperature > 0 ? cumulativeWeights(first0, row0, V, temperature, topK, topP, scratch) : null;
    const greedyToken = greedy(first0, row0, V);
    for (let r = 0; r < B; r++) {
      const t = cdf ? pick(cdf, 0, V, uniformAt(keys[2 * r], keys[2 * r + 1], steps, start - 1)) : greedyToken;
      if (t === bos) continue;
      texts[r] += chars[t];
      root[n] = follow(0, t, start - 1, n);
      if (shape) state[n] = shape.next(s0, t);
      alive[n] = r;
      tokens[n++] = ids[t];
    }
    let caches = cache.map((c) => { // the prefill's cache, repeated for every row alive: (n, H, P, D)
      const rows = new Float32Array(n * c.length);
      for (let j = 0; j < n; j++) rows.set(c, j * c.length);
      return rows;
    });
    const feeds = {};
    for (let p = start; p < plan.length && n > 0; p++) {
      feeds[TOKEN] = new this.ort.Tensor('int64', tokens.subarray(0, n), [n]);
      feeds[POSITION] = this.positions[p];
      this.past.forEach((name, j) => { feeds[name] = new this.ort.Tensor('float32', caches[j], [n, H, p, D]); });
      const out = await this.#run(feeds, p, n);
      const stepLogits = out[LOGITS].data, bits = new Int32Array(stepLogits.buffer, stepLogits.byteOffset, n * V);
      let kept = 0;
      caches = this.present.map((name) => out[name].data);
      const row = H * (p + 1) * D; // floats per row of a present cache
      let run = 0; // rows run..j-1 are kept: their cache rows move down as one block when a row ends
      for (let j = 0; j < n; j++) { // rows are only moved down, so root[kept], alive[kept] and state[kept] are read already
        const r = alive[j], q = root[j], s = state[j];
        let t;
        if (temperature > 0) {
          const from = q < j && sameRow(bits, q, j, V) ? q : j;
          if (from === j) {
            const [l, at] = source(stepLogits, j, s, p);
            sums.set(cumulativeWeights(l, at, V, temperature, topK, topP, scratch), j * V);
          }
          t = pick(sums, from, V, uniformAt(keys[2 * r], keys[2 * r + 1], steps, p));
        } else {
          const [l, at] = source(stepLogits, j, s, p);
          t = greedy(l, at, V);
        }
        if (t === bos) {
          moveDown(caches, row, run, j, kept);
          run = j + 1;
          continue;
        }
        texts[r] += chars[t];
        root[kept] = follow(q, t, p, kept);
        if (shape) state[kept] = shape.next(s, t);
        alive[kept] = r;
        tokens[kept++] = ids[t];
      }
      moveDown(caches, row, run, n, kept);
      if (kept < n) caches = caches.map((c) => c.subarray(0, kept * row));
      n = kept;
    }
    return texts;
  }
  /** One step through onnxruntime; its failures and non-finite logits become ModelErrors that name
   * the file and the position. */
  async #run(feeds, p, rows) {
    let out;
    try {
      out = await runInLane(this.ort, this.session, feeds);
    } catch (e) {
      throw new ModelError(`${this.name} failed in onnxruntime at position ${p} (${firstLine(e)})`);
    }
    const { vocabSize, drawable } = this.info;
    const logits = out[LOGITS].data, size = rows * vocabSize;
    for (let i = 0; i < size; i++) {
      if (!Number.isFinite(logits[i])) {
        throw new ModelError(`${this.name} gave logits that are not finite (NaN or infinity) at position ${p}; ` +
          'its weights are broken: export it again from a good checkpoint');
      }
    }
    if (drawable < vocabSize) { // a labeled model: the label tokens' columns cut off, (rows, drawable)
      const cut = new Float32Array(rows * drawable);
      for (let r = 0; r < rows; r++) cut.set(logits.subarray(r * vocabSize, r * vocabSize + drawable), r * drawable);
      return { ...out, [LOGITS]: { data: cut } };
    }
    return out;
  }

  // ------------------------------------------------------------------------- scoring

  /**
   * Mean negative log-likelihood (nats) per predicted token of `texts` (a string, or an iterable or
   * async iterable of strings, read `batchSize` at a time, so any number streams in bounded memory),
   * each framed as in training: [BOS] + chars + [BOS], predicting at most blockSize tokens. A labeled
   * model scores them given `labels` (one per group): [BOS] + labels + chars + [BOS], the label
   * tokens fed, not predicted.
   */
  async score(texts, options) {
    const { batchSize = DEFAULT_BATCH_SIZE, labels = null, ...rest } = optionsOf('score', options, '{ batchSize, labels } after the texts');
    const unknown = Object.keys(rest);
    if (unknown.length) throw new TypeError(`unknown option ${JSON.stringify(unknown[0])}; score's options are batchSize and labels`);
    checkCount('batchSize', batchSize, 1);
    const labelIds = this.vocab.labelTokens(labels);
    if (typeof texts === 'string') texts = [texts];
    if (typeof texts?.[Symbol.iterator] !== 'function' && typeof texts?.[Symbol.asyncIterator] !== 'function') {
      throw new TypeError(`texts must be a string or an iterable of strings, got ${typed(texts)}`);
    }
    let total = 0, count = 0, docs = [];
    const flush = async () => {
      docs.sort((a, b) => b.length - a.length); // longest first: the rows still needed are always a prefix
      const [nll, n] = await this.#scoreBatch(docs, labelIds.length);
      total += nll;
      count += n;
      docs = [];
    };
    for await (const text of texts) {
      docs.push(this.#document(text, labelIds));
      if (docs.length === batchSize) await flush();
    }
    if (docs.length) await flush();
    if (!count) throw new RangeError('nothing to score: no texts given');
    return total / count;
  }

  /** `text` as a document, cut to the block: [BOS, ...labelIds, ...ids, BOS], at most blockSize + 1 ids. */
  #document(text, labelIds) {
    if (typeof text !== 'string') throw new TypeError(`texts must hold strings, got ${typed(text)}`);
    try {
      const [bos, ...rest] = this.vocab.encodeDocument(text);
      return [bos, ...labelIds, ...rest].slice(0, this.blockSize + 1);
    } catch (e) {
      if (!(e instanceof VocabError)) throw e;
      throw new RangeError(`cannot score ${show(text.slice(0, 40))}: ${e.message}`);
    }
  }

  /** Summed NLL and predicted-token count of `docs` (id arrays, longest first), the first `skip`
   * positions (BOS and all but the last label token) fed, not scored. */
  async #scoreBatch(docs, skip) {
    const { nHead: H, headDim: D, drawable: V } = this.info;
    const feeds = {};
    let caches = this.past.map(() => new Float32Array(0));
    let total = 0, count = 0;
    for (let p = 0; p < docs[0].length - 1; p++) {
      let rows = 0; // rows 0..rows-1 still predict at position p
      while (rows < docs.length && docs[rows].length - 1 > p) rows++;
      feeds[TOKEN] = new this.ort.Tensor('int64', BigInt64Array.from(docs.slice(0, rows), (d) => BigInt(d[p])), [rows]);
      feeds[POSITION] = this.positions[p];
      this.past.forEach((name, j) => {
        feeds[name] = new this.ort.Tensor('float32', caches[j].subarray(0, rows * H * p * D), [rows, H, p, D]);
      });
      const out = await this.#run(feeds, p, rows);
      caches = this.present.map((name) => out[name].data);
      if (p < skip) continue;
      const logits = out[LOGITS].data;
      for (let r = 0; r < rows; r++) {
        let top = -Infinity;
        for (let i = r * V; i < (r + 1) * V; i++) top = Math.max(top, logits[i]);
        let sum = 0;
        for (let i = r * V; i < (r + 1) * V; i++) sum += Math.exp(logits[i] - top);
        total += top + Math.log(sum) - logits[r * V + docs[r][p + 1]];
      }
      count += rows;
    }
    return [total, count];
  }
}

/** `shape` for samples whose characters start after `count` label tokens: its masks are asked by
 * position, and position p holds p - count characters. */
function afterLabels(shape, count) {
  const after = Object.create(shape); // the same automaton, asked by characters
  after.allowed = (s, p) => shape.allowed(s, p - count);
  return after;
}

/** Compaction in place: rows from..to-1 of each (B, ...) cache (`row` floats a row), the rows kept
 * since the last that ended, move down as one block to end before row `end`, the count kept so far. */
function moveDown(caches, row, from, to, end) {
  const at = end - (to - from);
  if (at < from) for (const c of caches) c.copyWithin(at * row, from * row, to * row);
}

/** Row `row` of (B, V) `logits` with the tokens `flags` does not allow at -inf, into `out` (V
 * float32, so the allowed logits keep their bits): the mask goes in before the sampling rule. */
function masked(logits, row, size, flags, out) {
  for (let i = 0, base = row * size; i < size; i++) out[i] = flags[i] ? logits[base + i] : -Infinity;
  return out;
}

/** The five most likely tokens of the distribution `plan`'s rule draws from row `row` of `logits`
 * (already masked), as [token, probability] pairs, ties by token id, those of probability 0 left
 * out; and whether more than five have a positive probability. p is the token's weight over the
 * total (its running sum's rise: within 1e-15 of Python's weight / total). At temperature 0 the
 * rule puts all the mass on the greedy token. */
function topTokens(plan, logits, row, size, scratch) {
  const { temperature, topK, topP } = plan;
  if (!(temperature > 0)) return { top: [[greedy(logits, row, size), 1]], more: false };
  const cdf = cumulativeWeights(logits, row, size, temperature, topK, topP, scratch), total = cdf[size - 1];
  const p = Array.from({ length: size }, (_, i) => [i, (cdf[i] - (i ? cdf[i - 1] : 0)) / total]).filter(([, q]) => q > 0);
  return { top: p.sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, 5), more: p.length > 5 };
}

/** The one line for shape controls that no sample within the length limit can meet. */
function unsatisfiable({ minLength, suffix, contains, pattern, length, prefix }, vocab) {
  const given = [['prefix', prefix], ['suffix', suffix], ['contains', contains], ['pattern', pattern]]
    .filter(([, v]) => v !== '' && v !== null).map(([k, v]) => `${k} ${show(v)}`);
  if (minLength > 0) given.push(`minLength ${minLength}`);
  const missing = vocab.missing(`${suffix}${contains}`);
  const why = missing.length ? `: ${show(missing.join(''))} ${missing.length === 1 ? 'is' : 'are'} not in the model's vocabulary` : '';
  return `no sample of at most ${length} characters over the model's vocabulary meets ${given.join(', ')}${why}; loosen them`;
}

/** Whether rows a and b of (B, V) `bits` (logits' bits as int32) are equal. */
function sameRow(bits, a, b, size) {
  for (let i = 0, x = a * size, y = b * size; i < size; i++) if (bits[x + i] !== bits[y + i]) return false;
  return true;
}

/** Throws unless `value` is a safe integer >= minimum: a TypeError for a wrong type (1.5, "3", 3n,
 * true), a RangeError for a bad integer, as Python's check_count raises TypeError and ValueError. */
function checkCount(name, value, minimum) {
  if (!Number.isInteger(value)) throw new TypeError(`${name} must be an integer >= ${minimum}, got ${typed(value)}`);
  if (value < minimum) throw new RangeError(`${name} must be an integer >= ${minimum}, got ${show(value)}`);
  if (!Number.isSafeInteger(value)) throw new RangeError(`${name} must be at most 2^53 - 1, got ${show(value)}`);
}

/** A method's options: `options` itself if it is a plain object, {} if undefined; anything else
 * (a number, a string, null, an array) is a TypeError saying what the method takes, where it would
 * otherwise be read as no options at all or fail on a property. */
function optionsOf(method, options, takes) {
  if (options === undefined) return {};
  if (!isPlainObject(options)) throw new TypeError(`${method} takes one options object (${takes}), got ${typed(options)}`);
  return options;
}

/** Whether `value` is an object literal (or made by Object.create(null)), not an array or an instance. */
function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The onnxruntime the app installed: onnxruntime-node in Node if present, else onnxruntime-web. */
async function importOrt() {
  const isNode = typeof process !== 'undefined' && !!process.versions?.node;
  for (const name of isNode ? ['onnxruntime-node', 'onnxruntime-web'] : ['onnxruntime-web']) {
    try {
      return await import(name);
    } catch { /* try the next */ }
  }
  throw new Error('no onnxruntime found: install onnxruntime-node or onnxruntime-web, or pass { ort } to Generator.load');
}
