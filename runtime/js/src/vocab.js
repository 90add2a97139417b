// The character vocabulary, as mgpt.runtime's vocab.py: id i is chars[i] (sorted by code point,
// distinct, one code point each) and bos = chars.length both starts and ends a document.

export class VocabError extends Error {
  name = 'VocabError';
}

export class Vocab {
  /** @param {readonly string[]} chars */
  constructor(chars) {
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
    Object.freeze(this);
  }

  get bos() { return this.chars.length; }

  get size() { return this.chars.length + 1; }

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
