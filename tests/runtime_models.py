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


LABEL_GROUPS = (("F", "M"), ("1950s", "2010s", "x y"))


def labeled_checkpoint(seed: int = 0) -> Checkpoint:
    """Random weights (sharpened) over 7 letters with label groups LABEL_GROUPS, lm_head's label rows
    doubled so that the logits favour label tokens (the largest after BOS F 1950s, say): a runtime
    that drew one would show it."""
    vocab = Vocab(tuple("aeilnos"), LABEL_GROUPS)
    config = GPTConfig(vocab.size, n_layer=1, n_embd=16, n_head=4, block_size=8)
    params = views(init_params(config, seed), config)
    params["wte"] *= 20  # sharp distributions, so that the label tokens change what is drawn
    params["lm_head"] *= 20
    params["lm_head"][vocab.drawable:] *= 2  # logits within ~20: float32's rounding stays near 1e-6
    return Checkpoint(config, vocab, params, {"data": "none: random weights (runtime_models.labeled_checkpoint)"})


STEMS = ["ann", "mar", "el", "ros", "jul", "vic", "len", "dor", "car", "bet", "lin", "pat", "sus", "tin", "fel", "ren"]


def ending_lines(n: int = 3000, seed: int = 0) -> str:
    """Labeled data whose labels decide the text's shape: group 1 its last letter (A: 'a', O: 'o'),
    group 2 its length class (S: a bare stem and the letter, L: a longer one): ``O,L\tvicino``."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        end, size = rng.choice(["A", "O"]), rng.choice(["S", "L"])
        stem = str(rng.choice(STEMS)) + (str(rng.choice(["i", "e", "in", "et", "ol"])) if size == "L" else "")
        lines.append(f"{end},{size}\t{stem}{end.lower()}\n")
    return "".join(lines)


def trained_labeled_checkpoint(folder: Path, steps: int = 600, labeled: bool = True) -> tuple[Checkpoint, float]:
    """A model trained on ``ending_lines`` (written to ``folder``) for ``steps`` steps of 16, and its
    held-out loss; ``labeled=False`` trains on the same texts without their labels."""
    from mgpt.train.data import Split, read_corpus
    from mgpt.train.trainer import train_split

    data = folder / "endings.txt"
    text = ending_lines()
    data.write_text(text if labeled else "".join(line.split("\t")[1] for line in text.splitlines(keepends=True)))
    result = train_split(Split.of(read_corpus(data, labeled=labeled), 0.1), GPTConfig(1, block_size=10),
                         TrainOptions(steps=steps, batch_size=16, seed=1, eval_every=steps))
    return Checkpoint(result.config, result.vocab, result.params, {"steps": steps, "data": data.name}), result.val_loss


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


def late_failing_model(path: Path, ckpt: Checkpoint, kind: str) -> tuple[Path, str]:
    """The checkpoint's step graph that passes every check at load (a greedy rollout of one row)
    but breaks when it is fed a character that rollout never feeds, returned with the file: "nan"
    adds sqrt(-1) to that row's logits, "error" makes onnxruntime Gather out of bounds."""
    fed, ids = set(), [ckpt.vocab.bos]
    for _ in range(ckpt.config.block_size):  # what the load-time rollout feeds
        fed.add(ids[-1])
        ids.append(int(np.argmax(reference_logits(ckpt, ids))))
    trigger = next(i for i in range(ckpt.vocab.bos) if i not in fed)
    model = build_model(ckpt)
    producer = next(n for n in model.graph.node if LOGITS in n.output)
    producer.output[:] = ["raw_logits" if o == LOGITS else o for o in producer.output]
    model.graph.initializer.extend([onnx.numpy_helper.from_array(np.array([trigger], np.int64), "trigger"),
                                    onnx.numpy_helper.from_array(np.array([0.0], np.float32), "one_zero"),
                                    onnx.numpy_helper.from_array(np.array([1], np.int64), "axis_1")])
    hit = [helper.make_node("Equal", [TOKEN, "trigger"], ["hit"])]  # (B,) bool
    if kind == "nan":  # sqrt(-1) where hit, sqrt(0) elsewhere
        hit += [helper.make_node("Cast", ["hit"], ["hit_f"], to=TensorProto.FLOAT),
                helper.make_node("Neg", ["hit_f"], ["minus"]), helper.make_node("Sqrt", ["minus"], ["bump"])]
    else:  # index 1 of a one-element tensor where hit
        hit += [helper.make_node("Cast", ["hit"], ["hit_i"], to=TensorProto.INT64),
                helper.make_node("Gather", ["one_zero", "hit_i"], ["bump"])]
    model.graph.node.extend(hit + [helper.make_node("Unsqueeze", ["bump", "axis_1"], ["bump_col"]),
                                   helper.make_node("Add", ["raw_logits", "bump_col"], [LOGITS])])
    onnx.save(model, str(path))
    return path, ckpt.vocab.chars[trigger]
