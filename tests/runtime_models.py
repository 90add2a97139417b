"""Small models for the runtime's tests: a briefly trained checkpoint, its ONNX export, the NumPy
reference's logits, and ONNX files that are not mgpt models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from mgpt.export import build_model
from mgpt.runtime.metadata import LOGITS, POSITION, TOKEN, ModelInfo, past_names, present_names
from mgpt.train import Checkpoint, GPTConfig, TrainOptions, default_data_path, read_documents, train
from mgpt.runtime.vocab import Vocab
from mgpt.train.model import empty_cache, init_params, step, views


def small_checkpoint(steps: int = 60, seed: int = 0) -> Checkpoint:
    """The default shape trained for a few steps on 3,000 names: confident enough to have a shape,
    fast to make (~0.1 s)."""
    docs = read_documents(default_data_path())[:3000]
    result = train(docs, [], GPTConfig(1), TrainOptions(steps=steps, batch_size=8, seed=seed))
    return Checkpoint(result.config, result.vocab, result.params, {"steps": steps, "seed": seed})


def random_checkpoint(chars: str, seed: int = 0) -> Checkpoint:
    """Untrained weights (microgpt's init) over the vocabulary ``chars``: any characters at all."""
    vocab = Vocab(tuple(sorted(chars)))
    config = GPTConfig(vocab.size)
    return Checkpoint(config, vocab, views(init_params(config, seed), config), {})


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


def hollow_model(path: Path, ckpt: Checkpoint) -> Path:
    """A graph with an mgpt step graph's metadata and I/O declarations (sizes left symbolic) whose
    first step returns other shapes: logits (1, 3), and the past cache unchanged as the present."""
    c = ckpt.config
    cache = ["batch", c.n_head, "past_len", c.head_dim]
    inputs = [helper.make_tensor_value_info(TOKEN, TensorProto.INT64, ["batch"]),
              helper.make_tensor_value_info(POSITION, TensorProto.INT64, [])]
    outputs = [helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, ["batch", "vocab"])]
    # logits: three zeros reshaped to (batch, -1), a shape only running the graph reveals
    nodes = [helper.make_node("Constant", [], ["z"], value=helper.make_tensor("z", TensorProto.FLOAT, [3], [0.0] * 3)),
             helper.make_node("Constant", [], ["m"], value=helper.make_tensor("m", TensorProto.INT64, [1], [-1])),
             helper.make_node("Shape", [TOKEN], ["b"]),
             helper.make_node("Concat", ["b", "m"], ["s"], axis=0),
             helper.make_node("Reshape", ["z", "s"], [LOGITS])]
    for past, present in zip(past_names(0), present_names(0)):
        inputs.append(helper.make_tensor_value_info(past, TensorProto.FLOAT, cache))
        outputs.append(helper.make_tensor_value_info(present, TensorProto.FLOAT, cache))
        nodes.append(helper.make_node("Identity", [past], [present]))
    # an unused table as large as the weights the metadata declares, so the file could hold them
    padding = [helper.make_tensor("padding", TensorProto.FLOAT, [c.num_params()], [0.0] * c.num_params())]
    model = helper.make_model(helper.make_graph(nodes, "hollow", inputs, outputs, initializer=padding),
                              opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, mgpt_props(ckpt))
    onnx.save(model, str(path))
    return path


def late_failing_model(path: Path, ckpt: Checkpoint, kind: str) -> Path:
    """The checkpoint's step graph, passing every check at load (position 0 is fine), that breaks
    later: "nan" adds sqrt(-1) to the logits from position 2 on; "error" adds a Gather from a
    one-element tensor at `position`, which onnxruntime refuses from position 1 on."""
    model = build_model(ckpt)
    producer = next(n for n in model.graph.node if LOGITS in n.output)
    producer.output[:] = ["raw_logits" if o == LOGITS else o for o in producer.output]
    values = [1.0, 1.0] + [-1.0] * (ckpt.config.block_size - 2) if kind == "nan" else [0.0]
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(values, np.float32), "late"))
    model.graph.node.extend([helper.make_node("Sqrt" if kind == "nan" else "Identity", ["late"], ["late_root"]),
                             helper.make_node("Gather", ["late_root", POSITION], ["late_bump"]),
                             helper.make_node("Sub", ["late_bump", "late_bump"], ["late_zero_or_nan"]),
                             helper.make_node("Add", ["raw_logits", "late_zero_or_nan"], [LOGITS])])
    onnx.save(model, str(path))
    return path
