"""The step graph's attention for small models, built for onnxruntime's speed at large batches.

Shapes: B = batch, L = block_size, T = past_len + 1, C = n_embd, H = n_head, D = head_dim,
V = vocab_size.

The general builders (``graph.attention``) pay onnxruntime per tiny matrix and per broadcast span
more than per multiply-add: at batch 4096 their batched MatMul of (1, T) @ (T, D) matrices cost
650 ns a row, half the step, and the Mul broadcasting q over T 190 ns. For small models (see
``is_small``) these builders compute the same step with more multiply-adds but in big products with
one shared matrix and in elementwise products of equal shapes:

- q is computed for every position of the block at once (Wq.T repeated L times, a (C, H*L*D)
  matrix) and cut to the cache's T positions, so the scores are a Mul of equal shapes;
- each attention weight is spread over D with a (B*H*T, 1) @ (1, D) product, so the mix is a Mul
  of equal shapes;
- the sum over T rides in o_proj: a Gemm with Wo.T repeated for each position, (H*T*D, C);
- everything before layer 0's attention depends on (position, token) only, so it is a table
  (L, V, H*(L+3)*D) of q, x, k and v, computed from the weights in the graph: per step two
  Gathers find the rows, one Slice and three Gathers take the parts.

The repeated weights and the table are built from the checkpoint's initializers inside the graph
(the file stores each weight once, under its name) and are constant, so onnxruntime computes them
once when it loads the model.

Measured per step, one thread, against the general builders, interleaved (best of 7, CPU time):
  batch 4096: ~0.3x (377 against 1,313 ns a row). Not kept: the sum over T as a ReduceSum (a middle
  axis) before a plain o_proj, 0.90x; spreading the weights with a (H*T, H*T*D) 0/1 matrix, 0.29x
  but 3 more kernels (batch 1 1.34x); spreading them with Expand, 0.64x; the general mix as
  Transpose + broadcast Mul + ReduceSum, 0.65x.
  batch 1: 13.5 against 12.4 us (25 kernels against 24; at batch 1 a step is its kernels' fixed
  costs, and those differ: a Split cost 1.0 us, Softmax over a middle axis 0.8, a Slice 0.6, a
  Reshape 0.1). A sample at batch 1 costs about 3% more than with the general graph.

The cut to T is read from the cache's shape (``cache_cut``; issue 17: tract refused the graph when
it came from ``position``'s value and a Flatten of (B, H, T, D)). Against that graph, interleaved
full rollouts, one thread, best of 9, CPU time: the names model 1.00x at batch 1 (23.4 us a step
with the Python loop), 1.02x at 1024, 0.99x at 8192; names-large 0.96x, 0.98x, 0.97x; the logits
and so the seeded samples are bit for bit the same.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mgpt.runtime.metadata import POSITION, TOKEN, past_names, present_names
from mgpt.train.config import GPTConfig

from .nodes import Graph, const, linear, node, reduce, rmsnorm, unsqueeze

# The repeated weights grow with H*L and the table with V*L (times C), and the products cost about
# L times those of the general builders: beyond these limits the general builders serve.
MAX_HEAD_POSITIONS = 64  # n_head * block_size (microgpt's shape: 32)
MAX_TABLE_ROWS = 4096  # vocab_size * block_size (the names model: 216)


def is_small(config: GPTConfig) -> bool:
    return (config.n_head * config.block_size <= MAX_HEAD_POSITIONS
            and config.vocab_size * config.block_size <= MAX_TABLE_ROWS)


class Cut(NamedTuple):
    """What cuts the block's L positions to the cache's T, as (int64) tensors: ``ends`` is [H, T],
    Slice's ends over the (heads, positions) axes; ``flat`` is [0, H*T*D], Reshape's shape for
    (B, H, T, D) -> (B, H*T*D)."""

    ends: str
    flat: str


def cache_cut(g: Graph, cache: str, config: GPTConfig) -> Cut:
    """The ``Cut`` for ``cache`` (B, H, T, D), read from its shape (two kernels at opset 15 and later).

    From the cache's shape rather than looked up from ``position`` (one Gather did it before): an
    engine that types shapes symbolically (tract) then knows that every cut has the cache's
    past_len + 1 positions, where a length looked up from an input's value is a new symbol that it
    cannot match with past_len + 1. And ``flat`` spells out H*T*D, where Reshape's -1 or Flatten
    fails: onnxruntime cannot infer a -1 next to B = 0, and tract refuses to multiply two symbols
    (Flatten's B and T: "Can not compute a shape with square of symbols")."""
    H, D = config.n_head, config.head_dim
    if g.opset >= 15:  # Shape takes start and end from opset 15
        ends = node(g, "Shape", "/cache_len", [cache], start=1, end=3)
    else:
        shape = node(g, "Shape", "/cache_len", [cache])
        ends = node(g, "Slice", "/cache_len", [shape, const(g, "one", [1], np.int64), const(g, "three", [3], np.int64)])
    flat = node(g, "Mul", "/cache_len/flat", [ends, const(g, "flat_factors", [0, H * D], np.int64)])  # [0, H*T*D]
    return Cut(ends, flat)


def first_positions(g: Graph, name: str, x: str, ends: str, axis: int) -> str:
    """``x`` cut to its first T entries along ``axis`` (its heads on ``axis - 1``): from the block's
    positions to the cache's."""
    axes = const(g, f"axes{axis - 1}{axis}", [axis - 1, axis], np.int64)
    return node(g, "Slice", name, [x, const(g, "zeros2", [0, 0], np.int64), ends, axes])


def repeated(g: Graph, name: str, w: str, heads_shape: list[int], positions_shape: list[int]) -> str:
    """Weight ``w`` (out, in) transposed, reshaped to ``heads_shape`` (with a 1 for the positions)
    and repeated for each of the block's positions, ``positions_shape``."""
    w = node(g, "Transpose", name, [w], perm=[1, 0])
    w = node(g, "Reshape", name, [w, const(g, "x".join(map(str, heads_shape)), heads_shape, np.int64)])
    return node(g, "Expand", name, [w, const(g, "x".join(map(str, positions_shape)), positions_shape, np.int64)])


def q_weights(g: Graph, i: int, config: GPTConfig) -> str:
    """(C, H*L*D): column (h, l, d) is row h*D + d of layer i's Wq, for every position l."""
    H, D, C, L = config.n_head, config.head_dim, config.n_embd, config.block_size
    w = repeated(g, f"/layers.{i}/attn/q_weights", f"layer{i}.attn_wq", [C, H, 1, D], [C, H, L, D])
    return node(g, "Reshape", f"/layers.{i}/attn/q_weights/flat", [w, const(g, "embd_rows", [C, -1], np.int64)])


def first_layer(g: Graph, config: GPTConfig) -> tuple[str, str, str, str]:
    """x = rmsnorm(wte[token] + wpe[position]) (B, C) and layer 0's q (B, H, L + 3, D; pre-scaled,
    repeated for every position of the block in its first L slots), k and v (B, H, 1, D), looked up
    in a table of every (position, token).

    Each table row holds H blocks of L + 3 slots of D numbers: q for each position, then x, k and v.
    One Slice (in ``attention``) and three Gathers take every part in the shape it is used in (a
    Split cost 1.0 us at batch 1, its replacement 0.7 us less)."""
    H, D, C, L = config.n_head, config.head_dim, config.n_embd, config.block_size
    scope, layer = "/embed/table", "/layers.0/attn/table"
    rows = const(g, "table_rows", [L, -1, H, 1, D], np.int64)  # (L, V, C) -> (L, V, H, 1, D)
    x = node(g, "Add", scope, [unsqueeze(g, scope, "wpe", axis=1), "wte"])  # (L, V, C)
    x = rmsnorm(g, f"{scope}/norm", x, C)
    h = rmsnorm(g, f"{layer}/norm", x, C)
    q = node(g, "MatMul", f"{layer}/q_proj", [h, q_weights(g, 0, config)])  # (L, V, H*L*D)
    q = node(g, "Mul", f"{layer}/q_proj", [q, const(g, "q_scale", 1.0 / np.sqrt(D))])
    q = node(g, "Reshape", f"{layer}/q_heads", [q, const(g, "table_q", [L, -1, H, L, D], np.int64)])
    k, v = (node(g, "MatMul", f"{layer}/{part}_proj",
                 [h, node(g, "Transpose", f"{layer}/{part}_proj", [f"layer0.attn_w{part}"], perm=[1, 0])])
            for part in "kv")
    parts = [node(g, "Reshape", f"{scope}/{name}", [part, rows]) for name, part in (("x", x), ("k", k), ("v", v))]
    table = node(g, "Concat", scope, [q, *parts], axis=3)  # (L, V, H, L + 3, D)
    table = node(g, "Reshape", scope, [table, const(g, "table_flat", [L, -1, H * (L + 3) * D], np.int64)])
    found = node(g, "Gather", "/embed/position", [table, POSITION])  # (V, H*(L+3)*D): this position's rows
    found = node(g, "Gather", "/embed/token", [found, TOKEN])  # (B, H*(L+3)*D)
    found = node(g, "Reshape", "/embed/token", [found, const(g, "table_found", [0, H, L + 3, D], np.int64)])
    x, k, v = (node(g, "Gather", f"/embed/{name}", [found, const(g, f"slot{L + j}", [L + j], np.int64)], axis=2)
               for j, name in enumerate("xkv"))  # (B, H, 1, D) each
    return node(g, "Reshape", "/embed", [x, const(g, "embd_shape", [0, C], np.int64)]), found, k, v


def projections(g: Graph, i: int, x: str, config: GPTConfig) -> tuple[str, str, str]:
    """Layer i's q (B, H, L, D; pre-scaled, repeated for every position of the block), k and v
    (B, H, 1, D) from x."""
    H, D, L = config.n_head, config.head_dim, config.block_size
    scope = f"/layers.{i}/attn"
    heads = const(g, "heads_shape", [0, H, 1, D], np.int64)  # 0 keeps B, even when B is 0
    h = rmsnorm(g, f"{scope}/norm", x, config.n_embd)
    q = node(g, "Gemm", f"{scope}/q_proj", [h, q_weights(g, i, config)], alpha=float(1.0 / np.sqrt(D)))
    q = node(g, "Reshape", f"{scope}/q_heads", [q, const(g, "heads_block", [0, H, L, D], np.int64)])
    k = node(g, "Reshape", f"{scope}/k_heads", [linear(g, f"{scope}/k_proj", h, f"layer{i}.attn_wk"), heads])
    v = node(g, "Reshape", f"{scope}/v_heads", [linear(g, f"{scope}/v_proj", h, f"layer{i}.attn_wv"), heads])
    return q, k, v


# One layer (every product is one big GEMM or an elementwise product of equal shapes):
#
#   k (B,H,1,D), past.key -> k_cache Concat -> present.key (B,H,T,D); its Shape gives T
#   v (B,H,1,D), past.value -> v_cache Concat -> present.value (B,H,T,D)
#   q (B,H,L or L+3,D) cut to its first T positions (B,H,T,D)
#   scores Mul (q, keys) (B,H,T,D), ReduceSum over D -> (B,H,T), softmax over T, Unsqueeze (B,H,T,1)
#   spread MatMul: (B*H*T, 1) @ ones (1, D) -> (B,H,T,D)
#   mix Mul (weights, values) (B,H,T,D), Reshape (B, H*T*D)
#   o_proj Gemm: mix @ Wo.T repeated for each position and cut to T (H*T*D, C), + x: sums over T too
def attention(g: Graph, i: int, x: str, qkv: tuple[str, str, str], config: GPTConfig,
              cut: Cut | None = None) -> tuple[str, Cut]:
    """x + Wo attention for layer ``i`` given its q, k, v (see ``first_layer``, ``projections``),
    and the ``Cut`` to the cache's length: ``cut``, or made from this layer's cache when None (every
    layer's cache has the same length, so layer 0's serves the others). Appends this step's key and
    value to the layer's cache."""
    H, D, C, L = config.n_head, config.head_dim, config.n_embd, config.block_size
    scope = f"/layers.{i}/attn"
    q, k, v = qkv
    past_key, past_value = past_names(i)
    present_key, present_value = present_names(i)

    keys = node(g, "Concat", f"{scope}/k_cache", [past_key, k], present_key, axis=2)  # (B, H, T, D)
    values = node(g, "Concat", f"{scope}/v_cache", [past_value, v], present_value, axis=2)
    cut = cut or cache_cut(g, keys, config)
    q = first_positions(g, f"{scope}/q_heads", q, cut.ends, axis=2)  # (B, H, T, D)

    scores = node(g, "Mul", f"{scope}/scores", [q, keys])
    scores = reduce(g, "ReduceSum", f"{scope}/scores", scores, axis=-1, keepdims=0)  # (B, H, T)
    # over the last axis, then Unsqueeze: Softmax over axis 2 of (B, H, T, 1) cost 0.8 us at batch 1
    # against 0.3 us for the two (onnxruntime transposes for an axis that is not the last)
    weights = node(g, "Softmax", f"{scope}/softmax", [scores], axis=-1)
    weights = unsqueeze(g, f"{scope}/softmax", weights, axis=3)  # (B, H, T, 1)
    weights = node(g, "MatMul", f"{scope}/spread", [weights, const(g, "ones_row", np.ones((1, D)))])
    mixed = node(g, "Mul", f"{scope}/mix", [weights, values])  # (B, H, T, D)
    mixed = node(g, "Reshape", f"{scope}/mix", [mixed, cut.flat])  # (B, H*T*D)

    wo = repeated(g, f"{scope}/o_weights", f"layer{i}.attn_wo", [H, 1, D, C], [H, L, D, C])
    wo = first_positions(g, f"{scope}/o_weights", wo, cut.ends, axis=1)  # (H, T, D, C)
    wo = node(g, "Flatten", f"{scope}/o_weights", [wo], axis=3)  # (H*T*D, C): only T is symbolic
    return node(g, "Gemm", f"{scope}/o_proj", [mixed, wo, x]), cut
