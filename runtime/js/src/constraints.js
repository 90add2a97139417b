// Shape controls (pattern, suffix, contains, minLength, with the prefix and maxLength): one
// character automaton, and from it the mask of each step, as mgpt.runtime's constraints.py makes
// them (docs/sampling-controls.md states the rule; the two agree by the shared table of patterns).
//
// 1. The pattern, a documented subset of regular expressions, is parsed here by a small parser of
//    that subset alone (the same walk as Python's over its parser's tree), into a tree of character
//    sets, concatenations, alternations and repeats.
// 2. The tree becomes an NFA over the model's characters (ids 0..C-1, C = V - 1: never BOS), and the
//    NFA a DFA by subset construction, its states paired with the suffix's and contains' progress
//    (each a literal string, followed by its KMP automaton): one product DFA.
// 3. ok[s][n]: from state s with n characters so far, an accepted sample of length in [minLength,
//    maxLength] is reachable. A character c is allowed iff ok[delta[s][c]][n + 1]; BOS iff s accepts
//    and n >= minLength.

import { typed } from './sampling.js';

/** The most DFA states a combination may need: over it, one line "pattern too complex". */
export const MAX_STATES = 100_000;

/** A pattern outside the subset, malformed, too complex, or a combination no sample can meet: a
 * RangeError (the JavaScript runtime's error for a bad value), with one line saying what to change. */
export class PatternError extends RangeError {
  name = 'PatternError';
}

// ----------------------------------------------------------------------------- 1. the parser

const META = new Set('\\.[](){}|*+?^$');
const CLASS_ESCAPES = new Set([...META, '-']); // inside [...] a backslash may also escape '-'
const MAX_PATTERN = 1000; // characters (code points) of a pattern
const MAX_REPEAT = 4294967295; // a repeat count from here up is refused, as Python's parser refuses it
const DOC = 'see docs/sampling-controls.md';

/**
 * The tree of `pattern`: {type: 'set', chars, negate} (a literal is a set of one; `.` the empty set
 * negated), {type: 'cat', items}, {type: 'alt', items}, {type: 'repeat', item, min, max} (max
 * Infinity for no bound). Characters are code points. Anything outside the subset is refused with
 * a one-line PatternError naming the construct and what to write instead; the refusals are
 * Python's (constraints.py: its lexical scan, then its parser's own errors), checked by the shared
 * table tests/sampling_patterns.json.
 * @param {string} pattern
 */
