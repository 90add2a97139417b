"""Small models for the runtime's tests: a briefly trained checkpoint, its ONNX export, the NumPy
reference's logits, and ONNX files that are not mgpt models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from mgpt.export import build_model
from mgpt.runtime.metadata import ModelInfo
from mgpt.train import Checkpoint, GPTConfig, TrainOptions, default_data_path, read_documents, train
from mgpt.train.model import empty_cache, step


def small_checkpoint(steps: int = 60, seed: int = 0) -> Checkpoint:
    """The default shape trained for a few steps on 3,000 names: confident enough to have a shape,
    fast to make (~0.1 s)."""
    docs = read_documents(default_data_path())[:3000]
    result = train(docs, [], GPTConfig(1), TrainOptions(steps=steps, batch_size=8, seed=seed))
    return Checkpoint(result.config, result.vocab, result.params, {"steps": steps, "seed": seed})


def export_to(ckpt: Checkpoint, path: Path) -> Path:
    onnx.save(build_model(ckpt), str(path))
    return path


def reference_logits(ckpt: Checkpoint, ids: list[int]) -> np.ndarray:
    """(V,) float64 logits of the NumPy reference step after feeding ``ids`` at positions 0, 1, ..."""
    keys, values = empty_cache(ckpt.config, 1)
    for p, t in enumerate(ids):
        logits, keys, values = step(ckpt.params, ckpt.config, np.array([t]), p, keys, values)
    return logits[0]


def identity_model(path: Path, props: dict[str, str] | None = None) -> Path:
    """A valid ONNX file that is not an mgpt step graph (optionally carrying mgpt's metadata)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    if props:
        helper.set_model_props(model, props)
    onnx.save(model, str(path))
    return path


def mgpt_props(ckpt: Checkpoint) -> dict[str, str]:
    c = ckpt.config
    return ModelInfo(ckpt.vocab, c.block_size, c.n_layer, c.n_head, c.head_dim).to_props()
