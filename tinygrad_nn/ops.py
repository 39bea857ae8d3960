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

from . import anomaly
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
            else:
                parents.append(None)
                arrays.append(_constant_array(x, like))
        try:
            if _GradMode.anomaly:
                data = anomaly.forward(self, arrays, params)
            else:
                data = self.forward(*arrays, **params)
        except (ValueError, IndexError, TypeError) as err:
            raise _explain(self.name, arrays, params, err) from None
        if type(data) is not np.ndarray:  # numpy gives scalars for 0-d results
            data = np.asarray(data)
        if needs_grad and _GradMode.enabled:
            out = Tensor._make(data, self, tuple(parents), params, tuple(arrays))
            if _GradMode.anomaly:
                out._origin = anomaly.user_frame()
            return out
        return Tensor._make(data)


def _constant_array(x: Any, like: Tensor) -> Any:
    """A Python number takes the tensor's float dtype, so float32 stays float32."""
    if isinstance(x, (int, float)):
        return like.dtype.type(x) if like.dtype.kind == "f" else x
    return to_array(x)


def constant(x: Any, like: Tensor) -> Tensor:
    """A constant input (as recorded by a primitive) as a tensor off the graph."""
    return Tensor._make(np.asarray(_constant_array(x, like)))


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
    dtypes = [str(getattr(a, "dtype", type(a).__name__)) for a in arrays]
    if len(arrays) == 1:
        described = f"tensor of shape {shapes[0]} ({dtypes[0]})"
    else:
        described = f"shapes {', '.join(map(str, shapes))} (dtypes {', '.join(dtypes)})"
    shown = "".join(f", {k}={v!r}" for k, v in params.items() if k != "offsets")
    return type(err)(f"{name}: {described}{shown}: {err}")


# --- helpers the VJPs share ------------------------------------------------------------


