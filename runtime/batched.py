"""The batched sampling loop: rows advanced together, one step of the graph per position.

Shapes: B rows in the batch, V vocabulary entries, L the block size, H heads, P cached positions,
D head_dim.

The graph takes one position per step, so the rows of a step share it. A ``Batch`` holds rows at
one position: the samples of one plan (``sample_rows``, the Generator's batches) or of several
(the server's requests, joined into one batch when they reach the same position). ``Batch.step``
is one position for all of them: feed and run the graph, draw each row's token, drop the rows
that ended (their cache rows too), so later steps cost only the rows still running. Each row's
draw depends on its own logits and uniforms only, so a sample is the same in any batch.
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np

from . import sampling
from .metadata import POSITION, TOKEN
from .plan import Plan
from .runner import StepRunner
from .vocab import Vocab


class Part:
    """Samples of one plan that start together (sample ``indices``): a Batch draws their tokens
    and hands them here once all have ended. This class keeps them for ``texts``; the server's
    subclass answers its requests (and, with ``streams`` set, hears every step)."""

    streams = False  # True: the batch calls ``drew`` after every step with the part's tokens

    def __init__(self, plan: Plan, indices: np.ndarray, vocab: Vocab):
        self.plan, self.indices, self.vocab = plan, np.asarray(indices, dtype=np.int64), vocab
        self.size = len(self.indices)  # its rows still in a batch
        self.key = (plan.temperature, plan.top_k, plan.top_p)  # parts with equal keys draw in one call
        self.drawn: list[str] | None = None  # each sample's drawn characters once they have all ended

    def drew(self, slots: np.ndarray, tokens: np.ndarray, position: int) -> None:
        """The tokens drawn at ``position`` for the rows still going (``slots``: their samples'
        places 0..n-1 in the part). BOS ends a row, and so does the plan's last position (after
        its token). Called only when ``streams`` is set."""

    def finished(self, drawn: list[str]) -> None:
        """All rows ended: each sample's drawn characters (what follows the prefix), in order.
        A sample drew ``len(text) + 1`` tokens (its ending BOS), or ``len(text)`` if it reached the
        plan's last position, when ``len(text) == plan.length - plan.start``."""
        self.drawn = drawn

    def texts(self) -> list[str]:
        """Every sample of the part (once all its rows have ended): the prefix and what was drawn."""
        prefix = self.plan.prefix
        return [prefix + text for text in self.drawn] if prefix else self.drawn


