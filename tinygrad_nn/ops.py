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
        if tape is not None:  # `jit` is capturing: it may need to undo this call's writes
            tape.before(self, params, out)
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
        if type(data) is not np.ndarray and not isinstance(data, np.ndarray):  # numpy gives
            # scalars for 0-d results (an ndarray subclass, jit's traced arrays, stays one)
            data = np.asarray(data)
        if tape is not None:
            data = tape.record(self, inputs, arrays, params, data, False)
        if needs_grad and _GradMode.enabled and self.vjps:
            out = Tensor._make(data, self, tuple(parents), params, tuple(arrays))
            if _GradMode.anomaly:
                out._origin = anomaly.user_frame()
        else:
            out = Tensor._make(data)
        if tape is not None:
            tape.made(out)
        return out


def _constant_array(x: Any, like: Tensor) -> Any:
    """A Python number takes the tensor's float dtype, so float32 stays float32.

    A number beyond the dtype's range becomes ±inf, as PyTorch's `float16_tensor + 1e5`
    gives, with no "overflow encountered in cast" warning; the range test is one Python
    comparison, so the common case pays nothing more.
    """
    if isinstance(x, (int, float)):
        if like.dtype.kind != "f":
            return x
        if -_LARGEST.get(like.dtype, np.inf) <= x <= _LARGEST.get(like.dtype, np.inf):
            return like.dtype.type(x)
        with np.errstate(over="ignore"):  # out of range (or nan): numpy's ±inf (or nan)
            return like.dtype.type(x)
    return to_array(x)


# The largest finite value of each float dtype, as a Python float for a cheap comparison.
_LARGEST = {np.dtype(t): float(np.finfo(t).max) for t in (np.float16, np.float32, np.float64)}


