// The shape and set controls (issue 14, docs/sampling-controls.md): the pattern subset read as the
// spec reads it (a table, and JavaScript's own RegExp as an oracle over random patterns of the
// subset), masks that never let a disallowed token through, samples that meet every control at any
// batch size, set controls that are exactly "the k-th accepted attempt", traces, the novelty filter,
// and bad inputs as one-line errors of the right class.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import * as ortNode from 'onnxruntime-node';

import { Generator, ModelError, PatternError, SamplingError, fullmatch, modelInfo, readModel } from '../src/index.js';
import { Shape, parsePattern } from '../src/constraints.js';
import { NoveltyFilter, hashTokens, noveltyFrom } from '../src/novelty.js';
import { DrawScratch, drawOne } from '../src/sampling.js';
import { assertSamples, modelPath, ortWeb, reference } from './reference.js';

// accepted patterns: strings that must match, strings that must not
const ACCEPTED = [
  ['abc', ['abc'], ['ab', 'abcd', '']],
  ['a|bc', ['a', 'bc'], ['abc', 'b']],
  ['[a-z]{4,6}(a|ie)', ['marka', 'mariie', 'abcdefie'], ['mara', 'abcdefgie', 'Marka']],
  ['(?:ab)+', ['ab', 'abab'], ['', 'aba']],
  ['a*b?', ['', 'aaa', 'aab', 'b'], ['bb', 'ba']],
  ['a{3}', ['aaa'], ['aa', 'aaaa']],
  ['a{2,}', ['aa', 'aaaaa'], ['a']],
  ['a{0,2}', ['', 'a', 'aa'], ['aaa']],
  ['.', ['x', 'é', '😀'], ['', 'xy']],
  ['[^aeiou]+', ['xyz', 'bcd'], ['xa', '']],
  ['[\\]\\\\\\^\\-]', [']', '\\', '^', '-'], ['a']],
  ['\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\^\\$\\\\', ['.*+?()[]{}|^$\\'], ['']],
  ['[a-]', ['a', '-'], ['b']],
  ['()', [''], ['a']],
  ['', [''], ['a']],
  ['(a|)b', ['ab', 'b'], ['a']],
  ['γά😀+', ['γά😀', 'γά😀😀'], ['γά']],
  ['((a|b){2}c)*', ['', 'abc', 'aacbbc'], ['ac', 'abca']],
  ['x{0}y', ['y'], ['xy']],
];
// refused patterns, beyond the shared table's
const REFUSED = ['^a', 'a$', '\\d', '\\s', '[\\d]', 'a*?', 'a{2}?', '(a)\\1', '(?=a)', '(?P<x>a)', '(?i)a', 'a(', 'a)', '[ab',
  '[]', '*a', 'a**', 'a{,2}', 'a{2', 'a{x}', 'a{3,2}', '[z-a]', 'a]', 'a}', '\\', '[[a]', '\\n', 'a{4294967295}', 'a{1,4294967295}',
  'x'.repeat(1001)];
const TABLE = JSON.parse(readFileSync(new URL('../../../tests/sampling_patterns.json', import.meta.url), 'utf8'));
const TABLE_CHARS = [...new Set(TABLE.vocab)].sort((a, b) => a.codePointAt(0) - b.codePointAt(0));

