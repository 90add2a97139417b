// Types of mgpt's JavaScript runtime (src/index.js).

/** The onnxruntime namespace a Generator runs on: `import * as ort from 'onnxruntime-web'` or
 * `'onnxruntime-node'` (only the parts used here are named). */
export interface OrtNamespace {
  InferenceSession: { create(model: Uint8Array, options?: object): Promise<unknown> };
  Tensor: new (type: 'int64' | 'float32', data: BigInt64Array | Float32Array, dims: readonly number[]) => unknown;
}

/** A model to load: a path (Node), a URL, a Blob or File, or the file's bytes. */
export type ModelSource = string | URL | Blob | ArrayBuffer | ArrayBufferView;

/** A seed: any integer, taken mod 2^64 (as Python takes it); a number must be a safe integer. */
export type Seed = bigint | number;

export interface LoadOptions {
  /** The onnxruntime to use; by default onnxruntime-node (in Node) or onnxruntime-web, imported. */
  ort?: OrtNamespace;
  /** onnxruntime session options, over the defaults (one intra-op thread, sequential). */
  sessionOptions?: object;
}

export interface SampleOptions {
  /** Draw from softmax(logits / temperature); 0 is greedy. Default 0.5. */
  temperature?: number;
  /** Draw among the topK most likely tokens only (ties with the k-th are kept). */
  topK?: number | null;
  /** Then among the most likely tokens until their mass reaches topP, in (0, 1]. */
  topP?: number | null;
  /** With a seed, sample i is the same for any numSamples and batchSize, and equals Python's. */
  seed?: Seed | null;
  /** Every sample begins with these characters. */
  prefix?: string;
  /** The longest sample in characters, the prefix included (default and limit: the block size). */
  maxLength?: number | null;
  /** Shape controls (docs/sampling-controls.md): each is a mask on every step, so the samples are
   * the model's distribution renormalized step by step over the continuations that can still meet
   * them (not the distribution conditioned on meeting them). The shortest sample, prefix included. */
  minLength?: number;
  /** Every sample ends with this. */
  suffix?: string;
  /** Every sample holds this. */
  contains?: string;
  /** A regular expression (a documented subset) that the whole sample, prefix included, matches. */
  pattern?: string | null;
  /** A labeled model's labels, one from each of its groups, in any order (docs/labels.md). */
  labels?: readonly string[] | null;
}

/** Set controls: attempts are drawn as the samples of a call without them and judged in order;
 * sample k is the k-th accepted attempt (the model's distribution conditioned on being new). */
export interface SetOptions {
  /** Never a document of the model's training data (needs the file's novelty filter). */
  novel?: boolean;
  /** No two samples of the call are equal. */
  unique?: boolean;
  /** Strings never to return. */
  exclude?: string[];
  /** The most attempts of the call (default max(1000, 50 * numSamples)); past it, a SamplingError. */
  maxAttempts?: number | null;
}

export interface GenerateOptions extends SampleOptions, SetOptions {
  /** How many samples (default 20). */
  numSamples?: number;
  /** Samples in flight at once (default 4096): memory stays bounded for any numSamples. */
  batchSize?: number;
}

export interface CharacterOptions extends SampleOptions {
  /** With a seed, the sample drawn is sample `index` of generate (default 0). */
  index?: number;
}

export interface TraceOptions extends SampleOptions, SetOptions {
  /** Which sample of generate with these options to trace (default 0). */
  index?: number;
  /** Attempts run together while finding it (default 4096). */
  batchSize?: number;
}

/** A token in a trace: its id, and its character (null for BOS). */
export interface TraceToken {
  token: number;
  /** null for BOS and for a label token (a labeled model's step 1 input) */
  char: string | null;
  /** a label token's label */
  label?: string;
}

/** One draw of a traced sample. */
export interface TraceStep {
  /** 1, 2, ... */
  step: number;
  /** The position whose logits were drawn from. */
  position: number;
  /** The token fed there (BOS, or the character before). */
  input: TraceToken;
  /** The five most likely tokens of the distribution drawn from (after the mask, temperature,
   * top-k and top-p), most likely first, ties by token id; tokens of probability 0 left out. */
  top: (TraceToken & { p: number })[];
  /** Whether more tokens than those in `top` have a positive probability. */
  more: boolean;
  /** The uniform drawn with (null at temperature 0). */
  uniform: number | null;
  pick: TraceToken;
  /** The sample so far, after this draw. */
  sample: string;
}

export interface Trace {
  text: string;
  index: number;
  /** The attempt that became sample `index` (index itself without set controls). */
  attempt: number;
  /** The prefix: fed before step 1, part of `text` and of every step's `sample`. */
  prefix: string;
  steps: TraceStep[];
  /** Whether BOS ended it (false: it reached its longest length). */
  stopped: boolean;
}

