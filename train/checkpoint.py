"""The checkpoint: an ``.npz`` of float64 arrays under microgpt's names plus a JSON ``meta`` entry.

meta = {"format": "mgpt-checkpoint", "version": 1, "config": {...GPTConfig...},
        "vocab": [characters], "bos": int, "training": {...record...}}
Anyone can build one by hand; ``load`` checks every part so later steps can trust it.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mgpt.runtime.vocab import Vocab, VocabError

from .config import ConfigError, GPTConfig
from .files import atomic_write

FORMAT = "mgpt-checkpoint"
VERSION = 1
DEFAULT_PATH = "mgpt-checkpoint.npz"  # where mgpt-train writes and mgpt-export reads by default


class CheckpointError(ValueError):
    """A checkpoint file that is missing, corrupt, or not consistent with itself."""


@dataclass
class Checkpoint:
    config: GPTConfig
    vocab: Vocab
    params: dict[str, np.ndarray]  # name -> (out, in) float64
    training: dict = field(default_factory=dict)  # data, seed, steps, batch_size, losses, ...

    def meta(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "config": self.config.to_dict(),
                "vocab": list(self.vocab.chars), "bos": self.vocab.bos, "training": self.training}


def save(path: str | Path, ckpt: Checkpoint) -> None:
    arrays = {name: np.asarray(a, dtype=np.float64) for name, a in ckpt.params.items()}
    arrays["meta"] = np.array(json.dumps(ckpt.meta(), ensure_ascii=False))
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def load(path: str | Path) -> Checkpoint:
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {name!r} does not exist; train one with mgpt-train or pass its path")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {name!r} is a directory; pass the .npz file")
    if not zipfile.is_zipfile(path):  # np.load would try other formats and blame pickles
        raise CheckpointError(f"checkpoint {name!r} is not a readable .npz file (not a zip archive); re-create it "
                              f"with mgpt-train")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"checkpoint {name!r} is not a readable .npz file ({e}); re-create it with mgpt-train") from None
    if "meta" not in arrays:
        raise CheckpointError(f"{name!r} is not an mgpt checkpoint (no 'meta' entry)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except json.JSONDecodeError:
        raise CheckpointError(f"checkpoint {name!r} has a 'meta' entry that is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{name!r} is not an mgpt checkpoint (meta format is not {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {name!r} has format version {meta.get('version')!r}; this mgpt reads version {VERSION}")
    try:
        config = GPTConfig.from_dict(meta.get("config"))
        vocab = Vocab(tuple(meta.get("vocab") or ()))
    except (ConfigError, VocabError, TypeError) as e:
        raise CheckpointError(f"checkpoint {name!r} has a bad meta entry: {e}") from None
    if meta.get("bos") != vocab.bos or config.vocab_size != vocab.size:
        raise CheckpointError(
            f"checkpoint {name!r} disagrees with itself: {len(vocab.chars)} characters need bos "
            f"{vocab.bos} and vocab_size {vocab.size}, meta says bos {meta.get('bos')!r} and "
            f"vocab_size {config.vocab_size}"
        )
    shapes = config.param_shapes()
    if set(arrays) != set(shapes):
        missing, extra = sorted(set(shapes) - set(arrays)), sorted(set(arrays) - set(shapes))
        raise CheckpointError(f"checkpoint {name!r} arrays do not match its config (missing {missing}, unexpected {extra})")
    params = {}
    for key, shape in shapes.items():
        a = arrays[key]
        if a.shape != shape:
            raise CheckpointError(f"checkpoint {name!r}: {key} has shape {a.shape}, its config needs {shape}")
        if not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)):
            raise CheckpointError(f"checkpoint {name!r}: {key} must hold finite floating-point numbers")
        params[key] = a.astype(np.float64)
    training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
    return Checkpoint(config, vocab, params, training)