export function parsePattern(pattern) {
  const chars = Array.from(pattern);
  if (chars.length > MAX_PATTERN) {
    throw new PatternError(`pattern has ${chars.length.toLocaleString('en')} characters; the limit is ${MAX_PATTERN.toLocaleString('en')}`);
  }
  let at = 0;
  const fail = (what) => {
    throw new PatternError(`pattern ${quote(pattern)} ${what}`);
  };

  function alternation() {
    const items = [sequence()];
    while (chars[at] === '|') {
      at++;
      items.push(sequence());
    }
    return items.length === 1 ? items[0] : { type: 'alt', items };
  }

  function sequence() {
    const items = [];
    while (at < chars.length && chars[at] !== '|' && chars[at] !== ')') {
      let item = atom();
      if (at < chars.length && '*+?{'.includes(chars[at])) item = quantified(item);
      if (at < chars.length && '*+?{'.includes(chars[at])) {
        if (chars[at] === '?') fail('has a lazy quantifier (*? +? ?? {m,n}?); in a whole-sample match it means the same as the greedy one: drop the \'?\'');
        if (chars[at] === '+') fail(`has a possessive quantifier (*+ ++ ?+), which is not in the subset; ${DOC}`);
        fail('is not a valid regular expression (multiple repeat)');
      }
      items.push(item);
    }
    return items.length === 1 ? items[0] : { type: 'cat', items };
  }

  function quantified(item) {
    let min, max;
    const c = chars[at++];
    if (c === '*') [min, max] = [0, Infinity];
    else if (c === '+') [min, max] = [1, Infinity];
    else if (c === '?') [min, max] = [0, 1];
    else {
      const close = chars.indexOf('}', at);
      const body = close < 0 ? null : chars.slice(at, close).join('');
      const m = body === null ? null : /^([0-9]+)(,([0-9]*))?$/.exec(body);
      if (!m) fail('has a \'{\' that does not begin a quantifier {m}, {m,} or {m,n}; write \\{ for the character');
      at = close + 1;
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      if (min >= MAX_REPEAT || (max !== Infinity && max >= MAX_REPEAT)) fail('is not a valid regular expression (the repetition number is too large)');
      if (max < min) fail('is not a valid regular expression (min repeat greater than max repeat)');
    }
    return { type: 'repeat', item, min, max };
  }

  function atom() {
    const c = chars[at];
    if (c === '(') {
      at++;
      if (chars[at] === '?') {
        if (chars[at + 1] !== ':') fail(`has '(?' other than '(?:': lookaround, named groups, comments and inline flags are not in the subset; ${DOC}`);
        at += 2;
      }
      const inner = alternation();
      if (chars[at] !== ')') fail('is not a valid regular expression (missing ), unterminated subpattern)');
      at++;
      return inner;
    }
    if (c === '[') return characterClass();
    if (c === '.') {
      at++;
      return { type: 'set', chars: new Set(), negate: true };
    }
    if (c === '\\') return { type: 'set', chars: new Set([escaped(META)]), negate: false };
    if (c === '^' || c === '$') fail('has ^, $ or another anchor: the pattern always matches the whole sample, so drop it');
    if (c === '{') {
      if (!/^\{[0-9]+(,[0-9]*)?\}/.test(chars.slice(at, at + 30).join(''))) {
        fail('has a \'{\' that does not begin a quantifier {m}, {m,} or {m,n}; write \\{ for the character');
      }
      fail('is not a valid regular expression (nothing to repeat)');
    }
    if ('*+?'.includes(c)) fail('is not a valid regular expression (nothing to repeat)');
    if (c === ']' || c === '}') fail(`has an unescaped '${c}'; write \\${c}`);
    at++;
    return { type: 'set', chars: new Set([c]), negate: false };
  }

  /** The character after a backslash, if it is one that may be escaped in this context. */
  function escaped(allowed) {
    const c = chars[at + 1];
    if (c === undefined) fail('ends with a lone backslash; write \\\\ for a backslash');
    if (!allowed.has(c)) {
      if (/^[0-9]$/u.test(c) || /^\p{Nd}$/u.test(c)) fail(`has \\${c}: backreferences are not in the subset; ${DOC}`);
      if (/^\p{L}$/u.test(c)) fail(`has \\${c}: character classes, anchors and escapes such as \\d \\w \\s \\b \\n are not in the subset (write [0-9] and the like); ${DOC}`);
      fail(`escapes ${quote(c)}, which is not a metacharacter; write it without the backslash`);
    }
    at += 2;
    return c;
  }

  function characterClass() {
    at++;
    const set = new Set();
    let negate = false;
    if (chars[at] === '^') {
      negate = true;
      at++;
    }
    if (chars[at] === ']') fail('has \']\' first in a class, which JavaScript reads as an empty class; write \\]');
    const member = () => {
      const c = chars[at];
      if (c === undefined) fail('is not a valid regular expression (unterminated character set)');
      if (c === '\\') return escaped(CLASS_ESCAPES);
      if (c === '[') fail('has an unescaped \'[\' inside a class; write \\[');
      if ('-&~|'.includes(c) && chars[at + 1] === c) fail(`has ${quote(c + c)} inside a class, which JavaScript reads as set syntax; escape one of them`);
      at++;
      return c;
    };
    while (chars[at] !== ']') {
      const low = member();
      if (chars[at] === '-' && chars[at + 1] !== ']' && chars[at + 1] !== undefined) {
        at++;
        const high = member();
        const [a, b] = [low.codePointAt(0), high.codePointAt(0)];
        if (b < a) fail(`is not a valid regular expression (bad character range ${low}-${high})`);
        set.add([a, b]);
      } else {
        set.add(low);
      }
    }
    at++;
    return { type: 'set', chars: set, negate };
  }

  const tree = alternation();
  if (at < chars.length) fail('is not a valid regular expression (unbalanced parenthesis)');
  return tree;
}

/** A pattern or a string as a message shows it: JSON-quoted, cut to 60 characters. */
function quote(text) {
  const chars = Array.from(text);
  return JSON.stringify(chars.length <= 60 ? text : `${chars.slice(0, 59).join('')}…`);
}

// ----------------------------------------------------------------------------- 2. NFA, then the product DFA