describe('the pattern subset', () => {
  for (const [pattern, yes, no] of ACCEPTED) {
    test(`${JSON.stringify(pattern)} matches what it must, and nothing it must not`, () => {
      for (const s of yes) assert.ok(fullmatch(pattern, s), `${JSON.stringify(s)} must match`);
      for (const s of no) assert.ok(!fullmatch(pattern, s), `${JSON.stringify(s)} must not match`);
    });
  }

  test('refused patterns: a PatternError (a RangeError) in one line', () => {
    for (const pattern of REFUSED) {
      assert.throws(() => parsePattern(pattern), (e) => e instanceof PatternError && e instanceof RangeError &&
        e.message.startsWith('pattern ') && !e.message.includes('\n'), pattern);
    }
    assert.throws(() => parsePattern('\\d'), /^PatternError: pattern "\\\\d" has \\d: character classes, .* \(write \[0-9\] and the like\)/);
    assert.throws(() => parsePattern('a*?'), /lazy quantifier/);
  });

  test('the shared table (tests/sampling_patterns.json): the same matches and refusals as Python', () => {
    const L = TABLE.max_length;
    for (const { pattern, match, nomatch } of TABLE.accepted) {
      for (const text of match) assert.ok(fullmatch(pattern, text, TABLE_CHARS, L), `${pattern} must match ${JSON.stringify(text)}`);
      for (const text of nomatch) assert.ok(!fullmatch(pattern, text, TABLE_CHARS, L), `${pattern} must not match ${JSON.stringify(text)}`);
      // and what JavaScript's own RegExp means by it, where every character is the vocabulary's
      const re = new RegExp(`^(?:${pattern})$`, 'u');
      for (const text of match) assert.ok(re.test(text), `RegExp: ${pattern} on ${JSON.stringify(text)}`);
    }
    for (const pattern of TABLE.refused) {
      assert.throws(() => new Shape(TABLE_CHARS, { pattern, maxLength: L }),
        (e) => e instanceof PatternError && e.message.startsWith('pattern ') && !e.message.includes('\n'), pattern);
    }
    for (const { pattern = null, suffix = '', contains = '', prefix = '', min_length: minLength = 0 } of TABLE.unsatisfiable) {
      const refused = (() => {
        if (minLength > L) return true;
        if ([...suffix, ...contains, ...prefix].some((c) => !TABLE_CHARS.includes(c))) return true;
        return !new Shape(TABLE_CHARS, { pattern, suffix, contains, prefix, minLength, maxLength: L }).satisfiable;
      })();
      assert.ok(refused, JSON.stringify({ pattern, suffix, contains, prefix, minLength }));
    }
    assert.ok(TABLE.accepted.length >= 20 && TABLE.refused.length >= 40 && TABLE.unsatisfiable.length >= 8);
  });

  test('on 600 random patterns of the subset and 40 strings each, fullmatch agrees with RegExp', () => {
    let state = 7;
    const rand = (n) => ((state = (Math.imul(state, 48271) >>> 0) % 2147483647) % n);
    const gen = (depth) => {
      const r = rand(depth > 2 ? 3 : 9);
      if (r === 0) return 'abc'[rand(3)];
      if (r === 1) return ['.', '[ab]', '[^a]', '[a-b]'][rand(4)];
      if (r === 2) return 'abc'[rand(3)] + 'abc'[rand(3)];
      if (r < 5) return `(${gen(depth + 1)}|${gen(depth + 1)})`;
      if (r < 7) return gen(depth + 1) + gen(depth + 1);
      const q = ['*', '+', '?', '{2}', '{1,3}', '{0,}', '{2,}'][rand(7)];
      return `(?:${gen(depth + 1)})${q}`;
    };
    let compared = 0, matched = 0;
    for (let i = 0; i < 600; i++) {
      const pattern = gen(0), re = new RegExp(`^(?:${pattern})$`, 'u');
      for (let j = 0; j < 40; j++) {
        const s = Array.from({ length: rand(7) }, () => 'abc'[rand(3)]).join('');
        assert.equal(fullmatch(pattern, s), re.test(s), `${pattern} on ${JSON.stringify(s)}`);
        compared++;
        matched += re.test(s) ? 1 : 0;
      }
    }
    assert.ok(matched > compared / 20 && matched < compared * 0.95, `${matched} of ${compared} match: the test sees both outcomes`);
  });

  test('a repeat bound far above the block is the same language within it, and an expansion too large is refused', () => {
    const chars = [...'ab'];
    const clipped = new Shape(chars, { pattern: 'a{1000000}|b{2,1000000}|(a?){100}b', maxLength: 8 });
    assert.ok(clipped.satisfiable);
    assert.ok(!clipped.accepts('aaaaaaaa') && clipped.accepts('bb') && clipped.accepts('bbbbbbbb') && clipped.accepts('aaaaaaab'));
    // an expansion past 200,000 NFA states, and a DFA past 100,000 states: (a|b)*a(a|b){k} needs 2^(k+1)
    assert.throws(() => new Shape(chars, { pattern: '(((((a?){16}){16}){16}){16}){16}', maxLength: 16 }),
      /^PatternError: pattern ".*" is too complex: its automaton needs more than 100,000 states \(200,000 before determinizing, 10,000,000 transitions\); simplify it$/);
    assert.ok(new Shape(chars, { pattern: '(a|b)*a(a|b){12}', maxLength: 16 }).size > 8192);
    assert.throws(() => new Shape(chars, { pattern: '(a|b)*a(a|b){16}', maxLength: 40 }), /is too complex/);
  });
});

