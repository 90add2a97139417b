"""Shape controls as one character automaton: which characters may come next, and may the sample end.

Shapes: S automaton states, V vocabulary entries (V - 1 characters, then BOS), L the longest sample
(characters, prefix included), B rows of a batch.

``compile`` turns a pattern (a documented subset of regular expressions, read with the standard
library's own parser and walked only where the subset allows), a prefix, a suffix, a string to
contain and a length range into one DFA over the model's characters: the product of the pattern's
automaton (``.*`` without one) with a suffix automaton (``.*S``) and a contains automaton
(``.*C.*``), entered after the prefix. Only states reachable within L characters are built. Then

    ok[s, n]  = an accepting state is reachable from state s holding n characters, ending with
                min_length <= length <= L
    mask(s, n): character c allowed iff ok[delta[s, c], n + 1]; BOS iff accept[s] and n >= min_length

so a sampler that masks every step can never be stuck and always ends with an accepted sample.
docs/sampling-controls.md is the reference for the syntax and the limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

try:  # the standard library's regex parser: re._parser since 3.11, sre_parse before
    from re import _constants as sre, _parser as sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as sre
    import sre_parse

from .plan import check_count
from .vocab import Vocab

MAX_PATTERN = 1000  # characters of a pattern
MAX_NFA_STATES = 200_000  # after counted repeats are expanded
MAX_STATES = 100_000  # DFA states
MAX_TRANSITIONS = 10_000_000  # DFA states x characters

METACHARACTERS = "\\.[](){}|*+?^$"
CLASS_ESCAPES = METACHARACTERS + "-"  # inside [...] a backslash may also escape '-'
DOC = "see docs/sampling-controls.md"
_QUANTIFIER = re.compile(r"\{[0-9]+(,[0-9]*)?\}")


def _refuse(pattern: str, reason: str) -> ValueError:
    shown = pattern if len(pattern) <= 60 else pattern[:59] + "…"
    return ValueError(f"pattern {shown!r} {reason}")


# ------------------------------------------------------------------------------------------ parsing

def _scan(pattern: str) -> None:
    """Refuse what the standard parser would read but the subset does not have, or would read
    differently from JavaScript: escapes other than of metacharacters, a '{' or '}' or ']' that is
    not syntax, '(?' other than '(?:', and in a class an unescaped '[', a leading ']' or a doubled
    '-', '&', '~' or '|'."""
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            e = pattern[i + 1] if i + 1 < n else ""
            allowed = CLASS_ESCAPES if in_class else METACHARACTERS
            if not e:
                raise _refuse(pattern, "ends with a lone backslash; write \\\\ for a backslash")
            if e not in allowed:
                if e.isdigit():
                    raise _refuse(pattern, f"has \\{e}: backreferences are not in the subset; {DOC}")
                if e.isalpha():
                    raise _refuse(pattern, f"has \\{e}: character classes, anchors and escapes such as \\d \\w \\s "
                                           f"\\b \\n are not in the subset (write [0-9] and the like); {DOC}")
                raise _refuse(pattern, f"escapes {e!r}, which is not a metacharacter; write it without the "
                                       f"backslash")
            i += 2
            continue
        if in_class:
            if c == "[":
                raise _refuse(pattern, "has an unescaped '[' inside a class; write \\[")
            if c in "-&~|" and pattern[i + 1: i + 2] == c:
                raise _refuse(pattern, f"has {c + c!r} inside a class, which JavaScript reads as set "
                                       f"syntax; escape one of them")
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            j = i + 1 + (pattern[i + 1: i + 2] == "^")
            if pattern[j: j + 1] == "]":
                raise _refuse(pattern, "has ']' first in a class, which JavaScript reads as an empty class; "
                                       "write \\]")
            i = j
            continue
        elif c in "]}":
            raise _refuse(pattern, f"has an unescaped {c!r}; write \\{c}")
        elif c == "{":
            m = _QUANTIFIER.match(pattern, i)
            if not m:
                raise _refuse(pattern, "has a '{' that does not begin a quantifier {m}, {m,} or {m,n}; "
                                       "write \\{ for the character")
            i = m.end()
            continue
        elif c == "(" and pattern[i + 1: i + 2] == "?" and pattern[i + 2: i + 3] != ":":
            raise _refuse(pattern, "has '(?' other than '(?:': lookaround, named groups, comments and inline "
                                   f"flags are not in the subset; {DOC}")
        i += 1


def parse(pattern) -> list:
    """The standard parser's tree of ``pattern``, after checking it is in the subset; ValueError
    (TypeError for a non-string) with one line naming the problem otherwise."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a string or None, got {type(pattern).__name__} {pattern!r}")
    if len(pattern) > MAX_PATTERN:
        raise ValueError(f"pattern has {len(pattern):,} characters; the limit is {MAX_PATTERN:,}")
    _scan(pattern)
    try:
        tree = sre_parse.parse(pattern)
    except (re.error, OverflowError) as e:
        raise _refuse(pattern, f"is not a valid regular expression ({str(e).split(' at position')[0]})") from None
    except RecursionError:
        raise _refuse(pattern, "is nested too deeply") from None
    if tree.state.groupdict:
        raise _refuse(pattern, f"has a named group, which is not in the subset; {DOC}")
    _check_tree(pattern, tree)
    return list(tree)


