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

import inspect
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from . import anomaly
from .tensor import Tensor, _GradMode, to_array


class Primitive:
    """An operation of the table: a forward on arrays and one VJP per input.

    A primitive with no VJPs (a comparison, a random draw) is not differentiable: its
    output never requires grad, but it is still recorded by `jit`. A forward that takes
    `out=` can write into a given array; the optimizers use that for in-place updates and
    `jit` to replay a step into buffers. `work`, if given, makes the scratch array such a
    forward needs, so a replay allocates nothing.
    """

    def __init__(self, name: str, forward: Callable, *vjps: Callable, doc: str = "",
                 work: Callable | None = None) -> None:
        self.name, self.forward, self.vjps, self.__doc__ = name, forward, vjps, doc
        self.work = work
        self.takes_out = isinstance(forward, np.ufunc) or "out" in inspect.signature(
            forward).parameters

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __call__(self, *inputs: Any, out: np.ndarray | None = None, **params: Any) -> Any:
        like = None
        for x in inputs:
            if isinstance(x, Tensor):
                like = x
                break
        tape = _GradMode.tape
        if like is None:  # plain arrays in, plain array out: the first-order backward
            if out is None:
                data = self.forward(*inputs, **params)
            elif self.takes_out:
                data = self.forward(*inputs, out=out, **params)
            else:
                raise TypeError(f"{self.name}: this primitive cannot write into out=")
            if tape is not None:
                data = tape.record(self, inputs, inputs, params, data, out is not None)
            return data
        if out is not None:
            raise TypeError(f"{self.name}: out= is for plain arrays; a Tensor result is new")
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
        if tape is not None:
            tape.record(self, inputs, arrays, params, data, False)
        if needs_grad and _GradMode.enabled and self.vjps:
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


def _stable_sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """eq. 1.6, σ(z) = 1/(1 + e^{-z}), with no overflow for large |z|.

    e^{-z} overflows for z below -log(max float); clamping z at -709 (float64) or
    -88 (float32) changes σ by less than 1e-307 (float64) or 1e-38 (float32), and
    the formula keeps full relative precision everywhere else.
    """
    t = np.empty(z.shape, dtype=z.dtype if z.dtype.kind == "f" else np.float64) if out is None \
        else out
    np.maximum(z, _SIGMOID_FLOOR.get(t.dtype, -709.0), out=t)
    np.negative(t, out=t)  # in place: this runs on every layer of every step
    np.exp(t, out=t)
    np.add(t, _ONE.get(t.dtype, 1.0), out=t)
    return np.reciprocal(t, out=t)


# 0-d arrays rather than Python numbers, so numpy converts nothing on each call.
_SIGMOID_FLOOR = {np.dtype(t): np.array(-np.floor(np.log(np.finfo(t).max)), dtype=t)
                  for t in (np.float32, np.float64)}
_ONE = {np.dtype(t): np.ones((), dtype=t) for t in (np.float32, np.float64)}


def _linear(x: np.ndarray, w: np.ndarray, b: np.ndarray, out: np.ndarray | None = None,
            work: np.ndarray | None = None) -> np.ndarray:
    """z = x wᵀ + b (eq. 1.7 for rows of examples).

    Into `out`, b is first copied into `work`, an array of out's shape: numpy buffers a
    broadcasting add, which would allocate on every call; the sums are the same.
    """
    if out is None:
        return x @ w.T + b
    np.matmul(x, w.T, out=out)
    np.copyto(work, b)
    return np.add(out, work, out=out)