describe('the mask', () => {
  test('a masked token is never drawn, whatever the uniform, the temperature, top-k or top-p', () => {
    const V = 6, scratch = new DrawScratch(V);
    const row = Float32Array.of(-Infinity, 1.5, 0.2, 3, -Infinity, -Infinity); // tokens 0, 4, 5 masked
    for (const u of [0, 2 ** -53, 0.5, 1 - 2 ** -53]) {
      for (const [temperature, topK, topP] of [[1, null, null], [0.3, 2, null], [2, null, 0.5], [1, 6, 0.99], [0, null, null]]) {
        const t = drawOne(row, 0, V, u, temperature, topK, topP, scratch);
        assert.ok([1, 2, 3].includes(t), `u ${u} T ${temperature}: token ${t}`);
      }
    }
    // the lowest and the highest uniform reach the first and the last allowed token
    assert.equal(drawOne(row, 0, V, 0, 1, null, null, scratch), 1);
    assert.equal(drawOne(row, 0, V, 1 - 2 ** -53, 1, null, null, scratch), 3);
  });

  test('ok and the masks: exactly the tokens from which an accepted string is reachable', () => {
    const chars = [...'abc'], ids = new Map(chars.map((c, i) => [c, i]));
    const shape = new Shape(chars, { pattern: 'a[bc]*', suffix: 'cb', contains: 'bb', minLength: 5, maxLength: 7 });
    assert.equal(shape.startLength, 0);
    // brute force: every string over abc of length <= 7, which the mask must be about
    const accepted = [];
    const all = (s) => {
      if (shape.accepts(s)) accepted.push(s);
      if (s.length < 7) for (const c of chars) all(s + c);
    };
    all('');
    assert.ok(accepted.length > 5 && accepted.every((s) => /^a[bc]*$/.test(s) && s.endsWith('cb') && s.includes('bb') && s.length >= 5));
    const walk = (s) => { let q = shape.start; for (const c of s) q = shape.next(q, ids.get(c)); return q; };
    for (const prefix of ['', 'a', 'ab', 'abb', 'abbc', 'abbcb', 'ac', 'acc', 'b']) {
      const { flags } = shape.allowed(walk(prefix), prefix.length);
      chars.forEach((c, i) => assert.equal(flags[i] === 1, accepted.some((s) => s.startsWith(prefix + c)), `${prefix}+${c}`));
      assert.equal(flags[3] === 1, accepted.includes(prefix), `${prefix} + BOS`);
    }
  });
});

