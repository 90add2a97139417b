"""The ONNX step graph: plain functions from a checkpoint's (parameters, config) to a ``ModelProto``.

One decoding step, the computation of ``mgpt.train.model.step``, built node by node with
``onnx.helper`` (the node helper, ``linear`` and ``rmsnorm`` are in ``nodes``): a builder per part
(embedding, attention, mlp), and ``build_model``. Small models take the builders of ``small``
instead for the embedding and attention: the same step, faster in onnxruntime at large batches.
Shapes: B = batch, P = past_len, T = P + 1, C = n_embd, H = n_head, D = head_dim, V = vocab_size.
Node names are hierarchical (``/layers.0/attn/q_proj/Gemm``) and a node's output is
``{node}/output_0``, except the graph outputs, which carry the names of ``mgpt.runtime.metadata``.

Projections are ``Gemm(x, W, transB=1)``: each weight stays a float32 initializer under its
checkpoint name, in the checkpoint's (out, in) layout, and ``x @ W.T`` needs no transpose at run time.
The residual additions ride in Gemm's ``C`` input (``x + h @ W.T`` in one node). Measured per step
of a Python rollout loop (onnxruntime 1.32, one thread, default config, block 8, medians):
                                   batch 1, all opts | batch 1, none | batch 1024, all opts
  Gemm(transB=1), residual as C       44 us          |    52 us      |   1.32 ms
  Gemm(transB=1), residual Add        +5%            |    +1%        |   +0%
  MatMul(Transpose(W)), Add           +3%            |   +14%        |   +0%
(onnxruntime folds the Transpose of a constant, but not with optimizations off.)
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper

from mgpt.runtime import __version__
from mgpt.runtime.metadata import LOGITS, POSITION, TOKEN, ModelInfo, past_names, present_names
from mgpt.train.checkpoint import Checkpoint
from mgpt.train.config import GPTConfig

from . import small
from .nodes import Graph, const, linear, node, reduce, rmsnorm, unsqueeze, weight


class ExportError(ValueError):
    """A model that cannot be exported: an unsupported opset, or a graph that fails its checks."""


DEFAULT_OPSET = 17  # run by every onnxruntime since 1.11 and by most other ONNX engines
MIN_OPSET = 11  # Gemm's C input became optional in opset 11; older ones would need a dummy bias

# The dimension names of the I/O: `batch` rows, `past_len` cached positions (0 at the first step).
BATCH, PAST_LEN, TOTAL_LEN = "batch", "past_len", "past_len + 1"


# ----------------------------------------------------------------------------- the builders

def embedding(g: Graph, token: str, position: str) -> str:
    """wte[token] + wpe[position]: (B,) and a scalar -> (B, C)."""
    tok = node(g, "Gather", "/embed/wte", ["wte", token])  # (B, C)
    pos = node(g, "Gather", "/embed/wpe", ["wpe", position])  # (C,), broadcast over the rows
    return node(g, "Add", "/embed", [tok, pos])


# One query per row against the cache, for one layer (one node per step unless said otherwise):
#
#   x (B,C) ----------------------------------------------------------------+
#    |                                                                      |
#   rmsnorm -> h (B,C) -+----------------------+----------------------+     |
#                       |                      |                      |     |
#             q_proj Gemm, alpha 1/sqrt(D)  k_proj Gemm           v_proj Gemm
#             q_heads Reshape (B,H,1,D)     k_heads Reshape       v_heads Reshape (B,H,1,D)
#                       |       past.key -> k_cache Concat   past.value -> v_cache Concat (axis 2)
#                       |                      |                      |
#                       |         present.key (B,H,T,D)     present.value (B,H,T,D)
#                       |                      |                      |
#                  scores Mul (B,H,T,D) <------+                      |
#                  scores ReduceSum over D -> (B,H,T)                 |
#                  softmax over T, Unsqueeze -> (B,H,1,T)             |
#                  mix MatMul (B,H,1,T) @ (B,H,T,D) <-----------------+
#                  merge Reshape (B,H,1,D) -> (B,C)                         |
#                  o_proj Gemm, with x as its C input: x + o @ Wo.T <-------+
#
# The scores are elementwise Mul + ReduceSum over the last axis, the mix a batched MatMul: per step,
# scores as MatMul(keys, q as (B,H,D,1)) were 22% slower at batch 1024 (5% faster at batch 1), and the
# mix as Mul + ReduceSum over T, a middle axis that onnxruntime reduces slowly, 14% slower at 1024.
# Three projections rather than one Gemm on Concat(wq / sqrt(D), wk, wv) (folded at load) with a
# Reshape and a Split into q, k, v: 21 kernels instead of 24, yet within noise of this graph (a
# batch-1 step through IOBinding 2.5% faster, the batch-1 loop 1% faster, batch 1024 1% slower):
# Split copies its outputs where a Reshape only relabels its input, and with optimizations off the
# Concat and Mul would run at every step. Einsum for the scores, which drops the Unsqueeze with
# the Mul and ReduceSum, was 25% slower at batch 1 and 28% at batch 1024.
def attention(g: Graph, i: int, x: str, config: GPTConfig) -> str:
    """x + Wo attention(rmsnorm(x)) for layer ``i``: (B, C) -> (B, C); appends this step's key and
    value to the layer's cache, writing ``present.{i}.key/value``."""
    H, D, C = config.n_head, config.head_dim, config.n_embd
    scope = f"/layers.{i}/attn"
    heads = const(g, "heads_shape", [0, H, 1, D], np.int64)  # 0 keeps B, even when B is 0
    past_key, past_value = past_names(i)
    present_key, present_value = present_names(i)

    h = rmsnorm(g, f"{scope}/norm", x, C)
    q = linear(g, f"{scope}/q_proj", h, f"layer{i}.attn_wq", alpha=1.0 / np.sqrt(D))  # pre-scaled
    q = node(g, "Reshape", f"{scope}/q_heads", [q, heads])  # (B, H, 1, D)
    k = linear(g, f"{scope}/k_proj", h, f"layer{i}.attn_wk")
    k = node(g, "Reshape", f"{scope}/k_heads", [k, heads])
    v = linear(g, f"{scope}/v_proj", h, f"layer{i}.attn_wv")
    v = node(g, "Reshape", f"{scope}/v_heads", [v, heads])
    keys = node(g, "Concat", f"{scope}/k_cache", [past_key, k], present_key, axis=2)  # (B, H, T, D)
    values = node(g, "Concat", f"{scope}/v_cache", [past_value, v], present_value, axis=2)

    scores = node(g, "Mul", f"{scope}/scores", [q, keys])  # (B, H, T, D)
    scores = reduce(g, "ReduceSum", f"{scope}/scores", scores, axis=-1, keepdims=0)  # (B, H, T)
    weights = node(g, "Softmax", f"{scope}/softmax", [scores], axis=-1)
    weights = unsqueeze(g, f"{scope}/softmax", weights, axis=2)  # (B, H, 1, T)
    mixed = node(g, "MatMul", f"{scope}/mix", [weights, values])  # (B, H, 1, D)
    merged = node(g, "Reshape", f"{scope}/merge", [mixed, const(g, "embd_shape", [0, C], np.int64)])
    return linear(g, f"{scope}/o_proj", merged, f"layer{i}.attn_wo", residual=x)