const MAX_NFA_STATES = 200_000; // after counted repeats are expanded
const MAX_TRANSITIONS = 10_000_000; // DFA states x characters

class TooComplex extends Error {}

/** The fewest characters `t` matches (null: nothing), characters outside the vocabulary not
 * known here (a lower bound, used only for clipping repeats, as Python's _shortest). */
function shortest(t) {
  if (t.type === 'set') return 1;
  if (t.type === 'cat') {
    let total = 0;
    for (const item of t.items) {
      const s = shortest(item);
      if (s === null) return null;
      total += s;
    }
    return total;
  }
  if (t.type === 'alt') {
    const options = t.items.map(shortest).filter((s) => s !== null);
    return options.length ? Math.min(...options) : null;
  }
  if (t.min === 0) return 0;
  const s = shortest(t.item);
  return s === null ? null : t.min * s;
}

/** The NFA of `tree` over character ids 0..C-1 (`ids` maps a character to its id; `chars` the
 * vocabulary): nodes with epsilon moves (`eps`) and character moves (`moves`: [ids, target]).
 * Repeat bounds above `longest` (the longest sample) are clipped as Python clips them: a repeat
 * whose copies cannot fit matches nothing; otherwise x{m,n} holds the same strings of at most
 * `longest` characters as with m and n clipped to `longest`. */
function buildNfa(tree, chars, ids, longest) {
  const eps = [], moves = [];
  const node = () => {
    if (eps.length >= MAX_NFA_STATES) throw new TooComplex();
    eps.push([]);
    moves.push([]);
    return eps.length - 1;
  };
  const setIds = (t) => {
    const has = (c) => {
      if (t.chars.has(c)) return true;
      const x = c.codePointAt(0);
      for (const m of t.chars) if (typeof m !== 'string' && m[0] <= x && x <= m[1]) return true;
      return false;
    };
    const out = [];
    chars.forEach((c, i) => { if (has(c) !== t.negate) out.push(i); });
    return out;
  };
  // the fragment of t from node a to node b
  const build = (t, a, b) => {
    if (t.type === 'set') {
      const set = setIds(t);
      if (set.length) moves[a].push([set, b]);
    } else if (t.type === 'alt') {
      for (const item of t.items) build(item, a, b);
    } else if (t.type === 'cat') {
      if (t.items.length === 0) eps[a].push(b);
      let from = a;
      t.items.forEach((item, i) => {
        const to = i === t.items.length - 1 ? b : node();
        build(item, from, to);
        from = to;
      });
    } else {
      const s = shortest(t.item);
      if (s === null || (t.min && s * t.min > longest)) {
        if (!t.min) eps[a].push(b); // x{0,...} with x impossible: only the empty string
        return; // no copy fits: nothing matches
      }
      const min = Math.min(t.min, longest), max = t.max === Infinity ? Infinity : Math.max(min, Math.min(t.max, longest));
      let from = a;
      for (let i = 0; i < min; i++) {
        const to = node();
        build(t.item, from, to);
        from = to;
      }
      if (max === Infinity) { // a loop: from --item--> from
        const loop = node();
        eps[from].push(loop);
        build(t.item, loop, loop);
        eps[loop].push(b);
      } else {
        for (let i = min; i < max; i++) { // optional copies, each may end the repeat
          eps[from].push(b);
          const to = node();
          build(t.item, from, to);
          from = to;
        }
        eps[from].push(b);
      }
    }
  };
  const start = node(), accept = node();
  build(tree, start, accept);
  return { eps, moves, start, accept };
}

/** The KMP automaton of literal `ids` (a string as character ids) over C characters: next[k * C + c]
 * is the length of the longest prefix of ids that ends the text read, k that length before c.
 * State ids.length is the whole string; `absorb` keeps it there (contains), else it continues
 * matching (suffix: the last characters must be the string). */
function kmp(ids, C, absorb) {
  const n = ids.length, next = new Int32Array((n + 1) * C);
  const fail = new Int32Array(n + 1); // fail[k]: the longest proper border of ids[0..k)
  for (let k = 1, b = 0; k < n; k++) {
    while (b > 0 && ids[k] !== ids[b]) b = fail[b];
    if (ids[k] === ids[b]) b++;
    fail[k + 1] = b;
  }
  for (let k = 0; k <= n; k++) {
    for (let c = 0; c < C; c++) {
      if (k === n && absorb) next[k * C + c] = n;
      else if (k < n && ids[k] === c) next[k * C + c] = k + 1;
      else next[k * C + c] = k === 0 ? 0 : next[fail[k] * C + c];
    }
  }
  return next;
}

