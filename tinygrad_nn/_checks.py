"""Argument checks for the outer ring (`Network`, `training`, `datasets`), in one message style.

Every message reads ``"{who}: {name} must be {what}, got {value!r}"``: the function the learner
called, the argument in their words, what was expected, and what came. Each check returns the
value normalised (a Python int or float), so a caller writes ``n = count("fit", "epochs", n)``.
numpy and the standard library only: `datasets` imports it too.
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


def float_dtype(who: str, dtype: Any) -> np.dtype:
    """A numpy floating dtype (float32, float64)."""
    dt = np.dtype(dtype)
    if dt.kind != "f":
        raise ValueError(f"{who}: dtype must be a float type (floating point, such as "
                         f"np.float64), got {dt}")
    return dt