class Batch:
    """Rows at one position, the rows of each part together and in order. A new batch holds its
    part's first draws, from the plan's logits (no graph run: the plan fed the context); each
    ``step`` draws one position and leaves the rows still going at the next. ``len`` is the rows
    left; a batch with none is done. Not thread-safe: one thread steps a batch.

    The uniforms and drawn tokens are kept per sample, one column each, (L, N) for all N samples
    the batch was given; ``alive`` (B,) names the column of each row still going.
    """

    __slots__ = ("runner", "position", "parts", "columns", "lasts", "streams", "key", "alive", "u", "drawn", "token",
                 "cache", "logits", "expand", "feed", "states", "masked")

    def __init__(self, runner: StepRunner, part: Part):
        plan, B = part.plan, part.size
        self.runner, self.parts, self.position = runner, [part], plan.start
        self.columns = [0]  # each part's first sample column
        self.lasts = {plan.length - 1}  # the parts' last positions: every row still going there ends
        self.streams = part.streams
        self.key = part.key  # the parts' sampling options when they all share them, else None
        self.alive = np.arange(B)
        self.u = (sampling.uniforms(plan.seed, part.indices, plan.length).T.copy() if plan.temperature > 0
                  else np.zeros((plan.length, B)))  # (L, N) each sample's uniform at each position
        self.drawn = np.full((plan.length, B), runner.info.bos, dtype=np.int64)  # (L, N) tokens, BOS after the end
        self.token = None  # (B,) the next step's input tokens, once the first draws are made
        # before the first draws: one cache row and one logits row per part (its context's), and
        # expand (B,) the part of each row; after them, the cache has a row per row
        self.cache = list(plan.cache)  # per layer keys and values, (parts or B, H, P, D)
        self.logits = plan.logits[None, :]  # (parts, V), or None once drawn
        self.expand = np.zeros(B, dtype=np.int64)
        self.feed = {}
        # shape controls: (B,) each row's automaton state (0 in the rows of parts without one)
        self.masked = plan.constraint is not None
        self.states = np.full(B, plan.constraint.start if self.masked else 0, dtype=np.int64)

    @classmethod
    def starting(cls, runner: StepRunner, parts: list[Part]) -> Batch:
        """One new batch for several parts whose contexts have the same length: what joining a
        batch per part gives, made at once (the server starts a tick's requests this way)."""
        if len(parts) == 1:
            return cls(runner, parts[0])
        plans = [part.plan for part in parts]
        start = plans[0].start
        assert all(plan.start == start for plan in plans), "contexts of different lengths"
        sizes = [part.size for part in parts]
        N, L = sum(sizes), max(plan.length for plan in plans)
        self = cls.__new__(cls)
        self.runner, self.parts, self.position = runner, list(parts), start
        self.columns = np.cumsum([0, *sizes[:-1]]).tolist()
        self.lasts = {plan.length - 1 for plan in plans}
        self.streams = any(part.streams for part in parts)
        key = parts[0].key
        self.key = key if all(part.key == key for part in parts) else None
        self.alive = np.arange(N)
        # every row's uniforms in one pass (greedy rows' go unread: a draw at temperature 0 takes none)
        seeds = np.repeat(np.array([plan.seed % 2**64 for plan in plans], dtype=np.uint64), sizes)
        self.u = sampling.row_uniforms(seeds, np.concatenate([part.indices for part in parts]), L).T.copy()
        self.drawn = np.full((L, N), runner.info.bos, dtype=np.int64)
        self.token = None
        # one cache and logits row per distinct context (a server's requests mostly share BOS's:
        # the plans then hold the same prefilled arrays), and expand (N,) each row's
        distinct = list({id(plan.cache): plan for plan in plans}.values())
        if len(distinct) == 1:
            self.cache, self.logits = list(plans[0].cache), plans[0].logits[None, :]
            self.expand = np.zeros(N, dtype=np.int64)
        else:
            row = {id(plan.cache): i for i, plan in enumerate(distinct)}
            self.cache = [np.concatenate(layer) for layer in zip(*(plan.cache for plan in distinct))]
            self.logits = np.stack([plan.logits for plan in distinct])
            self.expand = np.repeat(np.array([row[id(plan.cache)] for plan in plans]), sizes)
        self.feed = {}
        self.masked = any(plan.constraint is not None for plan in plans)
        self.states = np.repeat(np.array([plan.constraint.start if plan.constraint is not None else 0
                                          for plan in plans], dtype=np.int64), sizes)
        return self

    def __len__(self) -> int:
        return len(self.alive)

    @property
    def fresh(self) -> bool:
        """True until the first draws: such a batch joins only another fresh one at its position."""
        return self.logits is not None

    def join(self, other: Batch) -> None:
        """Take ``other``'s rows (at the same position, both fresh or neither) after this batch's."""
        assert other.position == self.position and other.fresh == self.fresh, "batches at different stages"
        if self.fresh:
            self.expand = np.concatenate([self.expand, other.expand + len(self.logits)])
            self.logits = np.concatenate([self.logits, other.logits])
        else:
            self.token = np.concatenate([self.token, other.token])
        self.cache = [np.concatenate(pair) for pair in zip(self.cache, other.cache)]
        width = self.u.shape[1]
        self.alive = np.concatenate([self.alive, other.alive + width])
        self.states = np.concatenate([self.states, other.states])
        self.masked |= other.masked
        self.u = _side_by_side(self.u, other.u, 0.0)
        self.drawn = _side_by_side(self.drawn, other.drawn, self.runner.info.bos)
        self.parts += other.parts
        self.columns += [c + width for c in other.columns]
        self.lasts |= other.lasts
        self.streams |= other.streams
        if self.key != other.key:
            self.key = None

    def step(self) -> None:
        """One position for every row: run the graph (unless these are the first draws), draw,
        tell the parts, drop the rows that ended."""
        runner, p, alive, fresh = self.runner, self.position, self.alive, self.logits is not None
        if fresh:
            columns = self.logits.T.take(self.expand, axis=1)  # (V, B) each row's plan's logits
        else:
            feed = self.feed
            feed[POSITION] = runner.positions[p]
            feed[TOKEN] = self.token
            feed.update(zip(runner.past, self.cache))
            logits, *self.cache = runner.run(feed)
            columns = logits.T
        if self.masked:
            columns = self._mask(columns, p)
        try:
            token = self._draw(columns, p)
        except sampling.LogitsError:
            raise runner.not_finite(p) from None
        self.drawn[p, alive] = token
        if self.masked:
            self._advance(token)
        going = token != runner.info.bos
        if p in self.lasts:  # the parts whose last position this is end all their rows
            for part, lo, hi in self._ranges():
                if part.plan.length - 1 == p:
                    going[lo:hi] = False
        if self.streams:
            for (part, lo, hi), first in zip(self._ranges(), self.columns):
                if part.streams:
                    part.drew(alive[lo:hi] - first, token[lo:hi], p)
        keep = None
        if not going.all():
            keep = np.flatnonzero(going)  # take() with indices copies 2.4x faster than a boolean mask
            self._end(going, len(going) - len(keep))
            self.alive, token = alive.take(keep), token.take(keep)
            if self.masked:
                self.states = self.states.take(keep)
        if fresh:  # the context's cache, repeated for the rows that go on
            rows = self.expand if keep is None else self.expand.take(keep)
            self.cache = [c.take(rows, axis=0) for c in self.cache]
            self.logits = self.expand = None
        elif keep is not None:
            self.cache = [c.take(keep, axis=0) for c in self.cache]
        self.token, self.position = token, p + 1

    def drop(self, dropped) -> None:
        """Remove the rows of the parts for which ``dropped(part)`` is true, without telling them
        (the server's requests whose clients went away)."""
        going = np.ones(len(self), dtype=bool)
        gone = [dropped(part) for part in self.parts]
        for (part, lo, hi), drop in zip(self._ranges(), gone):
            going[lo:hi] = not drop
        if going.all():
            return
        keep = np.flatnonzero(going)
        self.columns = [first for first, drop in zip(self.columns, gone) if not drop]
        self.parts = [part for part, drop in zip(self.parts, gone) if not drop]
        self.alive = self.alive.take(keep)
        if self.masked:
            self.states = self.states.take(keep)
        if self.logits is not None:
            self.expand = self.expand.take(keep)
        else:
            self.token = self.token.take(keep)
            self.cache = [c.take(keep, axis=0) for c in self.cache]

    def _ranges(self):
        """(part, lo, hi) for each part: its rows are lo..hi-1."""
        lo = 0
        for part in self.parts:
            yield part, lo, lo + part.size
            lo += part.size

    def _mask(self, columns: np.ndarray, p: int) -> np.ndarray:
        """(V, B) logits with -inf where a row's shape controls forbid the token (rows holding p
        characters), as a contiguous copy (which the draw would make anyway)."""
        columns = np.array(columns, dtype=np.float32, order="C")
        for part, lo, hi in self._ranges():
            constraint = part.plan.constraint
            if constraint is not None:
                banned = constraint.banned_columns(p - part.plan.offset).take(self.states[lo:hi], axis=1)  # (V, b)
                np.copyto(columns[:, lo:hi], -np.inf, where=banned)
        return columns

    def _advance(self, token: np.ndarray) -> None:
        """Move each constrained row's automaton over the token it drew."""
        for part, lo, hi in self._ranges():
            constraint = part.plan.constraint
            if constraint is not None:
                self.states[lo:hi] = constraint.advance(self.states[lo:hi], token[lo:hi])

    def _draw(self, columns: np.ndarray, p: int) -> np.ndarray:
        """(B,) tokens for (V, B) logits at position ``p``: one draw per distinct set of options."""
        u = self.u[p].take(self.alive)
        if self.key is not None:  # known when the parts came together: not a pass over them per step
            return sampling.draw(columns, u, *self.key)
        groups: dict[tuple, list[np.ndarray]] = {}
        for part, lo, hi in self._ranges():
            groups.setdefault(part.key, []).append(np.arange(lo, hi))
        token = np.empty(len(self), dtype=np.int64)
        for key, ranges in groups.items():
            rows = np.concatenate(ranges)
            token[rows] = sampling.draw(columns.take(rows, axis=1), u.take(rows), *key)
        return token

    def _end(self, going: np.ndarray, count: int) -> None:
        """Count the rows that end (``going`` (B,) False, ``count`` of them), hand each part whose
        rows have all ended its samples, and forget it."""
        parts = self.parts
        if len(parts) == 1:
            part = parts[0]
            part.size -= count
            if not part.size:
                self._finish([(part, self.columns[0])])
                self.parts, self.columns = [], []
            return
        # the part of each ending row: the rows of part i are bounds[i - 1]..bounds[i] - 1
        bounds = np.fromiter(accumulate(part.size for part in parts), dtype=np.int64, count=len(parts))
        ended = np.bincount(bounds.searchsorted(np.flatnonzero(~going), side="right"), minlength=len(parts))
        for part, count in zip(parts, ended.tolist()):
            if count:
                part.size -= count
        done = [(part, first) for part, first in zip(parts, self.columns) if not part.size]
        if done:
            self._finish(done)
            self.columns = [first for part, first in zip(parts, self.columns) if part.size]
            self.parts = [part for part in parts if part.size]

    def _finish(self, done: list[tuple[Part, int]]) -> None:
        """Hand each (part, first column) in ``done`` its samples' texts: one decode for the parts
        whose draws start at the same position (the drawn arrays hold BOS before that)."""
        vocab = self.runner.info.vocab
        starts: dict[int, list[tuple[Part, int]]] = {}
        for part, first in done:
            starts.setdefault(part.plan.start, []).append((part, first))
        for start, group in starts.items():
            # the group's columns, first..first+n-1 for each part in turn
            sizes = np.array([len(part.indices) for part, _ in group])
            shift = np.array([first for _, first in group]) - (np.cumsum(sizes) - sizes)
            columns = np.arange(sizes.sum()) + np.repeat(shift, sizes)
            texts = decode(vocab, self.drawn[start:].take(columns, axis=1).T)
            at = 0
            for part, _ in group:
                part.finished(texts[at:at + len(part.indices)])
                at += len(part.indices)


