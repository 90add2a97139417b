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
}

export interface GenerateOptions extends SampleOptions {
  /** How many samples (default 20). */
  numSamples?: number;
  /** Samples in flight at once (default 4096): memory stays bounded for any numSamples. */
  batchSize?: number;
}

export interface CharacterOptions extends SampleOptions {
  /** With a seed, the sample drawn is sample `index` of generate (default 0). */
  index?: number;
}

export class Vocab {
  constructor(chars: readonly string[]);
  /** Sorted by code point, distinct, one character each: id i is chars[i]. */
  readonly chars: readonly string[];
  /** The id that starts and ends a document: chars.length. */
  readonly bos: number;
  /** chars.length + 1. */
  readonly size: number;
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
  /** The checkpoint's training record. */
  readonly training: Record<string, unknown>;
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
  /** One sample, character by character as each is drawn (the prefix's first). */
  characters(options?: CharacterOptions): AsyncGenerator<string, void, undefined>;
  /** Mean negative log-likelihood (nats) per predicted token, framed as in training. */
  score(texts: string | Iterable<string> | AsyncIterable<string>, options?: { batchSize?: number }): Promise<number>;
  /** Frees onnxruntime's session. */
  release(): Promise<void>;
}

export const DEFAULT_BATCH_SIZE: number;
export const FORMAT: 'mgpt-step';
export const FORMAT_VERSION: number;

/** A model file that is missing, unreadable, or not an mgpt step graph; or a failure while running it. */
export class ModelError extends Error {}
export class VocabError extends Error {}

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