describe('controlled samples on onnxruntime-node and onnxruntime-web', async () => {
  const engines = { 'onnxruntime-node': ortNode, 'onnxruntime-web': await ortWeb() };
  const CASES = [
    [{ pattern: '[a-z]{4,6}(a|ie)', temperature: 0.5 }, (s) => /^[a-z]{4,6}(a|ie)$/.test(s)],
    [{ suffix: 'son', minLength: 6, temperature: 1 }, (s) => s.endsWith('son') && s.length >= 6],
    [{ contains: 'x', prefix: 'ma', temperature: 0.8, topK: 5 }, (s) => s.includes('x') && s.startsWith('ma')],
    [{ minLength: 7, maxLength: 7, temperature: 1.5, topP: 0.9 }, (s) => s.length === 7],
    [{ pattern: '(ann|ell)[aeiou]?.*', suffix: 'a', temperature: 0 }, (s) => /^(ann|ell)[aeiou]?.*a$/.test(s)],
  ];
  for (const [engine, ort] of Object.entries(engines)) {
    const gen = await Generator.load(modelPath('names.onnx'), { ort });
    for (const [options, meets] of CASES) {
      test(`${engine}: ${JSON.stringify(options)} at batch 1, 7 and 4096: every sample meets it, the same samples`, async () => {
        const n = options.temperature === 0 ? 3 : 120;
        const want = await gen.generate({ numSamples: n, seed: 5n, batchSize: 4096, ...options });
        for (const s of want) assert.ok(meets(s), JSON.stringify(s));
        for (const batchSize of [1, 7]) assert.deepEqual(await gen.generate({ numSamples: n, seed: 5n, batchSize, ...options }), want);
        const chars = [];
        for await (const c of gen.characters({ seed: 5n, index: n - 1, ...options })) chars.push(c);
        assert.equal(chars.join(''), want[n - 1]);
      });
    }

    test(`${engine}: set controls give the k-th accepted attempt, attempt i being sample i of the call without them`, async () => {
      for (const shape of [{}, { suffix: 'a' }]) {
        const options = { seed: 11n, temperature: 0.3, ...shape };
        const attempts = await gen.generate({ numSamples: 400, ...options });
        const exclude = ['anna', 'emma', 'ella', 'aria', attempts[0]];
        const seen = new Set(), want = [];
        for (const s of attempts) {
          if (exclude.includes(s) || seen.has(s)) continue;
          seen.add(s);
          want.push(s);
        }
        assert.ok(want.length >= 60 && want.length < 380, `${want.length} accepted`);
        for (const batchSize of [1, 5, 64, 4096]) {
          const got = await gen.generate({ numSamples: 60, unique: true, exclude, batchSize, ...options });
          assert.deepEqual(got, want.slice(0, 60), `batch ${batchSize}`);
        }
        const trace = await gen.trace({ index: 59, unique: true, exclude, ...options });
        assert.equal(trace.text, want[59]);
        assert.equal(trace.attempt, attempts.indexOf(want[59]));
      }
    });
  }
});

// Python's options (reference.json's keyword names) as the JavaScript runtime's
const camel = (options) => Object.fromEntries(Object.entries(options).map(([k, v]) => [k.replace(/_([a-z])/g, (_, c) => c.toUpperCase()), v]));
// where the engine's logits are Python's to the bit (generator.test.js's BIT_EXACT): samples and traces exactly
const EXACT = { 'onnxruntime-node': ['names.onnx', 'non_ascii.onnx'] };

