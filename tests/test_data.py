"""Reading data in chunks: the documents are str.splitlines()'s non-blank lines whatever the chunk
size, bad data is named by its line in bounded memory, the held-out split is the old one below its
cap, and training and scoring take their documents from the compact corpus."""

import json
import random
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

from mgpt.train import data
from mgpt.train.cli import eval_command, train_command
from mgpt.train.data import (DataError, Split, held_out, iter_documents, read_corpus, read_documents, split,
                             stream_corpus)
from mgpt.train.trainer import TrainOptions, train, train_split
from mgpt.train.config import GPTConfig

PIECES = ["a", "b", "é", "日", "😀", " ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f",
          "\x85", "\u2028", "\u2029", "\xa0", "\u3000", "\u2003", "z", "\n\n", "\n", "\n"]


def texts(count=300, seed=1):
    """Random texts of letters, every line break and space str knows, and plain ones (\\n, \\r\\n)."""
    rng = random.Random(seed)
    for _ in range(count):
        pieces = [rng.choice(PIECES) for _ in range(rng.randint(1, 60))]
        kind = rng.random()
        if kind < 0.3:
            pieces = [p for p in pieces if p.isascii()]
        elif kind < 0.6:
            pieces = [p for p in pieces if p in ("a", "b", "é", "日", "\n", "\r\n")]
        text = "".join(pieces)
        yield ("\ufeff" + text) if rng.random() < 0.1 else text


