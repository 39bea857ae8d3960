"""The table of primitives: each forward numpy call beside its vector–Jacobian products.

Reverse mode needs, for each primitive `out = f(x, y, ...)`, one VJP per input:
given g = dC/d(out), return dC/dx = g · ∂out/∂x (BP2 is the VJP of
`z = w a + b` followed by the VJP of σ). A VJP is called as
`vjp(g, out, *inputs, **params)`.

Every VJP is written with operators and methods that numpy arrays and Tensors
both understand (`g * y`, `g @ w`, `g.reshape(shape)`), and a primitive called on
plain arrays returns a plain array. So the same table serves the fast
first-order backward (on arrays) and, with `create_graph=True`, a recorded
backward (on Tensors) that can be differentiated again.

Broadcasting: a VJP may return a gradient of the broadcast shape; the graph walk
sums it back to the input's shape with `sum_to`, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .tensor import Tensor, _GradMode, to_array


class Primitive:
    """A differentiable operation: a forward on arrays and one VJP per input."""

    def __init__(self, name: str, forward: Callable, *vjps: Callable, doc: str = "") -> None:
        self.name, self.forward, self.vjps, self.__doc__ = name, forward, vjps, doc

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __call__(self, *inputs: Any, **params: Any) -> Any:
        like = None
        for x in inputs:
            if isinstance(x, Tensor):
                like = x
                break
        if like is None:  # plain arrays in, plain array out: the first-order backward
            return self.forward(*inputs, **params)
        # A plain loop, not comprehensions: this runs for every op of every step.
        parents, arrays, needs_grad = [], [], False
        for x in inputs:
            if isinstance(x, Tensor):
                needs_grad = needs_grad or x.requires_grad
                parents.append(x)
                arrays.append(x.data)
            else:  # a constant; numpy keeps float32 for a Python number
                parents.append(None)
                arrays.append(x if isinstance(x, (int, float)) else to_array(x))
        try:
            data = self.forward(*arrays, **params)
        except (ValueError, IndexError, TypeError) as err:
            raise _explain(self.name, arrays, params, err) from None
        if needs_grad and _GradMode.enabled:
            return Tensor._make(data, self, tuple(parents), params, tuple(arrays))
        return Tensor._make(data)


def constant(x: Any, like: Tensor) -> Tensor:
    """A constant input as a tensor off the graph, in `like`'s float dtype."""
    if isinstance(x, (int, float)) and like.dtype.kind == "f":
        return Tensor._make(np.asarray(x, dtype=like.dtype))
    return Tensor._make(to_array(x))


def _explain(name: str, arrays: list, params: dict, err: Exception) -> Exception:
    """Turn numpy's complaint into one that names the op and the shapes."""
    shapes = [np.shape(a) for a in arrays]
    if name == "matmul":
        (a, b) = shapes
        if 0 in (len(a), len(b)):
            return ValueError(f"matmul: {a} @ {b}: both operands need at least one dimension")
        inner_b = b[0] if len(b) == 1 else b[-2]
        if a[-1] != inner_b:
            return ValueError(f"matmul: {a} @ {b}: inner dimensions {a[-1]} and {inner_b} differ")
        return ValueError(f"matmul: {a} @ {b}: batch dimensions do not broadcast")
    if name == "linear":
        return ValueError(f"linear: input {shapes[0]}, weight {shapes[1]}, bias {shapes[2]}: "
                          f"expected input (..., n_in), weight (n_out, n_in), bias (n_out,)")
    if len(arrays) == 2 and isinstance(err, ValueError) and "broadcast" in str(err):
        return ValueError(f"{name}: shapes {shapes[0]} and {shapes[1]} do not broadcast "
                          f"(numpy's rule: trailing dimensions must be equal or 1)")
    shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return type(err)(f"{name}: tensor of shape {shapes[0]} with {shown}: {err}")


# --- helpers the VJPs share ------------------------------------------------------------