def mlp(g: Graph, i: int, x: str, config: GPTConfig) -> str:
    """x + fc2 relu(fc1 rmsnorm(x)) for layer ``i``: (B, C) -> (B, 4C) -> (B, C)."""
    scope = f"/layers.{i}/mlp"
    h = rmsnorm(g, f"{scope}/norm", x, config.n_embd)
    h = linear(g, f"{scope}/fc1", h, f"layer{i}.mlp_fc1")
    h = node(g, "Relu", f"{scope}/relu", [h])
    return linear(g, f"{scope}/fc2", h, f"layer{i}.mlp_fc2", residual=x)


# ----------------------------------------------------------------------------- the model

def check_opset(opset: int) -> None:
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ExportError(f"opset {opset!r} is not supported; choose one from {MIN_OPSET} to {newest}")


def doc_string(config: GPTConfig, labels: tuple[tuple[str, ...], ...] = ()) -> str:
    past_key, past_value = past_names("i")  # the names' pattern, for every layer i
    present_key, present_value = present_names("i")
    return (
        f"mgpt step graph: one decoding step of a {config.n_layer}-layer character GPT. Feed `{TOKEN}` "
        f"(int64 [batch]) with `{POSITION}` (int64 scalar, the number of cached positions) and each "
        f"layer i's cache `{past_key}`, `{past_value}` (float32 [batch, {config.n_head}, past_len, "
        f"{config.head_dim}], past_len 0 at the start); read `{LOGITS}` (float32 [batch, vocab_size]) and "
        f"`{present_key}`, `{present_value}` (past_len + 1 positions), the next step's cache. Start every "
        f"row with the BOS id at position 0, pick the next token from softmax(logits / temperature), stop "
        f"at BOS or after block_size positions. metadata_props hold the vocabulary (JSON list; id i is "
        f"vocab[i], BOS is len(vocab)), bos, block_size, n_layer, n_head, head_dim and n_embd."
        + (f" Labeled model: metadata `labels` lists {len(labels)} label groups, whose tokens follow BOS "
           f"(ids bos+1.., group by group); feed one label of each group, in the groups' order, at positions "
           f"1..{len(labels)} after BOS, and never draw a label token (drop logits past bos)." if labels else "")
    )


