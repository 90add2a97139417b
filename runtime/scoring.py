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


def score(runner: StepRunner, texts: Iterable[str], batch_size: int, threads: int = 1, min_rows: int = 256,
          labels: tuple[int, ...] = ()) -> float:
    """Mean NLL (nats) per predicted token of ``texts`` (a string, or any iterable of them, read
    ``batch_size`` at a time, so any number streams in bounded memory): each is ``[BOS] + chars +
    [BOS]``, of which at most ``block_size`` tokens are predicted. A batch of at least ``min_rows``
    rows per thread is split across ``threads`` threads (onnxruntime runs without the GIL).
    A labeled model's texts are scored given ``labels`` (label token ids, fed after BOS as in
    training): ``[BOS] + labels + chars + [BOS]``, the characters and closing BOS predicted."""
    if isinstance(texts, str):
        texts = [texts]
    try:
        texts = iter(texts)
    except TypeError:
        raise TypeError(f"texts must be a string or an iterable of strings, got {type(texts).__name__}") from None
    total, count, pool = 0.0, 0, None
    try:
        while chunk := list(islice(texts, batch_size)):
            tokens, predicts = _encode_batch(runner.info, chunk, labels)
            parts = max(1, min(threads, len(chunk) // min_rows))
            if parts == 1:
                results = [_score_batch(runner, tokens, predicts, len(labels))]
            else:  # every part-th document: each part stays longest first, and they weigh alike
                if pool is None:
                    from concurrent.futures import ThreadPoolExecutor  # here: it costs mgpt-generate ~7 ms

                    pool = ThreadPoolExecutor(threads, thread_name_prefix="mgpt-score")
                results = pool.map(partial(_score_batch, runner, skip=len(labels)),
                                   [tokens[j::parts] for j in range(parts)], [predicts[j::parts] for j in range(parts)])
            for nll, n in results:
                total, count = total + nll, count + n
    finally:
        if pool is not None:
            pool.shutdown()
    if not count:
        raise ValueError("nothing to score: no texts given")
    return total / count


def _encode(info: ModelInfo, text: str) -> list[int]:
    """``text`` as a document, cut to the block: ``[BOS] + ids + [BOS]``, at most block_size + 1 ids;
    the error that says what is wrong with a text ``_encode_batch`` cannot encode."""
    if not isinstance(text, str):
        raise TypeError(f"texts must be strings, got {type(text).__name__} {repr(text)[:40]}")
    try:
        return info.vocab.encode_document(text)[: info.block_size + 1]
    except VocabError as e:
        raise ValueError(f"cannot score {text[:40]!r}: {e}") from None


def _encode_batch(info: ModelInfo, chunk: list[str], labels: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """The documents of ``chunk`` framed as in training and sorted longest first (a stable sort,
    so the rows still needed at a position are always a prefix): a (B, N) int64 matrix of
    ``[BOS] + ids + [BOS]`` cut to block_size + 1 tokens and padded with BOS, and the (B,) count
    of predictions per row (non-increasing). With ``labels`` the rows are ``[BOS] + labels + ids +
    [BOS]`` cut to block_size + 1 tokens, and the predictions counted are those after the labels.

    Vectorized over the whole chunk (every character looked up at once in the sorted vocabulary's
    code points): one text at a time in Python was a third of a two-thread score's time, measured.
    Any text it cannot encode is encoded again by ``_encode``, which says what is wrong with it.
    """
    for text in chunk:  # anything but a string: _encode's TypeError says what it is
        if not isinstance(text, str):
            _encode(info, text)
    block, bos = info.block_size - len(labels), info.bos  # the label tokens take positions of the block
    lengths = np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk))  # (B,) characters
    codes = np.frombuffer("".join(chunk).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)  # one per character
    table = np.fromiter(map(ord, info.vocab.chars), dtype=np.uint32)  # sorted, as the vocabulary is
    ids = np.minimum(np.searchsorted(table, codes), len(table) - 1)
    if codes.size and not np.array_equal(table[ids], codes):
        unknown = int(np.argmax(table[ids] != codes))  # the first character with no id: in which text?
        _encode(info, chunk[int(np.searchsorted(np.cumsum(lengths), unknown, side="right"))])  # raises
        raise AssertionError("a character with no id was encoded")  # not reached: _encode raised
    kept = np.minimum(lengths, block)  # characters fed: a document longer than the block is cut
    predicts = np.minimum(lengths + 1, block)  # the characters, then the closing BOS if it fits
    order = np.argsort(-predicts, kind="stable")
    starts = (np.cumsum(lengths) - lengths)[order]  # where each sorted row's characters begin in ids
    kept, predicts = kept[order], predicts[order]
    column = np.arange(int(predicts[0]) + 1)  # (N,) token positions of the longest row
    fed = (column >= 1) & (column <= kept[:, None])  # (B, N) the positions that hold a character
    tokens = np.full(fed.shape, bos, dtype=np.int64)
    tokens[fed] = ids[(starts[:, None] + column - 1)[fed]]
    if labels:
        tokens = np.insert(tokens, [1] * len(labels), labels, axis=1)
    return tokens, predicts


def _score_batch(runner: StepRunner, tokens: np.ndarray, predicts: np.ndarray, skip: int = 0) -> tuple[float, int]:
    """Summed NLL and predicted-token count of a batch of documents (``_encode_batch``'s matrix and
    predictions per row, longest first, so the rows still needed at a position are a prefix); the
    first ``skip`` positions (BOS and all but the last label token) are fed, not scored."""
    B = len(tokens)
    cache = runner.empty_cache(B)
    total = 0.0
    for p in range(int(predicts[0]) + skip):
        rows = int(np.count_nonzero(predicts + skip > p))  # rows 0..rows-1 still predict at position p
        feed = {TOKEN: np.ascontiguousarray(tokens[:rows, p]), POSITION: runner.positions[p],
                **{name: c[:rows] for name, c in zip(runner.past, cache)}}
        logits, *cache = runner.run(feed)
        if p < skip:
            continue
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
