"""Labeled documents (``mgpt-train --labeled``, docs/labels.md): lines ``LABEL[,LABEL...]<TAB>TEXT``.

Each line's labels are split from its text; the labels' places in the line are their groups (the
first label of every line is group 1, ...), each group's labels sorted, and the label tokens follow
BOS in that order (``Vocab.labels``). A labeled document is framed

    [BOS] [label 1] ... [label G] c1 ... cn [BOS]

with the label tokens as inputs only: their predictions weigh 0, so the loss is that of the text
given its labels. ``data`` reads a labeled file through these, chunk by chunk; no file is read here.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from mgpt.runtime.vocab import Vocab, label_problem

from .data import DataError, Encoded

EXAMPLE = "F,1950s<TAB>linda"  # what a labeled line looks like, in every message about one


class LabelSets:
    """The distinct label lists of a labeled file's lines, numbered as first seen (a line's
    ``add`` returns its list's number), with the checks that make them one set of groups: every
    line as many labels as the first, each label in one place only. ``where(i)`` names line i in
    messages (``line 12``)."""

    def __init__(self, name: str, where: Callable[[int], str]):
        self.name, self.where = name, where
        self.numbers: dict[str, int] = {}  # a line's label text (before its tab) -> its list's number
        self.lists: list[tuple[str, ...]] = []
        self.place: dict[str, int] = {}  # label -> its group (place in a line)
        self.width: int | None = None  # labels per line

    def error(self, i: int, why: str) -> DataError:
        return DataError(f"data file {self.name!r}: {self.where(i)} {why}; --labeled lines are LABELS<TAB>TEXT, "
                         f"e.g. {EXAMPLE}")

    def add(self, head: str, i: int) -> int:
        """The number of line ``i``'s label list, ``head`` its text before the tab."""
        number = self.numbers.get(head)
        if number is not None:
            return number
        labels = tuple(head.split(","))
        for label in labels:
            problem = label_problem(label)
            if problem:
                raise self.error(i, "has an empty label" if not label else f"has a bad label ({problem})")
        if self.width is None:
            self.width = len(labels)
        elif len(labels) != self.width:
            raise self.error(i, f"has {len(labels)} label{'s' * (len(labels) != 1)}, the lines before it "
                                f"{self.width}: every line needs one label from each group")
        for g, label in enumerate(labels):
            if self.place.setdefault(label, g) != g:
                raise self.error(i, f"has label {label!r} in place {g + 1}, earlier lines in place "
                                    f"{self.place[label] + 1}: a label belongs to one group")
        if len(set(labels)) != len(labels):
            raise self.error(i, "repeats a label")
        self.numbers[head] = len(self.lists)
        self.lists.append(labels)
        return self.numbers[head]



def label_tokens(lists: tuple[tuple[str, ...], ...], vocab: Vocab) -> np.ndarray:
    """(lists, G) int64: each label list's token ids in ``vocab``; a DataError names a label the
    vocabulary lacks (data labeled otherwise than the checkpoint fine-tuned from)."""
    try:
        return np.array([vocab.label_ids(list(labels)) for labels in lists], dtype=np.int64).reshape(len(lists), -1)
    except ValueError as e:
        raise DataError(f"the data's labels do not fit the model's ({e}); train from scratch or label the data "
                        f"with the model's labels") from None


def split_chunk(codes: np.ndarray, lengths: np.ndarray, sets: LabelSets, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(text codes, text lengths, label list numbers) of a chunk of labeled documents (``codes``
    end to end, ``lengths`` each; document ``first`` + k is the k-th): each split at its first tab,
    refused without one, with empty labels or text, or with a tab in its text."""
    ends = np.cumsum(lengths)
    starts = ends - lengths
    tabs = np.flatnonzero(codes == 0x09)
    count = np.bincount(np.searchsorted(ends, tabs, side="right"), minlength=len(lengths))  # tabs per document
    tab = tabs[np.minimum(np.cumsum(count) - count, max(len(tabs) - 1, 0))] if len(tabs) else starts  # each one's first
    bad = (count != 1) | (tab == ends - 1)  # no tab, two, or nothing after it
    n_good = int(np.argmax(bad)) if bad.any() else len(lengths)
    text = codes.tobytes().decode("latin-1") if codes.dtype == np.uint8 else codes.astype("<u4").tobytes().decode("utf-32-le")
    numbers = np.fromiter((sets.add(text[a:b], first + i) for i, (a, b) in  # a bad label before n_good raises first
                           enumerate(zip(starts[:n_good].tolist(), tab[:n_good].tolist()))), dtype=np.int64, count=n_good)
    if n_good < len(lengths):
        why = ("has no tab" if count[n_good] == 0 else "has a second tab (the text holds none)" if count[n_good] > 1
               else "has no text after its tab")
        raise sets.error(first + n_good, why)
    # the texts: every code after its document's tab
    head = np.zeros(len(codes) + 1, dtype=np.int8)  # +1 where a document (its labels) starts, -1 after its tab
    head[starts], head[tab + 1] = 1, -1  # distinct places: a text is never empty
    keep = np.cumsum(head[:-1], dtype=np.int8) == 0
    return codes[keep], ends - tab - 1, numbers


def with_labels(framed: Encoded, label_tokens: np.ndarray) -> Encoded:
    """Texts framed for ``block_size - G`` (``[BOS] + ids + [BOS]``, padded) made labeled documents of
    ``block_size``: the G label tokens (rows of ``label_tokens``, (N, G)) go after BOS, their
    predictions weigh 0, and each document's predictions (``lengths``) count them, so that a batch
    is cut to its longest document and packing keeps them in place."""
    N, G = label_tokens.shape
    tokens = np.concatenate([framed.tokens[:, :1], label_tokens, framed.tokens[:, 1:]], axis=1)
    weights = np.concatenate([np.zeros((N, G), framed.weights.dtype), framed.weights], axis=1)
    lengths = framed.weights.sum(axis=1).astype(np.int64) if framed.lengths is None else framed.lengths
    return Encoded(tokens, weights, framed.truncated, lengths + G)