def _check_tree(pattern: str, items) -> None:
    for op, av in items:
        if op in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY):
            continue
        if op is sre.IN:
            for kind, _ in av:
                if kind not in (sre.LITERAL, sre.RANGE, sre.NEGATE):
                    raise _refuse(pattern, f"has a class item the subset lacks ({kind}); {DOC}")
        elif op is sre.SUBPATTERN:
            _, add, remove, sub = av
            if add or remove:
                raise _refuse(pattern, f"has inline flags, which are not in the subset; {DOC}")
            _check_tree(pattern, sub)
        elif op is sre.BRANCH:
            for sub in av[1]:
                _check_tree(pattern, sub)
        elif op is sre.MAX_REPEAT:
            _check_tree(pattern, av[2])
        elif op is sre.MIN_REPEAT:
            raise _refuse(pattern, "has a lazy quantifier (*? +? ?? {m,n}?); in a whole-sample match it "
                                   "means the same as the greedy one: drop the '?'")
        elif op is sre.AT:
            raise _refuse(pattern, "has ^, $ or another anchor: the pattern always matches the whole sample, "
                                   "so drop it")
        else:
            name = str(op).lower().replace("_", " ")
            raise _refuse(pattern, f"uses {name}, which is not in the subset; {DOC}")


# ------------------------------------------------------------------------------------------ the NFA

