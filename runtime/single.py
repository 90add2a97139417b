"""The batch-1 loop: one sample at a time through onnxruntime's IOBinding, kept lean because per-step
Python work is what limits speed at batch 1. It draws the same tokens as the batched loop.

Shapes: H heads, P cached positions, D head_dim, V vocabulary entries, L positions of a sample.
"""

from __future__ import annotations

from collections import deque
from typing import Iterator

import numpy as np

from . import sampling
from .metadata import LOGITS, POSITION, TOKEN
from .plan import Plan
from .runner import StepRunner

SINGLES_BLOCK = 256  # samples whose uniforms are drawn at once
SPARE_STEPS = 16
_MASKED = float("-inf")  # a token the shape controls forbid  # unused Steps kept for reuse (~10 kB each for the names model)


class Steps:
    """The batch-1 steps through IOBinding, one binding per position made beforehand: the input
    token, the logits and every cache size live in buffers of ours, step p reads the cache buffers
    of p positions and writes those of p + 1, so a step is one call with no feed dict and no array
    handed over. The steps start after the plan's first draw: at ``start + 1``, from its cache. Per step at batch 1: 17 us against 29 us for ``run`` (dicts and arrays cost more
    than the 24 kernels). Not thread-safe: one caller at a time, and a sample's steps must not
    interleave with another's (each iterator takes its own from a ``SparePool``).
    """

    __slots__ = ("token", "logits", "row", "next_token", "first", "caches", "bound", "bindings", "run")

    def __init__(self, runner: StepRunner, plan: Plan):
        session, info = runner.session, runner.info
        H, D = info.n_head, info.head_dim
        first, length = plan.start + 1, plan.length  # the first position run here
        self.token = np.zeros(1, dtype=np.int64)
        self.logits = np.empty((1, info.vocab_size), dtype=np.float32)
        # memoryviews of both: tolist() and item assignment through them take half NumPy's time;
        # the row holds the drawable tokens' logits only (a labeled model's label columns cut off)
        self.row, self.next_token = memoryview(self.logits[0, :info.vocab.drawable]), memoryview(self.token)
        # caches[j][p]: cache array j (each layer's keys, then values) holding p positions; those
        # below the context's end are never read, and the context's own come from the plan
        self.caches = [[None] * first + [np.empty((1, H, p, D), np.float32) for p in range(first, length + 1)]
                       for _ in plan.cache]
        self.load(plan)
        bound = self.bound = [None] * length  # the public bindings, kept with the buffers they name
        for p in range(first, length):
            b = bound[p] = session.io_binding()
            b.bind_cpu_input(TOKEN, self.token)  # bound by address: writing token[0] changes the input
            b.bind_cpu_input(POSITION, runner.positions[p])
            _bind_output(b, LOGITS, self.logits)
            for name, out, cache in zip(runner.past, runner.outputs[1:], self.caches):
                b.bind_cpu_input(name, cache[p])
                _bind_output(b, out, cache[p + 1])
        self.bindings, self.run = _fast_binding_run(session, bound, first)

    def load(self, plan: Plan) -> None:
        """Take the cache of ``plan``'s context (the same length as the one these steps were made for)."""
        for cache, given in zip(self.caches, plan.cache):
            cache[plan.start + 1][...] = given
        self.first = plan.logits.tolist()  # the first draw's logits, as the draws read them


class SparePool:
    """Steps not in use: making one costs ~0.3 ms, the time of 15 steps, so single-sample calls take
    them from here and give them back. At most ``limit`` are kept (the most recently given), so
    however many streams were once open at the same time, the pool stays small; one Generator's
    threads share it (each deque operation is atomic)."""

    def __init__(self, runner: StepRunner, limit: int = SPARE_STEPS):
        self.runner = runner
        self.spare: deque[tuple[tuple[int, int], Steps]] = deque(maxlen=limit)  # (key, steps), oldest first

    def take(self, plan: Plan) -> Steps:
        """Steps for ``plan``'s context and length, for one caller's use until given back."""
        key = (plan.start, plan.length)
        for entry in reversed(list(self.spare)):  # a snapshot: other threads may take and give meanwhile
            if entry[0] == key:
                try:
                    self.spare.remove(entry)
                except ValueError:  # another thread took it first
                    continue
                entry[1].load(plan)
                return entry[1]
        return Steps(self.runner, plan)

    def give(self, plan: Plan, steps: Steps) -> None:
        self.spare.append(((plan.start, plan.length), steps))  # a full pool drops its oldest


