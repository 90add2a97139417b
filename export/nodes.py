"""Building ONNX graphs node by node: one small node helper, constants stored once, and the two
builders every part of the step graph uses (``linear`` and ``rmsnorm``).

Node names are hierarchical (``/layers.0/attn/q_proj/Gemm``) and a node's output is
``{node}/output_0`` unless given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from mgpt.train.model import EPS


@dataclass
class Graph:
    """What the builders append to: nodes in order, initializers, and the opset they target."""

    opset: int
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    constants: dict = field(default_factory=dict)  # (dtype, shape, bytes) -> name: one copy each


def node(g: Graph, op: str, name: str, inputs: list[str], output: str | None = None, **attrs) -> str:
    """Append node ``{name}/{op}`` and return its (single) output, ``{node}/output_0`` by default."""
    full = f"{name}/{op}"
    output = output or f"{full}/output_0"
    g.nodes.append(helper.make_node(op, inputs, [output], name=full, **attrs))
    return output


def weight(g: Graph, name: str, array: np.ndarray) -> str:
    """A float32 initializer under the checkpoint's own name."""
    g.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
    return name


def const(g: Graph, name: str, value, dtype=np.float32) -> str:
    """A constant initializer, stored once however often it is asked for (first name wins)."""
    array = np.asarray(value, dtype=dtype)
    key = (array.dtype.str, array.shape, array.tobytes())
    if key not in g.constants:
        g.constants[key] = f"/const/{name}"
        g.initializers.append(numpy_helper.from_array(array, g.constants[key]))
    return g.constants[key]


def takes_input(g: Graph, op: str, name: str) -> bool:
    """Whether ``op`` takes ``name`` as an input at this opset rather than as an attribute: axes of
    ReduceSum and Unsqueeze from 13, of ReduceMean from 18."""
    schema = onnx.defs.get_schema(op, g.opset)
    return any(i.name == name for i in schema.inputs)


def axes_node(g: Graph, op: str, name: str, x: str, axis: int, **attrs) -> str:
    """``op`` over one ``axis``, with the axes where this opset wants them."""
    if takes_input(g, op, "axes"):
        return node(g, op, name, [x, const(g, f"axis{axis}", [axis], np.int64)], **attrs)
    return node(g, op, name, [x], axes=[axis], **attrs)


def reduce(g: Graph, op: str, name: str, x: str, axis: int, keepdims: int) -> str:
    return axes_node(g, op, name, x, axis, keepdims=keepdims)


def unsqueeze(g: Graph, name: str, x: str, axis: int) -> str:
    return axes_node(g, "Unsqueeze", name, x, axis)


def linear(g: Graph, name: str, x: str, w: str, residual: str | None = None, output: str | None = None,
           alpha: float = 1.0) -> str:
    """``alpha * x @ W.T`` (+ ``residual``) for W in the checkpoint's (out, in) layout:
    (B, in) -> (B, out)."""
    inputs = [x, w] + ([residual] if residual else [])
    return node(g, "Gemm", name, inputs, output, transB=1, **({"alpha": alpha} if alpha != 1.0 else {}))


def rmsnorm(g: Graph, name: str, x: str, width: int) -> str:
    """x / sqrt(mean(x^2) + eps) over the last axis: (B, C) -> (B, C).

    Pow/ReduceMean/Add/Sqrt/Div, then a Mul by a weight of ones: microgpt's rmsnorm has no weight,
    but onnxruntime fuses the six nodes into one SimplifiedLayerNormalization kernel only when that
    Mul is there: 15% faster per step at batch 1, 3.5% at batch 1024 (with graph
    optimizations off, the extra Mul costs 3%)."""
    square = node(g, "Pow", name, [x, const(g, "two", 2.0)])
    mean = reduce(g, "ReduceMean", name, square, axis=-1, keepdims=1)  # (B, 1)
    shifted = node(g, "Add", name, [mean, const(g, "eps", EPS)])
    root = node(g, "Sqrt", name, [shifted])
    normed = node(g, "Div", name, [x, root])
    return node(g, "Mul", name, [normed, const(g, "norm_weight", np.ones(width))])
