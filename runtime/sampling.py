"""From logits to the next token: the sampling rule and per-sample random streams.

Shapes: B rows (samples), V vocabulary entries.

The rule, for each row: ``softmax(logits / temperature)`` computed in float64 from the float32
logits, restricted to the ``top_k`` most likely tokens and then to the smallest set whose mass
reaches ``top_p``, and drawn by inverse CDF with one uniform number. Every operation is row-local
and elementwise or sequential along the row, so a row's token does not depend on the other rows:
batch 1 and batch 4096 draw the same tokens from the same logits and uniforms. ``draw`` does it for
a batch with NumPy, ``draw_one`` for a single row in plain Python (the batch-1 loop's path), step
for step the same arithmetic.

The uniforms form a counter-based stream: the draw at position ``p`` of sample ``i`` under seed
``s`` is a hash of ``(s, i, p)``, so sample ``i`` is the same whatever the batch it runs in and
however many samples a call asks for.
"""

from __future__ import annotations

import heapq
import os
from bisect import bisect_right
from itertools import accumulate, count
from math import exp, isfinite, isnan

import numpy as np

# splitmix64 (Steele, Lea and Flood 2014): a Weyl increment and a 64-bit finalizer whose output
# passes BigCrush; we use the finalizer as a hash of counters. The same code runs on Python ints
# (masked to 64 bits) and on NumPy uint64 arrays (which wrap mod 2^64 by themselves), so the
# batch-1 path and the batched path compute the same bits.
_GAMMA = 0x9E3779B97F4A7C15
_MASK = 2**64 - 1


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _sample_keys(seed: int, indices):
    """1) the seed (any int, taken mod 2^64) is hashed into a key; 2) sample i's key is the i-th
    output of a splitmix64 stream started there. Draw p of a sample is then the p-th output of a
    stream started at the sample's key, and its top 53 bits make a float64 in [0, 1)."""
    key = _mix((seed + _GAMMA) & _MASK)
    return _mix((key + (indices + 1) * _GAMMA) & _MASK)


def uniforms(seed: int, indices: np.ndarray, length: int) -> np.ndarray:
    """(len(indices), length) float64 in [0, 1): column p is the draw at position p of each sample."""
    rows = _sample_keys(seed % 2**64, np.asarray(indices, dtype=np.uint64))  # (B,)
    steps = (np.arange(length, dtype=np.uint64) + 1) * _GAMMA  # (L,)
    bits = _mix((rows[:, None] + steps[None, :]) & _MASK)  # (B, L)
    return (bits >> 11).astype(np.float64) * 2.0**-53


def row_uniforms(seeds: np.ndarray, indices: np.ndarray, length: int) -> np.ndarray:
    """``uniforms`` for rows of different seeds, in one pass: row r is row ``indices[r]`` of
    ``uniforms(seeds[r], ...)``, the same bits (``seeds`` taken mod 2^64 as uint64)."""
    rows = _sample_keys(np.asarray(seeds, dtype=np.uint64), np.asarray(indices, dtype=np.uint64))  # (B,)
    steps = (np.arange(length, dtype=np.uint64) + 1) * _GAMMA  # (L,)
    bits = _mix((rows[:, None] + steps[None, :]) & _MASK)  # (B, L)
    return (bits >> 11).astype(np.float64) * 2.0**-53


def sample_uniforms(seed: int, index: int, length: int) -> list[float]:
    """Row ``index`` of ``uniforms``, in Python ints: a few microseconds instead of NumPy's ~20 for
    a single row, which matters on the batch-1 path."""
    row = _sample_keys(seed % 2**64, index)
    return [(_mix((row + (p + 1) * _GAMMA) & _MASK) >> 11) * 2.0**-53 for p in range(length)]


def new_seed() -> int:
    """A fresh 64-bit seed for calls made without one: splitmix64 over a counter that starts at
    64 bits from the operating system in each process (a forked child starts its own). One
    os.urandom per call cost a server ~5% of a one-sample request, a system call each time; the
    counter's next() is one C call, so threads never get the same seed."""
    counter = _seeds or _start_seeds()
    return _mix((next(counter) * _GAMMA) & _MASK)


def _start_seeds() -> count:
    global _seeds
    _seeds = count(int.from_bytes(os.urandom(8), "little"))
    return _seeds


_seeds: count | None = None  # the counter new_seed hashes (None: not started in this process)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: globals().update(_seeds=None))


class LogitsError(ValueError):
    """Logits with no distribution to draw from: a NaN or +inf among them, or all of them -inf."""