def _side_by_side(a: np.ndarray, b: np.ndarray, fill) -> np.ndarray:
    """(L, N) and (L', M) as one (max(L, L'), N + M) array, the shorter padded with ``fill``."""
    rows = max(len(a), len(b))
    out = np.full((rows, a.shape[1] + b.shape[1]), fill, dtype=a.dtype)
    out[: len(a), : a.shape[1]] = a
    out[: len(b), a.shape[1]:] = b
    return out


def sample_rows(runner: StepRunner, plan: Plan, rows: np.ndarray) -> list[str]:
    """The samples of ``rows`` (sample indices, at least two), run together as one batch."""
    part = Part(plan, rows, runner.info.vocab)
    batch = Batch(runner, part)
    while len(batch):
        batch.step()
    return part.texts()


def decode(vocab: Vocab, ids: np.ndarray) -> list[str]:
    """(B, L) token ids, BOS from a sample's end on, as B strings."""
    if "\0" not in vocab.chars:
        # one NumPy gather: BOS becomes NUL, each row is read as one fixed-width string, and NumPy
        # drops trailing NULs when it hands out Python strings
        table = np.array([*vocab.chars, "\0"], dtype="<U1")
        return table[np.ascontiguousarray(ids)].view(f"<U{ids.shape[1]}").ravel().tolist()
    bos, chars = vocab.bos, vocab.chars
    return ["".join(chars[t] for t in row if t != bos) for row in ids.tolist()]
