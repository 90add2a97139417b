"""Argument checks of the library's public functions, one home for the rule: a wrong type is a
TypeError, a bad value a ValueError (or the caller's subclass), and the message names the argument.

Booleans are refused where numbers are expected (``True`` is an int to Python, never a step
count to us); NumPy scalars are accepted where Python numbers are.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def integer(name: str, value, minimum: int | None = None, error: type[ValueError] = ValueError) -> int:
    """``value`` as a Python int, >= ``minimum`` if given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise error(f"{name} must be at least {minimum}, got {value}")
    return value


def real(name: str, value, low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False,
         error: type[ValueError] = ValueError) -> float:
    """``value`` as a finite Python float within [low, high] (``*_open``: that end excluded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (math.isfinite(value) and above and below):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open or high == math.inf else ']'}"
        raise error(f"{name} must be a finite number in {interval}, got {value!r}")
    return value


def boolean(name: str, value) -> bool:
    """``value`` if it is a bool (a NumPy bool too): 0, 1 or "yes" are not."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)
