"""The Generator: samples and scores text with an mgpt step graph, in batches, on one or more threads.

The loop is the seed's: every sample starts with BOS at position 0 (then the prefix's characters),
each step feeds one token per row with the rows' cache and draws the next token; BOS ends a sample.
This module checks the arguments, makes each call's ``Plan`` and hands the work out: batches to
``batched`` (split across threads when large), single samples to ``single``, texts to ``scoring``.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np

from . import batched, rejection, sampling, scoring, single
from .metadata import strict_json
from .modelfile import ModelError, model_path, open_session
from .rejection import SamplingError

if TYPE_CHECKING:  # imported when first used: start-up time is part of mgpt-generate's speed
    from .constraints import Constraint
    from .novelty import NoveltyFilter
from .plan import Plan, check_count
from .runner import StepRunner
from .vocab import Vocab, VocabError

DEFAULT_BATCH_SIZE = 4096  # rows in flight per call: bounds memory; large batches run fastest
MIN_SPLIT_ROWS = 256  # below this a batch stays on one thread: a thread hand-off would cost more
COMPILED = 16  # shape controls whose automata a Generator keeps


class Generator:
    """Samples from an mgpt ``.onnx`` step graph: a path, or a shipped model's name (``"names"``,
    ``"names-large"``, ``"names-era"``; when no file of that name is here), or None for the default shipped model.

    ``threads`` splits large batches across threads (default: the usable CPUs), each running its part
    on its own with onnxruntime's GIL-free ``run``; ``session_threads`` is onnxruntime's intra-op
    thread count (1 is the fastest for this graph). One Generator may be used from several threads
    at once: a call keeps its state to itself, and onnxruntime sessions take concurrent runs.
    """

    def __init__(self, model: str | Path | None = None, *, threads: int | None = None,
                 session_threads: int = 1):
        threads = None if threads is None else check_count("threads", threads, 1)
        session_threads = check_count("session_threads", session_threads, 1)
        self.path = model_path(model)
        shipped = model is None or self.path != Path(model)  # by name, or the default
        if shipped and not self.path.exists():
            raise ModelError(f"the {'default' if model is None else 'shipped'} model {str(self.path)!r} is not "
                             "installed (a source tree without the shipped files?); pass the path of a model "
                             "made by mgpt-export")
        session, self.info = open_session(self.path, session_threads)
        self.threads = threads if threads is not None else _usable_cpus()
        self._runner = StepRunner(self.path, session, self.info)
        self._spare = single.SparePool(self._runner)
        self._compiled: dict[tuple, Constraint | None] = {}  # automata by their controls, newest last
        self._novelty: NoveltyFilter | None = None  # read from the metadata when novel is first asked for

    def __repr__(self) -> str:
        return f"Generator({str(self.path)!r}, vocab_size={self.vocab.size}, block_size={self.block_size})"

    @property
    def vocab(self) -> Vocab:
        return self.info.vocab

    @property
    def block_size(self) -> int:
        return self.info.block_size

    # ------------------------------------------------------------------------- sampling

    def generate(self, num_samples: int = 20, temperature: float = 0.5, top_k: int | None = None,
                 top_p: float | None = None, seed: int | None = None, prefix: str = "",
                 max_length: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE, *,
                 labels: list[str] | None = None, min_length: int | None = None, suffix: str = "",
                 contains: str = "", pattern: str | None = None, novel: bool = False, unique: bool = False,
                 exclude: Iterable[str] | None = None, max_attempts: int | None = None) -> list[str]:
        """``num_samples`` samples, each starting with ``prefix`` and at most ``max_length``
        characters long (default and limit: the block size, less a labeled model's label tokens).
        With a ``seed``, sample i is the same whatever ``num_samples`` and ``batch_size``; without
        one every call differs. A labeled model takes ``labels``, one from each of its groups
        (``vocab.labels``; docs/labels.md).

        Shape controls (masks: the model's distribution renormalized step by step over allowed
        continuations): ``min_length`` characters at least (prefix included), a ``suffix``, a string
        the sample ``contains``, a ``pattern`` the whole sample matches. Set controls (rejection: the
        model's distribution conditioned on the sample being new): ``novel`` (never a training
        document), ``exclude`` (never one of these strings), ``unique`` (no repeats in the call), with
        at most ``max_attempts`` attempts (default max(1000, 50 * num_samples)); at the cap a
        ``SamplingError`` carries the samples found. docs/sampling-controls.md is the reference."""
        found: list[str] = []
        try:
            found.extend(self.samples(num_samples, temperature, top_k, top_p, seed, prefix, max_length, batch_size,
                                      labels=labels, min_length=min_length, suffix=suffix, contains=contains,
                                      pattern=pattern, novel=novel, unique=unique, exclude=exclude,
                                      max_attempts=max_attempts))
        except SamplingError as e:
            e.samples = found  # what the stream yielded before the cap
            raise
        return found

    def samples(self, num_samples: int = 20, temperature: float = 0.5, top_k: int | None = None,
                top_p: float | None = None, seed: int | None = None, prefix: str = "",
                max_length: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE, *,
                labels: list[str] | None = None, min_length: int | None = None, suffix: str = "",
                contains: str = "", pattern: str | None = None, novel: bool = False, unique: bool = False,
                exclude: Iterable[str] | None = None, max_attempts: int | None = None) -> Iterator[str]:
        """``generate`` as an iterator: samples in order, each batch's as soon as it ends, with at most
        ``batch_size`` samples in memory (so any number of samples streams in bounded memory; with a
        set control the accepted samples are remembered too, for ``unique`` and the cap's error)."""
        num_samples = check_count("num_samples", num_samples, 0)
        batch_size = check_count("batch_size", batch_size, 1)
        judge, cap = self._set_controls(num_samples, novel, unique, exclude, max_attempts)
        plan = self._plan(temperature, top_k, top_p, seed, prefix, max_length, labels,  # raises now, not at first next()
                          min_length=min_length, suffix=suffix, contains=contains, pattern=pattern)
        if judge is None:
            return self._stream(plan, range(num_samples), batch_size)
        attempts = rejection.accepted(lambda r: self._stream(plan, r, batch_size), judge, num_samples, cap)
        return (text for _, text in attempts)

    def characters(self, temperature: float = 0.5, top_k: int | None = None, top_p: float | None = None,
                   seed: int | None = None, prefix: str = "", max_length: int | None = None,
                   index: int = 0, *, labels: list[str] | None = None, min_length: int | None = None,
                   suffix: str = "", contains: str = "", pattern: str | None = None) -> Iterator[str]:
        """One sample, character by character as each is drawn (the prefix's first). With a
        ``seed`` it is sample ``index`` of ``generate`` with that seed (and the same shape controls)."""
        index = check_count("index", index, 0)
        plan = self._plan(temperature, top_k, top_p, seed, prefix, max_length, labels, min_length=min_length,
                          suffix=suffix, contains=contains, pattern=pattern)
        return single.characters(self._spare, plan, index)

    def trace(self, temperature: float = 0.5, top_k: int | None = None, top_p: float | None = None,
              seed: int | None = None, prefix: str = "", max_length: int | None = None, *, index: int = 0,
              labels: list[str] | None = None, min_length: int | None = None, suffix: str = "", contains: str = "",
              pattern: str | None = None, novel: bool = False, unique: bool = False,
              exclude: Iterable[str] | None = None, max_attempts: int | None = None) -> dict:
        """The steps of sample ``index`` of ``generate`` with these options (of its accepted attempt):
        per draw the input, the five most likely tokens of the distribution drawn from, the uniform
        and the pick, as data (docs/sampling-controls.md, "Trace"). SamplingError at the cap."""
        index = check_count("index", index, 0)
        judge, cap = self._set_controls(index + 1, novel, unique, exclude, max_attempts)
        plan = self._plan(temperature, top_k, top_p, seed, prefix, max_length, labels, min_length=min_length,
                          suffix=suffix, contains=contains, pattern=pattern)
        attempt = index
        if judge is not None:
            for attempt, _ in rejection.accepted(lambda r: self._stream(plan, r, DEFAULT_BATCH_SIZE), judge,
                                                 index + 1, cap):
                pass
        from . import tracing

        return tracing.trace(self._runner, plan, index, attempt)

    def plan(self, temperature: float = 0.5, top_k: int | None = None, top_p: float | None = None,
             seed: int | None = None, prefix: str = "", max_length: int | None = None, *,
             labels: list[str] | None = None, min_length: int | None = None, suffix: str = "", contains: str = "",
             pattern: str | None = None) -> Plan:
        """A sampling call's options checked (TypeError, ValueError as ``generate`` raises them),
        with a fresh seed when none is given, the context already fed and the shape controls
        compiled (``plan.constraint``, by which ``batched.Batch`` masks): for callers that run
        ``batched.Batch`` themselves (the server, which joins many calls' rows in one batch)."""
        return self._plan(temperature, top_k, top_p, seed, prefix, max_length, labels, min_length=min_length,
                          suffix=suffix, contains=contains, pattern=pattern)

    def novelty(self) -> NoveltyFilter:
        """The model's novelty filter (what ``novel`` checks); ModelError if the file has none or
        holds one that cannot be read."""
        if self._novelty is None:
            text = self.info.novelty
            if text is None:
                raise ModelError(f"{str(self.path)!r} has no novelty filter, so novel cannot be checked (its "
                                 f"checkpoint was trained with --no-novelty or by an older mgpt); export a model "
                                 f"whose checkpoint has one, or drop novel")
            from .novelty import NoveltyFilter

            try:
                self._novelty = NoveltyFilter.from_json(strict_json(text))
            except (ValueError, RecursionError) as e:
                raise ModelError(f"{str(self.path)!r} has a novelty filter that cannot be read ({e}); "
                                 f"re-export it with this mgpt") from None
        return self._novelty

    def _set_controls(self, num_samples: int, novel, unique, exclude, max_attempts):
        """(judge, cap): the set controls' judge and attempt cap, or (None, None) without any."""
        novel, unique, exclude, max_attempts = rejection.check_set_options(novel, unique, exclude, max_attempts)
        if not (novel or unique or exclude):
            return None, None
        cap = rejection.default_max_attempts(num_samples) if max_attempts is None else max_attempts
        return rejection.Judge(self.vocab, self.novelty() if novel else None, exclude, unique), cap

    def _plan(self, temperature, top_k, top_p, seed, prefix, max_length, labels=None, *, min_length=None,
              suffix="", contains="", pattern=None) -> Plan:
        sampling.check_options(temperature, top_k, top_p)
        label_ids = self.vocab.label_ids(labels)  # () for a model without labels
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a string, got {type(prefix).__name__} {prefix!r}")
        try:
            ids = self.vocab.encode(prefix)
        except VocabError as e:
            raise ValueError(f"prefix {prefix!r} has {e}; the model knows {''.join(self.vocab.chars)!r}") from None
        longest = self.block_size - len(label_ids)  # the label tokens take positions of the block
        limit = longest if max_length is None else max_length
        limit = check_count("max_length", limit, 1)
        if limit > longest:
            raise ValueError(f"max_length {limit} exceeds the model's block size {self.block_size}"
                             + (f" less its {len(label_ids)} label tokens" if label_ids else ""))
        if len(ids) >= limit:
            raise ValueError(f"prefix {prefix!r} has {len(ids)} characters; it must be shorter than "
                             f"{'max_length' if max_length is not None else 'the block size'} {limit} "
                             f"to leave room for a drawn character")
        if seed is None:
            seed = sampling.new_seed()
        elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an integer, got {type(seed).__name__} {seed!r}")
        constraint = self._compile(limit, pattern, prefix, suffix, contains, min_length)
        context = (self.vocab.bos, *label_ids, *ids)
        return Plan(int(seed), float(temperature), None if top_k is None else int(top_k),
                    None if top_p is None else float(top_p), prefix, context, limit + len(label_ids),
                    *self._runner.prefill(context), constraint)

    def _compile(self, limit, pattern, prefix, suffix, contains, min_length):
        """The shape controls' automaton (None without any), the last COMPILED kept: calls that
        repeat their controls, as a server's do, skip the work."""
        if pattern is None and suffix == "" and contains == "" and min_length is None:
            return None  # the defaults: nothing to check or compile
        from . import constraints

        constraints.check_shape(pattern, suffix, contains, min_length)
        key = (limit, pattern, prefix, suffix, contains, None if min_length is None else int(min_length))
        found = self._compiled.get(key)
        if found is None:
            found = constraints.compile(self.vocab, limit, pattern=pattern, prefix=prefix, suffix=suffix,
                                        contains=contains, min_length=min_length)
            self._compiled[key] = found
            while len(self._compiled) > COMPILED:
                try:
                    del self._compiled[next(iter(self._compiled))]
                except (KeyError, RuntimeError, StopIteration):  # another thread changed it meanwhile
                    break
        return found

    def _stream(self, plan: Plan, indices: range, batch_size: int) -> Iterator[str]:
        """Samples ``indices`` in order. Batches of ``batch_size`` rows are split across the threads
        (when large enough), and at most ``batch_size`` rows are in flight."""
        n, first = len(indices), indices.start
        if n == 0:
            return
        batch = min(batch_size, n)
        if batch == 1:
            yield from single.samples(self._spare, plan, indices)
            return
        parts = max(1, min(self.threads, batch // MIN_SPLIT_ROWS))
        unit = -(-batch // parts)  # rows per work unit
        units = (np.arange(start, min(start + unit, indices.stop)) for start in range(first, indices.stop, unit))
        if parts == 1:
            for rows in units:
                yield from self._batch(plan, rows)
            return
        from concurrent.futures import ThreadPoolExecutor  # here: importing it costs the command ~7 ms

        with ThreadPoolExecutor(parts, thread_name_prefix="mgpt") as pool:
            pending = deque()
            try:
                for rows in units:
                    if len(pending) == parts:
                        yield from pending.popleft().result()
                    pending.append(pool.submit(self._batch, plan, rows))
                while pending:
                    yield from pending.popleft().result()
            finally:  # a consumer that stops early: drop what has not started
                for future in pending:
                    future.cancel()

    def _batch(self, plan: Plan, rows: np.ndarray) -> list[str]:
        """The samples of ``rows`` (sample indices): a last unit of one row takes the batch-1 loop."""
        if len(rows) == 1:
            return list(single.samples(self._spare, plan, range(rows[0], rows[0] + 1)))
        return batched.sample_rows(self._runner, plan, rows)

    # ------------------------------------------------------------------------- scoring

    def score(self, texts: Iterable[str], batch_size: int = DEFAULT_BATCH_SIZE, *,
              labels: list[str] | None = None) -> float:
        """Mean negative log-likelihood (nats) per predicted token of ``texts`` under the model, each
        framed as in training: ``[BOS] + chars + [BOS]``, predicting at most ``block_size`` tokens.
        A labeled model scores them given ``labels`` (one per group): ``[BOS] + labels + chars +
        [BOS]``, the label tokens fed, not predicted."""
        batch_size = check_count("batch_size", batch_size, 1)
        label_ids = self.vocab.label_ids(labels)
        return scoring.score(self._runner, texts, batch_size, self.threads, MIN_SPLIT_ROWS, label_ids)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
