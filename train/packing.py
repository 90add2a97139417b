"""Packing: a batch's documents laid end to end in rows of up to ``block_size`` positions, so that a
step computes far fewer padding positions (at batch 32 on the names, 32 rows averaging 10.6
positions become ~15 rows of 16: ~30% fewer). Each document keeps its own positions (0, 1, ...) and
attends only to itself, so the loss and its gradient are those of the padded batch."""

from __future__ import annotations

import numpy as np


def best_fit(lengths: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Longest first, each document into the fullest row it still fits (a new row if none fits):
    (row, start) per document and each row's fill. Rows are kept in lists by their free space, so a
    document looks at most ``capacity`` lists, not every row: 0.24 ms for a batch of 256 names
    against 1.26 ms for first fit over the rows, with as few rows."""
    order = np.argsort(-lengths, kind="stable")
    by_space: list[list[int]] = [[] for _ in range(capacity + 1)]  # free positions -> rows
    fill: list[int] = []
    rows, starts = [], []
    for n in lengths[order].tolist():
        for space in range(n, capacity):  # a row with all `capacity` free is never kept: it is made below
            if by_space[space]:
                r = by_space[space].pop()
                break
        else:
            r, space = len(fill), capacity
            fill.append(0)
        rows.append(r)
        starts.append(fill[r])
        fill[r] += n
        by_space[space - n].append(r)
    row, start = np.empty(len(lengths), np.int64), np.empty(len(lengths), np.int64)
    row[order], start[order] = rows, starts
    return row, start, fill


def pack(tokens: np.ndarray, lengths: np.ndarray, block_size: int, doc_weights: np.ndarray):
    """Pack documents ``tokens`` (B, block_size + 1, framed by data.encode) with ``lengths`` (B,)
    predictions each, weighed by ``doc_weights`` (B, block_size; a labeled document's label
    predictions weigh 0). Returns inputs, targets, weights (in doc_weights' dtype), positions (R, T)
    and the additive attention mask (R, 1, T, T): 0 where a query may see a key (same document, not
    later), -inf elsewhere."""
    dtype = doc_weights.dtype
    row, start, fill = best_fit(lengths, block_size)
    R, T = len(fill), max(fill)
    # 1) every predicted token: its document, its index k in the document, and where it goes
    doc = np.repeat(np.arange(len(lengths)), lengths)
    k = np.arange(len(doc)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    r, c = row[doc], start[doc] + k
    inputs, targets = np.zeros((R, T), np.int64), np.zeros((R, T), np.int64)
    inputs[r, c], targets[r, c] = tokens[doc, k], tokens[doc, k + 1]
    weights, positions = np.zeros((R, T), dtype), np.zeros((R, T), np.int64)
    weights[r, c], positions[r, c] = doc_weights[doc, k], k
    # 2) the mask: a padding position is its own document (-1 - column), so it sees itself only
    segment = np.broadcast_to(-1 - np.arange(T), (R, T)).copy()
    segment[r, c] = doc
    allowed = (segment[:, :, None] == segment[:, None, :]) & (np.arange(T)[:, None] >= np.arange(T))
    mask = np.where(allowed, np.array(0, dtype), np.array(-np.inf, dtype))[:, None]
    return inputs, targets, weights, positions, mask
