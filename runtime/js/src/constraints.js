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

import { show, typed } from './sampling.js';

/** The most DFA states a combination may need: over it, one line "pattern too complex". */
export const MAX_STATES = 100_000;
/** The most NFA nodes a pattern may expand to (repeats copy their operand). */
const MAX_NODES = 200_000;

/** A pattern outside the subset, malformed, too complex, or a combination no sample can meet: a
 * RangeError (the JavaScript runtime's error for a bad value), with one line saying what to change. */
export class PatternError extends RangeError {
  name = 'PatternError';
}

// ----------------------------------------------------------------------------- 1. the parser

const META = new Set('\\.[](){}|*+?^$');
const CLASS_ESCAPES = new Set(']\\^-');

/**
 * The tree of `pattern`: {type: 'set', chars, negate} (a literal is a set of one; `.` the empty set
 * negated), {type: 'cat', items}, {type: 'alt', items}, {type: 'repeat', item, min, max} (max
 * Infinity for no bound). Characters are code points. Anything outside the subset is refused with
 * a PatternError naming the construct, its position (in code points) and what to write instead.
 * @param {string} pattern
 */
export function parsePattern(pattern) {
  const chars = Array.from(pattern);
  let at = 0;
  const fail = (what, where = at) => {
    throw new PatternError(`pattern ${show(pattern)}: ${what} at position ${where}`);
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
      if (at < chars.length && '*+?{'.includes(chars[at])) fail('a quantifier after a quantifier (nothing to repeat; group it first)');
      items.push(item);
    }
    return items.length === 1 ? items[0] : { type: 'cat', items };
  }

  function quantified(item) {
    const from = at;
    let min, max;
    const c = chars[at++];
    if (c === '*') [min, max] = [0, Infinity];
    else if (c === '+') [min, max] = [1, Infinity];
    else if (c === '?') [min, max] = [0, 1];
    else {
      const close = chars.indexOf('}', at);
      const body = close < 0 ? null : chars.slice(at, close).join('');
      const m = body === null ? null : /^([0-9]+)(,([0-9]*))?$/.exec(body);
      if (!m) fail('"{" that is not a quantifier {m}, {m,} or {m,n} (write \\{ for the character)', from);
      at = close + 1;
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      if (max < min) fail(`the quantifier {${body}} has its maximum below its minimum`, from);
    }
    if (chars[at] === '?' || chars[at] === '+') {
      fail(`a ${chars[at] === '?' ? 'lazy' : 'possessive'} quantifier (the whole sample always matches, so write it without "${chars[at]}")`);
    }
    return { type: 'repeat', item, min, max };
  }

  function atom() {
    const c = chars[at];
    if (c === '(') {
      const from = at++;
      if (chars[at] === '?') {
        if (chars[at + 1] !== ':') fail('a group "(?" other than "(?:" (lookaround, named groups and inline flags are not in the subset)');
        at += 2;
      }
      const inner = alternation();
      if (chars[at] !== ')') fail('an unclosed group', from);
      at++;
      return inner;
    }
    if (c === '[') return characterClass();
    if (c === '.') {
      at++;
      return { type: 'set', chars: new Set(), negate: true };
    }
    if (c === '\\') return { type: 'set', chars: new Set([escaped(META)]), negate: false };
    if (c === '^' || c === '$') fail(`"${c}" (the whole sample always matches, so anchors are not needed; write \\${c} for the character)`);
    if ('*+?{'.includes(c)) fail(`a quantifier "${c}" with nothing to repeat`);
    if (META.has(c)) fail(`an unescaped "${c}" (write \\${c} for the character)`);
    at++;
    return { type: 'set', chars: new Set([c]), negate: false };
  }

  /** The character after a backslash, if it is one that may be escaped in this context. */
  function escaped(allowed) {
    const c = chars[at + 1];
    if (c === undefined) fail('a trailing backslash');
    if (!allowed.has(c)) {
      if (/[0-9]/.test(c)) fail(`a backreference "\\${c}"`);
      fail(`the escape "\\${c}" (only metacharacters are escaped; classes like \\d, \\w, \\s mean different things ` +
        'in Python and JavaScript: write a class such as [0-9])');
    }
    at += 2;
    return c;
  }

  function characterClass() {
    const from = at++;
    const set = new Set();
    let negate = false;
    if (chars[at] === '^') {
      negate = true;
      at++;
    }
    if (chars[at] === ']') fail('an empty class "[]" (write \\] for the character)');
    const member = () => {
      const c = chars[at];
      if (c === undefined) fail('an unclosed class', from);
      if (c === '\\') return escaped(CLASS_ESCAPES);
      if (c === '[') fail('an unescaped "[" inside a class (write \\[ ... or list it last: nested classes are not in the subset)');
      at++;
      return c;
    };
    while (chars[at] !== ']') {
      const low = member();
      if (chars[at] === '-' && chars[at + 1] !== ']' && chars[at + 1] !== undefined) {
        const dash = at++;
        const high = member();
        const [a, b] = [low.codePointAt(0), high.codePointAt(0)];
        if (b < a) fail(`the range ${low}-${high} runs backwards`, dash);
        for (let x = a; x <= b; x++) set.add(String.fromCodePoint(x));
      } else {
        set.add(low);
      }
    }
    at++;
    return { type: 'set', chars: set, negate };
  }

  const tree = alternation();
  if (at < chars.length) fail('an unmatched ")"');
  return tree;
}

