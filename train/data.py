"""Documents: read a one-document-per-line text file, frame each as ``[BOS] + ids + [BOS]``, and lay
them out as padded arrays so that a batch is a slice."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from mgpt.runtime.paths import PathError, read_input
from mgpt.runtime.vocab import Vocab

from . import arguments

# The shipped dataset: 32,469 US baby names of 2017 (see scripts/make_names.py).
DEFAULT_DATA = "names.txt"
# The largest data file read: a GB of text is ~10 GB of Python strings and padded arrays.
MAX_DATA_BYTES = 1 << 30


class DataError(ValueError):
    """A data file that cannot be used."""


def default_data_path() -> Path:
    return Path(str(resources.files("mgpt.train") / DEFAULT_DATA))


def read_documents(path: str | Path) -> list[str]:
    """Non-blank lines of a UTF-8 text file, without line endings (\\n, \\r\\n or \\r). Anything but a
    regular file of at most MAX_DATA_BYTES is refused before it is read."""
    path = Path(path)
    try:
        raw = read_input(path, "data file", "pass a text file to --data", MAX_DATA_BYTES)
    except PathError as e:
        raise DataError(str(e)) from None
    if not raw:
        raise DataError(f"data file {str(path)!r} is empty; it needs one document per line")
    try:
        text = raw.decode("utf-8-sig")  # tolerate a byte-order mark
    except UnicodeDecodeError as e:
        raise DataError(
            f"data file {str(path)!r} is not UTF-8 (bad byte at offset {e.start}); re-encode it as UTF-8"
        ) from None
    documents = [line for line in text.splitlines() if line.strip()]
    if not documents:
        raise DataError(f"data file {str(path)!r} has no documents, only blank lines; put one document per line")
    return documents


def split(documents: list[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """(train, held-out). The held-out documents are a fixed pseudo-random choice that does not
    depend on the training seed, so runs with different seeds are scored on the same documents;
    both parts keep the file's order."""
    if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
        raise TypeError("documents must be a list of strings")
    val_fraction = arguments.real("val_fraction", val_fraction, 0, 1, high_open=True, error=DataError)
    n_val = int(round(val_fraction * len(documents)))
    if val_fraction > 0 and n_val == 0:
        n_val = 1
    if n_val >= len(documents):
        raise DataError(
            f"--val-fraction {val_fraction} leaves no training documents out of {len(documents)}; lower it"
        )
    held = np.zeros(len(documents), dtype=bool)
    held[np.random.default_rng(20171231).permutation(len(documents))[:n_val]] = True
    return ([d for d, h in zip(documents, held) if not h], [d for d, h in zip(documents, held) if h])


@dataclass
class Encoded:
    """Documents framed and padded to ``block_size + 1`` tokens.

    tokens[j, :n+1] is document j's first n+1 tokens, n = min(block_size, len(doc) + 1) predictions;
    inputs are tokens[:, :-1], targets tokens[:, 1:], weights 1 on the n real predictions, else 0.
    """

    tokens: np.ndarray  # (N, block_size + 1) int64, BOS-padded
    weights: np.ndarray  # (N, block_size) float64
    truncated: int  # documents longer than the block: their tail (and end BOS) is not trained on

    def __len__(self) -> int:
        return self.tokens.shape[0]


def encode(documents: list[str], vocab: Vocab, block_size: int) -> Encoded:
    """Frame and pad every document at once: code points are looked up in the sorted vocabulary
    with one searchsorted instead of a Python loop per character (the names file has 200 K)."""
    unknown = vocab.missing("".join(documents))
    if unknown:
        raise DataError(
            f"{len(unknown)} characters of the data are not in the vocabulary "
            f"({''.join(unknown[:10])!r}); train from scratch or use a checkpoint trained on such text"
        )
    table = np.array([ord(c) for c in vocab.chars])  # sorted code points: id i is table[i]
    text = np.frombuffer("".join(documents).encode("utf-32-le"), dtype=np.uint32)
    ids = np.searchsorted(table, text)
    lengths = np.array([len(d) for d in documents])
    starts = np.cumsum(lengths) - lengths
    # 1) tokens: BOS, then the first min(len, block_size) characters, then BOS padding (which
    #    supplies each short document's closing BOS)
    tokens = np.full((len(documents), block_size + 1), vocab.bos, dtype=np.int64)
    pos = np.arange(block_size)
    inside = pos < lengths[:, None]  # (N, block_size)
    tokens[:, 1:][inside] = ids[(starts[:, None] + pos)[inside]]
    # 2) n = min(block_size, len + 1) predictions per document
    weights = (pos < np.minimum(lengths + 1, block_size)[:, None]).astype(np.float64)
    truncated = int(np.sum(lengths + 1 > block_size))
    return Encoded(tokens, weights, truncated)
