"""mgpt's trainer: microgpt's GPT in NumPy (float64, batched, hand-written backward) and its loop.

The public names below are imported from their modules when first used (PEP 562), so importing
mgpt.train loads nothing: the mgpt-train and mgpt-eval entry (cli.py) runs before NumPy loads and
starts OpenBLAS with one thread (threads.load_numpy), while an app that imports mgpt.train keeps
its own environment and BLAS settings.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and editors see; at run time __getattr__ imports them
    from .checkpoint import Checkpoint, CheckpointError, load, save
    from .config import ConfigError, GPTConfig
    from .data import DataError, default_data_path, iter_documents, read_corpus, read_documents
    from .trainer import TrainOptions, TrainResult, TrainingError, evaluate, mean_nll, train, train_split

_HOMES = {  # public name -> the module that defines it
    "Checkpoint": "checkpoint", "CheckpointError": "checkpoint", "load": "checkpoint", "save": "checkpoint",
    "ConfigError": "config", "GPTConfig": "config",
    "DataError": "data", "default_data_path": "data", "read_documents": "data", "read_corpus": "data",
    "iter_documents": "data",
    "TrainOptions": "trainer", "TrainResult": "trainer", "TrainingError": "trainer", "evaluate": "trainer",
    "mean_nll": "trainer", "train": "trainer", "train_split": "trainer",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value  # found without this function from now on
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