@pytest.mark.parametrize("chunk", [3, 7, 1 << 20])
def test_documents_are_the_non_blank_lines_str_splitlines_finds_at_any_chunk_size(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(data, "CHUNK_BYTES", chunk)
    path = tmp_path / "t.txt"
    checked = 0
    for text in texts():
        path.write_bytes(text.encode())
        expected = [line for line in text.removeprefix("\ufeff").splitlines() if line.strip()]
        if not expected:
            with pytest.raises(DataError, match="no documents|empty"):
                read_corpus(path)
            continue
        assert read_documents(path) == expected, repr(text)
        corpus = read_corpus(path)
        assert list(corpus.documents()) == expected and [corpus.document(j) for j in range(len(corpus))] == expected
        assert corpus.chars == tuple(sorted(set("".join(expected))))
        assert [d for part in stream_corpus(path) for d in part.documents()] == expected
        checked += 1
    assert checked > 200


def test_characters_are_kept_in_the_smallest_type_that_holds_them(tmp_path):
    for text, dtype in (("emma\nliam\n", np.uint8), ("zoë\nnaïve\n", np.uint8), ("łódź\n", np.uint16),
                        ("ab\n😀\n", np.uint32)):
        path = tmp_path / "t.txt"
        path.write_text(text, encoding="utf-8")
        corpus = read_corpus(path)
        assert corpus.codes.dtype == dtype and corpus.starts.dtype == np.uint32
        assert list(corpus.documents()) == text.split()


def names_file(path, lines: int, bad_line: int | None = None, long_line: tuple[int, int] | None = None) -> bytes:
    """``lines`` names with numbers (deterministic); an invalid UTF-8 byte as the 4th byte of line
    ``bad_line``; line ``long_line[0]`` made of ``long_line[1]`` letters."""
    rows = [b"name%d" % i for i in range(lines)]
    if bad_line is not None:
        rows[bad_line - 1] = rows[bad_line - 1][:3] + b"\xff" + rows[bad_line - 1][3:]
    if long_line is not None:
        rows[long_line[0] - 1] = b"x" * long_line[1]
    raw = b"\n".join(rows) + b"\n"
    path.write_bytes(raw)
    return raw


def peak_bytes(call) -> tuple[int, object]:
    """The most memory Python and NumPy held at once during ``call()`` (tracemalloc), and what it
    raised or returned."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    try:
        outcome = call()
    except Exception as e:  # noqa: BLE001 -- the caller inspects it
        outcome = e
    peak = tracemalloc.get_traced_memory()[1] - base
    if not tracing:
        tracemalloc.stop()
    return peak, outcome


def test_a_bad_byte_near_the_end_is_named_by_line_and_byte_before_anything_is_kept(tmp_path, monkeypatch):
    # the same structure as a 1 GB file with a bad byte near its end, at 1/1000 of its size and chunks
    monkeypatch.setattr(data, "CHUNK_BYTES", 1 << 15)
    path = tmp_path / "bad.txt"
    raw = names_file(path, 100_000, bad_line=99_990)
    assert len(raw) > 900_000
    bad = raw.index(bytes([0xFF]))
    for read in (read_corpus, read_documents):
        peak, error = peak_bytes(lambda: read(path))
        assert isinstance(error, DataError)
        assert str(error).startswith(f"data file {str(path)!r} is not UTF-8: line 99,990, byte 4 of the line (0xff, "
                                     f"byte {bad:,} of the file"), error
        assert "re-encode it as UTF-8" in str(error)
        assert peak < 6 * data.CHUNK_BYTES < len(raw) / 5, peak  # a few chunks, never the file


@pytest.mark.parametrize("where,size", [("own chunks", 16 << 20), ("inside a chunk", (1 << 20) + 1)])
def test_a_line_too_long_is_named_with_its_size_in_bounded_memory(tmp_path, monkeypatch, where, size):
    # a 100 MB line's structure: longer than MAX_LINE_BYTES, and (for the first) than a chunk
    monkeypatch.setattr(data, "CHUNK_BYTES", (1 << 20) if where == "own chunks" else (8 << 20))
    path = tmp_path / "long.txt"
    names_file(path, 2000, long_line=(1500, size))
    for read in (read_corpus, read_documents):
        peak, error = peak_bytes(lambda: read(path))
        assert isinstance(error, DataError)
        assert str(error) == (f"data file {str(path)!r}: line 1,500 is {size:,} bytes long, more than a document may be "
                              f"(1,048,576 bytes); put one document per line")
        if where == "own chunks":
            assert peak < 7 * data.CHUNK_BYTES < size / 2, peak  # its start and a chunk, never the line


def test_a_line_of_non_ascii_characters_is_measured_in_utf8_bytes(tmp_path):
    path = tmp_path / "wide.txt"
    path.write_text("ok\n" + "日" * 400_000 + "\nfine\n", encoding="utf-8")  # 400,000 characters, 1.2 MB
    with pytest.raises(DataError, match="line 2 is 1,200,000 bytes long"):
        read_corpus(path)
    path.write_text("ok\n" + "日" * 300_000 + "\n", encoding="utf-8")  # 900,000 bytes: accepted
    assert [len(d) for d in read_corpus(path).documents()] == [2, 300_000]


@pytest.mark.parametrize("n", [2, 7, 1000, 32_469, 33_333])
def test_below_the_cap_the_held_out_documents_are_the_old_choice(n):
    n_val = max(1, round(0.03 * n))
    old = np.sort(np.random.default_rng(20171231).permutation(n)[:n_val])  # mgpt's split before the cap
    assert np.array_equal(held_out(n, 0.03), old)


def test_above_the_cap_a_thousand_documents_are_held_out_whatever_the_size():
    for n in (33_334, 100_000, 10_000_000):
        held = held_out(n, 0.03)
        assert len(held) == 1000 and len(np.unique(held)) == 1000 and 0 <= held.min() and held.max() < n
        assert np.array_equal(held, held_out(n, 0.03))  # fixed: no seed is involved
    assert len(held_out(100_000, 0.03, val_max=None)) == 3000 and len(held_out(100_000, 0.03, val_max=50)) == 50
    with pytest.raises(DataError, match="val_max must be at least 1"):
        held_out(100, 0.1, val_max=0)


def test_the_training_rows_are_every_document_but_the_held_out_ones_in_order():
    docs = [f"d{i}" for i in range(50)]
    train_docs, val_docs = split(docs, 0.2)
    corpus = data.Corpus.from_documents(docs)
    parts = Split.of(corpus, 0.2)
    assert [docs[j] for j in parts.held] == val_docs
    assert [docs[j] for j in parts.train_rows(np.arange(parts.n_train))] == train_docs


def test_training_on_a_file_equals_training_on_its_lists(tmp_path):
    path = tmp_path / "d.txt"
    names_file(path, 3000)
    options = TrainOptions(steps=20, batch_size=5, seed=3)
    train_docs, val_docs = split(read_documents(path), 0.03)
    from_lists = train(train_docs, val_docs, GPTConfig(1), options)
    from_file = train_split(Split.of(read_corpus(path), 0.03), GPTConfig(1), options)
    assert from_lists.flat.tobytes() == from_file.flat.tobytes() and from_lists.val_loss == from_file.val_loss


def test_mgpt_train_caps_the_held_out_documents_and_says_how_many(tmp_path):
    path = tmp_path / "d.txt"
    names_file(path, 40_000)
    for extra, held in (([], 1000), (["--val-max", "30"], 30)):
        out = tmp_path / f"m{held}.npz"
        result = CliRunner().invoke(train_command, ["--data", str(path), "--out", str(out), "--steps", "2", *extra])
        assert result.exit_code == 0, result.output
        assert f"held-out" in result.output and f"on {held:,} documents" in result.output
        meta = json.loads(str(np.load(out)["meta"]))["training"]
        assert (meta["held_out"], meta["documents"], meta["val_max"]) == (held, 40_000 - held, int(extra[1]) if extra else 1000)


def test_mgpt_eval_streams_a_file_in_bounded_memory(tmp_path, monkeypatch):
    import mgpt.train.cli as cli

    monkeypatch.setattr(data, "CHUNK_BYTES", 1 << 15)
    monkeypatch.setattr(cli, "EVAL_ROWS", 1024)
    model = tmp_path / "m.npz"
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    names_file(small, 10_000)
    raw = names_file(large, 40_000)
    assert CliRunner().invoke(train_command, ["--data", str(small), "--out", str(model), "--steps", "2"]).exit_code == 0
    peaks = []
    for path in (small, small, large):  # the first run pays for imports and caches
        peak, result = peak_bytes(lambda: CliRunner().invoke(eval_command, [str(model), "--data", str(path)]))
        assert result.exit_code == 0, result.output
        peaks.append(peak)
    assert "of 40,000 documents" in result.output
    # four times the data, the same memory (chunks, framed rows and the model's activations of 512
    # documents, ~9 MB here), never the file
    assert peaks[2] < 1.05 * peaks[1] + 100_000, (peaks, len(raw))


def test_iter_documents_gives_the_documents_of_read_corpus(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "CHUNK_BYTES", 1000)
    path = tmp_path / "d.txt"
    names_file(path, 5000)
    assert list(iter_documents(path)) == list(read_corpus(path).documents()) == [f"name{i}" for i in range(5000)]


def test_the_reading_bar_is_drawn_on_a_terminal_once_reading_takes_time(monkeypatch):
    from mgpt.train import progress

    lines = []
    bar = progress.Reading(lambda text, nl: lines.append(text), True, "big.txt")
    bar(1 << 20, 100 << 20)  # at once: nothing yet
    assert lines == []
    monkeypatch.setattr(progress.Reading, "SHOW_AFTER_SECONDS", 0.0)
    bar(50_000_000, 100_000_000)
    assert lines[-1].startswith("\r[##########..........] reading big.txt: 50 of 100 MB |") and "MB/s" in lines[-1]
    bar.end()
    assert lines[-1] == "\r\x1b[K"
    quiet = []
    off = progress.Reading(lambda text, nl: quiet.append(text), False, "big.txt")
    off(50, 100)
    off.end()
    assert quiet == []  # not a terminal: no bar


def test_the_novelty_filter_is_fed_every_document_from_the_corpus(tmp_path):
    from mgpt.runtime import novelty
    from mgpt.train import checkpoint

    path, out = tmp_path / "d.txt", tmp_path / "m.npz"
    path.write_text("zoë\n\n  \nnaïve\r\nłódź\n日本\n" + "".join(f"name{i}\n" for i in range(3000)), encoding="utf-8")
    result = CliRunner().invoke(train_command, ["--data", str(path), "--out", str(out), "--steps", "2"])
    assert result.exit_code == 0, result.output
    ckpt = checkpoint.load(out)
    expected = novelty.from_texts(read_documents(path), ckpt.vocab.chars)  # held-out documents included
    assert ckpt.novelty.documents == 3004 and np.array_equal(ckpt.novelty.data, expected.data)
