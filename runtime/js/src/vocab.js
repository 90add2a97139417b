// The character vocabulary, as mgpt.runtime's vocab.py: id i is chars[i] (sorted by code point,
// distinct, one code point each) and bos = chars.length both starts and ends a document. A labeled
// model's label tokens follow BOS, group by group (docs/labels.md): size counts them, drawable
// (characters and BOS, the only tokens ever drawn or scored) does not.

export class VocabError extends Error {
  name = 'VocabError';
}

/** Why `label` cannot be a label, or null if it can: vocab.py's label_problem, word for word. */
export function labelProblem(label) {
  if (typeof label !== 'string' || label === '') return 'a label must be a non-empty string';
  const bad = Array.from(label).some((c) => c === ',' || c === '\t' || LINE_BREAKS.has(c) ||
    (c.length === 1 && c.charCodeAt(0) >= 0xd800 && c.charCodeAt(0) < 0xe000));
  if (bad) return `label ${pyRepr(label)} holds a comma, a tab, a line break or a lone surrogate`;
  if (label.trim() !== label) return `label ${pyRepr(label)} begins or ends with a space`;
  return null;
}

// Characters no line of text holds (Python's str.splitlines breaks at each).
export const LINE_BREAKS = new Set(['\n', '\r', '\v', '\f', '\x1c', '\x1d', '\x1e', '\x85', '\u2028', '\u2029']);

/** A string as Python's repr quotes it (in single quotes unless it holds one and no double quote). */
function pyRepr(text) {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  return quote + text.replaceAll('\\', '\\\\').replaceAll(quote, `\\${quote}`) + quote;
}

/** a < b by code points, as Python compares strings. */
function codeLess(a, b) {
  const x = Array.from(a, (c) => c.codePointAt(0)), y = Array.from(b, (c) => c.codePointAt(0));
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] < y[i];
  return x.length < y.length;
}

export class Vocab {
  /**
   * @param {readonly string[]} chars
   * @param {readonly (readonly string[])[]} [labels] a labeled model's label groups, each sorted
   */
  constructor(chars, labels = []) {
    if (!Array.isArray(chars)) throw new VocabError('the vocabulary must be a list of characters');
    if (chars.length === 0) throw new VocabError('the vocabulary is empty');
    if (chars.some((c) => typeof c !== 'string' || codePoints(c) !== 1)) {
      throw new VocabError('every vocabulary entry must be a single character');
    }
    for (let i = 1; i < chars.length; i++) {
      if (!(chars[i - 1].codePointAt(0) < chars[i].codePointAt(0))) {
        throw new VocabError('the vocabulary must be sorted and free of duplicates');
      }
    }
    /** @type {readonly string[]} */
    this.chars = Object.freeze([...chars]);
    this.ids = new Map(chars.map((c, i) => [c, i]));
    const flat = labels.flat();
    for (const label of flat) {
      const problem = labelProblem(label);
      if (problem) throw new VocabError(problem);
    }
    if (labels.some((g) => g.length === 0 || g.some((l, i) => i && !codeLess(g[i - 1], l))) || new Set(flat).size !== flat.length) {
      throw new VocabError('every label group must be non-empty and sorted, and no label may appear twice');
    }
    /** @type {readonly (readonly string[])[]} */
    this.labels = Object.freeze(labels.map((g) => Object.freeze([...g])));
    this.labelIds = new Map(flat.map((label, i) => [label, chars.length + 1 + i]));
    this.labelGroup = new Map(labels.flatMap((g, j) => g.map((label) => [label, j])));
    Object.freeze(this);
  }

  get bos() { return this.chars.length; }

  /** Tokens the model embeds (its vocab_size): characters, BOS and label tokens. */
  get size() { return this.chars.length + 1 + this.labelIds.size; }

  /** Tokens the model predicts (characters and BOS): logits past these are label tokens'. */
  get drawable() { return this.chars.length + 1; }

  /** The groups as one line, e.g. "F | M; 1880s | 1890s". */
  describeLabels() {
    return this.labels.length ? this.labels.map((g) => g.join(' | ')).join('; ') : 'none';
  }

  /**
   * The token ids of `labels` (one per group, in any order) in the groups' order, as vocab.py's
   * label_ids: a TypeError unless an array of strings, a RangeError for an unknown label, two of
   * one group or a group left out (one line listing the model's labels).
   * @param {readonly string[] | null | undefined} labels
   */
  labelTokens(labels) {
    if (!this.labels.length) {
      if (labels?.length) throw new RangeError(`labels ${JSON.stringify(labels)} were given but this model has no labels`);
      return [];
    }
    labels ??= [];
    if (!Array.isArray(labels)) {
      throw new TypeError(`labels must be an array of strings, one per group (${this.describeLabels()}), got ${typeof labels} ${JSON.stringify(labels)}`);
    }
    if (!labels.every((l) => typeof l === 'string')) throw new TypeError(`labels must be strings, got ${JSON.stringify(labels.map((l) => typeof l))}`);
    const unknown = labels.find((l) => !this.labelIds.has(l));
    if (unknown !== undefined) throw new RangeError(`unknown label ${pyRepr(unknown)}; this model's labels are ${this.describeLabels()}`);
    const chosen = new Map();
    for (const label of labels) {
      const g = this.labelGroup.get(label);
      if (chosen.has(g)) {
        throw new RangeError(`labels ${pyRepr(chosen.get(g))} and ${pyRepr(label)} are of one group; give one label from each group: ${this.describeLabels()}`);
      }
      chosen.set(g, label);
    }
    const missing = this.labels.findIndex((_, g) => !chosen.has(g));
    if (missing >= 0) {
      throw new RangeError(`this model needs one label from each group; none given from ${this.labels[missing].join(' | ')} ` +
        `(its labels are ${this.describeLabels()})`);
    }
    return this.labels.map((_, g) => this.labelIds.get(chosen.get(g)));
  }

  /** The distinct characters of `text` that have no id, in order of appearance. */
  missing(text) {
    return [...new Set(Array.from(text).filter((c) => !this.ids.has(c)))];
  }

  /** Character ids of `text` (no BOS added). */
  encode(text) {
    const unknown = this.missing(text);
    if (unknown.length) {
      throw new VocabError(`characters not in the vocabulary: ${JSON.stringify(unknown.slice(0, 10).join(''))}`);
    }
    return Array.from(text, (c) => this.ids.get(c));
  }

  /** [BOS, ...ids, BOS]: how a document is framed for training and scoring. */
  encodeDocument(text) {
    return [this.bos, ...this.encode(text), this.bos];
  }

  /** Characters of `ids`, skipping BOS. */
  decode(ids) {
    let text = '';
    for (const id of ids) if (id !== this.bos) text += this.chars[id];
    return text;
  }
}

/** The number of code points of a string (a lone surrogate counts as one, as in Python). */
export function codePoints(text) {
  let n = 0;
  for (const _ of text) n++;
  return n;
}