def characters(pool: SparePool, plan: Plan, index: int) -> Iterator[str]:
    """Sample ``index``, character by character as each is drawn (the prefix's first)."""
    yield from plan.prefix
    chars = pool.runner.info.vocab.chars
    steps = pool.take(plan)
    try:
        for t in draws(pool.runner, plan, index, steps):
            yield chars[t]
    finally:  # also when the consumer stops early: the steps are free again
        pool.give(plan, steps)


def samples(pool: SparePool, plan: Plan, indices: range) -> Iterator[str]:
    """Samples ``indices`` one at a time: one set of steps for them all, and their uniforms drawn
    with NumPy for ``SINGLES_BLOCK`` samples at once (the same bits as ``sample_uniforms``, ~0.1 us
    a sample instead of ~6)."""
    prefix, chars, length = plan.prefix, pool.runner.info.vocab.chars, plan.length
    steps = pool.take(plan)
    try:
        for first in range(indices.start, indices.stop, SINGLES_BLOCK):
            block = range(first, min(first + SINGLES_BLOCK, indices.stop))
            if plan.temperature > 0:
                us = sampling.uniforms(plan.seed, np.arange(block.start, block.stop), length).tolist()
            else:
                us = [[0.0] * length] * len(block)
            for index, u in zip(block, us):
                yield prefix + "".join(map(chars.__getitem__, draws(pool.runner, plan, index, steps, u)))
    finally:  # also when the consumer stops early: the steps are free again
        pool.give(plan, steps)


def draws(runner: StepRunner, plan: Plan, index: int, steps: Steps, u: list[float] | None = None) -> Iterator[int]:
    """Sample ``index``'s drawn token ids (not the ending BOS), as they are drawn, with ``u`` its
    uniforms if already made. ``steps`` may serve one caller's samples, one after another."""
    start, length, bos = plan.start, plan.length, runner.info.bos
    if u is None:
        u = sampling.sample_uniforms(plan.seed, index, length) if plan.temperature > 0 else [0.0] * length
    run, bindings, logits, token = steps.run, steps.bindings, steps.row, steps.next_token
    draw, temperature, top_k, top_p = sampling.draw_one, plan.temperature, plan.top_k, plan.top_p
    constraint = plan.constraint
    if constraint is not None:  # shape controls: the banned tokens of (state, characters so far)
        banned, delta, state, offset = constraint.banned, constraint.rows, constraint.start, plan.offset
    for p in range(start, length):
        try:
            if p > start:  # the first draw is from the plan's logits
                run(bindings[p], None)
            row = logits.tolist() if p > start else steps.first
            if constraint is not None:
                if p == start:
                    row = list(row)  # the plan's, shared by every sample
                for b in banned(state, p - offset):
                    row[b] = _MASKED
            t = draw(row, u[p], temperature, top_k, top_p)
        except sampling.LogitsError:
            raise runner.not_finite(p) from None
        except Exception as e:  # onnxruntime's exceptions share no base class narrower than Exception
            raise runner.failed(p, e) from None
        if t == bos:
            return
        yield t
        token[0] = t
        if constraint is not None:
            state = delta[state][t]


def _bind_output(binding, name: str, array: np.ndarray) -> None:
    binding.bind_output(name, "cpu", 0, array.dtype.type, array.shape, array.ctypes.data)


def _fast_binding_run(session, bound: list, first: int):
    """(bindings, run) with run(bindings[p], None) a step: through onnxruntime's internal objects,
    which skip the public method's checks (for graph capture on other devices), tried once on the
    first binding (it only writes our buffers); if they ever change, the public ones serve. With no
    binding (the plan's first draw is its last), there is nothing to run."""
    if first >= len(bound):
        return bound, session.run_with_iobinding
    try:
        inner = [b._iobinding if b is not None else None for b in bound]
        session._sess.run_with_iobinding(inner[first], None)
        return inner, session._sess.run_with_iobinding
    except Exception:  # any change in onnxruntime's internals: fall back, never fail
        return bound, session.run_with_iobinding
