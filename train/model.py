"""microgpt's model in NumPy: parameters, the reference one-token step, and a batched training
forward/backward written for arrays.

Shapes: B batch rows, T positions, C = n_embd, H = n_head, D = head_dim, V = vocab_size.
Weights are (out, in) and applied as ``y = W @ x`` (so ``x @ W.T`` on row vectors), with no biases.
"""

from __future__ import annotations

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

def rmsnorm(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x / sqrt(mean(x^2) + eps) over the last axis; also returns the scale (..., 1) for backward."""
    # np.add.reduce rather than np.mean: same sum, without mean's Python-level wrapper (hot path)
    scale = 1.0 / np.sqrt(np.add.reduce(x * x, axis=-1, keepdims=True) / x.shape[-1] + EPS)
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

def _causal_mask(T: int) -> np.ndarray:
    """(T, T): 0 where a query may look (key position <= query position), -inf above."""
    return np.triu(np.full((T, T), -np.inf), k=1)


def forward(params, config: GPTConfig, tokens: np.ndarray):
    """All positions of a batch at once, with a causal mask: the same logits as calling ``step`` at
    positions 0..T-1. tokens: (B, T). Returns logits (B, T, V) and what backward needs."""
    B, T = tokens.shape
    C, H, D = config.n_embd, config.n_head, config.head_dim
    x, s0 = rmsnorm(params["wte"][tokens] + params["wpe"][:T])  # (B, T, C)
    mask = _causal_mask(T)
    saved = []
    for i in range(config.n_layer):
        x_in = x
        h, s1 = rmsnorm(x)
        wqkv = _qkv(params, i)
        qkv = (h @ wqkv.T).reshape(B, T, 3, H, D).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv  # each (B, H, T, D)
        a = softmax(q @ k.transpose(0, 1, 3, 2) * (1.0 / np.sqrt(D)) + mask)  # (B, H, T, T)
        o = (a @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        x = x + o @ params[f"layer{i}.attn_wo"].T
        h2, s2 = rmsnorm(x)
        u = h2 @ params[f"layer{i}.mlp_fc1"].T  # (B, T, 4C)
        f = np.maximum(u, 0.0)
        x = x + f @ params[f"layer{i}.mlp_fc2"].T
        saved.append((x_in, h, s1, wqkv, q, k, v, a, o, h2, s2, u, f))
    logits = x @ params["lm_head"].T
    return logits, (tokens, x, s0, saved)


def _rmsnorm_backward(dy, y, scale):
    """d/dx of y = x * scale, scale = (mean(x^2) + eps)^-1/2, given dy: scale * (dy - y * mean(dy*y))."""
    return scale * (dy - y * (np.add.reduce(dy * y, axis=-1, keepdims=True) / y.shape[-1]))


def backward(params, grads, config: GPTConfig, dlogits: np.ndarray, cache) -> None:
    """Write d(loss)/d(param) into ``grads`` (views of a flat buffer), given dlogits (B, T, V)."""
    tokens, x_out, s0, saved = cache
    B, T = tokens.shape
    C, H, D, V = config.n_embd, config.n_head, config.head_dim, config.vocab_size
    rows = B * T
    grads["lm_head"][...] = dlogits.reshape(rows, V).T @ x_out.reshape(rows, C)
    dx = dlogits @ params["lm_head"]  # (B, T, C)
    for i in reversed(range(config.n_layer)):
        x_in, h, s1, wqkv, q, k, v, a, o, h2, s2, u, f = saved[i]
        # MLP: x += fc2 relu(fc1 h2)
        grads[f"layer{i}.mlp_fc2"][...] = dx.reshape(rows, C).T @ f.reshape(rows, 4 * C)
        du = (dx @ params[f"layer{i}.mlp_fc2"]) * (u > 0)
        grads[f"layer{i}.mlp_fc1"][...] = du.reshape(rows, 4 * C).T @ h2.reshape(rows, C)
        dx = dx + _rmsnorm_backward(du @ params[f"layer{i}.mlp_fc1"], h2, s2)
        # attention: x += Wo concat_h(softmax(q k^T / sqrt(D)) v)
        grads[f"layer{i}.attn_wo"][...] = dx.reshape(rows, C).T @ o.reshape(rows, C)
        do = (dx @ params[f"layer{i}.attn_wo"]).reshape(B, T, H, D).transpose(0, 2, 1, 3)
        da = do @ v.transpose(0, 1, 3, 2)  # (B, H, T, T)
        dv = a.transpose(0, 1, 3, 2) @ do
        datt = a * (da - np.add.reduce(da * a, axis=-1, keepdims=True)) * (1.0 / np.sqrt(D))
        dq = datt @ k
        dk = datt.transpose(0, 1, 3, 2) @ q
        dqkv = np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(rows, 3 * C)
        dwqkv = dqkv.T @ h.reshape(rows, C)  # (3C, C)
        grads[f"layer{i}.attn_wq"][...] = dwqkv[:C]
        grads[f"layer{i}.attn_wk"][...] = dwqkv[C : 2 * C]
        grads[f"layer{i}.attn_wv"][...] = dwqkv[2 * C :]
        dx = dx + _rmsnorm_backward((dqkv @ wqkv).reshape(B, T, C), h, s1)
        assert x_in.shape == dx.shape
    # the embedding sum feeds rmsnorm; x at the bottom of the stack is that rmsnorm's output
    x0 = saved[0][0] if saved else x_out
    de = _rmsnorm_backward(dx, x0, s0).reshape(rows, C)
    one_hot = tokens.reshape(rows, 1) == np.arange(V)  # (rows, V): the scatter-add as a product
    grads["wte"][...] = one_hot.T.astype(np.float64) @ de
    grads["wpe"][...] = 0.0
    grads["wpe"][:T] = de.reshape(B, T, C).sum(axis=0)


def cross_entropy(logits: np.ndarray, targets: np.ndarray, weights: np.ndarray):
    """Summed -log softmax(logits)[target] weighted by ``weights`` (B, T: 1 real, 0 padding), and
    d(sum)/d(logits)."""
    B, T, V = logits.shape
    z = logits - np.maximum.reduce(logits, axis=-1, keepdims=True)
    e = np.exp(z)
    total = np.add.reduce(e, axis=-1, keepdims=True)
    at_target = np.arange(B * T) * V + targets.ravel()  # flat index of each target logit
    nll = np.log(total.ravel()) - z.ravel()[at_target]  # (B*T,)
    dlogits = e / total
    dlogits.ravel()[at_target] -= 1.0
    dlogits *= weights[..., None]
    return float(nll @ weights.ravel()), dlogits


def loss_and_grads(params, grads, config: GPTConfig, tokens, targets, weights) -> float:
    """Mean NLL over the real (weight 1) predicted tokens of a padded batch; gradients into ``grads``."""
    logits, cache = forward(params, config, tokens)
    count = float(np.sum(weights))
    total, dlogits = cross_entropy(logits, targets, weights)
    backward(params, grads, config, dlogits / count, cache)
    return total / count