class _NFA:
    """Thompson's construction over character sets: states are ints, ``eps[s]`` their empty moves,
    ``edges[s]`` their (character-set bitmask, target) moves. Character ids are the vocabulary's."""

    def __init__(self, vocab: Vocab, longest: int):
        self.codes = [ord(c) for c in vocab.chars]
        self.ids = {ord(c): i for i, c in enumerate(vocab.chars)}
        self.full = (1 << len(vocab.chars)) - 1
        self.longest = longest
        self.root = self.final = -1  # the whole pattern's start and end, set by compile
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple[int, int]]] = []

    def state(self) -> int:
        if len(self.eps) >= MAX_NFA_STATES:
            raise _TooComplex
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    # each builder returns (start, end) of a fragment
    def chars(self, mask: int):
        a, b = self.state(), self.state()
        if mask:
            self.edges[a].append((mask, b))
        return a, b

    def empty(self):
        a = self.state()
        return a, a

    def seq(self, items):
        start = end = self.state()
        for op, av in items:
            a, b = self.item(op, av)
            self.eps[end].append(a)
            end = b
        return start, end

    def item(self, op, av):
        if op is sre.LITERAL:
            return self.chars(self.literal(av))
        if op is sre.NOT_LITERAL:
            return self.chars(self.full & ~self.literal(av))
        if op is sre.ANY:
            return self.chars(self.full)
        if op is sre.IN:
            return self.chars(self.charset(av))
        if op is sre.SUBPATTERN:
            return self.seq(av[3])
        if op is sre.BRANCH:
            a, b = self.state(), self.state()
            for sub in av[1]:
                s, e = self.seq(sub)
                self.eps[a].append(s)
                self.eps[e].append(b)
            return a, b
        if op is sre.MAX_REPEAT:
            return self.repeat(*av)
        raise AssertionError(op)  # parse() let nothing else through

    def literal(self, code: int) -> int:
        i = self.ids.get(code)
        return 0 if i is None else 1 << i  # a character the model lacks: this branch is impossible

    def charset(self, items) -> int:
        mask, negate = 0, False
        for kind, av in items:
            if kind is sre.NEGATE:
                negate = True
            elif kind is sre.LITERAL:
                mask |= self.literal(av)
            else:  # RANGE
                lo, hi = av
                for i, code in enumerate(self.codes):
                    if lo <= code <= hi:
                        mask |= 1 << i
        return self.full & ~mask if negate else mask

    def repeat(self, low: int, high, items):
        """x{low,high}, with bounds clipped to the longest sample: x{m} with m copies each at
        least one character long cannot fit if m > longest; when x can be empty, x{m} and x{m,n}
        hold the same strings of at most `longest` characters as with m, n clipped to `longest`."""
        shortest = _shortest(items)
        unbounded = high is sre.MAXREPEAT
        if shortest is None or (low and shortest * low > self.longest):
            if low:  # no copy fits: nothing matches
                return self.chars(0)
            return self.empty()  # x{0,...} with x impossible: only the empty string
        low = min(low, self.longest)
        high = None if unbounded else max(low, min(high, self.longest))
        start = end = self.state()
        for _ in range(low):
            a, b = self.seq(items)
            self.eps[end].append(a)
            end = b
        if high is None:  # x*: a loop
            a, b = self.seq(items)
            loop = self.state()
            self.eps[end].append(loop)
            self.eps[loop].append(a)
            self.eps[b].append(loop)
            return start, loop
        finish = self.state()
        self.eps[end].append(finish)
        for _ in range(high - low):  # nested optionals: each copy may be skipped to the finish
            a, b = self.seq(items)
            self.eps[end].append(a)
            self.eps[b].append(finish)
            end = b
        return start, finish


class _TooComplex(Exception):
    pass


def _shortest(items) -> int | None:
    """The fewest characters a sequence of the tree matches (None: it matches nothing). Characters
    outside the vocabulary are not known here, so this is a lower bound used only for clipping."""
    total = 0
    for op, av in items:
        if op in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN):
            total += 1
        elif op is sre.SUBPATTERN:
            s = _shortest(av[3])
            if s is None:
                return None
            total += s
        elif op is sre.BRANCH:
            options = [s for s in map(_shortest, av[1]) if s is not None]
            if not options:
                return None
            total += min(options)
        elif op is sre.MAX_REPEAT:
            if av[0]:
                s = _shortest(av[2])
                if s is None:
                    return None
                total += av[0] * s
    return total


def _closure(nfa: _NFA, states) -> frozenset:
    seen, todo = set(states), list(states)
    while todo:
        for t in nfa.eps[todo.pop()]:
            if t not in seen:
                seen.add(t)
                todo.append(t)
    return frozenset(s for s in seen if nfa.edges[s] or s == nfa.final)


def _kmp(ids: list[int], size: int) -> np.ndarray:
    """(len(ids) + 1, size) transitions of the automaton of ``.*ids``: state j = the longest suffix
    of the text that is a prefix of ids (j == len(ids) accepts and, for contains, stays)."""
    table = np.zeros((len(ids) + 1, size), dtype=np.int64)
    back = 0
    for j in range(len(ids) + 1):
        if j:
            table[j] = table[back]
        if j < len(ids):
            if j:
                back = table[back, ids[j]]
            table[j, ids[j]] = j + 1
    return table


# ------------------------------------------------------------------------------------------ the DFA

