"""The step graph as the loops run it: one onnxruntime session with the graph's input and output
names, the position scalars, and a lean ``run``.

Shapes: B rows, H heads, P cached positions, D head_dim.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .metadata import LOGITS, POSITION, TOKEN, ModelInfo, past_names, present_names
from .modelfile import ModelError, first_step, onnxruntime_reason

PREFILLS = 64  # contexts whose prefill results a runner keeps


class StepRunner:
    """``run(feed)`` is one step: ``[logits, present.0.key, present.0.value, ...]`` for a feed of
    ``token``, ``position`` and the ``past_key_values`` named in ``past``. The logits are the
    drawable tokens' (characters and BOS): a labeled model's label columns are cut off here, so no
    loop ever draws or scores a label token (docs/labels.md)."""

    def __init__(self, path: Path, session, info: ModelInfo):
        self.path, self.session, self.info = path, session, info
        self.outputs = [LOGITS]  # the logits, then each layer's present key and value
        self.past = []  # each layer's past key and value: the inputs the outputs after the logits feed
        for i in range(info.n_layer):
            self.outputs += present_names(i)
            self.past += past_names(i)
        self.positions = [np.array(p, dtype=np.int64) for p in range(info.block_size)]
        self._run = _fast_run(session, first_step(info), self.outputs)
        if info.vocab.labels:
            self._run = _drawable_only(self._run, info.vocab.drawable)
        self._prefilled: dict[tuple[int, ...], tuple] = {}  # prefill's results by context, the newest last

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self._run(self.outputs, feed)
        except Exception as e:  # onnxruntime's exceptions share no base class narrower than Exception
            raise self.failed(int(feed[POSITION]), e) from None

    def failed(self, position: int, error: Exception) -> ModelError:
        """The error for a step that failed inside onnxruntime (a file that passed its checks at
        load can still fail at a later position)."""
        return ModelError(f"{str(self.path)!r} failed in onnxruntime at position {position} "
                          f"({onnxruntime_reason(error)})")

    def not_finite(self, position: int) -> ModelError:
        """The error for logits with a NaN or infinity: nothing can be drawn or scored from them."""
        return ModelError(f"{str(self.path)!r} gave logits that are not finite (NaN or infinity) at "
                          f"position {position}; its weights are broken: export it again from a good checkpoint")

    def empty_cache(self, rows: int) -> list[np.ndarray]:
        """Every layer's keys and values with no position yet: (rows, H, 0, D) each."""
        H, D = self.info.n_head, self.info.head_dim
        return [np.zeros((rows, H, 0, D), np.float32) for _ in self.past]

    def prefill(self, tokens: tuple[int, ...]) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """(cache, logits) after feeding ``tokens`` (at least one) at positions 0, 1, ... to a batch
        of one: the cache of every layer, (1, H, len(tokens), D) each, and the (V,) logits at the
        last position. The arrays are read-only: the last PREFILLS contexts' results are kept and
        shared (a server's calls mostly share one context, BOS alone, and a step costs ~30 us)."""
        known = self._prefilled.get(tokens)
        if known is not None:
            return known
        cache = self.empty_cache(1)
        for p, t in enumerate(tokens):
            feed = {TOKEN: np.array([t], np.int64), POSITION: self.positions[p], **dict(zip(self.past, cache))}
            logits, *cache = self.run(feed)
        for array in (*cache, logits):
            array.setflags(write=False)
        result = self._prefilled[tokens] = tuple(cache), logits[0]
        while len(self._prefilled) > PREFILLS:  # threads may race here: any of them may drop the oldest
            try:
                del self._prefilled[next(iter(self._prefilled))]
            except (KeyError, RuntimeError, StopIteration):  # another thread changed it meanwhile
                break
        return result


def _drawable_only(run, drawable: int):
    """``run`` whose logits (B, V) are cut to their first ``drawable`` columns (a view)."""
    def cut(names, inputs):
        logits, *rest = run(names, inputs)
        return [logits[:, :drawable], *rest]

    return cut


def _fast_run(session, feed: dict, outputs: list[str]):
    """``session.run`` without the Python wrapper's per-call checks (5 us, a tenth of a batch-1 step;
    our inputs are checked when the model is opened), through onnxruntime's internal session
    object. Tried once on ``feed``: if that object ever changes, the public method serves."""
    inner = getattr(session, "_sess", None)

    def run(names, inputs):
        return inner.run(names, inputs, None)

    try:
        run(outputs, feed)
    except Exception:  # any change in onnxruntime's internals: fall back, never fail
        return session.run
    return run
