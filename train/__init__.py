"""mgpt's trainer: microgpt's GPT in NumPy (float64, batched, hand-written backward) and its loop."""

import os

# One BLAS thread, set before NumPy loads: this model's matrices are tiny, and OpenBLAS's default
# of one thread per core made them up to ~60x slower whenever another process was busy.
# setdefault keeps a user's own choice.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .checkpoint import Checkpoint, CheckpointError, load, save
from .config import ConfigError, GPTConfig
from .data import DataError, default_data_path, read_documents
from .trainer import TrainOptions, TrainResult, TrainingError, evaluate, mean_nll, train

__all__ = [
    "Checkpoint", "CheckpointError", "ConfigError", "DataError", "GPTConfig", "TrainOptions",
    "TrainResult", "TrainingError", "default_data_path", "evaluate", "load", "mean_nll", "read_documents", "save", "train",
]
