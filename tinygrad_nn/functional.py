"""Derived operations: made of primitives, so they need no VJP of their own.

Their gradients come from the chain rule over the primitives they are written
with; gradcheck tests them like any primitive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _checks, ops
from .tensor import Tensor, TensorLike, to_array

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


def where(condition: TensorLike, x: TensorLike, y: TensorLike) -> Tensor:
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


# --- images (n, c, h, w), PyTorch's conventions -------------------------------------------

Pair = int | tuple[int, int]


def _image_shape(x: Any, who: str, what: str = "input") -> tuple[int, ...]:
    shape = np.shape(x.data if isinstance(x, Tensor) else x)
    if len(shape) != 4:
        raise ValueError(f"{who}: {what} must be 4-D (n, c, h, w), not of shape {shape}")
    return shape


def _window_fits(shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, int],
                 padding: tuple[int, int], who: str) -> None:
    for k, size, pad in zip(kernel, shape[2:], padding):
        if size + 2 * pad < k:
            raise ValueError(f"{who}: kernel {kernel} is larger than the padded input "
                             f"{tuple(n + 2 * p for n, p in zip(shape[2:], padding))} (input "
                             f"{shape}, padding {padding})")


def pad(x: TensorLike, padding: int | Sequence[tuple[int, int]], value: float = 0.0) -> Tensor:
    """x framed by constant `value`s: numpy's per-axis ((before, after), ...) widths, one pair
    per axis, or an int p for (p, p) on the last two axes (an image's height and width)."""
    ndim = len(np.shape(x.data if isinstance(x, Tensor) else x))
    widths: tuple[tuple[int, ...], ...]
    if isinstance(padding, (int, np.integer)):
        if ndim < 2:
            raise ValueError(f"pad: an int padding pads the last two axes; the input has {ndim}")
        widths = ((0, 0),) * (ndim - 2) + ((int(padding), int(padding)),) * 2
    else:
        widths = tuple(tuple(int(v) for v in pair) for pair in padding)
        if len(widths) != ndim or any(len(p) != 2 for p in widths):
            raise ValueError(f"pad: padding needs one (before, after) pair per axis of the "
                             f"{ndim}-D input, not {padding!r}")
    if any(v < 0 for pair in widths for v in pair):
        raise ValueError(f"pad: widths must be >= 0, not {padding!r}")
    return ops.pad(x, widths=widths, value=value)


def conv2d(x: TensorLike, w: TensorLike, b: TensorLike | None = None, stride: Pair = 1,
           padding: Pair = 0) -> Tensor:
    """torch.nn.functional.conv2d (no dilation or groups): x (n, c_in, h, w), w (c_out, c_in,
    kh, kw), b (c_out,) or None; output (n, c_out, (h + 2p - kh)//s + 1, ...). Its memory is
    channels-last (see tinygrad_nn.ops): same values, faster next layers."""
    stride = _checks.pair("conv2d", "stride", stride)
    padding = _checks.pair("conv2d", "padding", padding, 0)
    xs, ws = _image_shape(x, "conv2d"), _image_shape(w, "conv2d", "weight")
    if xs[1] != ws[1]:
        raise ValueError(f"conv2d: input {xs} has {xs[1]} channels but weight {ws} expects "
                         f"{ws[1]} (weight is (c_out, c_in, kh, kw))")
    _window_fits(xs, ws[2:], stride, padding, "conv2d")
    if b is None:
        return ops.conv2d(x, w, stride=stride, padding=padding)
    if np.shape(b.data if isinstance(b, Tensor) else b) != (ws[0],):
        raise ValueError(f"conv2d: bias must have shape ({ws[0]},), not "
                         f"{np.shape(b.data if isinstance(b, Tensor) else b)}")
    return ops.conv2d(x, w, b, stride=stride, padding=padding)


def _pool_args(x: Any, kernel_size: Pair, stride: Pair | None, padding: Pair,
               who: str) -> dict:
    kernel = _checks.pair(who, "kernel_size", kernel_size)
    stride = kernel if stride is None else _checks.pair(who, "stride", stride)
    padding = _checks.pair(who, "padding", padding, 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{who}: padding {padding} must be at most half the kernel "
                         f"{kernel} (as PyTorch requires)")
    _window_fits(_image_shape(x, who), kernel, stride, padding, who)
    return {"kernel": kernel, "stride": stride, "padding": padding}


def max_pool2d(x: TensorLike, kernel_size: Pair, stride: Pair | None = None,
               padding: Pair = 0) -> Tensor:
    """torch.nn.functional.max_pool2d: the max of each window (stride defaults to
    kernel_size; padding counts as -inf). Ties: the whole gradient goes to the FIRST
    maximum of each window in row-major scan order, PyTorch's rule."""
    return ops.max_pool2d(x, **_pool_args(x, kernel_size, stride, padding, "max_pool2d"))


def avg_pool2d(x: TensorLike, kernel_size: Pair, stride: Pair | None = None,
               padding: Pair = 0) -> Tensor:
    """torch.nn.functional.avg_pool2d with count_include_pad=True: padded zeros count in
    each window's mean."""
    return ops.avg_pool2d(x, **_pool_args(x, kernel_size, stride, padding, "avg_pool2d"))


def _bn_check(x: Any, running: Any, who: str) -> tuple[int, int]:
    shape = np.shape(x.data if isinstance(x, Tensor) else x)
    if len(shape) not in (2, 4):
        raise ValueError(f"{who}: input must be (n, c) or (n, c, h, w), not of shape {shape}")
    for name, r in running.items():
        if r is not None and np.shape(r.data if isinstance(r, Tensor) else r) != (shape[1],):
            raise ValueError(f"{who}: {name} must have shape ({shape[1]},) for input {shape}")
    return shape[1], int(np.prod(shape, dtype=np.int64)) // shape[1]


def batch_norm(x: TensorLike, running_mean: Tensor | np.ndarray | None,
               running_var: Tensor | np.ndarray | None,
               weight: TensorLike | None = None, bias: TensorLike | None = None,
               training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """torch.nn.functional.batch_norm over axis 1 of x (n, c) or (n, c, h, w).

    Training: normalised with the batch's mean and biased variance (one fused primitive,
    its VJP differentiating the statistics too), and running_mean, running_var (arrays
    or Tensors, or None) updated IN PLACE, through primitives with out= so that a `jit`
    replay updates them too: r = (1 - momentum)·r + momentum·s, s the mean and the
    UNBIASED variance. Eval: normalised with the running estimates (plain primitives).
    """
    c, m = _bn_check(x, {"running_mean": running_mean, "running_var": running_var,
                         "weight": weight, "bias": bias}, "batch_norm")
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: eval mode (training=False) needs running_mean and "
                             "running_var")
        shape = (1, c, 1, 1) if np.ndim(x.data if isinstance(x, Tensor) else x) == 4 else (c,)
        scale = 1.0 / ops.sqrt(Tensor._make(to_array(running_var)) + eps)
        if weight is not None:
            scale = scale * weight
        shift = -Tensor._make(to_array(running_mean)) * scale
        if bias is not None:
            shift = shift + bias
        return x * ops.reshape(scale, shape=shape) + ops.reshape(shift, shape=shape)
    if m < 2:
        raise ValueError(f"batch_norm: training needs more than one value per channel, "
                         f"got input of shape {np.shape(x.data if isinstance(x, Tensor) else x)}")
    stats = ops.batch_stats(x.detach() if isinstance(x, Tensor) else x)
    stats = stats.data if isinstance(stats, Tensor) else stats
    for row, running, correction in ((0, running_mean, 1.0), (1, running_var, m / (m - 1))):
        if running is not None:
            array = running.data if isinstance(running, Tensor) else running
            ops.running_average(array, stats, row=row, momentum=momentum,
                                correction=correction, out=array)
    if weight is None and bias is None:
        return ops.batch_norm(x, stats=stats, eps=eps)
    if weight is None or bias is None:  # one of them: the other as its identity
        like = x if isinstance(x, Tensor) else Tensor(x)
        weight = ops.constant(np.ones(c, like.dtype), like) if weight is None else weight
        bias = ops.constant(np.zeros(c, like.dtype), like) if bias is None else bias
    return ops.batch_norm(x, weight, bias, stats=stats, eps=eps)


def gelu(x: TensorLike) -> Tensor:
    """PyTorch's default (exact) GELU, x·Φ(x) with Φ the standard normal CDF (computed with
    W. J. Cody's erfc, to float64 rounding); not the tanh approximation."""
    return ops.gelu(x)


def silu(x: TensorLike) -> Tensor:
    """SiLU (swish): x·σ(x), torch.nn.functional.silu."""
    return ops.silu(x)


def elu(x: TensorLike, alpha: float = 1.0) -> Tensor:
    """torch.nn.functional.elu: x for x > 0, alpha·(e^x - 1) otherwise."""
    return ops.elu(x, alpha=alpha)
