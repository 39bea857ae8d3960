"""Cost functions, made of autograd primitives: the quadratic cost (eq. 2.1) and cross-entropy.

Both take the network's outputs `a` and the desired outputs `y` with one example per *row*:
shape (n, outputs) for n examples, or (outputs,) for a single example. Both return a 0-d
Tensor averaged over the n examples, so with a mini-batch its gradient is the mean of the
per-example gradients (eqs. 2.4-2.6). `a` and `y` must have exactly the same shape: a (10,)
output against a (10, 1) column would broadcast silently to a (10, 10) table of wrong
differences, so that is an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import ops
from .tensor import Tensor, to_array

__all__ = ["COSTS", "clamp_epsilon", "cross_entropy_cost", "quadratic_cost"]


def _prepare(name: str, a: Any, y: Any) -> tuple[Tensor, Any, int]:
    """`a` as a Tensor, `y` as data, and n, the number of examples (rows)."""
    if not isinstance(a, Tensor):
        a = Tensor(a)
    if not isinstance(y, Tensor):
        y = to_array(y)
    if a.shape != y.shape:
        raise ValueError(
            f"{name}: the outputs a have shape {a.shape} but the desired outputs y have shape "
            f"{y.shape}; they must be equal (one example per row), not broadcast")
    n = a.shape[0] if a.ndim >= 2 else 1
    if a.size == 0:
        raise ValueError(f"{name}: no examples (a has shape {a.shape}); the cost of no "
                         f"examples is undefined")
    return a, y, n


def quadratic_cost(a: Any, y: Any) -> Tensor:
    """Eq. 2.1, C = 1/(2n) Σ_x ||y(x) - a(x)||², with n the number of rows of `a`.

    >>> quadratic_cost([[1.0, 0.0], [0.5, 0.5]], [[0.0, 0.0], [0.5, 1.5]]).item()  # (1 + 1)/4
    0.5
    """
    a, y, n = _prepare("quadratic_cost", a, y)
    # One fused primitive rather than sub, square, sum and scale: at the tutorial's
    # mini-batch of 10 each graph node costs more than its arithmetic.
    return ops.quadratic_cost(a, y, n=n)


def clamp_epsilon(dtype: Any) -> float:
    """The ε of `cross_entropy_cost`: the machine epsilon of the outputs' float type.

    In float64 that is 2.2e-16, and ln ε ≈ -36.0: the cost an output pays for being ε from
    the wrong end, as if the sigmoid had stopped at |z| ≈ 36 (where float64's σ(z) rounds to
    exactly 1 anyway). 1 - ε is still below 1, so ln(1 - a) stays finite too.
    """
    dtype = np.dtype(dtype)
    return float(np.finfo(dtype if dtype.kind == "f" else np.float64).eps)


def cross_entropy_cost(a: Any, y: Any) -> Tensor:
    """The cross-entropy cost of sigmoid outputs, C = -1/n Σ_x Σ_j [y ln a + (1-y) ln(1-a)].

    It is the sequel's cost: with sigmoid outputs its error δ^L = a - y loses the σ'(z) factor
    that makes saturated neurons learn slowly under eq. 2.1. `y` may be any values in [0, 1].

    Safe at a = 0 and a = 1: `a` is first clamped into [ε, 1 - ε] with ε = `clamp_epsilon`,
    the machine epsilon (2.2e-16 in float64), so each term of the sum is at most -ln ε ≈ 36,
    never inf, and numpy never warns. The clamp is the `clip` primitive, which is exact for
    outputs inside [ε, 1 - ε] (bounds included); outside it the derivative with respect to
    `a` is 0 (the clamped value does not change when `a` does), so a sigmoid output that has
    saturated to exactly 0 or 1 gets no gradient from this cost.

    >>> round(cross_entropy_cost([0.5, 0.5], [1.0, 0.0]).item(), 6)  # -2 ln ½ = 2 ln 2
    1.386294
    """
    a, y, n = _prepare("cross_entropy_cost", a, y)
    eps = clamp_epsilon(a.dtype)
    a = ops.clip(a, lo=eps, hi=1.0 - eps)
    total = (y * ops.log(a) + (1.0 - y) * ops.log(1.0 - a)).sum()
    return total * (-1.0 / n)


COSTS = {"quadratic": quadratic_cost, "cross-entropy": cross_entropy_cost}