def build_model(checkpoint: Checkpoint, opset: int = DEFAULT_OPSET, *, general: bool = False) -> onnx.ModelProto:
    """The step graph of ``checkpoint`` at ``opset``, checked with ``onnx.checker`` (full_check).
    ``general`` takes the general builders even for a small model (the benchmarks compare both)."""
    check_opset(opset)
    config = checkpoint.config
    H, D = config.n_head, config.head_dim
    g = Graph(opset)
    for name in config.param_shapes():
        weight(g, name, checkpoint.params[name])

    cache_in = [BATCH, H, PAST_LEN, D]
    inputs = [helper.make_tensor_value_info(TOKEN, TensorProto.INT64, [BATCH]),
              helper.make_tensor_value_info(POSITION, TensorProto.INT64, [])]
    outputs = [helper.make_tensor_value_info(LOGITS, TensorProto.FLOAT, [BATCH, config.vocab_size])]
    for i in range(config.n_layer):
        inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, cache_in) for n in past_names(i)]
        outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [BATCH, H, TOTAL_LEN, D])
                    for n in present_names(i)]

    if small.is_small(config) and not general:  # the same step, faster in onnxruntime (see small.py)
        x, *qkv = small.first_layer(g, config)
        cut = None  # made by layer 0 from its cache, shared by the others
        for i in range(config.n_layer):
            if i:
                qkv = small.projections(g, i, x, config)
            x, cut = small.attention(g, i, x, qkv, config, cut)
            x = mlp(g, i, x, config)
    else:
        x = rmsnorm(g, "/embed/norm", embedding(g, TOKEN, POSITION), config.n_embd)
        for i in range(config.n_layer):
            x = attention(g, i, x, config)
            x = mlp(g, i, x, config)
    linear(g, "/lm_head", x, "lm_head", output=LOGITS)

    graph = helper.make_graph(g.nodes, "mgpt", inputs, outputs, initializer=g.initializers)
    # make_model_gen_version stamps the oldest IR version that can hold this opset, so older
    # runtimes load the file too.
    model = helper.make_model_gen_version(graph, opset_imports=[helper.make_opsetid("", opset)],
                                          producer_name="mgpt", producer_version=__version__,
                                          doc_string=doc_string(config, checkpoint.vocab.labels))
    novelty = None if checkpoint.novelty is None else json.dumps(checkpoint.novelty.to_json())
    info = ModelInfo(checkpoint.vocab, config.block_size, config.n_layer, H, D, checkpoint.training,
                     f"mgpt {__version__}", novelty)
    helper.set_model_props(model, info.to_props())
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ExportError(f"the graph fails onnx.checker at opset {opset}: {e}") from None
    return model
