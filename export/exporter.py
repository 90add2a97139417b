"""Checkpoint file in, verified ``.onnx`` file out, written atomically; ``mgpt-export`` calls this."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from mgpt.train import checkpoint as ckpt_io
from mgpt.runtime.paths import check_paths
from mgpt.train import arguments
from mgpt.train.checkpoint import Checkpoint, CheckpointError
from mgpt.train.files import atomic_write, check_writable

from .graph import DEFAULT_OPSET, ExportError, build_model
from .verification import BATCH, TOLERANCE, supported_opsets, verify as verify_model


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    opset: int
    inputs: list[tuple[str, str, list]]  # (name, dtype, dims): dims are ints or symbolic names
    outputs: list[tuple[str, str, list]]
    num_params: int
    num_nodes: int
    file_size: int  # bytes
    block_size: int
    max_error: float | None  # largest |onnxruntime - NumPy| of the verification; None if skipped
    tolerance: float = TOLERANCE
    verify_batch: int = BATCH


def require_supported_opset(opset: int) -> None:
    supported = supported_opsets()
    if opset not in supported:
        raise ExportError(f"opset {opset} is not supported; choose one from {supported.start} to "
                          f"{supported.stop - 1} (what both onnx and onnxruntime here handle)")


# Trained weights of this model stay below ~10; beyond this the float32 graph's rmsnorm and
# products can overflow where the float64 reference does not, and the weights come from a broken run.
MAX_WEIGHT = 1e6


def check_weights(ckpt: Checkpoint, name: str) -> None:
    """A CheckpointError, blaming the checkpoint rather than the export, when a weight is too large
    for a float32 graph to reproduce (loading has already refused non-finite ones)."""
    for key, a in ckpt.params.items():
        largest = float(np.max(np.abs(a), initial=0.0))
        if not largest <= MAX_WEIGHT:
            raise CheckpointError(f"checkpoint {name!r} holds absurd weights ({key} reaches {largest:.3g}, trained "
                                  f"ones stay below ~10; the limit is {MAX_WEIGHT:g}): the checkpoint is the "
                                  f"problem, not the export; retrain it (a diverged run? try a lower --lr)")


def _io(values) -> list[tuple[str, str, list]]:
    """(name, dtype, dims) of graph inputs or outputs, as declared in the file."""
    rows = []
    for v in values:
        t = v.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        rows.append((v.name, onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, dims))
    return rows


def export(checkpoint_path: str | Path, output_path: str | Path, opset: int = DEFAULT_OPSET, verify: bool = True) -> ExportSummary:
    """Build the step graph of a checkpoint file, verify it in onnxruntime against the NumPy step
    (unless ``verify`` is False) and write it to ``output_path``. Any failure leaves the output as
    it was. Raises CheckpointError, ExportError or OutputError."""
    # 1) everything that can be wrong with the input is found before any work
    opset = arguments.integer("opset", opset)
    verify = arguments.boolean("verify", verify)
    output = check_writable(output_path, "output")
    check_paths({"checkpoint": checkpoint_path}, {"output": output})
    require_supported_opset(opset)
    ckpt = ckpt_io.load(checkpoint_path)
    check_weights(ckpt, str(checkpoint_path))

    # 2) build, verify, and only then write
    model = build_model(ckpt, opset)
    error = None
    if verify:
        try:
            error = verify_model(model, ckpt)
        except ExportError as e:
            raise ExportError(f"{e}; {str(output)!r} was not written") from None
    data = model.SerializeToString()
    with atomic_write(output) as f:  # an I/O error is an OutputError, the old file left as it was
        f.write(data)

    return ExportSummary(output, opset, _io(model.graph.input), _io(model.graph.output),
                         ckpt.config.num_params(), len(model.graph.node), len(data),
                         ckpt.config.block_size, error)
