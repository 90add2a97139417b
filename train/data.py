"""Documents: read a one-document-per-line text file, frame each as ``[BOS] + ids + [BOS]``, and lay
them out as padded arrays so that a batch is a slice."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from mgpt.runtime.vocab import Vocab

# The shipped dataset: 32,469 US baby names of 2017 (see scripts/make_names.py).
DEFAULT_DATA = "names.txt"


class DataError(ValueError):
    """A data file that cannot be used."""


def default_data_path() -> Path:
    return Path(str(resources.files("mgpt.train") / DEFAULT_DATA))


def read_documents(path: str | Path) -> list[str]:
    """Non-blank lines of a UTF-8 text file, without line endings (\\n, \\r\\n or \\r)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file {str(path)!r} does not exist; pass an existing file to --data") from None
    except IsADirectoryError:
        raise DataError(f"data path {str(path)!r} is a directory; pass a text file to --data") from None
    except OSError as e:
        raise DataError(f"cannot read data file {str(path)!r}: {e.strerror}") from e
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
    unknown = vocab.missing("".join(documents))
    if unknown:
        raise DataError(
            f"{len(unknown)} characters of the data are not in the vocabulary "
            f"({''.join(unknown[:10])!r}); train from scratch or use a checkpoint trained on such text"
        )
    tokens = np.full((len(documents), block_size + 1), vocab.bos, dtype=np.int64)
    weights = np.zeros((len(documents), block_size))
    truncated = 0
    for j, doc in enumerate(documents):
        ids = vocab.encode_document(doc)
        n = min(block_size, len(ids) - 1)
        truncated += len(ids) - 1 > block_size
        tokens[j, : n + 1] = ids[: n + 1]
        weights[j, :n] = 1.0
    return Encoded(tokens, weights, truncated)
