"""Derived operations: made of primitives, so they need no VJP of their own.

Their gradients come from the chain rule over the primitives they are written
with; gradcheck tests them like any primitive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import ops
from .tensor import Tensor, to_array

Axis = int | tuple[int, ...] | None
# numpy's error for a bad axis: both a ValueError and an IndexError.
AxisError = getattr(np, "exceptions", np).AxisError


def _axes(x: Tensor, axis: Axis, who: str) -> tuple[int, ...]:
    """`axis` as a tuple of non-negative axes of x, or an error naming `who`."""
    if axis is None:
        return tuple(range(x.ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    for a in axes:
        if not -x.ndim <= a < x.ndim:
            raise AxisError(f"{who}: axis {a} is out of range for a tensor of shape {x.shape}")
    return tuple(a % x.ndim for a in axes)


def _reduced(x: Tensor, axis: Axis, keepdims: bool, who: str) -> tuple[Tensor, int]:
    """The sum over `axis` and how many elements each entry of it combines."""
    n = int(np.prod([x.shape[a] for a in _axes(x, axis, who)], dtype=np.int64))
    if n == 0:
        raise ValueError(f"{who}: reducing the tensor of shape {x.shape} over axis {axis} "
                         f"combines no elements; the result would be undefined")
    return ops.sum(x, axis=axis, keepdims=keepdims), n


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The sum divided by the number of elements reduced."""
    total, n = _reduced(x, axis, keepdims, "mean")
    return total * (1.0 / n)


def min(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """min(x) = -max(-x); ties share the gradient equally, as in max."""
    axes = axis if isinstance(axis, tuple) else (axis,)
    if x.ndim or not all(a in (0, -1) for a in axes if a is not None):
        _axes(x, axis, "min")  # (numpy's min, like max, reduces a 0-d array over axis 0 or -1)
    return -ops.max(-x, axis=axis, keepdims=keepdims)


def var(x: Tensor, axis: Axis = None, keepdims: bool = False, ddof: int = 0,
        who: str = "var") -> Tensor:
    """Mean squared deviation from the mean, divided by n - ddof (numpy's convention)."""
    total, n = _reduced(x, axis, True, who)
    if n - ddof <= 0:
        raise ValueError(f"{who}: ddof={ddof} but only {n} elements are reduced")
    deviation = x - total * (1.0 / n)
    return ops.sum(deviation * deviation, axis=axis, keepdims=keepdims) * (1.0 / (n - ddof))


def std(x: Tensor, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """The square root of `var`, with gradient 0 where every value reduced is equal.

    There σ = 0 and the chain rule gives sqrt'(0) · var' = inf · 0 = NaN; PyTorch's
    std_backward takes 0 instead (σ is at its minimum there), and so does this: where
    var = 0 the square root is taken of 1 (a constant, so no gradient reaches var) and the
    result replaced by 0 — the "double where", with the mask made by the `equal`
    primitive on var's own values, so that `jit` replays it.
    """
    v = var(x, axis=axis, keepdims=keepdims, ddof=ddof, who="std")
    zero = (v.detach() == 0).data
    return ops.where(0.0, ops.sqrt(ops.where(1.0, v, condition=zero)), condition=zero)


def log_softmax(x: Tensor, axis: int = -1, who: str = "log_softmax") -> Tensor:
    """log softmax(x) = x - logsumexp(x): never takes the log of 0.

    x is first shifted by its (constant) max, which changes nothing mathematically
    but keeps full precision when |x| is large (1e4 in float32). A row whose max is
    not finite (all -inf, or holding +inf or nan) has no softmax (0/0 or inf/inf): it
    is shifted by NaN, so the whole row and its gradient are NaN, silently, as
    torch.log_softmax gives (rather than numpy's "invalid value" for -inf - -inf).
    """
    _axes(x, axis, who)
    top = x.detach().max(axis=axis, keepdims=True)  # primitives: a `jit` replay recomputes it
    shifted = x - ops._finite_or(top, np.nan)
    return shifted - ops.logsumexp(shifted, axis=axis, keepdims=True)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """e^x / Σ e^x along `axis`, computed as exp(log_softmax) so it cannot overflow."""
    return ops.exp(log_softmax(x, axis=axis, who="softmax"))


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """x where `condition` holds, else y; the condition itself is not differentiable."""
    if not isinstance(x, Tensor) and not isinstance(y, Tensor):
        x = Tensor(x)
    if isinstance(condition, Tensor) and condition.dtype != bool:  # through a primitive,
        condition = ops.cast(condition.detach(), dtype=np.dtype(bool))  # so `jit` replays it
    return ops.where(x, y, condition=to_array(condition, dtype=bool))


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along a new axis."""
    return ops.concatenate([unsqueeze(t, axis) for t in tensors], axis=axis)


def unsqueeze(x: Tensor, axis: int) -> Tensor:
    """Insert an axis of length 1 at `axis`."""
    if not -x.ndim - 1 <= axis <= x.ndim:
        raise ValueError(f"unsqueeze: axis {axis} is out of range for a tensor of shape {x.shape}")
    axis = axis % (x.ndim + 1)
    return ops.reshape(x, shape=x.shape[:axis] + (1,) + x.shape[axis:])


def squeeze(x: Tensor, axis: Axis = None) -> Tensor:
    """Remove axes of length 1 (all of them, or those in `axis`)."""
    try:
        shape = np.squeeze(np.empty(x.shape, dtype=bool), axis=axis).shape
    except ValueError:
        raise ValueError(f"squeeze: axis {axis} of a tensor of shape {x.shape} does not have "
                         f"length 1") from None
    return ops.reshape(x, shape=shape)


def flatten(x: Tensor, start_axis: int = 0) -> Tensor:
    """Merge the axes from `start_axis` on into one (start_axis=1 keeps the batch axis)."""
    if x.ndim and not -x.ndim <= start_axis < x.ndim:
        raise ValueError(f"flatten: start_axis {start_axis} is out of range for a tensor of "
                         f"shape {x.shape}")
    start = start_axis % x.ndim if x.ndim else 0
    return ops.reshape(x, shape=x.shape[:start] + (-1,))