def constant(x: Any, like: Tensor) -> Tensor:
    """A constant input (as recorded by a primitive) as a tensor off the graph."""
    x = _constant_array(x, like)
    # (an array stays the very array: `jit` names and replays it by identity)
    return Tensor._make(x if isinstance(x, np.ndarray) else np.asarray(x))


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
    the formula keeps full relative precision everywhere else. float16's clamp would be
    -11, where σ is still 1.7e-5, so float16 is computed in float32 and rounded back
    (a rare dtype: the float32/float64 hot path stays one maximum and three ufuncs).
    """
    t = np.empty(z.shape, dtype=z.dtype if z.dtype.kind == "f" else np.float64) if out is None \
        else out
    floor = _SIGMOID_FLOOR.get(t.dtype)
    if floor is None:  # float16 (e^12 overflows it) and the like: compute in float32 or 64
        wide = np.float32 if t.dtype.itemsize < 4 else np.float64
        np.copyto(t, _stable_sigmoid(z.astype(wide)), casting="unsafe")
        return t
    np.maximum(z, floor, out=t)
    np.negative(t, out=t)  # in place: this runs on every layer of every step
    np.exp(t, out=t)
    np.add(t, _ONE.get(t.dtype, 1.0), out=t)
    return np.reciprocal(t, out=t)


# 0-d arrays rather than Python numbers, so numpy converts nothing on each call.
_SIGMOID_FLOOR = {np.dtype(t): np.array(-np.floor(np.log(np.finfo(t).max)), dtype=t)
                  for t in (np.float32, np.float64, np.longdouble)}
_ONE = {np.dtype(t): np.ones((), dtype=t) for t in (np.float32, np.float64, np.longdouble)}


def _quiet(ufunc: np.ufunc, doc: str) -> Callable:
    """A ufunc that gives IEEE's ±inf and nan silently, as PyTorch does (log 0 = -inf,
    1/0 = inf, 0 ** -1 = inf, √-1 = nan): numpy's warnings are not errors of the user's.

    For the elementwise maths off the hot path (the sigmoid, linear and cost primitives
    that run on every layer of every step take no errstate: ~1 µs each).
    """
    def forward(*args: Any, out: np.ndarray | None = None) -> Any:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return ufunc(*args, out=out)
    forward.__doc__ = doc
    return forward


def _linear(x: np.ndarray, w: np.ndarray, b: np.ndarray, out: np.ndarray | None = None,
            work: np.ndarray | None = None) -> np.ndarray:
    """z = x wᵀ + b (eq. 1.7 for rows of examples).

    Into `out`, b is first copied into `work`, an array of out's shape: numpy buffers a
    broadcasting add, which would allocate on every call; the sums are the same.

    The shapes torch.nn.functional.linear accepts with a bias, and no others: w must be a
    matrix, and b must not enlarge the output (a b of shape (m, n_out) for a 1-D x would
    make m outputs from one input, which BP4's sum over examples cannot undo).
    """
    if out is None:
        z = x @ w.T + b
        if w.ndim != 2 or z.shape[:-1] != x.shape[:-1]:  # two cheap comparisons per layer
            raise ValueError("linear: weight must be (n_out, n_in) and the bias must not "
                             "broadcast the output beyond x's batch shape")
        return z
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
    # A NaN wins nothing (nan != nan), so 0/0 gives every entry NaN, as torch.amax does.
    winners = _detached(x) == _detached(out).reshape(kept)
    share = div(winners, winners.sum(axis=axis, keepdims=True))
    return g.reshape(kept) * cast(share, dtype=g.dtype)


def _pow_vjp_x(g: Any, out: Any, x: Any, y: Any) -> Any:
    """d/dx x^y = y x^(y-1), but 0 where y == 0 (x^0 = 1 everywhere, x = 0 included).

    PyTorch's convention: without it 0 · 0^-1 = 0 · inf = NaN at x = 0, and a relu zero
    feeding `h ** 0` poisons a polynomial feature's whole gradient.
    """
    # Masked before the product: 0 · inf would be NaN (and a numpy warning) otherwise.
    power = where(0.0, pow(x, y - 1), condition=_value(_detached(y) == 0))
    return g * y * power


def _pow_vjp_y(g: Any, out: Any, x: Any, y: Any) -> Any:
    """d/dy x^y = x^y ln x, but 0 where x == 0 and y >= 0 (PyTorch's convention).

    0^y is constant (0, or 1 at y = 0) for y > 0, so its derivative is 0 rather than
    0 · ln 0 = NaN; for y < 0 the honest 0^y ln 0 = inf · -inf = -inf is kept, and a
    negative x gives NaN (ln x), silently, as in PyTorch.
    """
    xd, yd = _detached(x), _detached(y)
    flat = (xd == 0) * (yd >= 0)  # a product of booleans: their "and", as a primitive
    return g * out * where(0.0, log(x), condition=_value(flat))  # masked before 0 · -inf


def _zero_vjp(g: Any, out: Any, x: Any) -> Any:
    """A gradient of zeros (sign, floor: piecewise constant), made with a primitive so
    that even a NaN in g gives 0, as PyTorch's zeros_like(grad)."""
    return where(0.0, g, condition=True)


def _clip_vjp(g: Any, out: Any, x: Any, lo: Any, hi: Any) -> Any:
    """g where lo <= x <= hi (bounds included, as torch.clamp), else 0.

    With lo > hi numpy's clip (and torch.clamp) outputs hi everywhere: a constant, so the
    gradient is 0 everywhere, also where x happens to equal hi.
    """
    passes = _detached(out) == _detached(x)
    if lo is not None and hi is not None:
        passes = passes * less_equal(lo, hi)  # a primitive too: lo, hi may be arrays
    return g * passes


def _log_sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """log σ(z) = -softplus(-z) = -log(1 + e^{-z}): numpy's logaddexp never overflows, so
    it is exact at |z| = 1e4 in every float dtype (-1e4 there, and -e^{-z} for large z)."""
    with np.errstate(invalid="ignore"):  # numpy's logaddexp warns on a NaN input
        t = np.logaddexp(0, np.negative(z), out=out)
    return np.negative(t, out=out)  # (a 0-d result is a numpy scalar: no out= for it)


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


def _finite_or(top: Any, fill: float) -> Any:
    """top where it is finite, else `fill`: the shift of a row whose max is ±inf or nan.

    Made with primitives (isfinite, where) on top's own values, so that `jit` replays it.
    """
    return where(top, fill, condition=_value(isfinite(top)))


def _softmax(x: Any, axis: Any) -> Any:
    """e^x / Σ e^x, shifted by the (constant, finite) max so it keeps full precision.

    An all -inf row is 0/0: NaN, as torch.logsumexp's gradient, silently (the quiet `div`).
    """
    e = exp(x - _finite_or(_detached(x).max(axis=axis, keepdims=True), 0.0))
    return div(e, e.sum(axis=axis, keepdims=True))


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
div = Primitive("div", _quiet(np.divide, "x / y; x/0 = ±inf and 0/0 = nan, silently."),
                lambda g, out, x, y: div(g, y),
                lambda g, out, x, y: div(-g * out, y),
                doc="x / y (broadcasting); d/dx = 1/y, d/dy = -x/y². Division by 0 gives "
                    "±inf or nan without a warning, as in PyTorch.")
pow = Primitive("pow", _quiet(np.power, "x ** y; 0 ** -1 = inf, (-1) ** 0.5 = nan, silently."),
                _pow_vjp_x, _pow_vjp_y,
                doc="x ** y; d/dx = y x^(y-1) (0 where y = 0), d/dy = x^y ln x (0 where x = 0 "
                    "and y >= 0): PyTorch's conventions at a zero base.")
neg = Primitive("neg", np.negative,
                lambda g, out, x: -g,
                doc="-x.")
exp = Primitive("exp", np.exp,
                lambda g, out, x: g * out,
                doc="e^x; its derivative is e^x itself.")
log = Primitive("log", _quiet(np.log, "ln x; -inf at 0 and nan below, silently."),
                lambda g, out, x: div(g, x),  # inf at 0, as PyTorch
                doc="The natural log (-inf at 0, nan below, with no warning, as PyTorch); "
                    "d/dx = 1/x.")
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


sqrt = Primitive("sqrt", _quiet(np.sqrt, "√x; nan below 0, silently."),
                 lambda g, out, x: div(g, 2 * out),  # inf at 0, as PyTorch
                 doc="√x; d/dx = 1/(2√x) (inf at 0, as PyTorch).")
abs = Primitive("abs", np.abs,
                lambda g, out, x: g * sign(_detached(x)),  # abs'(0) = 0, as PyTorch
                doc="|x|; its derivative at 0 is taken as 0.")
clip = Primitive("clip", lambda x, lo, hi, out=None: np.clip(x, lo, hi, out=out),
                 _clip_vjp,
                 doc="x limited to [lo, hi]; the gradient passes where lo <= x <= hi "
                     "(bounds included, as torch.clamp; none at all when lo > hi).")
maximum = Primitive("maximum", np.maximum,
                    lambda g, out, x, y: _tie_share(g, x, y, operator.gt),
                    lambda g, out, x, y: _tie_share(g, y, x, operator.gt),
                    doc="Elementwise max of two tensors; a tie gives each half the gradient.")
minimum = Primitive("minimum", np.minimum,
                    lambda g, out, x, y: _tie_share(g, x, y, operator.lt),
                    lambda g, out, x, y: _tie_share(g, y, x, operator.lt),
                    doc="Elementwise min of two tensors; a tie gives each half the gradient.")
where = Primitive("where", _where,
                  # where again, on the same condition array: no mask (not `~condition`)
                  # is computed outside a primitive, so `jit` replays each step's condition.
                  lambda g, out, x, y, condition: where(g, 0.0, condition=condition),
                  lambda g, out, x, y, condition: where(0.0, g, condition=condition),
                  doc="x where the boolean array `condition` holds, else y (numpy's where).")
leaky_relu = Primitive("leaky_relu", lambda x, slope: np.where(x > 0, x, x * slope),
                       lambda g, out, x, slope:  # where x > 0, 1; elsewhere, slope
                           # (where's condition is a parameter, so the mask's array)
                           g * cast(where(1.0, slope, condition=_value(_detached(x) > 0)),
                                    dtype=g.dtype),
                       doc="x for x > 0, slope·x otherwise; the derivative at 0 is `slope`.")
_logaddexp = _quiet(np.logaddexp, "log(e^x + e^y); nan for a nan, silently.")
softplus = Primitive("softplus", lambda x, out=None: _logaddexp(0, x, out=out),
                     lambda g, out, x: g * sigmoid(x),
                     doc="log(1 + e^x), computed without overflow; its derivative is σ(x).")
log_sigmoid = Primitive("log_sigmoid", _log_sigmoid,
                        # d/dz log σ(z) = 1 - σ(z) = σ(-z): no cancellation where σ ≈ 1
                        lambda g, out, x: g * sigmoid(-x),
                        doc="log σ(z) = -softplus(-z), stable at |z| = 1e4 in every float "
                            "dtype (torch.nn.functional.logsigmoid); its derivative is σ(-z).")
logsumexp = Primitive("logsumexp", _logsumexp,
                      lambda g, out, x, axis, keepdims:
                          g.reshape(_kept_shape(x.shape, axis)) * _softmax(x, axis),
                      doc="log Σ e^x over `axis`, stable for large |x|; its VJP is g·softmax.")
copy = Primitive("copy", _copy,
                 lambda g, out, x: g,
                 doc="A copy of x in an array of its own (the graph walk's `.grad` arrays).")

# Not differentiable: their outputs never require grad. They are primitives all the
# same, so that masks and random draws made during a step are recorded by `jit`.
greater = Primitive("greater", np.greater, doc="x > y (boolean; not differentiable).")
greater_equal = Primitive("greater_equal", np.greater_equal,
                          doc="x >= y (boolean; not differentiable).")
less = Primitive("less", np.less, doc="x < y (boolean; not differentiable).")
less_equal = Primitive("less_equal", np.less_equal, doc="x <= y (boolean; not differentiable).")
equal = Primitive("equal", np.equal, doc="x == y (boolean; not differentiable).")
not_equal = Primitive("not_equal", np.not_equal, doc="x != y (boolean; not differentiable).")
isfinite = Primitive("isfinite", np.isfinite,
                     doc="True where x is neither inf nor nan (not differentiable).")
sign = Primitive("sign", np.sign, _zero_vjp,
                 doc="-1, 0 or 1 by the sign of x; piecewise constant, so its gradient is 0 "
                     "(as torch.sign: the output of a requires-grad x requires grad).")
floor = Primitive("floor", np.floor, _zero_vjp,
                  doc="The largest integer <= x (as a float); its gradient is 0, as "
                      "torch.floor's.")


def _class_labels(labels: np.ndarray, classes: int, who: str,
                  out: np.ndarray | None = None) -> np.ndarray:
    bad = (labels < 0) | (labels >= classes)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"{who}: row {row} has label {labels[row]}, outside 0..{classes - 1} "
                         f"for {classes} classes")
    if out is None:
        return labels.astype(np.int64)
    np.copyto(out, labels, casting="unsafe")
    return out


def _unit_interval(values: np.ndarray, dtype: Any, who: str, what: str,
                   out: np.ndarray | None = None) -> np.ndarray:
    outside = ~((values >= 0) & (values <= 1))  # NaN counts as outside
    if outside.any():
        index = tuple(int(i) for i in np.argwhere(outside)[0])
        raise ValueError(f"{who}: {what} must lie in [0, 1], but the one at index {index} "
                         f"is {values[index]}")
    if out is None:
        return values.astype(dtype)
    np.copyto(out, values, casting="unsafe")
    return out


unit_interval = Primitive("unit_interval", _unit_interval,
                          doc="Targets in `dtype`, each checked to lie in [0, 1] (not "
                              "differentiable; a replay checks each batch).")
class_labels = Primitive("class_labels", _class_labels,
                         doc="Integer class labels as int64, each checked to lie in "
                             "0..classes-1 (not differentiable; a replay checks each batch).")
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
