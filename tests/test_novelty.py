"""The novelty filter: the documented hash (test vectors that the JavaScript runtime checks too),
the vectorized fold against the one-document one, no false negatives, the stated false-positive
rate, and the metadata object's round trip and refusals."""

import base64

import numpy as np
import pytest

from mgpt.runtime import novelty
from mgpt.runtime.novelty import NoveltyError, NoveltyFilter

# (token ids, h): the values docs/sampling-controls.md lists
VECTORS = [
    ([], 0x6D677074),
    ([0], 0x1767891959ABF75F),
    ([1, 2, 3], 0x5354B76FEA712D66),
    ([25, 0, 24, 0], 0x0943C2C18D12D869),
    ([10, 0, 24, 0], 0xB15002E437A0C048),
]


def spec_hash(ids):
    """The fold written from the documentation, on its own: splitmix64's finalizer and Weyl step."""
    M = 2**64 - 1

    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return z ^ (z >> 31)

    h = 0x6D677074
    for t in ids:
        h = (mix(h ^ t) + 0x9E3779B97F4A7C15) & M
    return h


@pytest.mark.parametrize("ids,h", VECTORS)
def test_vectors(ids, h):
    assert novelty.document_hash(ids) == spec_hash(ids) == h


def test_filter_vector():
    # two documents in 20 bits with 7 probes: the bytes docs/sampling-controls.md shows
    f = novelty.build([[1, 2, 3], [25, 0, 24, 0]], 2, 10, 7)
    assert f.to_json() == {"kind": "bloom-splitmix64-v1", "documents": 2, "bits": 20, "hashes": 7, "data": "uU4H"}
    assert novelty.probes(np.array([spec_hash([1, 2, 3])], np.uint64), 20, 7).tolist() == [[14, 5, 16, 7, 18, 9, 0]]


def test_fold_matches_one_by_one():
    rng = np.random.default_rng(1)
    lengths = rng.integers(0, 20, 3000)
    ids = rng.integers(0, 300, int(lengths.sum()))
    starts = np.cumsum(lengths) - lengths
    expected = [spec_hash(ids[s: s + n].tolist()) for s, n in zip(starts, lengths)]
    assert novelty.fold(ids, lengths).tolist() == expected


def test_no_false_negatives_and_the_stated_rate(monkeypatch):
    monkeypatch.setattr(novelty, "CHUNK_DOCUMENTS", 7000)  # several chunks
    rng = np.random.default_rng(2)
    n = 20000
    lengths = rng.integers(12, 16, n)  # long enough that random documents are distinct
    ids = rng.integers(0, 26, int(lengths.sum()))
    f = NoveltyFilter.empty(n)
    f.add(ids, lengths)
    assert f.documents == n and f.bits == 10 * n and f.hashes == 7
    assert f.contains_many(ids, lengths).all()
    starts = np.cumsum(lengths) - lengths
    assert all(ids[s: s + m].tolist() in f for s, m in zip(starts[:500], lengths[:500]))
    # strings that are not documents: the share called members is the stated rate, ~0.82%
    others = rng.integers(0, 26, 16 * 100000)
    rate = f.contains_many(others, np.full(100000, 16)).mean()
    assert f.false_positive_rate() == pytest.approx(0.0082, abs=0.0002)
    assert abs(rate - f.false_positive_rate()) < 0.0015  # ~5 standard deviations of 100,000 draws


def test_json_round_trip():
    f = novelty.build([[1, 2], [3], [4, 5, 6]], 3, 16, 11)
    g = NoveltyFilter.from_json(f.to_json())
    assert (g.documents, g.bits, g.hashes) == (3, 48, 11) and bytes(g.data) == bytes(f.data)
    assert [1, 2] in g and [3] in g and [4, 5, 6] in g


GOOD = {"kind": "bloom-splitmix64-v1", "documents": 1, "bits": 16, "hashes": 2, "data": "AAA="}


@pytest.mark.parametrize("change,words", [
    ({"kind": "bloom-v2"}, "kind"), ({"bits": 17}, "bytes"), ({"bits": 4}, "out of range"),
    ({"hashes": 0}, "out of range"), ({"hashes": 33}, "out of range"), ({"bits": 2**32}, "out of range"),
    ({"documents": -1}, "out of range"), ({"bits": "16"}, "integers"), ({"hashes": True}, "integers"),
    ({"data": "!!!!"}, "base64"), ({"data": 5}, "base64"), ({"data": "AAAA"}, "bytes"),
])
def test_from_json_refuses(change, words):
    NoveltyFilter.from_json(GOOD)
    with pytest.raises(NoveltyError, match=words):
        NoveltyFilter.from_json({**GOOD, **change})
    with pytest.raises(NoveltyError):
        NoveltyFilter.from_json([GOOD])


@pytest.mark.parametrize("bits,hashes", [(0.5, 7), (float("nan"), 7), (True, 7), (10, 0), (10, 33), (10, 2.0)])
def test_bad_sizes(bits, hashes):
    with pytest.raises(ValueError):
        NoveltyFilter.empty(10, bits, hashes)


def test_too_many_bits():
    with pytest.raises(NoveltyError, match="lower the bits per document"):
        NoveltyFilter.empty(2**31, 10, 7)
    assert base64.b64decode(GOOD["data"]) == b"\0\0"
