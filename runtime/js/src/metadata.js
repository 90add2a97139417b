// What an mgpt .onnx file says about itself: its input/output names and metadata_props, checked as
// mgpt.runtime's metadata.py checks them (every value a string; structured values are JSON).

import { LINE_BREAKS, Vocab, VocabError } from './vocab.js';

export const FORMAT = 'mgpt-step';
export const FORMAT_VERSION = 1;
export const LABELED_VERSION = 2; // a model with label tokens (docs/labels.md): key "labels"
export const TOKEN = 'token', POSITION = 'position', LOGITS = 'logits';

/** @param {number} layer */
export const pastNames = (layer) => [`past_key_values.${layer}.key`, `past_key_values.${layer}.value`];
/** @param {number} layer */
export const presentNames = (layer) => [`present.${layer}.key`, `present.${layer}.value`];

export class MetadataError extends Error {
  name = 'MetadataError';
}

const SHOWN = 60; // characters of a file's text quoted in a message: a hostile file's may be megabytes

/** `text` from a file as a message quotes it: JSON-quoted, cut to SHOWN characters. */
export function quoted(text) {
  return JSON.stringify(text.length <= SHOWN ? text : `${text.slice(0, SHOWN - 1)}…`);
}

/** An integer with thousands separators, as Python's f"{n:,}" writes it. */
export const grouped = (n) => n.toLocaleString('en');

const INTS = ['bos', 'vocab_size', 'block_size', 'n_layer', 'n_head', 'head_dim', 'n_embd'];
const DIGITS = /^[0-9]{1,12}$/; // plain decimal, as mgpt.runtime reads them

// NaN, Infinity or -Infinity standing as a value (after every string is emptied): JSON.parse refuses
// them with a message about an unexpected token; Python's json writes and reads them by default
const BARE_CONSTANT = /(?:^|[\s,:[])(-?(?:NaN|Infinity))(?=[\s,\]}]|$)/;

/** JSON.parse that refuses an object repeating a key (JSON.parse would keep the last silently), and
 * says so, as metadata.py does, when the text holds NaN or Infinity. */
export function strictJson(text) {
  let value;
  try {
    value = JSON.parse(text); // the syntax first: the scan below may then assume valid JSON
  } catch (e) {
    const constant = text.replace(/"(?:[^"\\]|\\.)*"/g, '""').match(BARE_CONSTANT);
    if (constant) throw new SyntaxError(`${constant[1]} is not standard JSON; re-export the model with this mgpt, which writes it as null`);
    throw e;
  }
  const open = []; // per open container: its keys for an object, null for an array
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') open.push(new Set());
    else if (c === '[') open.push(null);
    else if (c === '}' || c === ']') open.pop();
    else if (c === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      let next = end + 1;
      while (' \t\n\r'.includes(text[next])) next++;
      const keys = open.at(-1);
      if (keys && text[next] === ':') { // a key, not a value
        const key = JSON.parse(text.slice(i, end + 1));
        if (keys.has(key)) throw new SyntaxError(`a JSON object repeats a key (${quoted(key)})`);
        keys.add(key);
      }
      i = end;
    }
  }
  return value;
}

/**
 * The model's description from its metadata_props, given as [key, value] pairs in file order.
 * @param {[string, string][]} pairs
 * @returns {import('../index.js').ModelInfo}
 */
export function modelInfo(pairs) {
  const props = new Map();
  for (const [key, value] of pairs) {
    if (props.has(key)) throw new MetadataError(`its metadata repeats the key ${quoted(key)}`);
    props.set(key, value);
  }
  if (props.get('format') !== FORMAT) {
    throw new MetadataError(`its metadata has no format ${JSON.stringify(FORMAT)}, so it was not written by mgpt-export`);
  }
  const version = props.get('format_version');
  if (version !== String(FORMAT_VERSION) && version !== String(LABELED_VERSION)) {
    throw new MetadataError(`its format version is ${version === undefined ? 'missing' : quoted(version)}; this ` +
      `runtime reads versions ${FORMAT_VERSION} and ${LABELED_VERSION}: re-export it with this mgpt`);
  }
  const labeled = version === String(LABELED_VERSION);
  if (labeled !== props.has('labels')) {
    throw new MetadataError(`its metadata is malformed: format version ${version} ${labeled ? 'needs' : 'cannot have'} a labels entry`);
  }
  const ints = {};
  let vocab, training;
  try {
    for (const name of INTS) {
      const value = props.get(name);
      if (value === undefined) throw new SyntaxError(`${name} is missing`);
      if (!DIGITS.test(value)) throw new SyntaxError(`${name} is ${quoted(value)}, not a plain positive integer`);
      ints[name] = Number(value);
    }
    if (!props.has('vocab')) throw new SyntaxError('vocab is missing');
    const chars = strictJson(props.get('vocab'));
    if (!Array.isArray(chars)) throw new SyntaxError('vocab is not a JSON list');
    const groups = strictJson(props.get('labels') ?? '[]');
    if (!Array.isArray(groups) || !groups.every(Array.isArray) || (labeled && !groups.length)) {
      throw new SyntaxError('labels is not a non-empty JSON list of lists');
    }
    vocab = new Vocab(chars, groups);
    training = strictJson(props.get('training') || '{}');
  } catch (e) {
    if (!(e instanceof SyntaxError || e instanceof VocabError)) throw e;
    throw new MetadataError(`its metadata is incomplete or malformed (${e.name}: ${e.message})`);
  }
  if (vocab.chars.some((c) => LINE_BREAKS.has(c) || (c.codePointAt(0) >= 0xd800 && c.codePointAt(0) < 0xe000))) {
    throw new MetadataError('its vocabulary holds a line break or a lone surrogate, which no document can');
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
    /** The tokens drawn and scored (characters and BOS): the logits' first columns; past them a
     * labeled model's label tokens, fed after BOS and never drawn. */
    drawable: vocab.drawable,
    training: training !== null && typeof training === 'object' && !Array.isArray(training) ? training : {},
    producer: props.get('producer') ?? '',
    /** The novelty filter's JSON (the training data's documents, for `novel`), read only when `novel`
     * asks for it (novelty.js); null if the file has none, as files from before it. */
    noveltyText: props.get('novelty') ?? null,
  });
  if (ints.bos !== info.bos || ints.vocab_size !== info.vocabSize || ints.n_embd !== info.nEmbd) {
    throw new MetadataError('its metadata disagrees with itself (bos, vocab_size or n_embd vs the vocabulary and heads)');
  }
  if (Math.min(...Object.values(ints)) < 1) throw new MetadataError('its metadata has a non-positive size');
  return info;
}

/**
 * Throws a MetadataError when the sizes declared cannot be held by a file of `fileSize` bytes: its
 * float32 tables (the embeddings, the positions and lm_head) and each layer's weights, so a 23 kB
 * file cannot declare 10^9 positions or layers and make the loading check run or allocate for ever.
 */
export function checkSizes(info, fileSize) {
  const C = info.nEmbd, V = info.vocabSize;
  const floats = (2 * V + info.blockSize) * C + info.nLayer * 12 * C * C;
  if (4 * floats > fileSize) {
    const n = grouped;
    throw new MetadataError(`its metadata declares sizes (block_size ${n(info.blockSize)}, n_layer ${n(info.nLayer)}, ` +
      `n_embd ${n(C)}, vocab_size ${n(V)}) whose weights need ${n(4 * floats)} bytes, more than the file's ${n(fileSize)}`);
  }
}