export class Vocab {
  constructor(chars: readonly string[], labels?: readonly (readonly string[])[]);
  /** Sorted by code point, distinct, one character each: id i is chars[i]. */
  readonly chars: readonly string[];
  /** A labeled model's label groups, each sorted; their tokens follow BOS group by group. [] without labels. */
  readonly labels: readonly (readonly string[])[];
  /** The id that starts and ends a document: chars.length. */
  readonly bos: number;
  /** chars.length + 1 + the number of labels: the model's vocab_size. */
  readonly size: number;
  /** chars.length + 1: the tokens drawn and scored (characters and BOS). */
  readonly drawable: number;
  /** The token ids of `labels` (one per group, any order) in the groups' order. */
  labelTokens(labels: readonly string[] | null | undefined): number[];
  /** The label groups as one line, e.g. "F | M; 1880s | 1890s". */
  describeLabels(): string;
  missing(text: string): string[];
  encode(text: string): number[];
  encodeDocument(text: string): number[];
  decode(ids: Iterable<number>): string;
}

/** What a model file's metadata says about it. */
export interface ModelInfo {
  readonly vocab: Vocab;
  readonly blockSize: number;
  readonly nLayer: number;
  readonly nHead: number;
  readonly headDim: number;
  readonly nEmbd: number;
  readonly bos: number;
  readonly vocabSize: number;
  /** vocab.drawable: the logits' columns drawn from (a labeled model's label tokens' are cut off). */
  readonly drawable: number;
  /** The checkpoint's training record. */
  readonly training: Record<string, unknown>;
  /** The metadata's `novelty` JSON (a Bloom filter of the training data's documents), read only when
   * `novel` asks for it; null if the file has none. */
  readonly noveltyText: string | null;
  /** e.g. "mgpt 0.1.0". */
  readonly producer: string;
}

export class Generator {
  /** Opens and checks a model; a bad one rejects with a ModelError naming it and the problem. */
  static load(source: ModelSource, options?: LoadOptions): Promise<Generator>;
  readonly info: ModelInfo;
  readonly vocab: Vocab;
  readonly blockSize: number;
  /** How errors name the model: its path, URL or file name. */
  readonly name: string;
  /** Samples as an array. */
  generate(options?: GenerateOptions): Promise<string[]>;
  /** Samples in order, each batch's as it ends; bad options throw at the call. */
  samples(options?: GenerateOptions): AsyncGenerator<string, void, undefined>;
  /** One sample, character by character as each is drawn (the prefix's first); shape controls only. */
  characters(options?: CharacterOptions): AsyncGenerator<string, void, undefined>;
  /** Sample `index` of generate with the same options, step by step. */
  trace(options?: TraceOptions): Promise<Trace>;
  /** Mean negative log-likelihood (nats) per predicted token, framed as in training. */
  score(texts: string | Iterable<string> | AsyncIterable<string>, options?: { batchSize?: number; labels?: readonly string[] | null }): Promise<number>;
  /** Frees onnxruntime's session. */
  release(): Promise<void>;
}

export const DEFAULT_BATCH_SIZE: number;
export const FORMAT: 'mgpt-step';
export const FORMAT_VERSION: number;

/** A model file that is missing, unreadable, or not an mgpt step graph; or a failure while running it. */
export class ModelError extends Error {}
export class VocabError extends Error {}
/** A pattern outside the subset or malformed, too complex, or shape controls no sample can meet. */
export class PatternError extends RangeError {}
/** Set controls that rejected attempts until maxAttempts: the samples found are in `samples`. */
export class SamplingError extends RangeError {
  readonly samples: string[];
  /** samples.length. */
  readonly found: number;
  readonly attempts: number;
}
/** The cap on attempts when maxAttempts is not given. */
export function defaultMaxAttempts(numSamples: number): number;
/** Whether `text` fully matches `pattern` as the runtime reads the subset; a bad pattern throws a PatternError. */
export function fullmatch(pattern: string, text: string): boolean;

/** The ModelProto's metadata_props (in file order), read from its bytes. */
export function readModel(bytes: Uint8Array): { irVersion: number; props: [string, string][] };
/** The model's description from its metadata_props; throws if they do not describe an mgpt step graph. */
export function modelInfo(pairs: [string, string][]): ModelInfo;
/** A seed (any integer) mod 2^64, as Python's `seed % 2**64`. */
export function seedBits(seed: Seed): bigint;
/** Reusable scratch arrays for drawOne over a vocabulary of `size` tokens. */
export class DrawScratch {
  constructor(size: number);
}
/** Sample `index`'s first `length` uniforms under `seed` (a bigint in [0, 2^64)). */
export function sampleUniforms(seed: bigint, index: number, length: number): Float64Array;
/** The sampling rule on row `row` of (B, V) logits with the uniform `u`. */
export function drawOne(logits: ArrayLike<number>, row: number, size: number, u: number, temperature: number,
  topK: number | null | undefined, topP: number | null | undefined, scratch: DrawScratch): number;
