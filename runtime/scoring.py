"""Scoring: the mean negative log-likelihood of texts under the step graph, framed as in training.

Shapes: B rows (documents) in a batch, V vocabulary entries, N tokens of the longest document.
"""

from __future__ import annotations

from functools import partial
from itertools import islice
from math import isfinite
from typing import Iterable

import numpy as np

from .metadata import POSITION, TOKEN, ModelInfo
from .runner import StepRunner
from .vocab import VocabError


def score(runner: StepRunner, texts: Iterable[str], batch_size: int, threads: int = 1, min_rows: int = 256) -> float:
    """Mean NLL (nats) per predicted token of ``texts`` (a string, or any iterable of them, read
    ``batch_size`` at a time, so any number streams in bounded memory): each is ``[BOS] + chars +
    [BOS]``, of which at most ``block_size`` tokens are predicted. A batch of at least ``min_rows``
    rows per thread is split across ``threads`` threads (onnxruntime runs without the GIL)."""
    if isinstance(texts, str):
        texts = [texts]
    try:
        texts = iter(texts)
    except TypeError:
        raise TypeError(f"texts must be a string or an iterable of strings, got {type(texts).__name__}") from None
    total, count, pool = 0.0, 0, None
    try:
        while chunk := list(islice(texts, batch_size)):
            docs = sorted((_encode(runner.info, text) for text in chunk), key=len, reverse=True)
            parts = max(1, min(threads, len(docs) // min_rows))
            if parts == 1:
                results = [_score_batch(runner, docs)]
            else:  # every part-th document: each part stays longest first, and they weigh alike
                if pool is None:
                    from concurrent.futures import ThreadPoolExecutor  # here: it costs mgpt-generate ~7 ms

                    pool = ThreadPoolExecutor(threads, thread_name_prefix="mgpt-score")
                results = pool.map(partial(_score_batch, runner), [docs[j::parts] for j in range(parts)])
            for nll, n in results:
                total, count = total + nll, count + n
    finally:
        if pool is not None:
            pool.shutdown()
    if not count:
        raise ValueError("nothing to score: no texts given")
    return total / count


def _encode(info: ModelInfo, text: str) -> list[int]:
    """``text`` as a document, cut to the block: ``[BOS] + ids + [BOS]``, at most block_size + 1 ids."""
    if not isinstance(text, str):
        raise TypeError(f"texts must be strings, got {type(text).__name__} {repr(text)[:40]}")
    try:
        return info.vocab.encode_document(text)[: info.block_size + 1]
    except VocabError as e:
        raise ValueError(f"cannot score {text[:40]!r}: {e}") from None


def _score_batch(runner: StepRunner, docs: list[list[int]]) -> tuple[float, int]:
    """Summed NLL and predicted-token count of ``docs`` (id lists, longest first, so the rows still
    needed at a position are always a prefix)."""
    B, bos = len(docs), runner.info.bos
    tokens = np.full((B, len(docs[0])), bos, dtype=np.int64)  # (B, N)
    for r, doc in enumerate(docs):
        tokens[r, : len(doc)] = doc
    predicts = np.array([len(doc) - 1 for doc in docs])  # predictions per row (non-increasing)
    cache = runner.empty_cache(B)
    total = 0.0
    for p in range(len(docs[0]) - 1):
        rows = int(np.count_nonzero(predicts > p))  # rows 0..rows-1 still predict at position p
        feed = {TOKEN: np.ascontiguousarray(tokens[:rows, p]), POSITION: runner.positions[p],
                **{name: c[:rows] for name, c in zip(runner.past, cache)}}
        logits, *cache = runner.run(feed)
        # log-softmax in float64 on (V, rows): NumPy reduces across rows far faster than along V
        z = np.array(logits.T, dtype=np.float64, order="C")
        m = z.max(axis=0)
        target = z[tokens[:rows, p + 1], np.arange(rows)]
        z -= m
        np.exp(z, out=z)
        nll = float(np.sum(m + np.log(z.sum(axis=0)) - target))
        if not isfinite(nll):  # a NaN or infinity in the logits, or a target of logit -inf
            raise runner.not_finite(p)
        total += nll
    return total, int(predicts.sum())
