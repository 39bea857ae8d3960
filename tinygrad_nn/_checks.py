"""Argument checks, in one message style: every module that checks an argument calls these.

Every message reads ``"{who}: {name} must be {what}, got {value!r}"``: the function the learner
called, the argument in their words, what was expected, and what came. Each check returns the
value normalised (a Python int or float), so a caller writes ``n = count("fit", "epochs", n)``.
numpy and the standard library only, so any module may import it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real
from typing import Any

import numpy as np


def _fail(who: str, name: str, what: str, value: Any) -> ValueError:
    return ValueError(f"{who}: {name} must be {what}, got {value!r}")


def count(who: str, name: str, value: Any, least: int = 0) -> int:
    """An integer >= `least` (bools refused: ``True`` epochs is a mistake, not 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise _fail(who, name, f"an integer >= {least}", value)
    return int(value)


def number(who: str, name: str, value: Any, *, positive: bool = False) -> float:
    """A finite real number, > 0 if `positive` else >= 0 (a learning rate, a λ)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or (
            value <= 0 if positive else value < 0):
        raise _fail(who, name, f"a finite number {'>' if positive else '>='} 0", value)
    return float(value)


def fraction(who: str, name: str, value: Any, *, closed: bool = False) -> float:
    """A number in [0, 1) (a dropout probability, a β), or in [0, 1] if `closed`."""
    if isinstance(value, bool) or not isinstance(value, Real) or not (
            0 <= value <= 1 if closed else 0 <= value < 1):  # type: ignore[operator]  # (Real has no __ge__ in typeshed)
        raise _fail(who, name, f"a number in [0, 1{']' if closed else ')'}", value)
    return float(value)


def pair(who: str, name: str, value: Any, least: int = 1) -> tuple[int, int]:
    """An integer >= `least` or a pair of them (PyTorch's kernel_size, stride, padding)."""
    both = (value, value) if isinstance(value, (int, np.integer)) else value
    if (not isinstance(both, (tuple, list)) or len(both) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                       and v >= least for v in both)):
        raise _fail(who, name, f"an integer >= {least} or a pair of them", value)
    return int(both[0]), int(both[1])


def flag(who: str, name: str, value: Any) -> bool:
    """True or False (numpy's bool too); a string such as "yes" is refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise _fail(who, name, "True or False", value)
    return bool(value)


def one_of(who: str, name: str, value: Any, choices: Iterable[str]) -> str:
    """One of the names in `choices` (a table's keys)."""
    choices = list(choices)
    if not isinstance(value, str) or value not in choices:
        raise _fail(who, name, f"one of {', '.join(choices)}", value)
    return value


def widths(who: str, sizes: Any) -> list[int]:
    """A network's layer widths, input layer first: at least 2 integers >= 1."""
    listed = not isinstance(sizes, (str, bytes)) and isinstance(sizes, Iterable)
    values = list(sizes) if listed else []
    if len(values) < 2 or any(isinstance(n, bool) or not isinstance(n, (int, np.integer))
                              or n < 1 for n in values):
        raise _fail(who, "sizes", "a list of layer widths, at least 2 layers (input and "
                                  "output), each an integer >= 1, such as [784, 30, 10]", sizes)
    return [int(n) for n in values]


def float_dtype(who: str, dtype: Any) -> np.dtype:
    """A numpy floating dtype (float32, float64)."""
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"{who}: dtype must be a float type (floating point, such as "
                         f"np.float64), got {dt}")
    return dt
