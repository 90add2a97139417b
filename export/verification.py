"""Run an exported step graph in onnxruntime and hold it against the NumPy reference step.

Also finds which opsets this onnxruntime can run, by loading a tiny step graph stamped with each.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort

from mgpt.runtime.metadata import LOGITS, POSITION, TOKEN, past_names, present_names
from mgpt.runtime.vocab import Vocab
from mgpt.train.checkpoint import Checkpoint, CheckpointError
from mgpt.train.config import GPTConfig
from mgpt.train.model import empty_cache, step

from .graph import MIN_OPSET, ExportError, build_model

TOLERANCE = 1e-4  # absolute, on logits and on every present key and value
BATCH = 4  # rows of the verification rollout
SEED = 0  # of its random tokens, so a verification is reproducible


def session_options(level: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
    """One intra-op thread: faster than the default at every batch size for a model this small."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = level
    options.log_severity_level = 3  # errors only: no warnings about the opset on stderr
    return options


def session(model: onnx.ModelProto, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), session_options(level),
                                providers=["CPUExecutionProvider"])


def verify(model: onnx.ModelProto, checkpoint: Checkpoint, batch: int = BATCH, seed: int = SEED,
           tolerance: float = TOLERANCE, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL) -> float:
    """The largest absolute difference between onnxruntime and ``mgpt.train.model.step`` over a full
    rollout: positions 0..block_size-1, ``batch`` rows of random tokens, each side feeding its own
    cache back. Raises ExportError when it exceeds ``tolerance`` (or is not finite). A labeled
    model's label-token logits, which no runtime draws or scores and which training drives to
    large negative values (about -200 in names-era, where float32 rounding alone is ~1e-4), are
    held to ``tolerance`` relative to their size."""
    config = checkpoint.config
    drawable = checkpoint.vocab.drawable
    try:
        sess = session(model, level)
    except Exception as e:  # onnxruntime raises its own exception types, without a common base
        raise ExportError(f"onnxruntime {ort.__version__} cannot load the graph: {e}") from None
    names = [LOGITS] + [n for i in range(config.n_layer) for n in present_names(i)]
    rng = np.random.default_rng(seed)
    ref_keys, ref_values = empty_cache(config, batch)  # float64
    keys, values = empty_cache(config, batch, np.float32)
    worst = 0.0
    for position in range(config.block_size):
        token = rng.integers(0, config.vocab_size, size=batch)
        feed = {TOKEN: token.astype(np.int64), POSITION: np.array(position, dtype=np.int64)}
        for i in range(config.n_layer):
            feed.update(zip(past_names(i), (keys[i], values[i])))
        try:
            logits, *present = sess.run(names, feed)
        except Exception as e:  # e.g. a graph made for another config than the checkpoint's
            raise ExportError(f"onnxruntime cannot run the graph at position {position}: {e}") from None
        keys, values = present[0::2], present[1::2]
        with np.errstate(all="ignore"):
            ref_logits, ref_keys, ref_values = step(checkpoint.params, config, token, position, ref_keys, ref_values)
        if not all(np.all(np.isfinite(a)) for a in (ref_logits, *ref_keys, *ref_values)):
            raise CheckpointError(f"the checkpoint's weights give non-finite values in the NumPy forward itself at "
                                  f"position {position}: the checkpoint is the problem, not the export; retrain it")
        for j, (got, want) in enumerate(zip([logits, *keys, *values], [ref_logits, *ref_keys, *ref_values])):
            difference = np.abs(got - want)
            if j == 0 and drawable < config.vocab_size:  # a labeled model's label columns: relative
                difference[:, drawable:] /= np.maximum(1.0, np.abs(want[:, drawable:]))
            error = float(np.max(difference, initial=0.0))
            if not error <= tolerance:  # also catches NaN
                raise ExportError(f"verification failed: onnxruntime differs from the NumPy forward by {error:.3g} "
                                  f"at position {position} (tolerance {tolerance:g})")
            worst = max(worst, error)
    return worst


@functools.cache
def supported_opsets() -> range:
    """The opsets from MIN_OPSET up to the newest that both onnx and this onnxruntime handle,
    found by loading a one-parameter-wide step graph stamped with each, newest first."""
    tiny = GPTConfig(vocab_size=2, n_layer=1, n_embd=1, n_head=1, block_size=1)
    ckpt = Checkpoint(tiny, Vocab(("a",)), {name: np.zeros(shape) for name, shape in tiny.param_shapes().items()})
    for opset in range(onnx.defs.onnx_opset_version(), MIN_OPSET - 1, -1):
        try:
            session(build_model(ckpt, opset))
        except Exception:  # this onnx or onnxruntime refuses the opset (or its IR version)
            continue
        return range(MIN_OPSET, opset + 1)
    return range(MIN_OPSET, MIN_OPSET)