/**
 * The shape controls compiled for one model: the product DFA (`delta`, `accepting`; state 0 is
 * dead), the `ok` table and the start state after the prefix. `chars` is the vocabulary (ids
 * 0..C-1); the options are checked ones: pattern (string or null), suffix, contains (strings, ''
 * for none, with characters of the vocabulary only), minLength, maxLength (the longest sample,
 * prefix included), prefix (characters of the vocabulary). Only states reachable from the prefix
 * within maxLength characters are built, as in Python, so that the limits agree.
 */
export class Shape {
  constructor(chars, { pattern = null, suffix = '', contains = '', minLength = 0, maxLength, prefix = '' }) {
    const C = chars.length, ids = new Map(chars.map((c, i) => [c, i]));
    this.C = C;
    this.ids = ids;
    this.minLength = minLength;
    this.maxLength = maxLength;
    this.prefix = prefix;
    this.startLength = Array.from(prefix).length;
    const tree = pattern === null ? { type: 'repeat', item: { type: 'set', chars: new Set(), negate: true }, min: 0, max: Infinity }
      : parsePattern(pattern);
    const encode = (text) => Array.from(text, (c) => ids.get(c));
    try {
      if ((C + 1) * 2 > MAX_TRANSITIONS) throw new TooComplex();
      this.#build(buildNfa(tree, chars, ids, maxLength), encode(suffix), encode(contains), encode(prefix));
    } catch (e) {
      if (!(e instanceof TooComplex)) throw e;
      throw new PatternError(`${pattern !== null ? `pattern ${quote(pattern)}` : 'the controls'} is too complex: its automaton needs more than ` +
        `${MAX_STATES.toLocaleString('en')} states (${MAX_NFA_STATES.toLocaleString('en')} before determinizing, ` +
        `${MAX_TRANSITIONS.toLocaleString('en')} transitions); simplify it`);
    }
    this.#okTable();
    this.satisfiable = this.ok[this.start * this.L1 + this.startLength] === 1;
    this.masks = new Map(); // (state, n) -> allowed tokens, made on first use
  }

