"""The novelty filter: the documented hash (test vectors that the JavaScript runtime checks too),
the vectorized fold against the one-document one, no false negatives, the stated false-positive
rate, and the metadata object's round trip and refusals."""

import base64
from pathlib import Path

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


# ---------------------------------------------------------------------------------- train -> export

def test_training_records_every_document_and_export_carries_it(tmp_path):
    from click.testing import CliRunner

    from mgpt.export import export
    from mgpt.runtime import Generator, ModelError
    from mgpt.train import checkpoint
    from mgpt.train.cli import train_command

    docs = [f"{a}{b}{c}" for a in "abcde" for b in "fghij" for c in "klmno"]  # 125 distinct documents
    data = tmp_path / "docs.txt"
    data.write_text("\n".join(docs) + "\n\n  \n")  # blank lines are no documents
    runs = {"default": [], "sized": ["--novelty-bits", "16", "--novelty-hashes", "11"], "none": ["--no-novelty"]}
    for name, extra in runs.items():
        result = CliRunner().invoke(train_command, ["--data", str(data), "--out", str(tmp_path / f"{name}.npz"),
                                                    "--steps", "2", "--val-fraction", "0.2", "-q", *extra])
        assert result.exit_code == 0, result.output
    ckpt = checkpoint.load(tmp_path / "default.npz")
    f = ckpt.novelty
    assert (f.documents, f.bits, f.hashes) == (125, 1250, 7) and ckpt.training["held_out"] == 25
    assert all(ckpt.vocab.encode(d) in f for d in docs)  # held-out documents included
    sized = checkpoint.load(tmp_path / "sized.npz").novelty
    assert (sized.bits, sized.hashes) == (2000, 11)
    assert checkpoint.load(tmp_path / "none.npz").novelty is None
    export(tmp_path / "default.npz", tmp_path / "default.onnx")
    g = Generator(tmp_path / "default.onnx")
    assert bytes(g.novelty().data) == bytes(f.data) and g.novelty().to_json() == f.to_json()
    assert not set(g.generate(300, temperature=2.0, seed=1, novel=True)) & set(docs)
    export(tmp_path / "none.npz", tmp_path / "none.onnx")
    plain = Generator(tmp_path / "none.onnx")
    assert plain.info.novelty is None and "novelty" not in plain.info.to_props()
    with pytest.raises(ModelError, match="no novelty filter"):
        plain.generate(novel=True)


def test_add_novelty_script_leaves_the_weights_alone(tmp_path):
    import runpy
    import sys

    from mgpt.train import checkpoint
    from mgpt.train.data import default_data_path, read_documents

    shipped = Path(__file__).parents[1] / "models" / "names.npz"
    if not shipped.exists():
        pytest.skip("the shipped checkpoint is not in this tree")
    before = checkpoint.load(shipped)
    copy = tmp_path / "names.npz"
    checkpoint.save(copy, checkpoint.Checkpoint(before.config, before.vocab, before.params, before.training))
    assert checkpoint.load(copy).novelty is None
    script = Path(__file__).parents[1] / "scripts" / "add_novelty.py"
    argv, sys.argv = sys.argv, [str(script), str(copy)]
    try:
        with pytest.raises(SystemExit) as done:
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    assert done.value.code == 0
    after = checkpoint.load(copy)
    assert all(np.array_equal(after.params[k], before.params[k]) for k in before.params)
    assert after.training == before.training and after.novelty.documents == 32469
    assert bytes(after.novelty.data) == bytes(before.novelty.data)  # the shipped one was made this way
    names = read_documents(default_data_path())
    assert after.novelty.contains_many(*novelty.encode_texts(names, after.vocab.chars)).all()