@dataclass
class Constraint:
    """The compiled shape controls of one call; read-only, shared by the threads that serve it."""
    delta: np.ndarray  # (S, V - 1) int32: the state after each character; state 0 is dead
    accept: np.ndarray  # (S,) bool
    ok: np.ndarray  # (S, L + 2) bool, see the module's docstring
    start: int  # the state after the prefix
    min_length: int
    max_length: int  # L
    bos: int  # V - 1
    prefix: tuple[int, ...]  # the prefix's ids: ``start`` is the state after them
    _single: dict = field(default_factory=dict, repr=False)
    _columns: dict = field(default_factory=dict, repr=False)

    @cached_property
    def rows(self) -> list[list[int]]:
        """``delta`` as lists: the batch-1 loop's transitions, at Python's indexing speed."""
        return self.delta.tolist()

    @property
    def states(self) -> int:
        return len(self.accept)

    def allowed(self, states: np.ndarray, n: int) -> np.ndarray:
        """(B, V) bool: the tokens rows in ``states`` holding ``n`` characters may draw."""
        return ~self.banned_columns(n).take(states, axis=1).T

    def banned_columns(self, n: int) -> np.ndarray:
        """(V, S) bool: token t is banned in state s holding n characters; made once per n (the
        batched loop's mask for a batch is then one gather of its rows' columns)."""
        table = self._columns.get(n)
        if table is None:
            table = np.empty((self.bos + 1, self.states), dtype=bool)
            table[:-1] = ~self.ok[:, n + 1][self.delta].T
            table[-1] = ~(self.accept & (n >= self.min_length))
            self._columns[n] = table
        return table

    def advance(self, states: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """The rows' states after drawing ``tokens`` (BOS only in rows that end: they keep theirs)."""
        return self.flat_delta.take(states * self.bos + np.minimum(tokens, self.bos - 1))

    @cached_property
    def flat_delta(self) -> np.ndarray:
        return self.delta.ravel()

    def banned(self, state: int, n: int) -> tuple[int, ...]:
        """The token ids a single row may not draw, memoized: the batch-1 loop's mask."""
        key = (state, n)
        found = self._single.get(key)
        if found is None:
            found = self._single[key] = tuple(np.flatnonzero(~self.allowed(np.array([state]), n)[0]).tolist())
        return found

    def matches(self, ids) -> bool:
        """Whether a sample of these character ids (prefix included) meets every shape control."""
        P = len(self.prefix)
        if not self.min_length <= len(ids) <= self.max_length or tuple(ids[:P]) != self.prefix:
            return False
        s = self.start
        for c in ids[P:]:
            s = self.delta[s, c]
        return bool(s and self.accept[s])


def check_shape(pattern, suffix, contains, min_length) -> None:
    """TypeError or ValueError for shape options of the wrong type or value (before any work)."""
    if pattern is not None and not isinstance(pattern, str):
        raise TypeError(f"pattern must be a string or None, got {type(pattern).__name__} {pattern!r}")
    for name, value in (("suffix", suffix), ("contains", contains)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    if min_length is not None:
        check_count("min_length", min_length, 0)


def compile(vocab: Vocab, max_length: int, *, pattern: str | None = None, prefix: str = "", suffix: str = "",
            contains: str = "", min_length: int | None = None) -> Constraint | None:
    """The automaton of these shape controls for samples of at most ``max_length`` characters, or
    None when they constrain nothing beyond the prefix and the length limit (then no mask runs).
    ValueError when the pattern is outside the subset, too complex, or when no sample can meet
    them all; TypeError for a wrong type."""
    check_shape(pattern, suffix, contains, min_length)
    min_length = 0 if min_length is None else int(min_length)
    if pattern is None and not suffix and not contains and min_length <= len(prefix):
        return None
    tree = parse(pattern) if pattern is not None else None
    # impossible literals first: a clearer message than "no sample can match"
    for name, text in (("suffix", suffix), ("contains", contains)):
        missing = vocab.missing(text)
        if missing:
            raise ValueError(f"{name} {text!r} has characters the model cannot produce ({''.join(missing[:10])!r}); "
                             f"the model knows {''.join(vocab.chars)!r}")
    if min_length > max_length:
        raise ValueError(f"min_length {min_length} exceeds the longest sample, {max_length} characters")
    try:
        nfa = _NFA(vocab, max_length)
        if tree is None:
            a = nfa.state()
            nfa.edges[a].append((nfa.full, a))
            nfa.final, nfa.root = a, a
        else:
            nfa.root, nfa.final = nfa.seq(tree)
        return _build(nfa, vocab, max_length, prefix, suffix, contains, min_length, pattern)
    except _TooComplex:
        what = f"pattern {pattern!r}" if pattern is not None else "the controls"
        raise ValueError(f"{what} is too complex: its automaton needs more than {MAX_STATES:,} states "
                         f"({MAX_NFA_STATES:,} before determinizing, {MAX_TRANSITIONS:,} transitions); "
                         f"simplify it") from None
    except RecursionError:
        raise ValueError(f"pattern {pattern!r} is nested too deeply; simplify it") from None


def _build(nfa: _NFA, vocab: Vocab, L: int, prefix: str, suffix: str, contains: str, min_length: int,
           pattern) -> Constraint:
    size = len(vocab.chars)
    if (size + 1) * 2 > MAX_TRANSITIONS:
        raise _TooComplex
    suf = _kmp(vocab.encode(suffix), size)
    con = _kmp(vocab.encode(contains), size)
    con[-1] = len(contains)  # once contained, always contained
    closures: dict = {}

    def closure(states) -> frozenset:
        key = frozenset(states)
        found = closures.get(key)
        if found is None:
            found = closures[key] = _closure(nfa, key)
        return found

    def step(key, c):
        """The product state after character c, or None (dead)."""
        nset, s, k = key
        targets = {t for u in nset for mask, t in nfa.edges[u] if mask >> c & 1}
        if not targets:
            return None
        return closure(targets), int(suf[s, c]), int(con[k, c])

    key = (closure([nfa.root]), 0, 0)
    for c in vocab.encode(prefix):  # the prefix's path: only its own transitions are needed
        key = step(key, c)
        if key is None:
            break
    depth0 = len(prefix)
    number = {None: 0}
    keys, depth = [None], [0]
    if key is not None:
        number[key] = 1
        keys.append(key)
        depth.append(depth0)
    rows = [np.zeros(size, dtype=np.int32)]  # dead
    i = 1
    while i < len(keys):
        row = np.zeros(size, dtype=np.int32)
        if depth[i] < L:
            key, cache = keys[i], {}
            nset, s, k = key
            for c in range(size):
                signature = tuple(t for u in nset for mask, t in nfa.edges[u] if mask >> c & 1)
                if not signature:
                    continue
                target = cache.get(signature)
                if target is None:
                    target = cache[signature] = closure(signature)
                nxt = (target, int(suf[s, c]), int(con[k, c]))
                j = number.get(nxt)
                if j is None:
                    j = number[nxt] = len(keys)
                    if j >= MAX_STATES or j * size > MAX_TRANSITIONS:
                        raise _TooComplex
                    keys.append(nxt)
                    depth.append(depth[i] + 1)
                row[c] = j
        rows.append(row)
        i += 1
    delta = np.stack(rows)
    accept = np.array([key is not None and nfa.final in key[0] and key[1] == len(suffix)
                       and key[2] == len(contains) for key in keys], dtype=bool)
    ok = np.zeros((len(keys), L + 2), dtype=bool)
    for n in range(L, -1, -1):
        ok[:, n] = accept & (n >= min_length)
        if n < L:
            ok[:, n] |= ok[:, n + 1][delta].any(axis=1)
    ok[0] = False
    start = 1 if len(keys) > 1 else 0
    if not ok[start, depth0]:
        raise ValueError(_unsatisfiable(vocab, L, pattern, prefix, suffix, contains, min_length))
    return Constraint(delta, accept, ok, start, min_length, L, size, tuple(vocab.encode(prefix)))


def _unsatisfiable(vocab: Vocab, L: int, pattern, prefix, suffix, contains, min_length) -> str:
    parts = []
    if prefix:
        parts.append(f"start with {prefix!r}")
    if suffix:
        parts.append(f"end with {suffix!r}")
    if contains:
        parts.append(f"contain {contains!r}")
    if pattern is not None:
        parts.append(f"match pattern {pattern!r}")
    what = ", ".join(parts) if parts else "exist"
    lengths = f"{min_length} to {L}" if min_length else f"at most {L}"
    return (f"no sample of {lengths} characters over the model's vocabulary can {what}; loosen the controls "
            f"(the model knows {''.join(vocab.chars)!r})")
