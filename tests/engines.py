"""The ONNX engines an mgpt step graph is held to, each behind one small adapter, and the two
loops an app writes over any of them: a rollout compared with the NumPy reference step, and the
sampling loop of ``mgpt.runtime.sampling`` (issue 17; docs/engines.md).

An adapter loads an ``onnx.ModelProto`` and returns ``step(feed) -> {output name: array}``. Every
engine runs on the CPU in float32: OpenVINO would pick bfloat16 on a CPU that has it (AVX-512
BF16 here) unless told ``INFERENCE_PRECISION_HINT: f32``, and bfloat16 logits differ by ~0.1.
The test suite and ``benchmarks/bench_engines.py`` share these.
"""

from __future__ import annotations

import functools
import importlib
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from mgpt.runtime import sampling
from mgpt.runtime.metadata import LOGITS, POSITION, TOKEN, ModelInfo, past_names, present_names
from mgpt.runtime.vocab import Vocab
from mgpt.train.checkpoint import Checkpoint
from mgpt.train.config import GPTConfig
from mgpt.train.model import empty_cache, init_params, step as reference_step, views

Step = Callable[[dict], dict]


def onnxruntime_step(model: onnx.ModelProto) -> Step:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda feed: dict(zip(names, session.run(names, feed)))


def reference_evaluator_step(model: onnx.ModelProto) -> Step:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(model)
    names = [o.name for o in model.graph.output]
    return lambda feed: dict(zip(names, evaluator.run(names, feed)))


def openvino_step(model: onnx.ModelProto) -> Step:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(model.SerializeToString()), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})  # bfloat16 where the CPU has it
    request = compiled.create_infer_request()
    names = [o.get_any_name() for o in compiled.outputs]
    return lambda feed: {name: np.array(a) for name, a in zip(names, request.infer(feed).values())}


def tract_step(model: onnx.ModelProto) -> Step:
    import tract

    with tempfile.TemporaryDirectory() as tmp:  # tract's Python API loads from a path
        path = Path(tmp) / "model.onnx"
        onnx.save(model, str(path))
        runnable = tract.onnx().load(str(path)).into_model().into_runnable()
    inputs = [i.name for i in model.graph.input]  # tract takes a list, in the graph's input order
    names = [o.name for o in model.graph.output]
    return lambda feed: {name: t.to_numpy() for name, t in zip(names, runnable.run([feed[n] for n in inputs]))}


@dataclass(frozen=True)
class Engine:
    name: str
    module: str  # what to import, and the pip package of the same name
    load: Callable[[onnx.ModelProto], Step]
    platforms: frozenset = frozenset()  # (sys.platform, machine) with published wheels; empty: with onnx

    def version(self) -> str:
        module = importlib.import_module(self.module)
        if self.module == "tract":
            return module.version()
        return module.__version__.split("-")[0]

    def missing(self) -> str | None:
        """None when the engine imports; otherwise why not, as a skip reason when it publishes no
        wheel for this platform (RuntimeError when it does: the test extra should have installed it)."""
        try:
            importlib.import_module(self.module)
            return None
        except ImportError as e:
            here = (sys.platform, platform.machine().lower())
            if here in self.platforms:
                raise RuntimeError(f"{self.module} publishes a wheel for {here} but does not import ({e}); "
                                   f"install the test extra: pip install '.[test]'") from None
            return f"{self.module} publishes no wheel for {here[0]} {here[1]}"


_WHEELS = frozenset({("linux", "x86_64"), ("linux", "aarch64"), ("darwin", "arm64"), ("win32", "amd64")})
ENGINES = {e.name: e for e in [
    Engine("onnxruntime", "onnxruntime", onnxruntime_step),
    Engine("onnx.reference", "onnx", reference_evaluator_step),
    Engine("openvino", "openvino", openvino_step, _WHEELS),
    Engine("tract", "tract", tract_step, _WHEELS),
]}


# ----------------------------------------------------------------------------- the loops

def empty_feed(info: ModelInfo, token: np.ndarray) -> dict:
    shape = (len(token), info.n_head, 0, info.head_dim)
    feed = {TOKEN: token.astype(np.int64), POSITION: np.array(0, dtype=np.int64)}
    feed.update({name: np.zeros(shape, np.float32) for i in range(info.n_layer) for name in past_names(i)})
    return feed


def next_feed(feed: dict, out: dict, info: ModelInfo, token: np.ndarray) -> dict:
    """The next step's feed: ``token``, the next position, and each present as the matching past."""
    feed = {TOKEN: token.astype(np.int64), POSITION: np.array(int(feed[POSITION]) + 1, dtype=np.int64)}
    for i in range(info.n_layer):
        feed.update(zip(past_names(i), (out[name] for name in present_names(i))))
    return feed


LETTERS = "abcdefghijklmnopqrstuvwxyz"
NON_ASCII = "".join(sorted("éßøΩж語日本🙂\u200b'-"))  # accents, CJK, an emoji beyond the BMP, a zero-width space

# Fresh models for the matrix, name -> (characters, GPTConfig fields other than vocab_size): shapes
# of both graph forms (the last is too big for the small-model graph)
FRESH = {
    "default": (LETTERS, {}),  # microgpt's shape: 1 layer, 4 heads, block 8
    "non-ascii": (NON_ASCII, {"n_head": 2}),
    "2-layers-1-head-block32": (LETTERS, {"n_layer": 2, "n_head": 1, "block_size": 32}),
    "2-layers-4-heads-block32": (LETTERS, {"n_layer": 2, "block_size": 32}),
}