def sum_to(g: Any, shape: tuple[int, ...]) -> Any:
    """Unbroadcast: sum g over the axes broadcasting stretched, so it has `shape`."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if g.shape[lead:] != shape:  # a VJP returned a gradient that does not broadcast back
        raise RuntimeError(f"internal error: a gradient of shape {g.shape} cannot be summed "
                           f"back to its input's shape {shape}")
    return g.reshape(shape) if g.shape != shape else g


def _kept_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    """The shape a reduction over `axis` has with keepdims=True."""
    if axis is None or not shape:  # numpy lets a 0-d array be reduced over axis 0 or -1
        return (1,) * len(shape)
    axes = {a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,))}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _stable_sigmoid(z: np.ndarray) -> np.ndarray:
    """eq. 1.6, σ(z) = 1/(1 + e^{-z}), with no overflow for large |z|.

    e^{-z} overflows for z below -log(max float); clamping z at -709 (float64) or
    -88 (float32) changes σ by less than 1e-307 (float64) or 1e-38 (float32), and
    the formula keeps full relative precision everywhere else.
    """
    t = np.empty(z.shape, dtype=z.dtype if z.dtype.kind == "f" else np.float64)
    np.maximum(z, _SIGMOID_FLOOR.get(t.dtype, -709.0), out=t)
    np.negative(t, out=t)  # in place: this runs on every layer of every step
    np.exp(t, out=t)
    t += 1.0
    return np.reciprocal(t, out=t)


_SIGMOID_FLOOR = {np.dtype(t): -np.floor(np.log(np.finfo(t).max)) for t in (np.float32, np.float64)}


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


def _value(x: Any) -> np.ndarray:
    """The plain array behind x: for masks and signs, whose derivative is zero."""
    return x.data if isinstance(x, Tensor) else x


def _max_vjp(g: Any, out: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    # Ties share the gradient equally (as torch.amax does).
    kept = _kept_shape(x.shape, axis)
    winners = _value(x) == _value(out).reshape(kept)
    share = winners / winners.sum(axis=axis, keepdims=True)
    return g.reshape(kept) * share.astype(g.dtype, copy=False)


def _tie_share(g: Any, x: Any, y: Any, wins: np.ufunc) -> Any:
    """maximum/minimum: g where x wins, g/2 on a tie, 0 where it loses."""
    x, y = _value(x), _value(y)
    return g * (wins(x, y) + 0.5 * (x == y)).astype(g.dtype, copy=False)


def _logsumexp(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    """log Σ e^x, shifted by the max so no exponential overflows."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # an all -inf row stays -inf, not nan
    with np.errstate(divide="ignore"):  # log 0 = -inf is the right answer there
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax(x: Any, axis: Any) -> Any:
    """e^x / Σ e^x, shifted by the (constant) max so it keeps full precision."""
    e = exp(x - _value(x).max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _concatenate_vjps(n: int) -> tuple[Callable, ...]:
    def piece(i: int) -> Callable:
        def vjp(g: Any, out: Any, *xs: Any, axis: int, offsets: tuple[int, ...]) -> Any:
            index = [slice(None)] * g.ndim
            index[axis] = slice(offsets[i], offsets[i + 1])
            return g[tuple(index)]
        return vjp
    return tuple(piece(i) for i in range(n))


def _scatter_add(g: np.ndarray, index: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Zeros of `shape` with g added at `index`; repeated indices accumulate."""
    out = np.zeros(shape, dtype=g.dtype)
    np.add.at(out, index, g)
    return out


# --- the table ------------------------------------------------------------------------
# name, forward, then one VJP per input: (g, out, *inputs, **params) -> dC/d(input).

add = Primitive("add", np.add,
                lambda g, out, x, y: g,
                lambda g, out, x, y: g,
                doc="x + y (broadcasting); d/dx = d/dy = 1.")
sub = Primitive("sub", np.subtract,
                lambda g, out, x, y: g,
                lambda g, out, x, y: -g,
                doc="x - y (broadcasting); d/dx = 1, d/dy = -1.")
mul = Primitive("mul", np.multiply,
                lambda g, out, x, y: g * y,
                lambda g, out, x, y: g * x,
                doc="x * y elementwise (broadcasting); d/dx = y, d/dy = x.")
div = Primitive("div", np.divide,
                lambda g, out, x, y: g / y,
                lambda g, out, x, y: -g * out / y,
                doc="x / y (broadcasting); d/dx = 1/y, d/dy = -x/y².")
pow = Primitive("pow", np.power,
                lambda g, out, x, y: g * y * x ** (y - 1),
                lambda g, out, x, y: g * out * log(x),
                doc="x ** y; d/dx = y x^(y-1), d/dy = x^y ln x (needs x > 0).")
neg = Primitive("neg", np.negative,
                lambda g, out, x: -g,
                doc="-x.")
exp = Primitive("exp", np.exp,
                lambda g, out, x: g * out,
                doc="e^x; its derivative is e^x itself.")
log = Primitive("log", np.log,
                lambda g, out, x: g / x,
                doc="The natural log (numpy's: -inf at 0, nan below); d/dx = 1/x.")
sigmoid = Primitive("sigmoid", _stable_sigmoid,
                    # σ'(z) = σ(z)(1 - σ(z)) = σ(z)σ(-z): the second form keeps full
                    # precision where σ(z) is near 1 and 1 - σ(z) would cancel.
                    lambda g, out, x: g * out * sigmoid(-x),
                    doc="eq. 1.6: σ(z) = 1/(1 + e^{-z}); its VJP is BP1's and BP2's ⊙ σ'(z).")
tanh = Primitive("tanh", np.tanh,
                 lambda g, out, x: g * (1 - out * out),
                 doc="tanh x; d/dx = 1 - tanh² x.")
relu = Primitive("relu", lambda x: np.maximum(x, 0),
                 lambda g, out, x: g * (_value(out) > 0),  # relu'(0) = 0, as PyTorch
                 doc="max(z, 0); its derivative at 0 is taken as 0.")
matmul = Primitive("matmul", np.matmul, _matmul_vjp_x, _matmul_vjp_y,
                   doc="numpy's @: 1-D, 2-D and batched operands.")
linear = Primitive("linear", lambda x, w, b: x @ w.T + b,
                   lambda g, out, x, w, b: g @ w,  # BP2's (w^{l+1})ᵀ δ^{l+1}, rows as examples
                   _linear_vjp_w,                  # BP4
                   lambda g, out, x, w, b: g.sum(axis=0) if g.ndim == 2 and b.ndim == 1 else g,
                   doc="z = x wᵀ + b, the weighted input of a layer (z^l = w^l a^{l-1} + b^l) "
                       "for rows of examples x, with w of shape (n_out, n_in).")
quadratic_cost = Primitive(
    "quadratic_cost", lambda a, y, n: np.vdot(a - y, a - y) * (0.5 / n),
    lambda g, out, a, y, n: g * (a - y) * (1.0 / n),  # BP1's ∇_a C, averaged over n
    lambda g, out, a, y, n: g * (y - a) * (1.0 / n),
    doc="eq. 2.1 as one primitive: C = 1/(2n) Σ_x ||y(x) - a(x)||² over all entries of a.")
cast = Primitive("cast", lambda x, dtype: x.astype(dtype),
                 lambda g, out, x, dtype: cast(g, dtype=x.dtype),
                 doc="x in another dtype; the gradient comes back in x's dtype.")
sum = Primitive("sum", lambda x, axis, keepdims: np.sum(x, axis=axis, keepdims=keepdims),
                lambda g, out, x, axis, keepdims:
                    broadcast_to(g.reshape(_kept_shape(x.shape, axis)), shape=x.shape),
                doc="Σ x over `axis` (None: all); each entry gets the gradient of its sum.")
max = Primitive("max", lambda x, axis, keepdims: np.max(x, axis=axis, keepdims=keepdims),
                _max_vjp,
                doc="max over `axis`; ties share the gradient equally (as torch.amax).")
broadcast_to = Primitive("broadcast_to", _broadcast_to,
                         lambda g, out, x, shape: g,  # sum_to in the walk undoes it
                         doc="x repeated to `shape` by numpy's broadcasting rules.")
reshape = Primitive("reshape", lambda x, shape: np.reshape(x, shape),
                    lambda g, out, x, shape: g.reshape(x.shape),
                    doc="The same values in a new `shape`.")
transpose = Primitive("transpose", lambda x, axes: np.transpose(x, axes),
                      lambda g, out, x, axes: g.transpose(
                          None if axes is None else tuple(np.argsort([a % x.ndim for a in axes]))),
                      doc="numpy's transpose: `axes` permutes the axes (None reverses them).")
getitem = Primitive("getitem", lambda x, index: x[index],
                    lambda g, out, x, index: scatter_add(g, index=index, shape=x.shape),
                    doc="x[index]: slices, integer arrays, boolean masks; repeated indices "
                        "accumulate their gradients.")
scatter_add = Primitive("scatter_add", _scatter_add,
                        lambda g, out, x, index, shape: g[index],
                        doc="Zeros of `shape` with x added at `index` (getitem's VJP).")


sqrt = Primitive("sqrt", np.sqrt,
                 lambda g, out, x: g / (2 * out),
                 doc="√x; d/dx = 1/(2√x).")
abs = Primitive("abs", np.abs,
                lambda g, out, x: g * np.sign(_value(x)),  # abs'(0) = 0, as PyTorch
                doc="|x|; its derivative at 0 is taken as 0.")
clip = Primitive("clip", lambda x, lo, hi: np.clip(x, lo, hi),
                 lambda g, out, x, lo, hi: g * (_value(out) == _value(x)),
                 doc="x limited to [lo, hi]; the gradient passes where lo <= x <= hi "
                     "(bounds included, as torch.clamp).")
maximum = Primitive("maximum", np.maximum,
                    lambda g, out, x, y: _tie_share(g, x, y, np.greater),
                    lambda g, out, x, y: _tie_share(g, y, x, np.greater),
                    doc="Elementwise max of two tensors; a tie gives each half the gradient.")
minimum = Primitive("minimum", np.minimum,
                    lambda g, out, x, y: _tie_share(g, x, y, np.less),
                    lambda g, out, x, y: _tie_share(g, y, x, np.less),
                    doc="Elementwise min of two tensors; a tie gives each half the gradient.")
where = Primitive("where", lambda x, y, condition: np.where(condition, x, y),
                  lambda g, out, x, y, condition: g * condition,
                  lambda g, out, x, y, condition: g * ~condition,
                  doc="x where the boolean array `condition` holds, else y (numpy's where).")
leaky_relu = Primitive("leaky_relu", lambda x, slope: np.where(x > 0, x, x * slope),
                       lambda g, out, x, slope:
                           g * np.where(_value(x) > 0, 1, slope).astype(g.dtype, copy=False),
                       doc="x for x > 0, slope·x otherwise; the derivative at 0 is `slope`.")
softplus = Primitive("softplus", lambda x: np.logaddexp(0, x),
                     lambda g, out, x: g * sigmoid(x),
                     doc="log(1 + e^x), computed without overflow; its derivative is σ(x).")
logsumexp = Primitive("logsumexp", _logsumexp,
                      lambda g, out, x, axis, keepdims:
                          g.reshape(_kept_shape(x.shape, axis)) * _softmax(x, axis),
                      doc="log Σ e^x over `axis`, stable for large |x|; its VJP is g·softmax.")
_concatenate_ops: dict[int, Primitive] = {}


def concatenate(tensors: Any, axis: int = 0) -> Any:
    """Join tensors along an existing axis; each gets its slice of the gradient back."""
    tensors = tuple(tensors)
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    op = _concatenate_ops.get(len(tensors))
    if op is None:  # one primitive per number of inputs, each input with its own VJP
        op = _concatenate_ops[len(tensors)] = Primitive(
            "concatenate", lambda *xs, axis, offsets: np.concatenate(xs, axis=axis),
            *_concatenate_vjps(len(tensors)))
    try:  # where each input's slice starts, worked out once rather than in every VJP
        sizes = [np.shape(_value(t))[axis] for t in tensors]
        offsets = tuple(int(o) for o in np.cumsum([0, *sizes]))
    except IndexError:
        offsets = ()  # the forward will refuse these shapes with a clear message
    return op(*tensors, axis=axis, offsets=offsets)