def _linear_buffer(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    shape = np.broadcast_shapes(np.shape(x)[:-1] + (np.shape(w)[0],), np.shape(b))
    return np.empty(shape, np.result_type(x, w, b))


def _quadratic_cost(a: np.ndarray, y: np.ndarray, n: int, out: np.ndarray | None = None,
                    work: np.ndarray | None = None) -> Any:
    """eq. 2.1: 1/(2n) Σ ||y - a||², with a - y written into `work` when given."""
    d = np.subtract(a, y, out=work)
    return np.multiply(np.vdot(d, d), 0.5 / n, out=out)


def _difference_buffer(a: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    return np.empty(np.broadcast_shapes(np.shape(a), np.shape(y)), np.result_type(a, y))


def _cast(x: np.ndarray, dtype: Any, out: np.ndarray | None = None) -> np.ndarray:
    if out is None:
        return x.astype(dtype)
    np.copyto(out, x, casting="unsafe")
    return out


def _copy(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    if out is None:
        return np.array(x)
    np.copyto(out, x)
    return out


def _where(x: Any, y: Any, condition: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    if out is None:
        return np.where(condition, x, y)
    np.copyto(out, y)
    np.copyto(out, x, where=condition)
    return out


def _broadcast_to(x: np.ndarray, shape: tuple[int, ...],
                  out: np.ndarray | None = None) -> np.ndarray:
    """numpy's broadcast_to, but a writeable array rather than a read-only view."""
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    np.copyto(out, x)
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
    """The plain array behind x."""
    return x.data if isinstance(x, Tensor) else x


def _detached(x: Any) -> Any:
    """x off the graph, for masks and signs, whose derivative is zero.

    A Tensor stays a Tensor (sharing x's array), so the comparisons made from it are
    primitives too and a recorded step replays them with each step's values.
    """
    return x.detach() if isinstance(x, Tensor) else x


def _max_vjp(g: Any, out: Any, x: Any, axis: Any, keepdims: bool) -> Any:
    # Ties share the gradient equally (as torch.amax does).
    kept = _kept_shape(x.shape, axis)
    winners = _detached(x) == _detached(out).reshape(kept)
    share = winners / winners.sum(axis=axis, keepdims=True)
    return g.reshape(kept) * cast(share, dtype=g.dtype)


def _tie_share(g: Any, x: Any, y: Any, wins: Callable) -> Any:
    """maximum/minimum: g where x wins, g/2 on a tie, 0 where it loses."""
    x, y = _detached(x), _detached(y)
    return g * cast(wins(x, y) + 0.5 * (x == y), dtype=g.dtype)


def _logsumexp(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    """log Σ e^x, shifted by the max so no exponential overflows."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # an all -inf row stays -inf, not nan
    with np.errstate(divide="ignore"):  # log 0 = -inf is the right answer there
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax(x: Any, axis: Any) -> Any:
    """e^x / Σ e^x, shifted by the (constant) max so it keeps full precision."""
    e = exp(x - _detached(x).max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _concatenate_vjps(n: int) -> tuple[Callable, ...]:
    def piece(i: int) -> Callable:
        def vjp(g: Any, out: Any, *xs: Any, axis: int, offsets: tuple[int, ...]) -> Any:
            index = [slice(None)] * g.ndim
            index[axis] = slice(offsets[i], offsets[i + 1])
            return g[tuple(index)]
        return vjp
    return tuple(piece(i) for i in range(n))


def _scatter_add(g: np.ndarray, index: Any, shape: tuple[int, ...],
                 out: np.ndarray | None = None) -> np.ndarray:
    """Zeros of `shape` with g added at `index`; repeated indices accumulate."""
    if out is None:
        out = np.zeros(shape, dtype=g.dtype)
    else:
        out.fill(0)
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
relu = Primitive("relu", lambda x, out=None: np.maximum(x, 0, out=out),
                 lambda g, out, x: g * (_detached(out) > 0),  # relu'(0) = 0, as PyTorch
                 doc="max(z, 0); its derivative at 0 is taken as 0.")
matmul = Primitive("matmul", np.matmul, _matmul_vjp_x, _matmul_vjp_y,
                   doc="numpy's @: 1-D, 2-D and batched operands.")
linear = Primitive("linear", _linear,
                   lambda g, out, x, w, b: g @ w,  # BP2's (w^{l+1})ᵀ δ^{l+1}, rows as examples
                   _linear_vjp_w,                  # BP4
                   lambda g, out, x, w, b: g.sum(axis=0) if g.ndim == 2 and b.ndim == 1 else g,
                   doc="z = x wᵀ + b, the weighted input of a layer (z^l = w^l a^{l-1} + b^l) "
                       "for rows of examples x, with w of shape (n_out, n_in).",
                   work=_linear_buffer)
quadratic_cost = Primitive(
    "quadratic_cost", _quadratic_cost,
    lambda g, out, a, y, n: g * (a - y) * (1.0 / n),  # BP1's ∇_a C, averaged over n
    lambda g, out, a, y, n: g * (y - a) * (1.0 / n),
    doc="eq. 2.1 as one primitive: C = 1/(2n) Σ_x ||y(x) - a(x)||² over all entries of a.",
    work=_difference_buffer)
cast = Primitive("cast", _cast,
                 lambda g, out, x, dtype: cast(g, dtype=x.dtype),
                 doc="x in another dtype; the gradient comes back in x's dtype.")
# np.add.reduce is what np.sum calls, without its Python wrapper: a few µs per step.
sum = Primitive("sum", lambda x, axis, keepdims, out=None:
                    np.add.reduce(x, axis=axis, keepdims=keepdims, out=out),
                lambda g, out, x, axis, keepdims:
                    broadcast_to(g.reshape(_kept_shape(x.shape, axis)), shape=x.shape),
                doc="Σ x over `axis` (None: all); each entry gets the gradient of its sum.")
max = Primitive("max", lambda x, axis, keepdims, out=None:
                    np.maximum.reduce(x, axis=axis, keepdims=keepdims, out=out),
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
                lambda g, out, x: g * sign(_detached(x)),  # abs'(0) = 0, as PyTorch
                doc="|x|; its derivative at 0 is taken as 0.")
clip = Primitive("clip", lambda x, lo, hi, out=None: np.clip(x, lo, hi, out=out),
                 lambda g, out, x, lo, hi: g * (_detached(out) == _detached(x)),
                 doc="x limited to [lo, hi]; the gradient passes where lo <= x <= hi "
                     "(bounds included, as torch.clamp).")
maximum = Primitive("maximum", np.maximum,
                    lambda g, out, x, y: _tie_share(g, x, y, operator.gt),
                    lambda g, out, x, y: _tie_share(g, y, x, operator.gt),
                    doc="Elementwise max of two tensors; a tie gives each half the gradient.")
minimum = Primitive("minimum", np.minimum,
                    lambda g, out, x, y: _tie_share(g, x, y, operator.lt),
                    lambda g, out, x, y: _tie_share(g, y, x, operator.lt),
                    doc="Elementwise min of two tensors; a tie gives each half the gradient.")
where = Primitive("where", _where,
                  lambda g, out, x, y, condition: g * condition,
                  lambda g, out, x, y, condition: g * ~condition,
                  doc="x where the boolean array `condition` holds, else y (numpy's where).")
leaky_relu = Primitive("leaky_relu", lambda x, slope: np.where(x > 0, x, x * slope),
                       lambda g, out, x, slope:  # where x > 0, 1; elsewhere, slope
                           # (where's condition is a parameter, so the mask's array)
                           g * cast(where(1.0, slope, condition=_value(_detached(x) > 0)),
                                    dtype=g.dtype),
                       doc="x for x > 0, slope·x otherwise; the derivative at 0 is `slope`.")
softplus = Primitive("softplus", lambda x, out=None: np.logaddexp(0, x, out=out),
                     lambda g, out, x: g * sigmoid(x),
                     doc="log(1 + e^x), computed without overflow; its derivative is σ(x).")
logsumexp = Primitive("logsumexp", _logsumexp,
                      lambda g, out, x, axis, keepdims:
                          g.reshape(_kept_shape(x.shape, axis)) * _softmax(x, axis),
                      doc="log Σ e^x over `axis`, stable for large |x|; its VJP is g·softmax.")
copy = Primitive("copy", _copy,
                 lambda g, out, x: g,
                 doc="A copy of x in an array of its own (the graph walk's `.grad` arrays).")

# Not differentiable: their outputs never require grad. They are primitives all the
# same, so that masks, signs and random draws made during a step are recorded by `jit`.
greater = Primitive("greater", np.greater, doc="x > y (boolean; not differentiable).")
greater_equal = Primitive("greater_equal", np.greater_equal,
                          doc="x >= y (boolean; not differentiable).")
less = Primitive("less", np.less, doc="x < y (boolean; not differentiable).")
less_equal = Primitive("less_equal", np.less_equal, doc="x <= y (boolean; not differentiable).")
equal = Primitive("equal", np.equal, doc="x == y (boolean; not differentiable).")
not_equal = Primitive("not_equal", np.not_equal, doc="x != y (boolean; not differentiable).")
isfinite = Primitive("isfinite", np.isfinite,
                     doc="True where x is neither inf nor nan (not differentiable).")
sign = Primitive("sign", np.sign, doc="-1, 0 or 1 by the sign of x (not differentiable).")
uniform = Primitive("uniform", lambda shape, rng, out=None: rng.random(shape, out=out),
                    doc="Numbers drawn uniformly from [0, 1) by the generator `rng` (float64).")

_concatenate_ops: dict[int, Primitive] = {}


def concatenate(tensors: Any, axis: int = 0) -> Any:
    """Join tensors along an existing axis; each gets its slice of the gradient back."""
    tensors = tuple(tensors)
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    op = _concatenate_ops.get(len(tensors))
    if op is None:  # one primitive per number of inputs, each input with its own VJP
        op = _concatenate_ops[len(tensors)] = Primitive(
            "concatenate", lambda *xs, axis, offsets, out=None:
                np.concatenate(xs, axis=axis, out=out),
            *_concatenate_vjps(len(tensors)))
    try:  # where each input's slice starts, worked out once rather than in every VJP
        sizes = [np.shape(_value(t))[axis] for t in tensors]
        offsets = tuple(int(o) for o in np.cumsum([0, *sizes]))
    except IndexError:
        offsets = ()  # the forward will refuse these shapes with a clear message
    return op(*tensors, axis=axis, offsets=offsets)