def check_options(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """TypeError for an option of the wrong type (booleans are not numbers here; NumPy scalars
    are), ValueError with a clear message for one outside its range."""
    def number(value) -> bool:
        return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))

    if not number(temperature):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__} {temperature!r}")
    if not (np.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0 is greedy), got {temperature!r}")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
            raise TypeError(f"top_k must be an integer >= 1 or None, got {type(top_k).__name__} {top_k!r}")
        if top_k < 1:
            raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if top_p is not None:
        if not number(top_p):
            raise TypeError(f"top_p must be a number in (0, 1] or None, got {type(top_p).__name__} {top_p!r}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def weights(columns: np.ndarray, temperature: float, top_k: int | None = None,
            top_p: float | None = None) -> np.ndarray:
    """(V, B) float64 weights of the sampling distribution for (V, B) float32 logits, one column per
    row (a transposed (B, V) view is fine: reductions along V then run across the batch).

    Not normalized (each column's largest weight is 1); tokens outside top-k / top-p weigh 0.
    Every column is computed on its own, with the operations of ``draw_one`` in the same order.
    """
    V = columns.shape[0]
    top = columns.max(axis=0)  # NaN if the column has one
    if not np.isfinite(top).all():
        raise LogitsError("logits are not finite")
    # 1) temperature: exp((l - max l) / T) is softmax(l / T) up to a factor, and cannot overflow
    w = np.subtract(columns, top, dtype=np.float64, order="C")
    if temperature != 1:
        w /= temperature
    # 2) top-k: keep the tokens whose logit reaches the k-th largest (ties at the edge are all kept)
    if top_k is not None and top_k < V:
        w[w < np.partition(w, V - top_k, axis=0)[V - top_k]] = -np.inf
    np.exp(w, out=w)
    # 3) top-p: the most likely tokens, in order, until the mass before the next one reaches p
    if top_p is not None and top_p < 1:
        order = np.argsort(-w, axis=0, kind="stable")
        ranked = np.take_along_axis(w, order, axis=0)
        mass = cumulative(ranked.copy())
        keep = np.ones(w.shape, dtype=bool)  # the most likely token is always kept
        keep[1:] = mass[:-1] < top_p * mass[-1]
        np.put_along_axis(w, order, np.where(keep, ranked, 0.0), axis=0)
    return w


def cumulative(w: np.ndarray) -> np.ndarray:
    """Running sums down axis 0 of (V, B), in place, always added in order (so they are the same
    bits as one row's running sum).

    NumPy's accumulate along axis 0 pays per column; for wide batches adding row after row is faster.
    """
    if w.shape[1] < 256:
        return np.add.accumulate(w, axis=0, out=w)
    for j in range(1, w.shape[0]):
        np.add(w[j - 1], w[j], out=w[j])
    return w


def draw(columns: np.ndarray, u: np.ndarray, temperature: float, top_k: int | None = None,
         top_p: float | None = None) -> np.ndarray:
    """(B,) int64 next tokens for (V, B) float32 logits (see ``weights``) and (B,) uniforms in [0, 1).

    Temperature 0 is greedy (the first most likely token). Otherwise inverse CDF: the first token
    whose cumulative weight exceeds u * total; u < 1 keeps it inside the vocabulary, and a token of
    weight 0 is never chosen because the cumulative weight does not rise across it. A row with a
    NaN or +inf logit, or only -inf ones, raises LogitsError (the check reads the rows' maxima).
    """
    if temperature == 0:
        rows = columns.T  # on the (B, V) logits: NumPy's reductions are fastest along rows
        if not np.isfinite(rows.max(axis=1)).all():  # the max propagates NaN
            raise LogitsError("logits are not finite")
        return rows.argmax(axis=1)
    columns = np.ascontiguousarray(columns)  # a transposed view's reductions along V are 8x slower
    cdf = cumulative(weights(columns, temperature, top_k, top_p))
    below = cdf <= u * cdf[-1]  # (V, B): rows below each column's draw
    # counted as bytes where they fit (V < 256): 12x faster than count_nonzero's wider sum at B 4096
    counts = np.add.reduce(below.view(np.uint8), axis=0, dtype=np.uint8 if len(below) < 256 else np.int64)
    return counts.astype(np.int64, copy=False)


def draw_one(logits: list[float], u: float, temperature: float, top_k: int | None = None,
             top_p: float | None = None) -> int:
    """``draw`` for one row given as a list of floats, in plain Python: the batch-1 loop's path.

    Inside the decoding loop NumPy's per-call cost on 27 numbers is most of the work (16 us against
    7 us here), so the same steps are written again for Python floats: the same operations in the
    same order, with the C library's exp, which is NumPy's float64 exp too except in builds with
    AVX-512 kernels (there a last-bit difference could change a draw with probability ~1e-16).
    A test holds the two paths to the same tokens.
    """
    top = max(logits)  # dividing by T = 1 changes no bit, so unlike NumPy's path no case is needed
    if temperature == 0 or top_k is not None or top_p is not None:
        # Python's max may pass over a NaN, its sum does not (the plain path's total catches it below)
        if not isfinite(top) or isnan(sum(logits)):
            raise LogitsError("logits are not finite")
        if temperature == 0:
            return logits.index(top)
    if top_k is not None and top_k < len(logits):
        z = [(x - top) / temperature for x in logits]
        kth = heapq.nlargest(top_k, z)[-1]
        w = [exp(v) if v >= kth else 0.0 for v in z]
    else:
        w = [exp((x - top) / temperature) for x in logits]
    if top_p is not None and top_p < 1:
        order = sorted(range(len(w)), key=w.__getitem__, reverse=True)  # stable, like argsort's
        mass = list(accumulate(w[i] for i in order))
        kept = 1 + sum(m < top_p * mass[-1] for m in mass[:-1])  # mass only rises: a prefix of the order
        for i in order[kept:]:
            w[i] = 0.0
    cdf = list(accumulate(w))
    if not cdf[-1] > 0:  # NaN from a NaN, +inf or only -inf logits: the same rows as NumPy's check
        raise LogitsError("logits are not finite")
    return bisect_right(cdf, u * cdf[-1])