describe('controlled samples and traces equal Python\'s (tests/js_reference.py)', async () => {
  const engines = { 'onnxruntime-node': ortNode, 'onnxruntime-web': await ortWeb() };
  const { controls, traces } = reference;
  for (const [engine, ort] of Object.entries(engines)) {
    const gens = new Map();
    const load = async (file) => {
      if (!gens.has(file)) gens.set(file, await Generator.load(modelPath(file), { ort }));
      return gens.get(file);
    };
    for (const batchSize of [1, 7, 4096]) {
      test(`${engine}, batch ${batchSize}: every case's samples, and the capped call's error`, async () => {
        let compared = 0;
        for (const { file, options, seed, count, samples, error } of controls) {
          const gen = await load(file), exact = EXACT[engine]?.includes(file) ?? false;
          const call = gen.generate({ numSamples: count, seed: BigInt(seed), batchSize, ...camel(options) });
          const label = `${file} ${JSON.stringify(options)} seed ${seed}`;
          if (error) {
            await assert.rejects(call, (e) => e instanceof SamplingError && e.found === error.found && e.attempts === error.attempts &&
              e.message === error.message.replaceAll('max_attempts', 'maxAttempts') && (assertSamples(e.samples, error.samples, exact, label), true));
            compared += error.samples.length;
          } else {
            assertSamples(await call, samples, exact, label);
            compared += samples.length;
          }
        }
        assert.ok(compared >= 1000, `${compared} samples compared`);
      });
    }

    test(`${engine}: traces, step by step (probabilities within 1e-12 where the logits are Python's, 1e-4 on wasm)`, async () => {
      for (const { file, options, seed, index, trace: want } of traces) {
        const exact = EXACT[engine]?.includes(file) ?? false;
        const got = await (await load(file)).trace({ seed: BigInt(seed), index, ...camel(options) });
        const label = `${file} ${JSON.stringify(options)} seed ${seed} index ${index}`;
        const strip = (t) => ({ ...t, steps: t.steps.map((s) => ({ ...s, top: s.top.map(({ p, ...x }) => x) })) });
        assert.deepEqual(strip(got), strip(want), label); // tokens, characters, uniforms, positions, texts: exactly
        got.steps.forEach((step, i) => step.top.forEach((t, j) => {
          assert.ok(Math.abs(t.p - want.steps[i].top[j].p) <= (exact ? 1e-12 : 1e-4), `${label} step ${i + 1}: ${t.p} vs ${want.steps[i].top[j].p}`);
        }));
      }
      assert.ok(traces.length >= 8);
    });
  }
});

describe('trace', async () => {
  const gen = await Generator.load(modelPath('names.onnx'), { ort: ortNode });

  test('its steps are the sample\'s draws: inputs, the top five with probabilities, the uniform, the pick', async () => {
    for (const options of [{ temperature: 0.5 }, { temperature: 1, topK: 4, prefix: 'ma' }, { temperature: 0.7, pattern: 'k.*a' }]) {
      const samples = await gen.generate({ numSamples: 10, seed: 3n, ...options });
      for (const index of [0, 9]) {
        const { text, steps, stopped, attempt } = await gen.trace({ seed: 3n, index, ...options });
        assert.equal(text, samples[index]);
        assert.equal(attempt, index);
        assert.equal(steps.at(-1).sample, text);
        assert.equal(stopped, steps.at(-1).pick.char === null);
        const prefix = options.prefix ?? '';
        assert.equal(steps.map((s) => s.pick.char ?? '').join(''), text.slice(prefix.length));
        steps.forEach((step, i) => {
          assert.equal(step.step, i + 1);
          assert.equal(step.position, prefix.length + i);
          assert.ok(step.uniform >= 0 && step.uniform < 1);
          assert.ok(step.top.length >= 1 && step.top.length <= 5);
          for (let j = 1; j < step.top.length; j++) assert.ok(step.top[j - 1].p >= step.top[j].p);
          assert.ok(step.top.reduce((a, b) => a + b.p, 0) <= 1 + 1e-12);
          if (options.topK) assert.ok(step.top.length <= options.topK && step.more === false);
          if (step.top.length < 5) assert.equal(step.more, false);
          const picked = step.top.find((x) => x.token === step.pick.token);
          if (picked) assert.ok(picked.p > 0);
        });
        assert.equal(steps[0].input.char, prefix ? prefix.at(-1) : null);
      }
    }
  });

  test('greedy: no uniform, all the mass on the pick', async () => {
    const { steps } = await gen.trace({ temperature: 0, seed: 1n });
    for (const step of steps) {
      assert.equal(step.uniform, null);
      assert.deepEqual(step.top, [{ ...step.pick, p: 1 }]);
    }
  });
});

