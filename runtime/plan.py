"""One call's validated options, shared read-only by the loops (and the threads) that serve it."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from .constraints import Constraint


class Plan(NamedTuple):
    """A sampling call's options after checking (a NamedTuple: a frozen dataclass compiles its
    methods at import, 1.6 ms of the command's start-up). Shapes: H heads, P cached positions,
    D head_dim."""
    seed: int
    temperature: float
    top_k: int | None
    top_p: float | None
    prefix: str
    context: tuple[int, ...]  # BOS, the label tokens (if any) and the prefix's ids: fed at positions 0..
    length: int  # positions at most: the most characters of a sample (prefix included) and its label tokens
    cache: tuple[np.ndarray, ...]  # keys and values per layer after feeding the context, (1, H, P, D)
    logits: np.ndarray  # (V,) float32 at the context's last position: every sample's first draw
    constraint: Constraint | None = None  # the shape controls' automaton; None: no mask runs

    def with_seed(self, seed: int) -> Plan:
        """This plan for another seed (a third of _replace's cost: a server makes one a request)."""
        return tuple.__new__(Plan, (seed, *self[1:]))

    @property
    def start(self) -> int:
        """The position of the first draw: the last context token's, whose logits the plan holds
        (the same for every sample of the call, so computed once, not once per sample). The loops
        run from start + 1 on."""
        return len(self.context) - 1

    @property
    def offset(self) -> int:
        """Label tokens fed after BOS: a row at position p holds p - offset characters (the shape
        controls' n)."""
        return len(self.context) - 1 - len(self.prefix)


def check_count(name: str, value, minimum: int) -> int:
    """``value`` as a Python int (a NumPy integer's arithmetic could overflow its width); TypeError
    unless it is an integer (NumPy's too, never a bool), ValueError if below ``minimum``. The
    library's rule everywhere: a wrong type is a TypeError, a bad value a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)
