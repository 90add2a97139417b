"""Add (or rebuild) the novelty filter of a checkpoint from its data file, weights untouched.

mgpt-train records the filter itself (docs/sampling-controls.md); this is for checkpoints made
before it did, such as the shipped models, which were re-exported with it like this:

    python scripts/add_novelty.py models/names.npz models/names-large.npz
    mgpt-export models/names.onnx --checkpoint models/names.npz
    mgpt-export models/names-large.onnx --checkpoint models/names-large.npz

Every document of the data file (default: the shipped train/names.txt, which both shipped models
were trained on), held-out ones included, goes into the filter. The checkpoint is rewritten
atomically; its weights and record are read and written back unchanged (checked before it is).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from mgpt.runtime import novelty
from mgpt.train import checkpoint as ckpt_io
from mgpt.train.data import default_data_path, read_documents


def add_novelty(path: str, data: str | None, bits: float, hashes: int) -> str:
    ckpt = ckpt_io.load(path)
    documents = read_documents(data if data is not None else default_data_path())
    missing = ckpt.vocab.missing("".join(documents))
    if missing:
        raise ValueError(f"the data has characters the checkpoint's vocabulary lacks ({''.join(missing[:10])!r}); "
                         f"it is not the data {path} was trained on")
    ckpt.novelty = novelty.from_texts(documents, ckpt.vocab.chars, bits, hashes)
    ckpt_io.save(path, ckpt)
    again = ckpt_io.load(path)
    assert all(np.array_equal(again.params[k], ckpt.params[k]) for k in ckpt.params), "weights changed"
    assert again.training == ckpt.training and bytes(again.novelty.data) == bytes(ckpt.novelty.data)
    f = again.novelty
    return (f"{path}: novelty filter of {f.documents:,} documents, {f.bits:,} bits ({f.data.size:,} bytes), "
            f"{f.hashes} probes, false positives ~{100 * f.false_positive_rate():.2f}%")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", default=None, help="the data file [default: the shipped names]")
    parser.add_argument("--bits", type=float, default=novelty.DEFAULT_BITS_PER_DOCUMENT, help="bits per document")
    parser.add_argument("--hashes", type=int, default=novelty.DEFAULT_HASHES, help="probes per document")
    args = parser.parse_args(argv)
    try:
        for path in args.checkpoints:
            print(add_novelty(path, args.data, args.bits, args.hashes))
    except ValueError as e:  # CheckpointError, DataError, NoveltyError
        print(f"Error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