describe('the novelty filter', () => {
  const names = readFileSync(modelPath('names.onnx'));
  const pairs = readModel(names).props.filter(([key]) => key !== 'novelty'); // the shipped file's own filter left out
  const vocab = JSON.parse(new Map(pairs).get('vocab'));
  const ids = (s) => Array.from(s, (c) => vocab.indexOf(c));

  test('a filter built from documents holds all of them, and few others', () => {
    const docs = Array.from({ length: 2000 }, (_, i) => `doc${i}`.replace(/[0-9]/g, (d) => 'abcdefghij'[d]));
    const m = 20000, k = 7, data = new Uint8Array(Math.ceil(m / 8));
    for (const d of docs) {
      const [hi, lo] = hashTokens(ids(d));
      for (let i = 0; i < k; i++) { const j = (lo + i * ((hi | 1) >>> 0)) % m; data[j >> 3] |= 1 << (j & 7); }
    }
    const filter = new NoveltyFilter({ documents: docs.length, bits: m, hashes: k, data });
    assert.ok(docs.every((d) => filter.has(ids(d))));
    let positives = 0;
    for (let i = 0; i < 10000; i++) positives += filter.has(ids(`zz${i}`.replace(/[0-9]/g, (d) => 'klmnopqrst'[d]))) ? 1 : 0;
    assert.ok(positives < 10000 * 0.02, `${positives} false positives in 10,000`); // ~0.8% expected at 10 bits and k 7
  });

  test('the documented hash vectors and filter (docs/sampling-controls.md)', () => {
    const hex = ([hi, lo]) => `0x${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}`.toUpperCase().replace('0X', '0x');
    for (const [tokens, h] of [[[], '0x000000006D677074'], [[0], '0x1767891959ABF75F'], [[1, 2, 3], '0x5354B76FEA712D66'],
      [[25, 0, 24, 0], '0x0943C2C18D12D869'], [[10, 0, 24, 0], '0xB15002E437A0C048']]) {
      assert.equal(hex(hashTokens(tokens)), h, JSON.stringify(tokens));
    }
    const filter = noveltyFrom({ kind: 'bloom-splitmix64-v1', documents: 2, bits: 20, hashes: 7, data: 'uU4H' });
    assert.ok(filter.has([1, 2, 3]) && filter.has([25, 0, 24, 0]));
    const [hi, lo] = hashTokens([1, 2, 3]);
    assert.deepEqual(Array.from({ length: 7 }, (_, i) => (lo + i * ((hi | 1) >>> 0)) % 20), [14, 5, 16, 7, 18, 9, 0]);
  });

  test('the metadata key is kept as text, and malformed filters are refused in novelty.py\'s words', () => {
    const good = { kind: 'bloom-splitmix64-v1', documents: 1, bits: 16, hashes: 2, data: 'AAA=' };
    assert.equal(modelInfo([...pairs, ['novelty', JSON.stringify(good)]]).noveltyText, JSON.stringify(good));
    assert.equal(modelInfo(pairs).noveltyText, null);
    assert.equal(noveltyFrom(good).bits, 16);
    for (const [bad, fragment] of [[{ ...good, kind: 'x' }, 'kind is "x"'], [{ ...good, bits: 7 }, 'out of range'],
      [{ ...good, bits: 2 ** 32 }, 'out of range'], [{ ...good, data: 'AAAA' }, 'holds 3 bytes; 16 bits need 2'],
      [{ ...good, data: 'A*==' }, 'not base64'], [{ ...good, hashes: 33 }, 'out of range'], [[1], 'not a JSON object'],
      [{ ...good, documents: -1 }, 'out of range'], [{ ...good, bits: '16' }, 'must be integers']]) {
      assert.throws(() => noveltyFrom(bad), (e) => e instanceof SyntaxError && e.message.includes(fragment), JSON.stringify(bad));
    }
  });
});

