// What an mgpt .onnx file says about itself: its input/output names and metadata_props, checked as
// mgpt.runtime's metadata.py checks them (every value a string; structured values are JSON).

import { Vocab, VocabError } from './vocab.js';

export const FORMAT = 'mgpt-step';
export const FORMAT_VERSION = 1;
export const TOKEN = 'token', POSITION = 'position', LOGITS = 'logits';

/** @param {number} layer */
export const pastNames = (layer) => [`past_key_values.${layer}.key`, `past_key_values.${layer}.value`];
/** @param {number} layer */
export const presentNames = (layer) => [`present.${layer}.key`, `present.${layer}.value`];

export class MetadataError extends Error {
  name = 'MetadataError';
}

const INTS = ['bos', 'vocab_size', 'block_size', 'n_layer', 'n_head', 'head_dim', 'n_embd'];
const MAX_SIZE = 2 ** 31 - 1; // past this no array of the model could be allocated anyway

/**
 * The model's description from its metadata_props, given as [key, value] pairs in file order.
 * @param {[string, string][]} pairs
 * @returns {import('../index.js').ModelInfo}
 */
export function modelInfo(pairs) {
  const props = new Map();
  for (const [key, value] of pairs) {
    if (props.has(key)) throw new MetadataError(`its metadata has the key ${JSON.stringify(key)} twice`);
    props.set(key, value);
  }
  if (props.get('format') !== FORMAT) {
    throw new MetadataError(`its metadata has no format ${JSON.stringify(FORMAT)}, so it was not written by mgpt-export`);
  }
  if (props.get('format_version') !== String(FORMAT_VERSION)) {
    throw new MetadataError(`its format version is ${JSON.stringify(props.get('format_version') ?? null)}; this ` +
      `runtime reads version ${FORMAT_VERSION}: re-export it with this mgpt`);
  }
  const ints = {};
  for (const name of INTS) {
    const value = props.get(name);
    if (value === undefined || !/^[0-9]+$/.test(value)) {
      throw new MetadataError(`its metadata is incomplete or malformed (${name} is ${JSON.stringify(value ?? null)}, ` +
        'expected a decimal integer)');
    }
    ints[name] = Number(value);
    if (ints[name] < 1 || ints[name] > MAX_SIZE) {
      throw new MetadataError(`its metadata has ${name} ${value}, outside 1..${MAX_SIZE}`);
    }
  }
  let vocab, training;
  try {
    vocab = new Vocab(JSON.parse(props.get('vocab') ?? 'null'));
    training = JSON.parse(props.get('training') || '{}');
  } catch (e) {
    if (!(e instanceof SyntaxError || e instanceof VocabError)) throw e;
    throw new MetadataError(`its metadata is incomplete or malformed (${e.name}: ${e.message})`);
  }
  const info = Object.freeze({
    vocab,
    blockSize: ints.block_size,
    nLayer: ints.n_layer,
    nHead: ints.n_head,
    headDim: ints.head_dim,
    nEmbd: ints.n_head * ints.head_dim,
    bos: vocab.bos,
    vocabSize: vocab.size,
    training: training !== null && typeof training === 'object' && !Array.isArray(training) ? training : {},
    producer: props.get('producer') ?? '',
  });
  if (ints.bos !== info.bos || ints.vocab_size !== info.vocabSize || ints.n_embd !== info.nEmbd) {
    throw new MetadataError('its metadata disagrees with itself (bos, vocab_size or n_embd vs the vocabulary and heads)');
  }
  return info;
}
