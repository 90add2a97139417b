"""microgpt's model in NumPy: parameters, the reference one-token step, and a batched training
forward/backward written for arrays.

Shapes: B batch rows, T positions, C = n_embd, H = n_head, D = head_dim, V = vocab_size.
Weights are (out, in) and applied as ``y = W @ x`` (so ``x @ W.T`` on row vectors), with no biases.
"""

from __future__ import annotations

import functools

import numpy as np

from .config import GPTConfig

EPS = 1e-5  # rmsnorm's epsilon, inside the square root
INIT_STD = 0.08


# ----------------------------------------------------------------------------- parameters

def views(flat: np.ndarray, config: GPTConfig) -> dict[str, np.ndarray]:
    """Name -> (out, in) view into one flat buffer, in microgpt's order.

    Everything lives in one buffer so that Adam is a few vectorized operations on the whole model.
    """
    params, offset = {}, 0
    for name, (rows, cols) in config.param_shapes().items():
        params[name] = flat[offset : offset + rows * cols].reshape(rows, cols)
        offset += rows * cols
    assert offset == flat.size, (offset, flat.size)
    return params


def init_params(config: GPTConfig, seed: int) -> np.ndarray:
    """A flat float64 buffer of N(0, 0.08^2) weights, drawn in microgpt's parameter order."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, INIT_STD, size=config.num_params())


def flatten(params: dict[str, np.ndarray], config: GPTConfig) -> np.ndarray:
    """The flat float64 buffer of a name -> array dict (checked against the config's shapes)."""
    parts = []
    for name, shape in config.param_shapes().items():
        array = np.asarray(params[name], dtype=np.float64)
        assert array.shape == shape, (name, array.shape, shape)
        parts.append(array.ravel())
    return np.concatenate(parts)


def _qkv(params: dict, i: int) -> np.ndarray:
    """(3C, C): Wq, Wk and Wv stacked, so that q, k and v come from one matrix product."""
    return np.concatenate([params[f"layer{i}.attn_wq"], params[f"layer{i}.attn_wk"],
                           params[f"layer{i}.attn_wv"]])


# ----------------------------------------------------------------------------- shared pieces

@functools.lru_cache(maxsize=None)
def _mean_weights(n: int, dtype=np.float64) -> np.ndarray:
    """(n,) of 1/n, read-only: ``(x * x) @ _mean_weights(n)`` is the mean over the last axis as one
    BLAS product, 4x faster than np.add.reduce over a 16-long axis at 2,048 rows (15 vs 61 us).
    In the activations' dtype: a float64 vector would turn a float32 product into a float64 one."""
    w = np.full(n, 1.0 / n, dtype=dtype)
    w.flags.writeable = False
    return w


@functools.lru_cache(maxsize=None)
def _ones(n: int, dtype=np.float64) -> np.ndarray:
    """(n,) of ones, read-only: ``a @ _ones(n)`` sums the last axis as a product (3x add.reduce)."""
    w = np.ones(n, dtype=dtype)
    w.flags.writeable = False
    return w


def row_max(x: np.ndarray) -> np.ndarray:
    """The maximum over the last axis, kept as an axis of 1. NumPy reduces a short contiguous axis
    an element at a time (~4 ns each here), but the first axis of a transposed copy with its rows
    side by side: (123, 4, 16, 16) attention scores 689 -> 117 us, (1968, 27) logits 169 -> 90 us,
    the same values. Below a few thousand elements the copy costs more than it saves."""
    if x.size < 4096:
        return np.maximum.reduce(x, axis=-1, keepdims=True)
    n = x.shape[-1]
    return np.maximum.reduce(x.reshape(-1, n).T.copy(), axis=0).reshape(*x.shape[:-1], 1)


def rmsnorm(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x / sqrt(mean(x^2) + eps) over the last axis; also returns the scale (..., 1) for backward."""
    scale = 1.0 / np.sqrt(((x * x) @ _mean_weights(x.shape[-1], x.dtype))[..., None] + EPS)
    return x * scale, scale


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(z - np.maximum.reduce(z, axis=axis, keepdims=True))
    return e / np.add.reduce(e, axis=axis, keepdims=True)


# ----------------------------------------------------------------------------- the reference step

def step(params, config: GPTConfig, token, position: int, past_keys, past_values):
    """One decoding step for a batch of rows at the same position: the computation the ONNX graph
    performs, and the reference it is tested against.

    token: (B,) ints; position: int; past_keys[i], past_values[i]: (B, H, P, D), P may be 0.
    Returns logits (B, V) and the present keys/values per layer, each (B, H, P+1, D).
    """
    H, D = config.n_head, config.head_dim
    token = np.asarray(token)
    B = token.shape[0]
    x, _ = rmsnorm(params["wte"][token] + params["wpe"][position])  # (B, C)
    keys, values = [], []
    for i in range(config.n_layer):
        # 1) attention: this token's query against every cached key (and its own)
        h, _ = rmsnorm(x)
        q = (h @ params[f"layer{i}.attn_wq"].T).reshape(B, H, 1, D)
        k = (h @ params[f"layer{i}.attn_wk"].T).reshape(B, H, 1, D)
        v = (h @ params[f"layer{i}.attn_wv"].T).reshape(B, H, 1, D)
        K = np.concatenate([past_keys[i], k], axis=2)  # (B, H, P+1, D)
        Vv = np.concatenate([past_values[i], v], axis=2)
        a = softmax(np.sum(q * K, axis=-1) / np.sqrt(D))  # (B, H, P+1)
        o = np.sum(a[..., None] * Vv, axis=2).reshape(B, H * D)  # (B, C)
        x = x + o @ params[f"layer{i}.attn_wo"].T
        # 2) MLP
        h, _ = rmsnorm(x)
        x = x + np.maximum(h @ params[f"layer{i}.mlp_fc1"].T, 0.0) @ params[f"layer{i}.mlp_fc2"].T
        keys.append(K)
        values.append(Vv)
    return x @ params["lm_head"].T, keys, values


def empty_cache(config: GPTConfig, batch: int, dtype=np.float64):
    """Per-layer (B, H, 0, D) keys and values: the cache before position 0."""
    shape = (batch, config.n_head, 0, config.head_dim)
    return ([np.zeros(shape, dtype) for _ in range(config.n_layer)],
            [np.zeros(shape, dtype) for _ in range(config.n_layer)])


# ----------------------------------------------------------------------------- training forward
#
# The batched forward/backward below are written for large batches without slowing batch 1: at batch
# 256 a step's matrix products are ~1.6 ms and everything else is elementwise passes and the fresh
# arrays they fill (a fresh 1 MB array costs page faults, ~0.5 ns/byte here, more than the arithmetic).
# So: 2-D products, operations in place on arrays this step made, products written straight into the
# layout the next product reads (``out=``), and 1/sqrt(D) folded into Wq rather than the scores.

@functools.lru_cache(maxsize=None)
def _causal_mask(T: int) -> np.ndarray:
    """(T, T), read-only: 0 where a query may look (key position <= query position), -inf above.
    Cached: np.triu costs ~8 us a call, 3% of a batch-1 step."""
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    mask.flags.writeable = False
    return mask


def _attention(q, k, v, out, mask=None):
    """softmax(q k^T + mask) v for q, k, v (B, H, T, D), q already scaled by 1/sqrt(D); the result
    is written into ``out`` (B, H, T, D, any strides). ``mask``: the causal mask (T, T) by default,
    or a packed batch's (B, 1, T, T). Returns the weights a (B, H, T, T)."""
    a = q @ k.transpose(0, 1, 3, 2)
    a += _causal_mask(q.shape[2]) if mask is None else mask
    a -= row_max(a)
    np.exp(a, out=a)
    a /= (a @ _ones(a.shape[-1], a.dtype))[..., None]  # row sums as a product
    np.matmul(a, v, out=out)
    return a


def dropout_masks(rng: np.random.Generator, config: GPTConfig, rows: int, p: float, dtype=np.float64):
    """Per layer, (attention, MLP) masks (rows, C) for the two residual branches: 0 with probability
    p, else 1/(1-p) (inverted dropout, so nothing changes at evaluation)."""
    C, keep = config.n_embd, 1.0 - p
    return [tuple((rng.random((rows, C), dtype=np.float32) < keep) * np.array(1.0 / keep, dtype) for _ in range(2))
            for _ in range(config.n_layer)]


def forward(params, config: GPTConfig, tokens: np.ndarray, keep: bool = True, dropout=None, packed=None):
    """All positions of a batch at once, with a causal mask: the same logits as calling ``step`` at
    positions 0..T-1. tokens: (B, T). Returns logits (B, T, V) and what backward needs (None unless
    ``keep``: evaluation skips keeping the activations and overwrites them in place).

    ``dropout``: training only, ``dropout_masks(...)`` for rows B*T; each block's attention output
    (after Wo) and MLP output (after fc2) is multiplied by its mask before joining the residual.
    ``packed``: (positions (B, T), mask (B, 1, T, T)) of rows holding several documents each (see
    ``pack``); by default each row is one document starting at position 0."""
    B, T = tokens.shape
    dtype = params["wte"].dtype
    C, H, D = config.n_embd, config.n_head, config.head_dim
    rows = B * T
    positions, mask = packed if packed is not None else (slice(None, T), None)
    x, s0 = rmsnorm((params["wte"][tokens] + params["wpe"][positions]).reshape(rows, C))  # (rows, C)
    saved = []
    for i in range(config.n_layer):
        x_in = x
        h, s1 = rmsnorm(x)
        wqkv = _qkv(params, i)
        wqkv[:C] *= 1.0 / np.sqrt(D)  # scaling the (C, C) Wq, not the (B, H, T, T) scores
        qkv = (h @ wqkv.T).reshape(B, T, 3, H, D).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv  # each (B, H, T, D), views of the (rows, 3C) product
        o = np.empty((B, T, H, D), dtype)
        a = _attention(q, k, v, out=o.transpose(0, 2, 1, 3), mask=mask)
        o = o.reshape(rows, C)  # heads concatenated per position, without a transpose copy
        y = o @ params[f"layer{i}.attn_wo"].T
        if dropout is not None:
            y *= dropout[i][0]
        x = x + y
        h2, s2 = rmsnorm(x)
        u = h2 @ params[f"layer{i}.mlp_fc1"].T  # (rows, 4C)
        f = np.maximum(u, 0.0, out=None if keep else u)
        y = f @ params[f"layer{i}.mlp_fc2"].T
        if dropout is not None:
            y *= dropout[i][1]
        x += y
        if keep:
            saved.append((x_in, h, s1, wqkv, q, k, v, a, o, h2, s2, u, f, dropout and dropout[i]))
    logits = (x @ params["lm_head"].T).reshape(B, T, -1)
    return logits, ((tokens, x, s0, saved, positions) if keep else None)


def _rmsnorm_backward(dy, y, scale):
    """d/dx of y = x * scale, scale = (mean(x^2) + eps)^-1/2, given dy: scale * (dy - y * mean(dy*y)).
    Overwrites dy (always a fresh product here)."""
    dy -= y * ((dy * y) @ _mean_weights(y.shape[-1], y.dtype))[..., None]
    dy *= scale
    return dy


def backward(params, grads, config: GPTConfig, dlogits: np.ndarray, cache) -> None:
    """Write d(loss)/d(param) into ``grads`` (views of a flat buffer), given dlogits (B, T, V)."""
    tokens, x_out, s0, saved, positions = cache
    B, T = tokens.shape
    C, H, D, V = config.n_embd, config.n_head, config.head_dim, config.vocab_size
    rows = B * T
    dlogits = dlogits.reshape(rows, V)
    grads["lm_head"][...] = dlogits.T @ x_out
    dx = dlogits @ params["lm_head"]  # (rows, C)
    for i in reversed(range(config.n_layer)):
        x_in, h, s1, wqkv, q, k, v, a, o, h2, s2, u, f, masks = saved[i]
        # MLP: x += mask * fc2 relu(fc1 h2); the residual passes dx through, the branch gets mask * dx
        dy = dx if masks is None else dx * masks[1]
        grads[f"layer{i}.mlp_fc2"][...] = dy.T @ f
        du = dy @ params[f"layer{i}.mlp_fc2"]  # (rows, 4C)
        du *= u > 0
        grads[f"layer{i}.mlp_fc1"][...] = du.T @ h2
        dx = dx + _rmsnorm_backward(du @ params[f"layer{i}.mlp_fc1"], h2, s2)
        # attention: x += mask * Wo concat_h(softmax(q k^T / sqrt(D)) v), with q = (Wq / sqrt(D)) h
        dy = dx if masks is None else dx * masks[0]
        grads[f"layer{i}.attn_wo"][...] = dy.T @ o
        do = (dy @ params[f"layer{i}.attn_wo"]).reshape(B, T, H, D).transpose(0, 2, 1, 3)
        da = do @ v.transpose(0, 1, 3, 2)  # (B, H, T, T)
        da -= ((da * a) @ _ones(T, a.dtype))[..., None]  # softmax backward, in place: a * (da - sum(da * a))
        da *= a
        dqkv = np.empty((B, T, 3, H, D), a.dtype)  # dq, dk, dv written in the layout of the qkv product
        np.matmul(da, k, out=dqkv[:, :, 0].transpose(0, 2, 1, 3))
        np.matmul(da.transpose(0, 1, 3, 2), q, out=dqkv[:, :, 1].transpose(0, 2, 1, 3))
        np.matmul(a.transpose(0, 1, 3, 2), do, out=dqkv[:, :, 2].transpose(0, 2, 1, 3))
        dqkv = dqkv.reshape(rows, 3 * C)
        dwqkv = dqkv.T @ h  # (3C, C), its Wq block with respect to Wq / sqrt(D)
        grads[f"layer{i}.attn_wq"][...] = dwqkv[:C] * (1.0 / np.sqrt(D))
        grads[f"layer{i}.attn_wk"][...] = dwqkv[C : 2 * C]
        grads[f"layer{i}.attn_wv"][...] = dwqkv[2 * C :]
        dx += _rmsnorm_backward(dqkv @ wqkv, h, s1)
        assert x_in.shape == dx.shape
    # the embedding sum feeds rmsnorm; x at the bottom of the stack is that rmsnorm's output
    x0 = saved[0][0] if saved else x_out
    de = _rmsnorm_backward(dx, x0, s0)  # (rows, C)
    one_hot = tokens.reshape(rows, 1) == np.arange(V)  # (rows, V): the scatter-add as a product
    grads["wte"][...] = one_hot.T.astype(de.dtype) @ de
    grads["wpe"][...] = 0.0
    if isinstance(positions, slice):  # every row starts at position 0
        grads["wpe"][:T] = de.reshape(B, T, C).sum(axis=0)
    else:  # packed rows: the scatter-add by position as a product, like wte's
        at = positions.reshape(rows, 1) == np.arange(config.block_size)
        grads["wpe"][...] = at.T.astype(de.dtype) @ de


def _log_softmax_at(logits: np.ndarray, targets: np.ndarray):
    """(-log softmax(logits)[target] per row (B*T,), exp(logits - max) (B*T, V), its row sums (B*T, 1)),
    computed in place in ``logits``."""
    V = logits.shape[-1]
    z = logits.reshape(-1, V)
    z -= row_max(z)
    at_target = np.arange(z.shape[0]) * V + targets.ravel()  # flat index of each target logit
    z_target = z.ravel()[at_target]
    e = np.exp(z, out=z)
    total = (e @ _ones(V, e.dtype))[:, None]
    return np.log(total.ravel()) - z_target, e, total, at_target


def cross_entropy(logits: np.ndarray, targets: np.ndarray, weights: np.ndarray, overwrite: bool = False):
    """Summed -log softmax(logits)[target] weighted by ``weights`` (B, T: 1 real, 0 padding), and
    d(sum)/d(logits). ``overwrite`` lets it compute in place in ``logits``."""
    nll, e, total, at_target = _log_softmax_at(logits if overwrite else logits.copy(), targets)
    w = weights.reshape(-1, 1)
    e *= w / total  # (softmax - one_hot) * weight, one pass over (B*T, V)
    e.ravel()[at_target] -= w.ravel()
    return float(nll @ w.ravel()), e.reshape(logits.shape)


def nll_sum(params, config: GPTConfig, tokens, targets, weights) -> float:
    """Summed -log p(target) weighted by ``weights``, forward only: what evaluation needs."""
    logits, _ = forward(params, config, tokens, keep=False)
    nll, _, _, _ = _log_softmax_at(logits, targets)
    return float(nll @ weights.ravel())


def loss_and_grads(params, grads, config: GPTConfig, tokens, targets, weights, dropout=None, packed=None) -> float:
    """Mean NLL over the real (weight 1) predicted tokens of a padded batch; gradients into ``grads``.
    ``dropout``: the masks of ``dropout_masks`` for this batch's B*T rows (training only)."""
    logits, cache = forward(params, config, tokens, dropout=dropout, packed=packed)
    # weights / count: the mean and its gradient directly, without a pass dividing dlogits
    loss, dlogits = cross_entropy(logits, targets, weights / float(np.sum(weights)), overwrite=True)
    backward(params, grads, config, dlogits, cache)
    return loss