describe('bad controls: one line, the right class, before any sampling', async () => {
  const gen = await Generator.load(modelPath('names.onnx'), { ort: ortNode });
  const cases = [
    [{ minLength: -1 }, RangeError, /^minLength must be an integer >= 0/],
    [{ minLength: 1.5 }, TypeError, /^minLength must be an integer/],
    [{ minLength: 9 }, PatternError, /^minLength 9 exceeds the longest sample, 8 characters$/],
    [{ suffix: 3 }, TypeError, /^suffix must be a string, got number 3$/],
    [{ contains: null }, TypeError, /^contains must be a string/],
    [{ pattern: 5 }, TypeError, /^pattern must be a string or null/],
    [{ pattern: '\\d+' }, PatternError, /^pattern "\\\\d\+" has \\d: character classes/],
    [{ pattern: '[0-9]+' }, PatternError, /^no sample of at most 8 characters over the model's vocabulary can match pattern "\[0-9\]\+"; loosen the controls \(the model knows "abc.*z"\)$/],
    [{ suffix: 'abcdefghi' }, PatternError, /^no sample of at most 8 characters over the model's vocabulary can end with "abcdefghi"/],
    [{ contains: 'Z' }, PatternError, /^contains "Z" has characters the model cannot produce \("Z"\); the model knows "abc/],
    [{ prefix: 'ma', pattern: 'b.*', minLength: 3 }, PatternError, /^no sample of 3 to 8 characters .* can start with "ma", match pattern "b\.\*"; loosen/],
    [{ minLength: 5, maxLength: 4 }, PatternError, /^minLength 5 exceeds the longest sample, 4 characters$/],
    [{ novel: 'yes' }, TypeError, /^novel must be a boolean/],
    [{ unique: 1 }, TypeError, /^unique must be a boolean/],
    [{ exclude: 'anna' }, TypeError, /^exclude must be an array of strings, got string "anna"$/],
    [{ exclude: ['anna', 3] }, TypeError, /^exclude must be an array of strings, got an array holding number 3$/],
    [{ maxAttempts: 0 }, RangeError, /^maxAttempts must be an integer >= 1/],
    [{ maxAttempts: '9' }, TypeError, /^maxAttempts/],
  ];
  for (const [options, type, message] of cases) {
    test(JSON.stringify(options), async () => {
      const check = (e) => e instanceof type && message.test(e.message) && !e.message.includes('\n');
      assert.throws(() => gen.samples(options), check);
      await assert.rejects(gen.generate(options), check);
      await assert.rejects(gen.trace(options), check);
    });
  }

  test('novel with a model that has no novelty filter: a ModelError naming the file', async () => {
    const bare = await Generator.load(modelPath('nan_record.onnx'), { ort: ortNode }); // from a checkpoint without one
    const check = (e) => e instanceof ModelError && /^".*nan_record\.onnx" has no novelty filter, which novel needs/.test(e.message);
    assert.throws(() => bare.samples({ novel: true }), check);
    await assert.rejects(bare.generate({ novel: true, numSamples: 1 }), check);
    assert.equal((await bare.generate({ numSamples: 2, novel: false })).length, 2);
  });

  test('characters takes the shape controls, not the set controls', () => {
    assert.throws(() => gen.characters({ unique: true }), /^TypeError: unknown option "unique".*use generate, samples or trace\)$/);
  });

  test('too many rejections: a SamplingError (a RangeError) with the samples found', async () => {
    const options = { numSamples: 30, unique: true, temperature: 0, maxAttempts: 100, seed: 1n };
    await assert.rejects(gen.generate(options), (e) => e instanceof SamplingError && e instanceof RangeError &&
      e.samples.length === 1 && e.attempts === 100 && /^found 1 of 30 samples in 100 attempts/.test(e.message));
    const streamed = [];
    await assert.rejects((async () => { for await (const s of gen.samples(options)) streamed.push(s); })(), SamplingError);
    assert.equal(streamed.length, 1);
  });
});