  /** Subset construction from the state after the prefix, breadth first to depth maxLength, each
   * subset (of the NFA nodes that have moves, or accept) paired with the suffix's and contains'
   * KMP states. */
  #build(nfa, sufIds, conIds, prefixIds) {
    const C = this.C, { eps, moves, accept } = nfa;
    const suf = kmp(sufIds, C, false), con = kmp(conIds, C, true);
    const closure = (seeds) => {
      const seen = new Set(seeds), stack = [...seeds];
      while (stack.length) for (const t of eps[stack.pop()]) if (!seen.has(t)) { seen.add(t); stack.push(t); }
      return [...seen].filter((x) => moves[x].length || x === accept).sort((a, b) => a - b);
    };
    /** @typedef {[number[], number, number]} Key a product state: NFA nodes, suffix state, contains state */
    /** @type {(key: Key, c: number) => Key | null} the product state after character c; null is dead */
    const step = ([nodes, a, b], c) => {
      const targets = [];
      for (const x of nodes) for (const [set, target] of moves[x]) if (set.includes(c)) targets.push(target);
      return targets.length ? [closure(targets), suf[a * C + c], con[b * C + c]] : null;
    };
    /** @type {Key | null} */
    let key = [closure([nfa.start]), 0, 0];
    for (const c of prefixIds) { // the prefix's path: only its own transitions are needed
      key = step(key, c);
      if (key === null) break;
    }
    const name = (/** @type {Key} */ [nodes, a, b]) => `${nodes.join(',')}|${a}|${b}`;
    /** @type {(Key | null)[]} */
    const keys = [null];
    const depth = [0], number = new Map();
    if (key !== null) {
      number.set(name(key), 1);
      keys.push(key);
      depth.push(this.startLength);
    }
    const rows = [new Int32Array(C)]; // the dead state's: dead
    const buckets = Array.from({ length: C }, () => []);
    for (let i = 1; i < keys.length; i++) {
      const row = new Int32Array(C);
      if (depth[i] < this.maxLength) {
        const [nodes, a, b] = /** @type {Key} */ (keys[i]);
        for (const bucket of buckets) bucket.length = 0;
        for (const x of nodes) for (const [set, target] of moves[x]) for (const c of set) buckets[c].push(target);
        const closed = new Map(); // the same targets, the same closure
        for (let c = 0; c < C; c++) {
          if (!buckets[c].length) continue;
          const signature = buckets[c].join(',');
          let nodes2 = closed.get(signature);
          if (nodes2 === undefined) closed.set(signature, nodes2 = closure(buckets[c]));
          /** @type {Key} */
          const next = [nodes2, suf[a * C + c], con[b * C + c]];
          const n = name(next);
          let j = number.get(n);
          if (j === undefined) {
            j = keys.length;
            if (j >= MAX_STATES || j * C > MAX_TRANSITIONS) throw new TooComplex();
            number.set(n, j);
            keys.push(next);
            depth.push(depth[i] + 1);
          }
          row[c] = j;
        }
      }
      rows.push(row);
    }
    this.size = keys.length;
    this.delta = new Int32Array(this.size * C);
    rows.forEach((row, s) => this.delta.set(row, s * C));
    this.accepting = Uint8Array.from(keys, (k) => (k !== null && k[0].includes(accept) && k[1] === sufIds.length && k[2] === conIds.length ? 1 : 0));
    this.start = keys.length > 1 ? 1 : 0; // the state after the prefix
  }

  /** ok[s * L1 + n], n = 0..maxLength: an accepting state is reachable from s at a length in
   * [minLength, maxLength], n characters so far. Filled from the longest length down. */
  #okTable() {
    const { C, size, delta, accepting, minLength, maxLength } = this;
    const L1 = this.L1 = maxLength + 1;
    const ok = this.ok = new Uint8Array(size * L1);
    for (let n = maxLength; n >= 0; n--) {
      for (let s = 1; s < size; s++) {
        let yes = accepting[s] === 1 && n >= minLength;
        if (!yes && n < maxLength) for (let c = 0, base = s * C; c < C && !yes; c++) yes = ok[delta[base + c] * L1 + n + 1] === 1;
        ok[s * L1 + n] = yes ? 1 : 0;
      }
    }
  }

  /** The tokens allowed in state s with n characters so far: a Uint8Array of V = C + 1 flags (BOS
   * last), and whether all are allowed (then no mask is applied). Made once per (s, n). */
  allowed(s, n) {
    const key = s * this.L1 + n;
    let mask = this.masks.get(key);
    if (mask === undefined) {
      const { C, delta, ok, L1 } = this;
      const flags = new Uint8Array(C + 1);
      let count = 0;
      if (n < this.maxLength) for (let c = 0; c < C; c++) count += flags[c] = ok[delta[s * C + c] * L1 + n + 1];
      count += flags[C] = this.accepting[s] === 1 && n >= this.minLength ? 1 : 0;
      mask = { flags, all: count === C + 1 };
      this.masks.set(key, mask);
    }
    return mask;
  }

  /** The state after character id c from state s. */
  next(s, c) {
    return this.delta[s * this.C + c];
  }

  /** Whether `text` (the whole sample, prefix included) meets every shape control. */
  accepts(text) {
    const chars = Array.from(text), P = this.startLength;
    if (chars.length < this.minLength || chars.length > this.maxLength || chars.slice(0, P).join('') !== this.prefix) return false;
    let s = this.start;
    for (const ch of chars.slice(P)) {
      const c = this.ids.get(ch);
      if (c === undefined) return false;
      s = this.delta[s * this.C + c];
    }
    return s !== 0 && this.accepting[s] === 1;
  }
}

/** Whether `text` fully matches `pattern` as the subset reads it, over the vocabulary `chars`
 * (default: the characters of both) for samples of at most `maxLength` characters. */
export function fullmatch(pattern, text, chars = null, maxLength = null) {
  chars ??= [...new Set([...Array.from(text), ...Array.from(pattern)])].sort((a, b) => a.codePointAt(0) - b.codePointAt(0));
  const shape = new Shape(chars, { pattern, maxLength: maxLength ?? Math.max(Array.from(text).length, 1) });
  return shape.accepts(text);
}

/** Throws unless `value` is a string (TypeError) or, when nullable, null. */
export function checkText(name, value, nullable = false) {
  if (nullable && value === null) return;
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string${nullable ? ' or null' : ''}, got ${typed(value)}`);
}
