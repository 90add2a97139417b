"""A microgpt-style scalar autograd and GPT, written for the tests only: the slow, obviously
correct reference that the NumPy forward and backward are checked against (and that the training
benchmark times as the pure-Python baseline)."""

from __future__ import annotations

import math


class Value:
    """A scalar that remembers how it was made, so that backward() can apply the chain rule."""

    __slots__ = ("data", "grad", "_children", "_local_grads")

    def __init__(self, data, children=(), local_grads=()):
        self.data = data
        self.grad = 0.0
        self._children = children
        self._local_grads = local_grads

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1.0, 1.0))

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    def __pow__(self, k: float):
        return Value(self.data**k, (self,), (k * self.data ** (k - 1),))

    def log(self):
        return Value(math.log(self.data), (self,), (1.0 / self.data,))

    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    def relu(self):
        return Value(max(self.data, 0.0), (self,), (float(self.data > 0),))

    __radd__ = __add__
    __rmul__ = __mul__

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)

    def __truediv__(self, other):
        return self * other**-1.0

    def backward(self):
        order, seen = [], set()

        def visit(v):
            if id(v) not in seen:
                seen.add(id(v))
                for child in v._children:
                    visit(child)
                order.append(v)

        visit(self)
        self.grad = 1.0
        for v in reversed(order):
            for child, local in zip(v._children, v._local_grads):
                child.grad += local * v.grad


def linear(x, w):
    return [sum(wi * xi for wi, xi in zip(row, x)) for row in w]


def softmax(logits):
    top = max(v.data for v in logits)
    exps = [(v - top).exp() for v in logits]
    total = sum(exps)
    return [e / total for e in exps]


def rmsnorm(x):
    scale = (sum(xi * xi for xi in x) / len(x) + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def gpt(params, n_layer, n_head, token, pos, keys, values):
    """One token at one position, appending to the per-layer key/value lists: microgpt's step."""
    x = rmsnorm([t + p for t, p in zip(params["wte"][token], params["wpe"][pos])])
    head_dim = len(x) // n_head
    for i in range(n_layer):
        residual = x
        h = rmsnorm(x)
        q = linear(h, params[f"layer{i}.attn_wq"])
        keys[i].append(linear(h, params[f"layer{i}.attn_wk"]))
        values[i].append(linear(h, params[f"layer{i}.attn_wv"]))
        out = []
        for hd in range(n_head):
            s = slice(hd * head_dim, (hd + 1) * head_dim)
            scores = [sum(a * b for a, b in zip(q[s], k[s])) / head_dim**0.5 for k in keys[i]]
            weights = softmax(scores)
            out.extend(sum(w * v[s][j] for w, v in zip(weights, values[i])) for j in range(head_dim))
        x = [a + b for a, b in zip(linear(out, params[f"layer{i}.attn_wo"]), residual)]
        residual = x
        h = [v.relu() for v in linear(rmsnorm(x), params[f"layer{i}.mlp_fc1"])]
        x = [a + b for a, b in zip(linear(h, params[f"layer{i}.mlp_fc2"]), residual)]
    return linear(x, params["lm_head"])


def to_values(arrays):
    """name -> nested lists of Value, from name -> 2-D arrays."""
    return {name: [[Value(float(x)) for x in row] for row in a] for name, a in arrays.items()}


def batch_loss(params, n_layer, n_head, block_size, documents):
    """Mean -log p(target) over every predicted token of the documents (each a list of token ids
    framed [BOS] + ids + [BOS]), at most block_size predictions per document."""
    losses = []
    for tokens in documents:
        keys, values = [[] for _ in range(n_layer)], [[] for _ in range(n_layer)]
        for pos in range(min(block_size, len(tokens) - 1)):
            probs = softmax(gpt(params, n_layer, n_head, tokens[pos], pos, keys, values))
            losses.append(-probs[tokens[pos + 1]].log())
    return sum(losses) / len(losses)