def sum_to(g: Any, shape: tuple[int, ...]) -> Any:
    """Unbroadcast: sum g over the axes broadcasting stretched, so it has `shape`."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape) if g.shape != shape else g


def _kept_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    """The shape a reduction over `axis` has with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    axes = {a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _stable_sigmoid(z: np.ndarray) -> np.ndarray:
    """eq. 1.6, σ(z) = 1/(1 + e^{-z}), with no overflow for large |z|.

    e^{-z} overflows for z below -log(max float) (about -709 in float64, -88 in
    float32); clamping z there changes σ by less than the smallest normal number,
    and the formula keeps full relative precision everywhere else.
    """
    t = np.maximum(z, _SIGMOID_FLOOR.get(z.dtype, -709.0))
    np.negative(t, t)  # in place: this runs on every layer of every step
    np.exp(t, t)
    t += 1.0
    return np.reciprocal(t, t)


_SIGMOID_FLOOR = {np.dtype(t): -float(np.log(np.finfo(t).max)) for t in (np.float32, np.float64)}


def _broadcast_to(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """numpy's broadcast_to, but a writeable array rather than a read-only view."""
    out = np.empty(shape, dtype=x.dtype)
    out[...] = x
    return out


def _unpromote(g: Any, x: Any, y: Any) -> tuple[Any, Any, Any]:
    """matmul with a 1-D operand: view it as a row (x) or column (y) matrix."""
    if y.ndim == 1:
        g, y = g.reshape(g.shape + (1,)), y.reshape((-1, 1))
    if x.ndim == 1:
        g, x = g.reshape(g.shape[:-1] + (1, g.shape[-1])), x.reshape((1, -1))
    return g, x, y


def _matmul_vjp_x(g: Any, out: Any, x: Any, y: Any) -> Any:
    g2, x2, y2 = _unpromote(g, x, y)
    gx = g2 @ y2.swapaxes(-1, -2)
    return gx.reshape(gx.shape[:-2] + gx.shape[-1:]) if x.ndim == 1 else gx


def _matmul_vjp_y(g: Any, out: Any, x: Any, y: Any) -> Any:
    g2, x2, y2 = _unpromote(g, x, y)
    gy = x2.swapaxes(-1, -2) @ g2
    return gy.reshape(gy.shape[:-1]) if y.ndim == 1 else gy


def _linear_vjp_w(g: Any, out: Any, x: Any, w: Any, b: Any) -> Any:
    # Σ over examples of δ (a^{l-1})ᵀ: BP4 summed over the mini-batch.
    return g.reshape((-1, w.shape[0])).T @ x.reshape((-1, w.shape[1]))


def _max_vjp(g: Any, out: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    # Ties share the gradient equally (as numpy's amax and torch.amax).
    kept = _kept_shape(x.shape, axis)
    winners = x == out.reshape(kept)
    return winners * (g.reshape(kept) / winners.sum(axis=axis, keepdims=True))


def _scatter_add(g: np.ndarray, index: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Zeros of `shape` with g added at `index`; repeated indices accumulate."""
    out = np.zeros(shape, dtype=g.dtype)
    np.add.at(out, index, g)
    return out


# --- the table ------------------------------------------------------------------------
# name, forward, then one VJP per input: (g, out, *inputs, **params) -> dC/d(input).

add = Primitive("add", np.add,
                lambda g, out, x, y: g,
                lambda g, out, x, y: g)
sub = Primitive("sub", np.subtract,
                lambda g, out, x, y: g,
                lambda g, out, x, y: -g)
mul = Primitive("mul", np.multiply,
                lambda g, out, x, y: g * y,
                lambda g, out, x, y: g * x)
div = Primitive("div", np.divide,
                lambda g, out, x, y: g / y,
                lambda g, out, x, y: -g * out / y)
pow = Primitive("pow", np.power,
                lambda g, out, x, y: g * y * x ** (y - 1),
                lambda g, out, x, y: g * out * log(x))
neg = Primitive("neg", np.negative,
                lambda g, out, x: -g)
exp = Primitive("exp", np.exp,
                lambda g, out, x: g * out)
log = Primitive("log", np.log,
                lambda g, out, x: g / x)
sigmoid = Primitive("sigmoid", _stable_sigmoid,
                    lambda g, out, x: g * out * (1 - out),  # σ' = σ(1 - σ)
                    doc="eq. 1.6: σ(z) = 1/(1 + e^{-z}); its VJP is BP2's ⊙ σ'(z).")
tanh = Primitive("tanh", np.tanh,
                 lambda g, out, x: g * (1 - out * out))
relu = Primitive("relu", lambda x: np.maximum(x, 0),
                 lambda g, out, x: g * (out > 0),  # relu'(0) = 0, as PyTorch
                 doc="max(z, 0); its derivative at 0 is taken as 0.")
matmul = Primitive("matmul", np.matmul, _matmul_vjp_x, _matmul_vjp_y,
                   doc="numpy's @: 1-D, 2-D and batched operands.")
linear = Primitive("linear", lambda x, w, b: x @ w.T + b,
                   lambda g, out, x, w, b: g @ w,  # BP2's (w^{l+1})ᵀ δ^{l+1}, rows as examples
                   _linear_vjp_w,                  # BP4
                   lambda g, out, x, w, b: g.reshape((-1, w.shape[0])).sum(axis=0),  # BP3
                   doc="z = x wᵀ + b, the weighted input of a layer (z^l = w^l a^{l-1} + b^l) "
                       "for rows of examples x, with w of shape (n_out, n_in).")
sum = Primitive("sum", lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
                lambda g, out, x, axis, keepdims:
                    broadcast_to(g.reshape(_kept_shape(x.shape, axis)), shape=x.shape))
max = Primitive("max", lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
                _max_vjp)
broadcast_to = Primitive("broadcast_to", _broadcast_to,
                         lambda g, out, x, shape: g)  # sum_to in the walk undoes it
reshape = Primitive("reshape", lambda x, shape: np.reshape(x, shape),
                    lambda g, out, x, shape: g.reshape(x.shape))
transpose = Primitive("transpose", lambda x, axes: np.transpose(x, axes),
                      lambda g, out, x, axes:
                          g.transpose(None if axes is None else tuple(np.argsort(axes))))
getitem = Primitive("getitem", lambda x, index: x[index],
                    lambda g, out, x, index: scatter_add(g, index=index, shape=x.shape))
scatter_add = Primitive("scatter_add", _scatter_add,
                        lambda g, out, x, index, shape: g[index])


# --- derived operations: made of primitives, so they need no VJP of their own ---------------


def mean(x: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
    """The sum divided by the number of elements reduced."""
    if x.size == 0:
        raise ValueError(f"mean: the tensor of shape {x.shape} is empty; a mean of no elements "
                         f"is undefined")
    total = sum(x, axis=axis, keepdims=keepdims)
    return total * (total.size / x.size)