// ----------------------------------------------------------------------------- 2. NFA, then the product DFA

/** The NFA of `tree` over character ids 0..C-1 (`ids` maps a character to its id): nodes with
 * epsilon moves (`eps`) and character moves (`moves`: [ids, target]); start node 0, accept node 1.
 * Repeat bounds above `clip` are clipped to it (clip = the longest sample + 1 keeps the language of
 * every string up to the longest sample: longer strings are never drawn). */
function buildNfa(tree, ids, C, clip) {
  const eps = [], moves = [];
  const node = () => {
    if (eps.length >= MAX_NODES) throw new PatternError(`pattern too complex: its repeats expand past ${MAX_NODES.toLocaleString('en')} nodes`);
    eps.push([]);
    moves.push([]);
    return eps.length - 1;
  };
  const start = node(), accept = node();
  const setIds = (t) => {
    if (!t.negate) return [...t.chars].map((c) => ids.get(c)).filter((i) => i !== undefined).sort((a, b) => a - b);
    const out = [];
    for (const [c, i] of ids) if (!t.chars.has(c)) out.push(i);
    return out.sort((a, b) => a - b);
  };
  // the fragment of t from node a to node b
  const build = (t, a, b) => {
    if (t.type === 'set') moves[a].push([setIds(t), b]);
    else if (t.type === 'alt') for (const item of t.items) build(item, a, b);
    else if (t.type === 'cat') {
      if (t.items.length === 0) eps[a].push(b);
      let from = a;
      t.items.forEach((item, i) => {
        const to = i === t.items.length - 1 ? b : node();
        build(item, from, to);
        from = to;
      });
    } else {
      const min = Math.min(t.min, clip), max = Math.min(t.max, clip);
      let from = a;
      for (let i = 0; i < min; i++) {
        const to = node();
        build(t.item, from, to);
        from = to;
      }
      if (t.max === Infinity) { // a loop: from --item--> from
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
 * The shape controls compiled for one model: the product DFA (`delta`, `accepting`), the `ok`
 * table and the start state after the prefix. `chars` is the vocabulary (ids 0..C-1); the options
 * are the checked ones: pattern (string or null), suffix, contains (strings, '' for none),
 * minLength, maxLength (the longest sample, prefix included), prefix.
 */
export class Shape {
  constructor(chars, { pattern = null, suffix = '', contains = '', minLength = 0, maxLength, prefix = '' }) {
    const C = chars.length, ids = new Map(chars.map((c, i) => [c, i]));
    this.C = C;
    this.minLength = minLength;
    this.maxLength = maxLength;
    const tree = pattern === null ? { type: 'repeat', item: { type: 'set', chars: new Set(), negate: true }, min: 0, max: Infinity }
      : parsePattern(pattern);
    const literal = (text) => { // ids of a literal, or null if a character has none (then nothing matches)
      const out = Array.from(text, (c) => ids.get(c));
      return out.includes(undefined) ? null : out;
    };
    const [sufIds, conIds] = [literal(suffix), literal(contains)];
    this.#build(buildNfa(tree, ids, C, maxLength + 1), sufIds, conIds);
    const prefixIds = Array.from(prefix, (c) => ids.get(c)); // the caller has checked the prefix's characters
    let s = this.initial;
    for (const c of prefixIds) s = this.delta[s * C + c];
    this.start = s; // the state after the prefix
    this.startLength = prefixIds.length;
    this.#okTable();
    this.satisfiable = sufIds !== null && conIds !== null && this.ok[this.start * this.L1 + this.startLength] === 1;
    this.masks = new Map(); // (state, n) -> allowed tokens, made on first use
  }

  /** Subset construction, each subset paired with the suffix's and contains' KMP states. */
  #build(nfa, sufIds, conIds) {
    const C = this.C, { eps, moves, accept } = nfa;
    const suf = sufIds ? kmp(sufIds, C, false) : null, con = conIds ? kmp(conIds, C, true) : null;
    const [sufEnd, conEnd] = [sufIds?.length ?? 0, conIds?.length ?? 0];
    const closure = (seeds) => {
      const seen = new Set(seeds), stack = [...seeds];
      while (stack.length) for (const t of eps[stack.pop()]) if (!seen.has(t)) { seen.add(t); stack.push(t); }
      return [...seen].sort((a, b) => a - b);
    };
    const states = [], index = new Map(), delta = [], accepting = [];
    // a state: [NFA nodes, suffix state, contains state]; every state with no NFA node left is the one dead state
    const dead = sufIds === null || conIds === null; // a literal with a character the model lacks: nothing matches
    const id = (nodes, a, b) => {
      const key = nodes.length === 0 || dead ? 'dead' : `${nodes.join(',')}|${a}|${b}`;
      let i = index.get(key);
      if (i === undefined) {
        if (states.length >= MAX_STATES) {
          throw new PatternError(`pattern too complex: with the other controls it needs over ${MAX_STATES.toLocaleString('en')} automaton states`);
        }
        i = states.length;
        index.set(key, i);
        states.push(key === 'dead' ? [[], 0, 0] : [nodes, a, b]);
        accepting.push(key !== 'dead' && nodes.includes(accept) && a === sufEnd && b === conEnd ? 1 : 0);
      }
      return i;
    };
    this.initial = id(closure([nfa.start]), 0, 0);
    const buckets = Array.from({ length: C }, () => []);
    for (let s = 0; s < states.length; s++) {
      const [nodes, a, b] = states[s];
      for (const bucket of buckets) bucket.length = 0;
      for (const x of nodes) for (const [set, target] of moves[x]) for (const c of set) buckets[c].push(target);
      const row = new Int32Array(C);
      for (let c = 0; c < C; c++) {
        row[c] = nodes.length === 0 ? s : id(buckets[c].length ? closure(buckets[c]) : [], suf ? suf[a * C + c] : 0, con ? con[b * C + c] : 0);
      }
      delta.push(row);
    }
    this.size = states.length;
    this.delta = new Int32Array(this.size * C);
    delta.forEach((row, s) => this.delta.set(row, s * C));
    this.accepting = Uint8Array.from(accepting);
  }

  /** ok[s * L1 + n], n = 0..maxLength: an accepting state is reachable from s at a length in
   * [minLength, maxLength], n characters so far. Filled from the longest length down. */
  #okTable() {
    const { C, size, delta, accepting, minLength, maxLength } = this;
    const L1 = this.L1 = maxLength + 1;
    const ok = this.ok = new Uint8Array(size * L1);
    for (let n = maxLength; n >= 0; n--) {
      for (let s = 0; s < size; s++) {
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

  /** Whether `text` (characters of the vocabulary) is accepted: for tests and checks. */
  accepts(text, ids) {
    let s = this.initial;
    for (const ch of text) {
      const c = ids.get(ch);
      if (c === undefined) return false;
      s = this.delta[s * this.C + c];
    }
    const n = Array.from(text).length;
    return this.accepting[s] === 1 && n >= this.minLength && n <= this.maxLength;
  }
}

/** Whether `text` fully matches `pattern` as the subset reads it (over the characters of both). */
export function fullmatch(pattern, text) {
  const chars = [...new Set([...Array.from(text), ...Array.from(pattern)])].sort((a, b) => a.codePointAt(0) - b.codePointAt(0));
  const length = Array.from(text).length;
  const shape = new Shape(chars, { pattern, maxLength: Math.max(length, 1) });
  return shape.accepts(text, new Map(chars.map((c, i) => [c, i])));
}

/** Throws unless `value` is a string (TypeError) or, for `pattern`, null. */
export function checkText(name, value, nullable = false) {
  if (nullable && value === null) return;
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string${nullable ? ' or null' : ''}, got ${typed(value)}`);
}
