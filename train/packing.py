"""Packing: a batch's documents laid end to end in rows of up to ``block_size`` positions, so that a
step computes far fewer padding positions (at batch 32 on the names, 32 rows averaging 10.6
positions become ~15 rows of 16: ~30% fewer). Each document keeps its own positions (0, 1, ...) and
attends only to itself, so the loss and its gradient are those of the padded batch."""

from __future__ import annotations

import numpy as np


def first_fit(lengths: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Longest first, each document into the first row it fits: (row, start) per document and
    each row's fill."""
    row, start = np.empty(len(lengths), np.int64), np.empty(len(lengths), np.int64)
    fill: list[int] = []
    for i in np.argsort(-lengths, kind="stable"):
        n = int(lengths[i])
        r = next((r for r, used in enumerate(fill) if used + n <= capacity), len(fill))
        if r == len(fill):
            fill.append(0)
        row[i], start[i] = r, fill[r]
        fill[r] += n
    return row, start, fill


def pack(tokens: np.ndarray, lengths: np.ndarray, block_size: int, dtype=np.float64):
    """Pack documents ``tokens`` (B, block_size + 1, framed by data.encode) with ``lengths`` (B,)
    predictions each. Returns inputs, targets, weights, positions (R, T) and the additive attention
    mask (R, 1, T, T): 0 where a query may see a key (same document, not later), -inf elsewhere."""
    row, start, fill = first_fit(lengths, block_size)
    R, T = len(fill), max(fill)
    # 1) every predicted token: its document, its index k in the document, and where it goes
    doc = np.repeat(np.arange(len(lengths)), lengths)
    k = np.arange(len(doc)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    r, c = row[doc], start[doc] + k
    inputs, targets = np.zeros((R, T), np.int64), np.zeros((R, T), np.int64)
    inputs[r, c], targets[r, c] = tokens[doc, k], tokens[doc, k + 1]
    weights, positions = np.zeros((R, T), dtype), np.zeros((R, T), np.int64)
    weights[r, c], positions[r, c] = 1, k
    # 2) the mask: a padding position is its own document (-1 - column), so it sees itself only
    segment = np.broadcast_to(-1 - np.arange(T), (R, T)).copy()
    segment[r, c] = doc
    allowed = (segment[:, :, None] == segment[:, None, :]) & (np.arange(T)[:, None] >= np.arange(T))
    mask = np.where(allowed, np.array(0, dtype), np.array(-np.inf, dtype))[:, None]
    return inputs, targets, weights, positions, mask
