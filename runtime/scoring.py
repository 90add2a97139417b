"""Scoring: the mean negative log-likelihood of texts under the step graph, framed as in training.

Shapes: B rows (documents) in a batch, V vocabulary entries, N tokens of the longest document.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .metadata import POSITION, TOKEN
from .runner import StepRunner
from .vocab import VocabError


def score(runner: StepRunner, texts: Iterable[str], batch_size: int) -> float:
    """Mean NLL (nats) per predicted token of ``texts``: each is ``[BOS] + chars + [BOS]``, of which
    at most ``block_size`` tokens are predicted."""
    vocab, block_size = runner.info.vocab, runner.info.block_size
    docs = []
    for text in [texts] if isinstance(texts, str) else texts:
        try:
            docs.append(vocab.encode_document(text)[: block_size + 1])
        except VocabError as e:
            raise ValueError(f"cannot score {text[:40]!r}: {e}") from None
    if not docs:
        raise ValueError("nothing to score: no texts given")
    docs.sort(key=len, reverse=True)  # longest first, so the rows still needed are always a prefix
    total = count = 0.0
    for start in range(0, len(docs), batch_size):
        nll, n = _score_batch(runner, docs[start : start + batch_size])
        total, count = total + nll, count + n
    return total / count


def _score_batch(runner: StepRunner, docs: list[list[int]]) -> tuple[float, int]:
    """Summed NLL and predicted-token count of ``docs`` (id lists, longest first)."""
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
        z = logits.astype(np.float64)  # (rows, V)
        m = z.max(axis=1)
        log_total = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
        total += float(np.sum(log_total - z[np.arange(rows), tokens[:rows, p + 1]]))
    return total, int(predicts.sum())
