"""runtime.batched.Batch, the step shared by the Generator's batches and the server: the rows of
many calls (different seeds, options, prefixes and lengths) joined in one batch as they reach the
same position draw exactly what each call draws alone."""

from __future__ import annotations

import numpy as np
import pytest

import runtime_models
from mgpt.runtime import Generator
from mgpt.runtime.batched import Batch, Part

# (options, first sample index, samples): a mix of what a server's requests ask for at once
CALLS = [
    (dict(temperature=1.0, seed=1), 0, 5),
    (dict(temperature=0.5, seed=2), 3, 1),
    (dict(temperature=1.5, top_k=5, seed=3), 0, 4),
    (dict(temperature=0), 0, 2),
    (dict(temperature=1.0, top_p=0.8, seed=4, max_length=4), 7, 3),
    (dict(temperature=2.0, seed=5, prefix="a"), 0, 6),
    (dict(temperature=1.0, seed=6, prefix="b", max_length=3), 2, 2),
    (dict(temperature=2.0, seed=7, max_length=1), 0, 3),  # the first draw is the last
    (dict(temperature=1.2, top_k=3, top_p=0.9, seed=8, prefix="ma"), 1, 1),
    (dict(temperature=1.0, seed=9, min_length=5), 0, 4),  # shape controls: rows masked in the shared step
    (dict(temperature=1.0, seed=10, suffix="a", prefix="j"), 0, 3),
    (dict(temperature=1.5, seed=11, pattern="[a-m]+e?"), 2, 4),
]


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    path = tmp_path_factory.mktemp("batch") / "small.onnx"
    return Generator(runtime_models.export_to(runtime_models.small_checkpoint(), path))


class Streamed(Part):
    """A Part that also rebuilds its samples from the tokens ``drew`` reports at each step."""

    streams = True

    def __init__(self, *args):
        super().__init__(*args)
        self.pieces = [[] for _ in self.indices]
        self.steps = 0

    def drew(self, slots, tokens, position):
        self.steps += 1
        for slot, token in zip(slots.tolist(), tokens.tolist()):
            if token != self.vocab.bos:
                self.pieces[slot].append(self.vocab.chars[token])


def run_scheduler(gen, calls, rounds, drop_every=0):
    """A server's loop in miniature: each tick the next 1, 2 or 3 calls start (their rows in a
    batch per context length), batches at the same position join, and every batch steps once.
    With ``drop_every`` k, every k-th call's rows are dropped (as a client gone) at its second tick."""
    runner, parts, batches, pending = gen._runner, [], {}, list(calls) * rounds
    dropping = []
    tick = 0
    while pending or batches:
        fresh: dict[int, Batch] = {}
        for _ in range(tick % 3 + 1):
            if not pending:
                break
            options, first, n = pending.pop(0)
            kind = Streamed if len(parts) % 2 else Part
            part = kind(gen.plan(**options), np.arange(first, first + n), runner.info.vocab)
            parts.append((options, first, n, part))
            if part.plan.start in fresh:
                fresh[part.plan.start].join(Batch(runner, part))
            else:
                fresh[part.plan.start] = Batch(runner, part)
        tick += 1
        gone = {id(part) for part in dropping}
        for batch in batches.values():
            batch.drop(lambda part: id(part) in gone)
        dropping = [part for *_, part in parts[drop_every - 1::drop_every] if part.size] if drop_every else []
        dropping = [part for part in dropping if id(part) not in gone]
        stepped: dict[int, Batch] = {}
        for batch in [*fresh.values(), *batches.values()]:
            if not len(batch):
                continue
            batch.step()
            if len(batch):
                if batch.position in stepped:
                    stepped[batch.position].join(batch)
                else:
                    stepped[batch.position] = batch
        batches = stepped
    return parts


def test_rows_of_many_calls_in_one_batch_draw_what_each_call_draws_alone(gen):
    parts = run_scheduler(gen, CALLS, rounds=3)
    joined = 0
    for options, first, n, part in parts:
        assert part.size == 0
        alone = gen.generate(first + n, **options)[first:]
        assert part.texts() == alone, options
        if isinstance(part, Streamed):
            prefix = options.get("prefix", "")
            assert [prefix + "".join(p) for p in part.pieces] == alone
            joined += part.steps
    assert joined > 0


def test_rows_dropped_mid_way_leave_the_others_as_they_were(gen):
    parts = run_scheduler(gen, CALLS, rounds=3, drop_every=3)
    dropped = 0
    for options, first, n, part in parts:
        if part.size:  # dropped while some of its rows ran: never finished
            dropped += 1
            continue
        assert part.texts() == gen.generate(first + n, **options)[first:], options
    assert dropped > 3


def test_fresh_batches_join_and_draw_as_they_would_apart(gen):
    runner = gen._runner
    parts = [Part(gen.plan(**options), np.arange(first, first + n), runner.info.vocab)
             for options, first, n in CALLS if not options.get("prefix")]
    batch = Batch(runner, parts[0])
    for part in parts[1:]:
        batch.join(Batch(runner, part))
    assert len(batch) == sum(len(p.indices) for p in parts)
    while len(batch):
        batch.step()
    for (options, first, n), part in zip([c for c in CALLS if not c[0].get("prefix")], parts):
        assert part.texts() == gen.generate(first + n, **options)[first:]


def test_a_batch_started_with_many_parts_draws_as_they_would_apart(gen):
    runner = gen._runner
    calls = [c for c in CALLS if not c[0].get("prefix")]
    parts = [Part(gen.plan(**options), np.arange(first, first + n), runner.info.vocab) for options, first, n in calls]
    batch = Batch.starting(runner, parts)
    assert len(batch) == sum(len(p.indices) for p in parts)
    while len(batch):
        batch.step()
    for (options, first, n), part in zip(calls, parts):
        assert part.texts() == gen.generate(first + n, **options)[first:], options


def test_row_uniforms_are_each_seeds_uniforms():
    from mgpt.runtime import sampling

    seeds, indices = [1, 2**64 - 1, -5, 2**70 + 3], [0, 7, 3, 1]
    rows = sampling.row_uniforms([s % 2**64 for s in seeds], indices, 9)
    for row, seed, index in zip(rows, seeds, indices):
        assert np.array_equal(row, sampling.uniforms(seed, [index], 9)[0])


def test_batches_at_different_stages_do_not_join(gen):
    runner = gen._runner
    a = Batch(runner, Part(gen.plan(seed=1), np.arange(50), runner.info.vocab))
    b = Batch(runner, Part(gen.plan(seed=2), np.arange(50), runner.info.vocab))
    b.step()
    with pytest.raises(AssertionError):
        a.join(b)
