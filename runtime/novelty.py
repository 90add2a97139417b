"""The novelty filter: a Bloom filter of the training data's documents, so that a sampler can refuse
the documents it learned from (``novel``) without the file holding them in clear.

Shapes: N documents, m bits, k probes per document.

Each document is keyed by its token ids t_1..t_n (no BOS) with a 64-bit fold of splitmix64's
finalizer (``sampling._mix``, the random stream's, so every runtime has it already)::

    h = 0x6D677074                       # "mgpt"
    for t in ids: h = mix(h ^ t); h = (h + GAMMA) mod 2^64
    h1 = h & 0xFFFFFFFF;  h2 = (h >> 32) | 1
    probe i (i < k) sets/tests bit (h1 + i * h2) mod m, bit j being (data[j >> 3] >> (j & 7)) & 1

A query answers "maybe a document" (all k bits set) or "certainly not" (no false negatives); the
false-positive rate is about (1 - exp(-k N / m))^k. ``fold`` hashes many documents at once with
NumPy, a position at a time over documents sorted by length, so the cost is one pass over the
tokens plus a few vectorized operations per position. docs/sampling-controls.md is the reference.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .sampling import _GAMMA, _MASK, _mix

KIND = "bloom-splitmix64-v1"  # the "kind" of the metadata's "novelty" object
SEED = 0x6D677074  # "mgpt": the fold's starting value
DEFAULT_BITS_PER_DOCUMENT = 10  # with 7 probes: ~0.82% false positives
DEFAULT_HASHES = 7
MAX_BITS = 2**32 - 1  # m < 2^32: probes stay exact in JavaScript's doubles
MAX_HASHES = 32
CHUNK_DOCUMENTS = 1 << 20  # documents hashed at once by ``add``: bounds its temporary arrays


class NoveltyError(ValueError):
    """A novelty filter that cannot be built or read."""


def false_positive_rate(documents: int, bits: int, hashes: int) -> float:
    """The expected share of strings outside the data that the filter calls members."""
    return (1 - math.exp(-hashes * documents / bits)) ** hashes if documents else 0.0


def document_hash(ids: Sequence[int]) -> int:
    """The fold above for one document, in Python ints (the runtime's per-sample check)."""
    h = SEED
    for t in ids:
        h = (_mix(h ^ t) + _GAMMA) & _MASK
    return h


def fold(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(N,) uint64 fold of N documents given as their concatenated token ids (any integer array)
    and (N,) lengths: the same bits as ``document_hash`` of each, computed a position at a time
    over the documents still that long (longest first, so they are a leading slice)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    ids = np.asarray(ids).astype(np.uint64, copy=False)
    starts = np.cumsum(lengths) - lengths
    order = np.argsort(-lengths, kind="stable")
    by_length, first = lengths[order], starts[order]
    h = np.full(len(lengths), SEED, dtype=np.uint64)
    # count[p]: documents longer than p (they are the first count[p] of the order)
    counts = np.searchsorted(-by_length, -np.arange(by_length[0] if len(by_length) else 0), side="left")
    gamma = np.uint64(_GAMMA)
    with np.errstate(over="ignore"):
        for p, count in enumerate(counts.tolist()):
            head = h[:count]
            np.add(_mix(head ^ ids[first[:count] + p]), gamma, out=head)
    out = np.empty_like(h)
    out[order] = h
    return out


def probes(h: np.ndarray, bits: int, k: int) -> np.ndarray:
    """(N, k) int64 bit indices of N hashes."""
    h1 = (h & np.uint64(0xFFFFFFFF)).astype(np.int64)
    h2 = ((h >> np.uint64(32)) | np.uint64(1)).astype(np.int64)
    return (h1[:, None] + np.arange(k, dtype=np.int64)[None, :] * h2[:, None]) % bits


@dataclass
class NoveltyFilter:
    documents: int  # documents added (repeats counted)
    bits: int  # m
    hashes: int  # k
    data: np.ndarray  # (ceil(m / 8),) uint8

    # ---------------------------------------------------------------- building

    @classmethod
    def empty(cls, documents: int, bits_per_document: float = DEFAULT_BITS_PER_DOCUMENT,
              hashes: int = DEFAULT_HASHES) -> "NoveltyFilter":
        """A filter sized for ``documents`` documents at ``bits_per_document`` bits each."""
        if not (isinstance(bits_per_document, (int, float)) and not isinstance(bits_per_document, bool)
                and math.isfinite(bits_per_document) and bits_per_document >= 1):
            raise ValueError(f"bits per document must be a number >= 1, got {bits_per_document!r}")
        if isinstance(hashes, bool) or not isinstance(hashes, (int, np.integer)) or not 1 <= hashes <= MAX_HASHES:
            raise ValueError(f"hashes must be an integer from 1 to {MAX_HASHES}, got {hashes!r}")
        bits = max(8, math.ceil(bits_per_document * max(documents, 1)))
        if bits > MAX_BITS:
            raise NoveltyError(f"a novelty filter of {documents:,} documents at {bits_per_document:g} bits each "
                               f"needs {bits:,} bits, more than {MAX_BITS:,}; lower the bits per document")
        return cls(0, bits, int(hashes), np.zeros(-(-bits // 8), dtype=np.uint8))

    def add(self, ids: np.ndarray, lengths: np.ndarray) -> None:
        """Add N documents given as concatenated token ids and (N,) lengths, ``CHUNK_DOCUMENTS`` at
        a time (the probe arrays of a chunk are ~k * 8 bytes per document)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        ids = np.asarray(ids)
        ends = np.cumsum(lengths)
        for first in range(0, len(lengths), CHUNK_DOCUMENTS):
            last = min(first + CHUNK_DOCUMENTS, len(lengths))
            lo = int(ends[first - 1]) if first else 0
            j = probes(fold(ids[lo: int(ends[last - 1])], lengths[first:last]), self.bits, self.hashes).ravel()
            np.bitwise_or.at(self.data, j >> 3, (1 << (j & 7)).astype(np.uint8))
            self.documents += last - first

    def add_documents(self, documents: Iterable[Sequence[int]]) -> None:
        """Add documents given as sequences of token ids (a convenience over ``add``)."""
        docs = [np.asarray(d, dtype=np.int64) for d in documents]
        lengths = np.array([len(d) for d in docs], dtype=np.int64)
        self.add(np.concatenate(docs) if docs else np.zeros(0, np.int64), lengths)

    # ---------------------------------------------------------------- querying

    def __contains__(self, ids: Sequence[int]) -> bool:
        """Whether a document of token ids may be in the data (certainly not when False)."""
        h = document_hash(ids)
        h1, h2, m, data = h & 0xFFFFFFFF, (h >> 32) | 1, self.bits, self.data
        for i in range(self.hashes):
            j = (h1 + i * h2) % m
            if not data[j >> 3] >> (j & 7) & 1:
                return False
        return True

    def contains_many(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(N,) bool: ``in`` for N documents given as concatenated ids and lengths."""
        j = probes(fold(ids, lengths), self.bits, self.hashes)
        return ((self.data[j >> 3] >> (j & 7).astype(np.uint8)) & 1).all(axis=1)

    def false_positive_rate(self) -> float:
        return false_positive_rate(self.documents, self.bits, self.hashes)

    # ---------------------------------------------------------------- the metadata's JSON object

    def sizes(self) -> dict:
        """The JSON object without its data (the checkpoint keeps the bytes as an array)."""
        return {"kind": KIND, "documents": self.documents, "bits": self.bits, "hashes": self.hashes}

    def to_json(self) -> dict:
        return {**self.sizes(), "data": base64.b64encode(self.data.tobytes()).decode("ascii")}

    @classmethod
    def from_json(cls, value, data: np.ndarray | None = None) -> "NoveltyFilter":
        """The filter of a metadata ``novelty`` object, or of a checkpoint's (its sizes, with the
        bytes as ``data``); NoveltyError if it is not one."""
        if not isinstance(value, dict):
            raise NoveltyError("the novelty entry is not a JSON object")
        if value.get("kind") != KIND:
            raise NoveltyError(f"the novelty entry's kind is {value.get('kind')!r}; this mgpt reads {KIND!r}")
        sizes = [value.get(name) for name in ("documents", "bits", "hashes")]
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in sizes):
            raise NoveltyError("the novelty entry's documents, bits and hashes must be integers")
        documents, bits, k = sizes
        if not (documents >= 0 and 8 <= bits <= MAX_BITS and 1 <= k <= MAX_HASHES):
            raise NoveltyError(f"the novelty entry has sizes out of range (documents {documents}, bits {bits}, "
                               f"hashes {k})")
        if data is not None:
            if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 1):
                raise NoveltyError("the novelty array is not one row of bytes (uint8)")
            raw = data.tobytes()
        else:
            text = value.get("data")
            try:
                if not isinstance(text, str):
                    raise ValueError("not a string")
                raw = base64.b64decode(text.encode("ascii"), validate=True)
            except (ValueError, binascii.Error, UnicodeEncodeError):
                raise NoveltyError("the novelty entry's data is not base64") from None
        if len(raw) != -(-bits // 8):
            raise NoveltyError(f"the novelty entry's data holds {len(raw):,} bytes; {bits:,} bits need "
                               f"{-(-bits // 8):,}")
        return cls(documents, bits, k, np.frombuffer(raw, dtype=np.uint8).copy())


def encode_texts(texts: Sequence[str], chars: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(ids, lengths) of texts over a sorted vocabulary ``chars``, at NumPy speed: each text's code
    points looked up with one searchsorted. Every character must be in the vocabulary."""
    table = np.array([ord(c) for c in chars], dtype=np.uint32)
    points = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
    ids = np.minimum(np.searchsorted(table, points), len(table) - 1)
    if not (table[ids] == points).all():  # a code point between or beyond the vocabulary's
        raise ValueError("a text has a character outside the vocabulary")
    return ids, np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))


def from_texts(texts: Sequence[str], chars: Sequence[str], bits_per_document: float = DEFAULT_BITS_PER_DOCUMENT,
               hashes: int = DEFAULT_HASHES) -> NoveltyFilter:
    """The filter of documents given as strings over the sorted vocabulary ``chars`` (what
    mgpt-train records), encoded and added CHUNK_DOCUMENTS at a time, so the temporary arrays stay
    bounded however many documents there are."""
    f = NoveltyFilter.empty(len(texts), bits_per_document, hashes)
    for first in range(0, len(texts), CHUNK_DOCUMENTS):
        f.add(*encode_texts(texts[first: first + CHUNK_DOCUMENTS], chars))
    return f


def build(documents: Iterable[np.ndarray | Sequence[int]], count: int,
          bits_per_document: float = DEFAULT_BITS_PER_DOCUMENT, hashes: int = DEFAULT_HASHES) -> NoveltyFilter:
    """The filter of ``count`` documents (token id sequences), sized before the first is added."""
    f = NoveltyFilter.empty(count, bits_per_document, hashes)
    f.add_documents(documents)
    return f
