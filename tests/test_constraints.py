"""Shape controls as an automaton: the shared pattern table, brute force over small vocabularies
(every string checked against Python's own re.fullmatch), the mask's promise (never stuck, never
an unreachable end), and the limits."""

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from mgpt.runtime import constraints
from mgpt.runtime.vocab import Vocab

TABLE = json.loads((Path(__file__).parent / "sampling_patterns.json").read_text(encoding="utf-8"))
TABLE_VOCAB = Vocab(tuple(sorted(TABLE["vocab"])))


def ids(vocab: Vocab, text: str) -> list[int]:
    return vocab.encode(text)


@pytest.mark.parametrize("case", TABLE["accepted"], ids=lambda c: c["pattern"] or "(empty)")
def test_table_accepted(case):
    c = constraints.compile(TABLE_VOCAB, TABLE["max_length"], pattern=case["pattern"])
    for text in case["match"]:
        assert c.matches(ids(TABLE_VOCAB, text)), text
        assert re.fullmatch(case["pattern"], text), text  # the subset means what Python's re means
    for text in case["nomatch"]:
        assert not (set(text) <= set(TABLE_VOCAB.chars) and c.matches(ids(TABLE_VOCAB, text))), text


@pytest.mark.parametrize("pattern", TABLE["refused"])
def test_table_refused(pattern):
    with pytest.raises(ValueError) as e:
        constraints.compile(TABLE_VOCAB, TABLE["max_length"], pattern=pattern)
    message = str(e.value)
    assert message.startswith("pattern ") and "\n" not in message


@pytest.mark.parametrize("case", TABLE["unsatisfiable"], ids=str)
def test_table_unsatisfiable(case):
    with pytest.raises(ValueError) as e:
        constraints.compile(TABLE_VOCAB, TABLE["max_length"], **case)
    assert "\n" not in str(e.value)


SMALL = Vocab(tuple("abc"))
BRUTE = [  # (controls, max_length): checked against every string over 'abc' of at most that length
    ({"pattern": "(a|bc)*b?"}, 5),
    ({"pattern": "[ab]{2,3}c"}, 5),
    ({"pattern": "a.*", "suffix": "cb"}, 6),
    ({"contains": "bab", "min_length": 4}, 6),
    ({"pattern": "[^b]*", "min_length": 2, "prefix": "c"}, 5),
    ({"suffix": "aa", "contains": "ab"}, 5),
    ({"pattern": "((ab)?c){0,3}"}, 6),
    ({"pattern": "a{2}|b{3,}|c{1,2}a"}, 5),
    ({"pattern": "(a?){9}b", "min_length": 1}, 4),  # a nullable copy repeated past the block: clipped
    ({"prefix": "ab", "min_length": 3}, 4),
]


def wanted(text: str, controls: dict, L: int) -> bool:
    pattern = controls.get("pattern")
    return ((pattern is None or re.fullmatch(pattern, text) is not None)
            and text.startswith(controls.get("prefix", "")) and text.endswith(controls.get("suffix", ""))
            and controls.get("contains", "") in text and controls.get("min_length", 0) <= len(text) <= L)


@pytest.mark.parametrize("controls,L", BRUTE, ids=str)
def test_brute_force_and_mask(controls, L):
    c = constraints.compile(SMALL, L, **controls)
    strings = ["".join(t) for n in range(L + 1) for t in itertools.product("abc", repeat=n)]
    good = {s for s in strings if wanted(s, controls, L)}
    assert good, "the case must be satisfiable"
    assert {s for s in strings if c.matches(ids(SMALL, s))} == good
    # the mask walked from the prefix: allows exactly the characters that lead to a wanted string,
    # and BOS exactly where the string so far is wanted; the walk reaches every wanted string
    prefix = controls.get("prefix", "")
    reached, todo = set(), [(prefix, c.start)]
    while todo:
        text, state = todo.pop()
        n = len(text)
        mask = c.allowed(np.array([state]), n)[0]
        assert list(np.flatnonzero(~mask)) == list(c.banned(state, n))
        assert mask[-1] == (text in good)
        if text in good:
            reached.add(text)
        for j, ch in enumerate("abc"):
            assert mask[j] == any(g.startswith(text + ch) for g in good), (text, ch)
            if mask[j]:
                todo.append((text + ch, int(c.advance(np.array([state]), np.array([j]))[0])))
        if n == L:
            assert not mask[:-1].any()
    assert reached == good


@pytest.mark.parametrize("controls", [{}, {"prefix": "ab"}, {"min_length": 1, "prefix": "a"},
                                      {"min_length": 0}, {"suffix": "", "contains": ""}])
def test_no_control_compiles_to_nothing(controls):
    assert constraints.compile(SMALL, 5, **controls) is None  # then no mask code runs at all


@pytest.mark.parametrize("kwargs,error", [
    ({"pattern": 3}, TypeError), ({"pattern": b"a"}, TypeError), ({"suffix": None}, TypeError),
    ({"contains": 1}, TypeError), ({"min_length": 1.0}, TypeError), ({"min_length": True}, TypeError),
    ({"min_length": -1}, ValueError), ({"min_length": 9}, ValueError), ({"suffix": "d"}, ValueError),
])
def test_bad_options(kwargs, error):
    with pytest.raises(error):
        constraints.compile(SMALL, 8, **kwargs)


def test_too_complex(monkeypatch):
    # (a|b)*a(a|b){k} needs 2^(k+1) states: over the cap it is one line of error, not a long wait
    monkeypatch.setattr(constraints, "MAX_STATES", 1000)
    assert constraints.compile(SMALL, 16, pattern="(a|b)*a(a|b){7}").states > 256
    with pytest.raises(ValueError, match="too complex"):
        constraints.compile(SMALL, 16, pattern="(a|b)*a(a|b){12}")


def test_pattern_length_limit():
    with pytest.raises(ValueError, match="limit is 1,000"):
        constraints.compile(SMALL, 8, pattern="a" * 1001)