@functools.cache
def fresh_checkpoint(name: str) -> Checkpoint:
    """Untrained weights (microgpt's init, seed 0) of the shape ``FRESH[name]``."""
    chars, shape = FRESH[name]
    config = GPTConfig(len(chars) + 1, **shape)
    return Checkpoint(config, Vocab(tuple(chars)), views(init_params(config, 0), config), {"seed": 0})


def rollout_tokens(config: GPTConfig, batch: int, seed: int = 0) -> np.ndarray:
    """(block_size, batch) random token ids (BOS among them): row p is fed at position p."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, config.vocab_size, size=batch) for _ in range(config.block_size)])


def reference_rollout(checkpoint: Checkpoint, tokens: np.ndarray) -> list[dict]:
    """The NumPy reference step (float64) over ``tokens``: per position, {output name: array}."""
    config = checkpoint.config
    keys, values = empty_cache(config, tokens.shape[1])
    outputs = []
    for position, token in enumerate(tokens):
        logits, keys, values = reference_step(checkpoint.params, config, token, position, keys, values)
        out = {LOGITS: logits}
        for i in range(config.n_layer):
            out.update(zip(present_names(i), (keys[i], values[i])))
        outputs.append(out)
    return outputs


def engine_rollout(step: Step, info: ModelInfo, tokens: np.ndarray) -> list[dict]:
    """``step`` over ``tokens`` (row p fed at position p), feeding back its own cache: per position,
    {output name: array}."""
    feed, outputs = None, []
    for token in tokens:
        feed = empty_feed(info, token) if feed is None else next_feed(feed, outputs[-1], info, token)
        outputs.append(step(feed))
    return outputs


# How close an engine must come to the NumPy reference (float64): 1e-5, plus 1e-6 of the largest
# |value| of the tensor compared (a step's logits, or one present). float32 keeps about seven
# digits, and its rounding errors grow with the values a step computes, not with the entry they end
# in: names-large's logits reach 16, where one float32 step is 1.9e-6.
ATOL, RTOL = 1e-5, 1e-6


@dataclass(frozen=True)
class RolloutError:
    logits: float  # the largest |engine - reference| over the logits
    presents: float  # ... over every present key and value
    ratio: float  # the largest difference as a multiple of its tolerance (ATOL, RTOL): <= 1 passes


def rollout_errors(step: Step, checkpoint: Checkpoint, info: ModelInfo, batch: int, seed: int = 0) -> RolloutError:
    """How far ``step`` is from the NumPy reference over positions 0 .. block_size - 1 with ``batch``
    rows of random tokens (``rollout_tokens``), each side feeding its own cache back (NaN where a
    value is not finite)."""
    tokens = rollout_tokens(checkpoint.config, batch, seed)
    worst = {"logits": 0.0, "presents": 0.0, "ratio": 0.0}
    got_all, want_all = engine_rollout(step, info, tokens), reference_rollout(checkpoint, tokens)
    for position, (got, want) in enumerate(zip(got_all, want_all)):
        for name, expected in want.items():
            if got[name].shape != expected.shape:
                raise AssertionError(f"{name} at position {position}: shape {got[name].shape}, expected {expected.shape}")
            error = float(np.max(np.abs(got[name] - expected), initial=0.0))
            tolerance = ATOL + RTOL * float(np.max(np.abs(expected), initial=0.0))
            for kind, value in (("logits" if name == LOGITS else "presents", error), ("ratio", error / tolerance)):
                worst[kind] = max(worst[kind], value) if value == value else float("nan")
    return RolloutError(**worst)


def samples(step: Step, info: ModelInfo, num_samples: int, temperature: float, seed: int,
            batch: int = 512) -> list[str]:
    """Seeded samples 0 .. num_samples - 1 drawn with mgpt's rule over ``step``'s logits, ``batch``
    rows at a time, the way an app in any language would: sample i's draw at position p uses
    ``uniforms(seed, [i], block_size)[0, p]``; a row ends at BOS or after block_size positions."""
    out_samples = []
    bos, chars, L = info.bos, info.vocab.chars, info.block_size
    for start in range(0, num_samples, batch):
        indices = np.arange(start, min(start + batch, num_samples))
        u = sampling.uniforms(seed, indices, L)  # (B, L)
        token = np.full(len(indices), bos, dtype=np.int64)
        ids = [[] for _ in indices]
        done = np.zeros(len(indices), dtype=bool)
        feed = empty_feed(info, token)
        for p in range(L):
            out = step(feed)
            token = sampling.draw(out[LOGITS].T, u[:, p], temperature)
            for row in np.flatnonzero(~done):
                if token[row] == bos:
                    done[row] = True
                else:
                    ids[row].append(int(token[row]))
            if done.all():
                break
            feed = next_feed(feed, out, info, token)
        out_samples += ["".join(chars[t] for t in row) for row in ids]
    return out_samples


def model_info(model: onnx.ModelProto) -> ModelInfo:
    return ModelInfo.from_props({p.key: p.value for p in model.metadata_props})


def unlabeled(names) -> list[str]:
    """The shipped models without labels: the sampling loop here starts every row at BOS, as an
    unlabeled model's app does (a labeled model feeds its label tokens first: docs/labels.md)."""
    from mgpt.runtime import shipped_model_path

    return [n for n in names if shipped_model_path(n).exists()
            and not any(p.key == "labels" for p in onnx.load(str(shipped_model_path(n))).metadata_props)]
