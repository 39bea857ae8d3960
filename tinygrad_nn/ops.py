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

import contextlib
import inspect
import operator
import typing
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
    forward needs, so a replay allocates nothing. `saves`, if given, makes an array (or
    None) that the forward fills with an intermediate its VJPs reuse rather than recompute
    (σ's e^{-z}): it goes to the forward and the VJPs as the parameter ``saved=``, and stays
    with the node as long as the graph lives, as PyTorch's ``save_for_backward``. It is made
    only for an output that is recorded for a backward (an input requires grad, grad mode
    on), not under `no_grad` nor for constants.
    """

    def __init__(self, name: str, forward: Callable, *vjps: Callable, doc: str = "",
                 work: Callable | None = None, saves: Callable | None = None) -> None:
        self.name, self.forward, self.vjps, self.__doc__ = name, forward, vjps, doc
        self.work, self.saves = work, saves
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
        parents: list[Tensor | None]
        arrays: list[Any]
        parents, arrays, needs_grad = [], [], False
        for x in inputs:
            if isinstance(x, Tensor):
                needs_grad = needs_grad or x.requires_grad
                parents.append(x)
                arrays.append(x.data)
            else:
                parents.append(None)
                arrays.append(_constant_array(x, like))
        if self.saves is not None and needs_grad and _GradMode.enabled:
            saved = self.saves(*arrays)
            if saved is not None:
                params = {**params, "saved": saved}
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
            result = Tensor._make(data, self, tuple(parents), params, tuple(arrays))
            if _GradMode.anomaly:
                result._origin = anomaly.user_frame()
        else:
            result = Tensor._make(data)
        if tape is not None:
            tape.made(result)
        return result


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
    shown = "".join(f", {k}={v!r}" for k, v in params.items() if k not in ("offsets", "saved"))
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


def _stable_sigmoid(z: np.ndarray, out: np.ndarray | None = None,
                    saved: np.ndarray | None = None) -> np.ndarray:
    """eq. 1.6, σ(z) = 1/(1 + e^{-z}), with no overflow for large |z|.

    e^{-z} overflows for z below -log(max float); clamping z at -709 (float64) or
    -88 (float32) changes σ by less than 1e-307 (float64) or 1e-38 (float32), and
    the formula keeps full relative precision everywhere else. float16's clamp would be
    -11, where σ is still 1.7e-5, so float16 is computed in float32 and rounded back
    (a rare dtype: the float32/float64 hot path stays one maximum and three ufuncs).

    With `saved` (`_sigmoid_saved`), e^{-z} (clamped) is left there for the VJP.
    """
    t = np.empty(z.shape, dtype=z.dtype if z.dtype.kind == "f" else np.float64) if out is None \
        else out
    floor = _SIGMOID_FLOOR.get(t.dtype)
    if floor is None:  # float16 (e^12 overflows it) and the like: compute in float32 or 64
        return _in_wider_float(_stable_sigmoid, (z,), t.dtype, t)
    e = _exp_minus(z, floor, t if saved is None else saved)
    # In place, and `out` passed by position: numpy parses a keyword out= at ~0.13 µs a call
    # (measured, numpy 2.3), and these run on every layer of every step.
    np.add(e, _ONE.get(t.dtype, 1.0), t)
    # 1/t by division: the same correctly rounded result as np.reciprocal, which numpy
    # does not vectorise for floats (24 us against 8 us on a 128 x 256 batch, measured)
    return np.divide(_ONE.get(t.dtype, 1.0), t, t)


def _sigmoid_slope(z: np.ndarray, s: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """s·(s·e^{-z}) with z clamped as `_stable_sigmoid` clamps it: σ'(z) for s = σ(z).

    One exp and no division (five passes over z), where σ(-z) by a second sigmoid would take
    seven with a division; float16 is computed in float32 and rounded back, as the forward.
    """
    floor = _SIGMOID_FLOOR.get(np.dtype(z.dtype))
    if floor is None:  # float16 and the like, as `_stable_sigmoid`
        return _in_wider_float(_sigmoid_slope, (z, s), np.dtype(z.dtype), out)
    t = _exp_minus(z, floor, np.empty(np.shape(z), dtype=floor.dtype) if out is None else out)
    np.multiply(t, s, t)  # (out by position, as in `_stable_sigmoid`)
    return np.multiply(t, s, t)


def _exp_minus(z: np.ndarray, floor: np.ndarray, out: np.ndarray) -> np.ndarray:
    """e^{-z} with z clamped at `floor` (`_stable_sigmoid`'s clamp), into `out`: the one
    exponential of the sigmoid's forward and of its slope."""
    np.maximum(z, floor, out=out)  # (by keyword: numpy 2.5 deprecates a third argument here)
    np.negative(out, out)
    return np.exp(out, out)


def _sigmoid_saved(z: np.ndarray) -> np.ndarray | None:
    """The array the sigmoid's forward leaves e^{-z} in for its VJP (None for float16 and
    the like, which the forward computes in a wider float: the VJP recomputes there)."""
    dtype = z.dtype if z.dtype.kind == "f" else np.dtype(np.float64)
    return np.empty(z.shape, dtype) if dtype in _SIGMOID_FLOOR else None


def _recomputes(out: Any, saved: np.ndarray | None) -> bool:
    """Whether the sigmoid's VJP takes `sigmoid_slope` (e^{-z} recomputed from z) rather
    than the e^{-z} its forward saved: when nothing was saved (float16, whose forward runs
    in a wider float; a call on plain arrays), and when the backward is itself recorded to
    be differentiated (create_graph: Tensors, grad mode on), for `sigmoid_slope` has VJPs of
    its own, which give σ''. Either way the same products in the same order: the same bits.
    """
    return saved is None or (isinstance(out, Tensor) and _GradMode.enabled)


def _in_wider_float(fn: Callable[..., np.ndarray], arrays: tuple[np.ndarray, ...],
                    dtype: np.dtype, out: np.ndarray | None) -> np.ndarray:
    """fn of `arrays` computed in float32 (float64 if `dtype` is wider) and given in `dtype`,
    into `out` if given: for float16, where the sigmoid's clamp would be far too tight."""
    wide = np.float32 if dtype.itemsize < 4 else np.float64
    result = fn(*(a.astype(wide) for a in arrays))
    if out is None:
        return result.astype(dtype)
    np.copyto(out, result, casting="unsafe")
    return out


def _clamp_for(dtype: Any) -> np.ndarray:
    """-log(largest float) rounded down, the sigmoid's clamp of z, as a 0-d array of dtype."""
    return np.array(-np.floor(np.log(np.finfo(dtype).max)), dtype=dtype)


def _sigmoid_floor(x: Any) -> np.ndarray:
    """The forward's clamp of z for x's float dtype (-709 for float64), as a 0-d array."""
    dtype = np.dtype(x.dtype)
    floor = _SIGMOID_FLOOR.get(dtype)
    return floor if floor is not None else _clamp_for(dtype)


# 0-d arrays rather than Python numbers, so numpy converts nothing on each call.
_SIGMOID_FLOOR = {np.dtype(t): _clamp_for(t) for t in (np.float32, np.float64, np.longdouble)}
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
    np.matmul(x, w.T, out)
    buffer: np.ndarray = work  # type: ignore[assignment]  # (given with out: _linear_buffer)
    np.copyto(buffer, b)
    return np.add(out, buffer, out)


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
    """x in `dtype`. A float beyond the narrower float's range becomes ±inf silently, as
    PyTorch's `.to(torch.float32)` gives (numpy would warn "overflow encountered in cast")."""
    narrowing = x.dtype.kind == "f" and np.dtype(dtype).kind == "f" and \
        x.dtype.itemsize > np.dtype(dtype).itemsize
    with np.errstate(over="ignore") if narrowing else contextlib.nullcontext():
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

# (Declared for mypy: entries whose VJPs call themselves or an entry further down.)
div: Primitive
sigmoid_slope: Primitive
maximum: Primitive
cast: Primitive
broadcast_to: Primitive
scatter_add: Primitive
where: Primitive
sign: Primitive
normal_pdf: Primitive

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
                    # σ'(z) = s·(s·e^{-z}) for s = σ(z): full relative precision where σ(z)
                    # is near 1 (σ(1 - σ) cancels there: off by 1e-3 at z = 30, 0 above
                    # z = 36.7). Two products from the e^{-z} the forward saved: 11 µs on a
                    # 128 x 256 float64 batch, where `sigmoid_slope` takes 44 (measured).
                    lambda g, out, x, saved=None: (g * sigmoid_slope(x, out)
                                                   if _recomputes(out, saved)
                                                   else g * (out * (out * saved))),
                    doc="eq. 1.6: σ(z) = 1/(1 + e^{-z}); its VJP is BP1's and BP2's ⊙ σ'(z).",
                    saves=_sigmoid_saved)
sigmoid_slope = Primitive(
    "sigmoid_slope", lambda x, s, out=None: _sigmoid_slope(x, s, out),
    lambda g, out, x, s: -(g * out),  # ∂/∂z of s²e^{-z}, s held: -s²e^{-z}, the slope itself
    lambda g, out, x, s: g * s * exp(-maximum(x, _sigmoid_floor(x))) * 2.0,  # ∂/∂s: 2s e^{-z}
    doc="σ'(z) = σ(z)σ(-z) from z and s = σ(z), as s·(s·e^{-z}) (σ(-z) = σ(z)e^{-z}): the "
        "sigmoid's VJP factor, in full relative precision for large |z|. Its two VJPs add up "
        "to d/dz σ'(z) = σ'(z)(1 - 2σ(z)) when s = σ(z), so grad of grad works.")
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

# --- images: convolution, pooling, batch norm ------------------------------------------
# Images are (n, c, h, w), PyTorch's order, for the user; their memory is channels-last:
# every forward here writes an (n, h, w, c) array and returns its (n, c, h, w) transposed
# view. Measured on the recipe's second convolution (64×16×16×16, float32): the im2col copy
# takes 0.19 ms from channels-last memory (each window's c entries are contiguous) against
# 1.5 ms from channels-first, and one (n·oh·ow, kh·kw·c) @ (kh·kw·c, c_out) product needs
# no batch loop. Elementwise primitives keep the layout (numpy's order="K"), so the next
# layer finds channels-last memory too. Any other layout is accepted, only slower.


def _nhwc(x: Any) -> Any:
    """An (n, c, h, w) array as its (n, h, w, c) view (contiguous for channels-last memory)."""
    return x.transpose(0, 2, 3, 1)


def _image(n: int, c: int, h: int, w: int, dtype: Any) -> np.ndarray:
    """A new (n, c, h, w) array whose memory is channels-last."""
    return np.empty((n, h, w, c), dtype).transpose(0, 3, 1, 2)


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _window(xl: np.ndarray, i: int, j: int, stride: tuple[int, int], oh: int,
            ow: int) -> np.ndarray:
    """Entry (i, j) of every window of the (n, h, w, c) array xl: an (n, oh, ow, c) view."""
    return xl[:, i:i + stride[0] * (oh - 1) + 1:stride[0], j:j + stride[1] * (ow - 1) + 1:stride[1]]


def _padded(xl: np.ndarray, padding: tuple[int, int], value: float,
            buf: np.ndarray | None) -> np.ndarray:
    """xl (n, h, w, c) framed by `padding` rows and columns of `value`, in `buf`."""
    ph, pw = padding
    if ph == pw == 0:
        return xl
    h, w = xl.shape[1:3]
    buf = typing.cast(np.ndarray, buf)  # (None only without padding)
    buf[:, :ph] = value  # the frame only: the centre is overwritten just below
    buf[:, ph + h:] = value
    buf[:, :, :pw] = value
    buf[:, :, pw + w:] = value
    np.copyto(buf[:, ph:ph + h, pw:pw + w], xl)
    return buf


def _padded_buffer(shape: tuple[int, ...], padding: tuple[int, int], dtype: Any) -> Any:
    """Scratch for `_padded` of an (n, c, h, w) array (None: no padding, none needed)."""
    n, c, h, w = shape
    return None if padding == (0, 0) else np.empty(
        (n, h + 2 * padding[0], w + 2 * padding[1], c), dtype)


def _rows(a: np.ndarray, buf: np.ndarray | None = None) -> np.ndarray:
    """An (n, c, h, w) array as the (n·h·w, c) matrix of its channels-last memory: a view
    when the memory is channels-last, else a copy (into `buf` when given)."""
    al = _nhwc(a)
    if al.flags.c_contiguous:
        return al.reshape(-1, al.shape[-1])
    rows = np.empty(al.shape, a.dtype) if buf is None else buf.reshape(al.shape)
    np.copyto(rows, al)
    return rows.reshape(-1, al.shape[-1])


def _im2col(xl: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
            padding: tuple[int, int], padded: Any, cols: np.ndarray) -> np.ndarray:
    """Every (kh, kw, c) window of xl (n, h, w, c) as a row of `cols`, (n·oh·ow, kh·kw·c):
    one strided view (no Python loop) copied once."""
    xp = _padded(xl, padding, 0, padded)
    n, hp, wp, c = xp.shape
    (kh, kw), (sh, sw) = kernel, stride
    oh, ow = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    s = xp.strides
    windows = np.lib.stride_tricks.as_strided(
        xp, (n, oh, ow, kh, kw, c), (s[0], s[1] * sh, s[2] * sw, s[1], s[2], s[3]),
        writeable=False)
    np.copyto(cols.reshape(n, oh, ow, kh, kw, c), windows)
    return cols


def _weight_matrix(w: np.ndarray, buf: np.ndarray) -> np.ndarray:
    """w (c_out, c_in, kh, kw) as the (c_out, kh·kw·c_in) matrix im2col's rows multiply."""
    np.copyto(buf.reshape(w.shape[0], w.shape[2], w.shape[3], w.shape[1]), _nhwc(w))
    return buf


def _conv2d_work(x: np.ndarray, w: np.ndarray, *b: Any, stride: tuple[int, int],
                 padding: tuple[int, int]) -> tuple:
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    oh, ow = _out_size(h, kh, stride[0], padding[0]), _out_size(wd, kw, stride[1], padding[1])
    return (_padded_buffer(x.shape, padding, x.dtype),
            np.empty((n * oh * ow, kh * kw * c), x.dtype), np.empty((co, kh * kw * c), w.dtype))


def _conv2d(x: np.ndarray, w: np.ndarray, *b: np.ndarray, stride: tuple[int, int],
            padding: tuple[int, int], out: np.ndarray | None = None,
            work: tuple | None = None) -> np.ndarray:
    """y[n, o] = b[o] + Σ_{c,i,j} w[o, c, i, j] x_pad[n, c, s·h + i, s·w + j] (PyTorch's
    conv2d, a cross-correlation): im2col, then one matrix product (BLAS) for the batch."""
    padded, cols, wmat = _conv2d_work(x, w, stride=stride, padding=padding) if work is None \
        else work
    n, co, (kh, kw) = x.shape[0], w.shape[0], w.shape[2:]
    _im2col(_nhwc(x), (kh, kw), stride, padding, padded, cols)
    _weight_matrix(w, wmat)
    oh = _out_size(x.shape[2], kh, stride[0], padding[0])
    ow = _out_size(x.shape[3], kw, stride[1], padding[1])
    if out is None:
        out = _image(n, co, oh, ow, np.result_type(x, w, *b))
    z = _nhwc(out).reshape(-1, co)  # (a view: out's memory is channels-last)
    np.matmul(cols, wmat.T, out=z)
    if b:
        np.add(z, b[0], out=z)
    return out


def _conv2d_input_grad_work(g: np.ndarray, w: np.ndarray, shape: tuple[int, ...],
                            stride: tuple[int, int], padding: tuple[int, int]) -> tuple:
    n, c, h, wd = shape
    co, _, kh, kw = w.shape
    dtype = np.result_type(g, w)
    return (np.empty(g.shape, g.dtype), np.empty((kh * kw, co, c), w.dtype),
            np.empty((kh * kw, g.shape[0] * g.shape[2] * g.shape[3], c), dtype),
            np.empty((n, h + 2 * padding[0], wd + 2 * padding[1], c), dtype))


def _conv2d_input_grad(g: np.ndarray, w: np.ndarray, shape: tuple[int, ...],
                       stride: tuple[int, int], padding: tuple[int, int],
                       out: np.ndarray | None = None, work: tuple | None = None) -> np.ndarray:
    """conv2d's VJP for x (a transposed convolution): for each of the kh·kw window offsets
    (i, j), g_rows @ w[:, :, i, j] (one batched BLAS call for all offsets), then col2im:
    each offset's product added into its window of the padded gradient (kh·kw vectorised
    adds, not np.add.at). The products are stacked offset by offset, not as one
    (m, kh·kw·c) matrix, so that each add reads contiguous (ow·c)-long rows: 3× faster
    adds than from slices of the wide matrix (1.4 ms against 0.47 for the recipe's second
    convolution), for 0.2 ms more in the narrower products."""
    gbuf, wstack, dstack, dxp = _conv2d_input_grad_work(g, w, shape, stride, padding) \
        if work is None else work
    n, c, h, wd = shape
    co, _, kh, kw = w.shape
    oh, ow = g.shape[2:]
    np.copyto(wstack.reshape(kh, kw, co, c), w.transpose(2, 3, 0, 1))
    np.matmul(_rows(g, gbuf), wstack, out=dstack)
    dxp.fill(0)
    for i in range(kh):
        for j in range(kw):
            v = _window(dxp, i, j, stride, oh, ow)
            np.add(v, dstack[i * kw + j].reshape(n, oh, ow, c), out=v)
    if out is None:
        out = _image(n, c, h, wd, dxp.dtype)
    ph, pw = padding
    np.copyto(_nhwc(out), dxp[:, ph:ph + h, pw:pw + wd])
    return out


def _conv2d_weight_grad_work(g: np.ndarray, x: np.ndarray, shape: tuple[int, ...],
                             stride: tuple[int, int], padding: tuple[int, int]) -> tuple:
    co, c, kh, kw = shape
    return (np.empty(g.shape, g.dtype), _padded_buffer(x.shape, padding, x.dtype),
            np.empty((g.shape[0] * g.shape[2] * g.shape[3], kh * kw * c), x.dtype),
            np.empty((co, kh * kw * c), np.result_type(g, x)))


def _conv2d_weight_grad(g: np.ndarray, x: np.ndarray, shape: tuple[int, ...],
                        stride: tuple[int, int], padding: tuple[int, int],
                        out: np.ndarray | None = None, work: tuple | None = None) -> np.ndarray:
    """conv2d's VJP for w: g_rowsᵀ @ im2col(x), one BLAS product summing over the batch and
    every output position (BP4 for a convolution). im2col is redone rather than kept from
    the forward: a 0.2 ms copy, against holding kh·kw copies of every input."""
    gbuf, padded, cols, dwmat = _conv2d_weight_grad_work(g, x, shape, stride, padding) \
        if work is None else work
    co, c, kh, kw = shape
    _im2col(_nhwc(x), (kh, kw), stride, padding, padded, cols)
    np.matmul(_rows(g, gbuf).T, cols, out=dwmat)
    if out is None:
        out = np.empty(shape, dwmat.dtype)
    np.copyto(_nhwc(out), dwmat.reshape(co, kh, kw, c))
    return out


def _pool_window_loop(kernel: tuple[int, int]) -> list[tuple[int, int]]:
    """The offsets of a window in PyTorch's scan order (row by row): the first maximum wins."""
    return [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]


def _pool_shape(shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int]) -> tuple[int, int]:
    return (_out_size(shape[2], kernel[0], stride[0], padding[0]),
            _out_size(shape[3], kernel[1], stride[1], padding[1]))


def _max_pool2d(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int], out: np.ndarray | None = None,
                work: Any = None) -> np.ndarray:
    """The max of each window (padding is -inf, as PyTorch's): kh·kw - 1 np.maximum calls
    over strided window views (three for 2×2), each a vectorised pass."""
    if work is None:
        work = _padded_buffer(x.shape, padding, x.dtype)
    xp = _padded(_nhwc(x), padding, -np.inf, work)
    oh, ow = _pool_shape(x.shape, kernel, stride, padding)
    if out is None:
        out = _image(x.shape[0], x.shape[1], oh, ow, x.dtype)
    yl = _nhwc(out)
    offsets = _pool_window_loop(kernel)
    np.copyto(yl, _window(xp, *offsets[0], stride, oh, ow))
    for i, j in offsets[1:]:
        np.maximum(yl, _window(xp, i, j, stride, oh, ow), out=yl)
    return out


def _pool_work(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
               padding: tuple[int, int]) -> Any:
    return _padded_buffer(x.shape, padding, x.dtype)


def _first_maxima(xp: np.ndarray, yl: np.ndarray, kernel: tuple[int, int],
                  stride: tuple[int, int], hit: np.ndarray, taken: np.ndarray) -> Any:
    """For each window offset in scan order, (i, j, hit): hit marks the windows whose FIRST
    maximum sits at offset (i, j) (PyTorch's rule: one entry of a tie gets the gradient)."""
    taken.fill(False)
    oh, ow = yl.shape[1:3]
    for i, j in _pool_window_loop(kernel):
        np.equal(_window(xp, i, j, stride, oh, ow), yl, out=hit)
        np.greater(hit, taken, out=hit)  # hit and not taken (booleans: True > False)
        np.logical_or(taken, hit, out=taken)
        yield i, j, hit


def _tiles(kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> bool:
    """Whether the windows tile the input (stride = kernel, no padding: the usual 2×2 pool),
    so each input entry lies in at most one window."""
    return stride == kernel and padding == (0, 0)


def _max_pool2d_grad_work(g: np.ndarray, x: np.ndarray, y: np.ndarray,
                          kernel: tuple[int, int], stride: tuple[int, int],
                          padding: tuple[int, int]) -> tuple:
    n, c, h, w = x.shape
    hp, wp = h + 2 * padding[0], w + 2 * padding[1]
    second = np.empty(_nhwc(y).shape, f"u{g.dtype.itemsize}") if _tiles(kernel, stride, padding) \
        else np.empty((n, hp, wp, c), g.dtype)  # the tiled path's mask, else the padded dx
    return (_padded_buffer(x.shape, padding, x.dtype), second,
            np.empty(_nhwc(y).shape, bool), np.empty(_nhwc(y).shape, bool))


def _max_pool2d_tiled_backward(g: np.ndarray, x: np.ndarray, y: np.ndarray,
                               kernel: tuple[int, int], out: np.ndarray, work: tuple) -> None:
    """max_pool2d_backward when the windows tile x: every entry of dx is written exactly
    once, straight into `out` (no zeroed buffer, no scatter-add, no final copy). Writing
    g where an entry wins and +0 elsewhere is a bitwise AND of g's bits with an all-ones
    or all-zeros mask: branch-free (np.copyto's where= mispredicts on the random winners,
    4x slower) and exact for any g, inf and nan included (g·hit would make 0·inf = nan)."""
    _, mask, hit, taken = work
    (kh, kw), (oh, ow) = kernel, y.shape[2:]
    bits = _nhwc(out).view(mask.dtype)  # (same itemsize: a view even of strided memory)
    gbits = _nhwc(g).view(mask.dtype)
    bits[:, oh * kh:] = 0  # rows and columns no window reaches (floor mode)
    bits[:, :, ow * kw:] = 0
    for i, j, winners in _first_maxima(_nhwc(x), _nhwc(y), kernel, kernel, hit, taken):
        np.subtract(mask.dtype.type(0), winners, out=mask, dtype=mask.dtype)  # 0 - 1 = ~0
        np.bitwise_and(gbits, mask, out=_window(bits, i, j, kernel, oh, ow))


def _max_pool2d_backward(g: np.ndarray, x: np.ndarray, y: np.ndarray,
                         kernel: tuple[int, int], stride: tuple[int, int],
                         padding: tuple[int, int], out: np.ndarray | None = None,
                         work: tuple | None = None) -> np.ndarray:
    """max_pool2d's VJP: each window's gradient goes to its first maximum (in scan order),
    as PyTorch's; ties are common on Fashion-MNIST's constant background."""
    if work is None:
        work = _max_pool2d_grad_work(g, x, y, kernel, stride, padding)
    n, c, h, w = x.shape
    if out is None:
        out = _image(n, c, h, w, g.dtype)
    if _tiles(kernel, stride, padding):
        dx = out if out.dtype == g.dtype else _image(n, c, h, w, g.dtype)
        _max_pool2d_tiled_backward(g, x, y, kernel, dx, work)
        if dx is not out:
            np.copyto(out, dx)
        return out
    padded, dxp, hit, taken = work
    xp = _padded(_nhwc(x), padding, -np.inf, padded)
    gl, (oh, ow) = _nhwc(g), y.shape[2:]
    dxp.fill(0)
    for i, j, winners in _first_maxima(xp, _nhwc(y), kernel, stride, hit, taken):
        v = _window(dxp, i, j, stride, oh, ow)
        np.add(v, gl, out=v, where=winners)
    np.copyto(_nhwc(out), dxp[:, padding[0]:padding[0] + h, padding[1]:padding[1] + w])
    return out


def _max_pool2d_gather_work(d: np.ndarray, x: np.ndarray, y: np.ndarray,
                            kernel: tuple[int, int], stride: tuple[int, int],
                            padding: tuple[int, int]) -> tuple:
    return (_padded_buffer(x.shape, padding, x.dtype), _padded_buffer(d.shape, padding, d.dtype),
            np.empty(_nhwc(y).shape, bool), np.empty(_nhwc(y).shape, bool))


def _max_pool2d_gather(d: np.ndarray, x: np.ndarray, y: np.ndarray,
                       kernel: tuple[int, int], stride: tuple[int, int],
                       padding: tuple[int, int], out: np.ndarray | None = None,
                       work: tuple | None = None) -> np.ndarray:
    """d (shaped like x) read at each window's first maximum: the adjoint of
    `max_pool2d_backward` in its gradient, so its VJP (and grad-of-grad of max-pooling)."""
    padded, dpad, hit, taken = _max_pool2d_gather_work(d, x, y, kernel, stride, padding) \
        if work is None else work
    xp = _padded(_nhwc(x), padding, -np.inf, padded)
    dp = _padded(_nhwc(d), padding, 0, dpad)
    oh, ow = y.shape[2:]
    if out is None:
        out = _image(y.shape[0], y.shape[1], oh, ow, d.dtype)
    ol = _nhwc(out)
    ol.fill(0)
    for i, j, winners in _first_maxima(xp, _nhwc(y), kernel, stride, hit, taken):
        np.add(ol, _window(dp, i, j, stride, oh, ow), out=ol, where=winners)
    return out


def _avg_pool2d(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int], out: np.ndarray | None = None,
                work: Any = None) -> np.ndarray:
    """The mean of each window, zero padding counted (PyTorch's count_include_pad=True)."""
    if work is None:
        work = _padded_buffer(x.shape, padding, x.dtype)
    xp = _padded(_nhwc(x), padding, 0, work)
    oh, ow = _pool_shape(x.shape, kernel, stride, padding)
    if out is None:
        out = _image(x.shape[0], x.shape[1], oh, ow, x.dtype)
    yl = _nhwc(out)
    offsets = _pool_window_loop(kernel)
    np.copyto(yl, _window(xp, *offsets[0], stride, oh, ow))
    for i, j in offsets[1:]:
        np.add(yl, _window(xp, i, j, stride, oh, ow), out=yl)
    return np.multiply(out, out.dtype.type(1 / (kernel[0] * kernel[1])), out=out)


def _avg_pool2d_backward_work(g: np.ndarray, shape: tuple[int, ...], kernel: tuple[int, int],
                              stride: tuple[int, int], padding: tuple[int, int]) -> tuple:
    n, c, h, w = shape
    return (np.empty(_nhwc(g).shape, g.dtype),
            np.empty((n, h + 2 * padding[0], w + 2 * padding[1], c), g.dtype))


def _avg_pool2d_backward(g: np.ndarray, shape: tuple[int, ...], kernel: tuple[int, int],
                         stride: tuple[int, int], padding: tuple[int, int],
                         out: np.ndarray | None = None, work: tuple | None = None) -> np.ndarray:
    """avg_pool2d's VJP: g / (kh·kw) added to every entry of its window."""
    share, dxp = _avg_pool2d_backward_work(g, shape, kernel, stride, padding) \
        if work is None else work
    np.multiply(_nhwc(g), g.dtype.type(1 / (kernel[0] * kernel[1])), out=share)
    oh, ow = g.shape[2:]
    dxp.fill(0)
    for i, j in _pool_window_loop(kernel):
        v = _window(dxp, i, j, stride, oh, ow)
        np.add(v, share, out=v)
    n, c, h, w = shape
    if out is None:
        out = _image(n, c, h, w, g.dtype)
    np.copyto(_nhwc(out), dxp[:, padding[0]:padding[0] + h, padding[1]:padding[1] + w])
    return out


def _pad(x: np.ndarray, widths: tuple[tuple[int, int], ...], value: float,
         out: np.ndarray | None = None) -> np.ndarray:
    """x framed by widths[k] = (before, after) entries of `value` along axis k (np.pad's
    constant mode)."""
    if out is None:
        out = np.empty(tuple(n + a + b for n, (a, b) in zip(x.shape, widths)), x.dtype)
    out.fill(value)
    np.copyto(out[_pad_centre(x.shape, widths)], x)
    return out


def _pad_centre(shape: tuple[int, ...], widths: tuple[tuple[int, int], ...]) -> tuple:
    return tuple(slice(a, a + n) for n, (a, _) in zip(shape, widths))


# Batch normalisation over every axis but the channels' (axis 1): x is (n, c) or
# (n, c, h, w). `_channels_last` gives the view whose last axis is the channels.


def _channels_last(x: np.ndarray) -> np.ndarray:
    return _nhwc(x) if x.ndim == 4 else x


def _channel_sums(a: np.ndarray, ones: np.ndarray, out: np.ndarray | None = None) -> Any:
    """Σ over every axis but the channels' of a (n, c) or (n, c, h, w) array."""
    return _column_sums(_channels_last(a), ones, out)


def _column_sums(al: np.ndarray, ones: np.ndarray, out: np.ndarray | None = None) -> Any:
    """Σ over every axis but the last of a channels-last array (`_channels_last`). For
    contiguous memory that is Σ down the rows of an (m, c) matrix, done as ones @ rows,
    one BLAS product: numpy's add.reduce down axis 0 runs c-long inner loops, ~18× slower
    at c = 16 (0.75 ms against 0.04 ms for 64×16×28×28). Other layouts: add.reduce."""
    if not al.flags.c_contiguous:
        return np.add.reduce(al, axis=tuple(range(al.ndim - 1)), out=out)
    return np.matmul(ones, al.reshape(-1, al.shape[-1]), out=out)


def _ones_for(a: np.ndarray, dtype: Any) -> np.ndarray:
    """The ones vector `_channel_sums` multiplies by, one per row of a's (m, c) matrix."""
    return np.ones(a.size // a.shape[1], dtype)


def _batch_stats(x: np.ndarray, out: np.ndarray | None = None,
                 work: tuple | None = None) -> np.ndarray:
    """(mean, biased variance) of each channel, as rows of a (2, c) array; the variance in
    two passes (Σ(x - mean)²/m, no cancellation), as torch.batch_norm normalises with."""
    xl = _channels_last(x)
    m = xl.size // xl.shape[-1]
    if out is None:
        out = np.empty((2, xl.shape[-1]), x.dtype)
    d, ones = _batch_stats_work(x) if work is None else work
    _channel_sums(x, ones, out=out[0])
    np.multiply(out[0], out.dtype.type(1 / m), out=out[0])
    np.subtract(xl, out[0], out=d)
    np.multiply(d, d, out=d)
    _column_sums(d, ones, out=out[1])
    np.multiply(out[1], out.dtype.type(1 / m), out=out[1])
    return out


def _batch_stats_work(x: np.ndarray) -> tuple:
    return np.empty(_channels_last(x).shape, x.dtype), _ones_for(x, x.dtype)


def _bn_scale(stats: np.ndarray, eps: float, w: Any) -> np.ndarray:
    """w / √(var + ε) per channel (a (c,) array: cheap)."""
    scale = np.sqrt(stats[1] + stats.dtype.type(eps))
    return np.divide(w if w is not None else 1, scale, out=scale)


def _batch_norm(x: np.ndarray, *wb: np.ndarray, stats: np.ndarray, eps: float,
                out: np.ndarray | None = None) -> np.ndarray:
    """y = (x - mean) / √(var + ε) · w + b with the batch's `stats` (Ioffe & Szegedy's
    transform; torch.nn.functional.batch_norm in training mode), as y = x·scale + shift:
    two passes over x."""
    w, b = (wb + (None, None))[:2]
    scale = _bn_scale(stats, eps, w)
    shift = np.multiply(stats[0], scale)
    np.subtract(b if b is not None else 0, shift, out=shift)
    if out is None:
        out = np.empty_like(x)  # (order "K": channels-last stays channels-last)
    ol = _channels_last(out)
    np.multiply(_channels_last(x), scale, out=ol)
    np.add(ol, shift, out=ol)
    return out


def _batch_norm_backward(g: np.ndarray, x: np.ndarray, *w: np.ndarray, stats: np.ndarray,
                         eps: float, part: str, out: np.ndarray | None = None,
                         work: tuple | None = None) -> np.ndarray:
    """The batch norm's VJPs, the batch statistics differentiated too (x̂ = (x - mean)·r,
    r = 1/√(var + ε), sums over the m entries of each channel):
    part "w": Σ g·x̂;  part "x": dx = w·r·(g - Σg/m - x̂·Σ(g·x̂)/m) = g·A + x·B + C."""
    t, ones = _batch_norm_backward_work(g, x, *w, stats=stats, eps=eps, part=part) \
        if work is None else work
    xl, gl = _channels_last(x), _channels_last(g)
    m = xl.size // xl.shape[-1]
    r = _bn_scale(stats, eps, None)
    np.subtract(xl, stats[0], out=t)
    np.multiply(t, gl, out=t)
    gx = _column_sums(t, ones)  # Σ g·(x - mean)
    if part == "w":
        if out is None:
            return np.multiply(gx, r)
        return np.multiply(gx, r, out=out)
    gsum = _channel_sums(g, ones)
    a = r if not w else np.multiply(w[0], r)  # w·r
    bcoef = -a * r * r * gx / m  # ∂/∂x of -w·r·x̂·Σ(g·x̂)/m, x̂ = (x - mean)·r
    c = -a * gsum / m - stats[0] * bcoef
    if out is None:
        out = np.empty_like(g)
    ol = _channels_last(out)
    np.multiply(xl, bcoef, out=t)
    np.add(t, c, out=t)
    np.multiply(gl, a, out=ol)
    np.add(ol, t, out=ol)
    return out


def _batch_norm_backward_work(g: np.ndarray, x: np.ndarray, *w: np.ndarray, stats: Any,
                              eps: float, part: str) -> tuple:
    dtype = np.result_type(g, x)
    return np.empty(_channels_last(x).shape, dtype), _ones_for(x, dtype)


def _batch_norm_vjp(part: str) -> Callable:
    def vjp(g: Any, out: Any, x: Any, *wb: Any, stats: np.ndarray, eps: float) -> Any:
        if isinstance(g, Tensor) and _GradMode.enabled:  # create_graph=True
            raise NotImplementedError(
                "batch_norm: second derivatives (create_graph=True) of training-mode batch "
                "normalisation are not implemented; use eval mode or compose it from "
                "functional.mean and functional.var")
        return batch_norm_backward(g, x, *wb[:1], stats=stats, eps=eps, part=part)
    return vjp


def _running_average(running: np.ndarray, stats: np.ndarray, row: int, momentum: float,
                     correction: float, out: np.ndarray | None = None,
                     work: np.ndarray | None = None) -> np.ndarray:
    """(1 - momentum)·running + momentum·correction·stats[row] (PyTorch's running
    estimates; correction m/(m - 1) makes the variance unbiased)."""
    if out is None:
        out = np.empty_like(running)
    t = np.empty(stats.shape[1:], stats.dtype) if work is None else work
    np.multiply(stats[row], momentum * correction, out=t)
    np.multiply(running, 1 - momentum, out=out)
    return np.add(out, t, out=out, casting="unsafe")


# GELU, SiLU, ELU. numpy has no erf: W. J. Cody's rational Chebyshev approximations
# ("Rational Chebyshev approximations for the error function", Math. Comp. 1969; the
# netlib specfun CALERF coefficients) give erfc to float64 rounding in three ranges.
_ERF_A = (3.16112374387056560, 113.864154151050156, 377.485237685302021, 3209.37758913846947,
          0.185777706184603153)
_ERF_B = (23.6012909523441209, 244.024637934444173, 1282.61652607737228, 2844.23683343917062)
_ERFC_C = (0.564188496988670089, 8.88314979438837594, 66.1191906371416295,
           298.635138197400131, 881.952221241769090, 1712.04761263407058,
           2051.07837782607147, 1230.33935479799725, 2.15311535474403846e-8)
_ERFC_D = (15.7449261107098347, 117.693950891312499, 537.181101862009858,
           1621.38957456669019, 3290.79923573345963, 4362.61909014324716,
           3439.36767414372164, 1230.33935480374942)
_ERFC_P = (0.305326634961232344, 0.360344899949804439, 0.125781726111229246,
           0.0160837851487422766, 6.58749161529837803e-4, 0.0163153871373020978)
_ERFC_Q = (2.56852019228982242, 1.87295284992346047, 0.527905102951428412,
           0.0605183413124413191, 0.00233520497626869185)
_SQRT_1_PI = 0.56418958354775628695


def _rational(y: np.ndarray, num: tuple, den: tuple, last: int) -> np.ndarray:
    """Cody's nested evaluation: (Σ num · y^k) / (Σ den · y^k), `last` terms in the loop."""
    xnum, xden = num[-1] * y, y.copy()
    for k in range(last):
        xnum = (xnum + num[k]) * y
        xden = (xden + den[k]) * y
    return (xnum + num[last]) / (xden + den[last])


def _erfc(x: np.ndarray) -> np.ndarray:
    """erfc(x) for float64 x, to float64 rounding (Cody's CALERF, vectorised); nan stays nan."""
    y = np.abs(x)
    result = np.full_like(y, np.nan)
    small = y <= 0.46875
    ys = y[small]
    result[small] = 1 - x[small] * _rational(ys * ys, _ERF_A, _ERF_B, 3)
    for part, far in (((y > 0.46875) & (y <= 4), False), (y > 4, True)):
        yb = np.minimum(y[part], 30.0)  # erfc(30) = 2e-393 is 0 in float64; inf stays finite
        if far:
            z = 1 / (yb * yb)
            r = (_SQRT_1_PI - z * _rational(z, _ERFC_P, _ERFC_Q, 4)) / yb
        else:
            r = _rational(yb, _ERFC_C, _ERFC_D, 7)
        # e^{-y²} as e^{-ŷ²}·e^{-(y-ŷ)(y+ŷ)}, ŷ = y rounded down to 1/16: no rounding of y².
        yr = np.trunc(yb * 16) / 16
        r = np.exp(-yr * yr) * np.exp(-(yb - yr) * (yb + yr)) * r
        result[part] = np.where(x[part] < 0, 2 - r, r)
    return result


def _in_float64(f: Callable) -> Callable:
    """f computed in float64 and rounded to x's float dtype (float16 and float32 included:
    their squares would overflow at |x| = 1e4)."""
    def forward(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        if out is None:
            out = np.empty(x.shape, dtype)
        np.copyto(out, f(np.asarray(x, np.float64) if x.dtype != np.float64 else x),
                  casting="unsafe")
        return out
    forward.__doc__ = f.__doc__
    return forward


def _normal_cdf64(x: np.ndarray) -> np.ndarray:
    """Φ(x) = erfc(-x/√2)/2: full relative precision in the lower tail."""
    return 0.5 * _erfc(x * -0.7071067811865476)


def _normal_pdf64(x: np.ndarray) -> np.ndarray:
    """φ(x) = e^{-x²/2}/√(2π); 0 (silently) beyond |x| ≈ 38."""
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(-0.5 * x * x) * 0.3989422804014327


def _gelu64(x: np.ndarray) -> np.ndarray:
    """x·Φ(x): PyTorch's exact GELU."""
    return x * _normal_cdf64(x)


def _silu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """x·σ(x), with the overflow-free sigmoid (0 at x = -1e4, x at 1e4, every float dtype)."""
    s = _stable_sigmoid(x, out=out)
    return np.multiply(s, x, out=s, casting="unsafe")


def _elu(x: np.ndarray, alpha: float, out: np.ndarray | None = None) -> np.ndarray:
    """x for x > 0, alpha·(e^x - 1) otherwise; expm1 of min(x, 0), so no overflow."""
    if out is None:
        out = np.empty_like(x)
    np.minimum(x, 0, out=out)
    np.expm1(out, out=out)
    np.multiply(out, alpha, out=out, casting="unsafe")
    np.copyto(out, x, where=x > 0)
    return out


def _gelu_vjp(g: Any, out: Any, x: Any) -> Any:
    # d/dx x·Φ(x) = Φ(x) + x·φ(x); x·φ(x) is a product of finite factors even at 1e4.
    return g * (normal_cdf(x) + x * normal_pdf(x))


def _silu_vjp(g: Any, out: Any, x: Any) -> Any:
    # d/dx x·σ(x) = σ(x)(1 + x·σ(-x)): no 1 - σ(x) to cancel, no e^{-x} to overflow.
    return g * (sigmoid(x) * (1 + x * sigmoid(-x)))


# The VJPs of conv2d and of its two gradients are each other (three bilinear maps), so a
# recorded backward can be differentiated again.
def _conv2d_vjp_x(g: Any, out: Any, x: Any, w: Any, *b: Any, stride: tuple[int, int],
                  padding: tuple[int, int]) -> Any:
    return conv2d_input_grad(g, w, shape=x.shape, stride=stride, padding=padding)


def _conv2d_vjp_w(g: Any, out: Any, x: Any, w: Any, *b: Any, stride: tuple[int, int],
                  padding: tuple[int, int]) -> Any:
    return conv2d_weight_grad(g, x, shape=w.shape, stride=stride, padding=padding)


def _conv2d_vjp_b(g: Any, out: Any, x: Any, w: Any, b: Any, stride: tuple[int, int],
                  padding: tuple[int, int]) -> Any:
    return _channel_sum(g)  # BP3: Σ of δ over batch and positions


def _channel_sum(g: Any) -> Any:
    """Σ of g (n, c) or (n, c, h, w) over every axis but 1, as ones @ (its (m, c) rows):
    the same sum as sum(g, axis=(0, 2, 3)), but one BLAS product instead of numpy's
    add.reduce down the rows (18× slower at c = 16), written with differentiable
    primitives so grad-of-grad still works. The rows are a view for channels-last g."""
    rows = g if g.ndim == 2 else reshape(transpose(g, axes=(0, 2, 3, 1)), shape=(-1, g.shape[1]))
    return matmul(np.ones(rows.shape[0], g.dtype), rows)


# (Declared for mypy, as at the top of the table.)
conv2d_weight_grad: Primitive
max_pool2d_backward: Primitive
max_pool2d_gather: Primitive
avg_pool2d_backward: Primitive

conv2d = Primitive(
    "conv2d", _conv2d, _conv2d_vjp_x, _conv2d_vjp_w, _conv2d_vjp_b,
    doc="PyTorch's conv2d (a cross-correlation) of x (n, c_in, h, w) with w (c_out, c_in, "
        "kh, kw), plus b (c_out,) if given; `stride` and `padding` are pairs. im2col and one "
        "BLAS product; VJPs: conv2d_input_grad, conv2d_weight_grad, Σ g.",
    work=_conv2d_work)
conv2d_input_grad = Primitive(
    "conv2d_input_grad", _conv2d_input_grad,
    lambda d, out, g, w, shape, stride, padding: conv2d(d, w, stride=stride, padding=padding),
    lambda d, out, g, w, shape, stride, padding:
        conv2d_weight_grad(g, d, shape=w.shape, stride=stride, padding=padding),
    doc="conv2d's VJP for x, of shape `shape` (a transposed convolution of g by w).",
    work=_conv2d_input_grad_work)
conv2d_weight_grad = Primitive(
    "conv2d_weight_grad", _conv2d_weight_grad,
    lambda d, out, g, x, shape, stride, padding: conv2d(x, d, stride=stride, padding=padding),
    lambda d, out, g, x, shape, stride, padding:
        conv2d_input_grad(g, d, shape=x.shape, stride=stride, padding=padding),
    doc="conv2d's VJP for w, of shape `shape`: Σ over the batch and positions of g ⊗ windows.",
    work=_conv2d_weight_grad_work)
max_pool2d = Primitive(
    "max_pool2d", _max_pool2d,
    lambda g, out, x, kernel, stride, padding: max_pool2d_backward(
        g, x=_value(x), y=_value(out), kernel=kernel, stride=stride, padding=padding),
    doc="The max of each kernel×stride window of x (n, c, h, w), -inf padding (PyTorch's "
        "max_pool2d); the gradient goes to each window's FIRST maximum in scan order.",
    work=_pool_work)
max_pool2d_backward = Primitive(
    "max_pool2d_backward", _max_pool2d_backward,
    lambda d, out, g, x, y, kernel, stride, padding: max_pool2d_gather(
        d, x=x, y=y, kernel=kernel, stride=stride, padding=padding),
    doc="max_pool2d's VJP: g sent to each window's first maximum of x (y = its maxima).",
    work=_max_pool2d_grad_work)
max_pool2d_gather = Primitive(
    "max_pool2d_gather", _max_pool2d_gather,
    lambda g, out, d, x, y, kernel, stride, padding: max_pool2d_backward(
        g, x=x, y=y, kernel=kernel, stride=stride, padding=padding),
    doc="d read at each window's first maximum of x: max_pool2d_backward's adjoint.",
    work=_max_pool2d_gather_work)
avg_pool2d = Primitive(
    "avg_pool2d", _avg_pool2d,
    lambda g, out, x, kernel, stride, padding: avg_pool2d_backward(
        g, shape=x.shape, kernel=kernel, stride=stride, padding=padding),
    doc="The mean of each window of x (n, c, h, w), zero padding counted (PyTorch's "
        "avg_pool2d, count_include_pad=True).",
    work=_pool_work)
avg_pool2d_backward = Primitive(
    "avg_pool2d_backward", _avg_pool2d_backward,
    lambda d, out, g, shape, kernel, stride, padding: avg_pool2d(
        d, kernel=kernel, stride=stride, padding=padding),
    doc="avg_pool2d's VJP: g/(kh·kw) spread over each window (its adjoint is avg_pool2d).",
    work=_avg_pool2d_backward_work)
pad = Primitive("pad", _pad,
                lambda g, out, x, widths, value: g[_pad_centre(x.shape, widths)],
                doc="x framed by widths[k] = (before, after) entries of `value` on axis k "
                    "(np.pad's constant mode); the gradient is the centre slice.")
batch_stats = Primitive("batch_stats", _batch_stats,
                        doc="(mean, biased variance) per channel (axis 1) as a (2, c) array "
                            "(not differentiable: batch_norm's VJPs account for them).",
                        work=_batch_stats_work)
batch_norm = Primitive(
    "batch_norm", _batch_norm, _batch_norm_vjp("x"), _batch_norm_vjp("w"),
    lambda g, out, x, w, b, stats, eps: _channel_sum(g),
    doc="Training-mode batch normalisation, (x - mean)/√(var + ε)·w + b with `stats` = "
        "batch_stats(x), fused: its VJPs differentiate the statistics too.")
batch_norm_backward = Primitive("batch_norm_backward", _batch_norm_backward,
                                doc="batch_norm's VJP for x (part 'x') or w (part 'w').",
                                work=_batch_norm_backward_work)
running_average = Primitive("running_average", _running_average,
                            doc="(1 - momentum)·running + momentum·correction·stats[row]: "
                                "batch norm's running estimates, updated with out=.",
                            work=lambda running, stats, **_: np.empty(stats.shape[1:],
                                                                      stats.dtype))
normal_cdf = Primitive("normal_cdf", _in_float64(_normal_cdf64),
                       lambda g, out, x: g * normal_pdf(x),
                       doc="Φ(x), the standard normal CDF, from Cody's erfc; d/dx = φ(x).")
normal_pdf = Primitive("normal_pdf", _in_float64(_normal_pdf64),
                       lambda g, out, x: -g * (x * out),
                       doc="φ(x) = e^{-x²/2}/√(2π); d/dx = -x·φ(x).")
gelu = Primitive("gelu", _in_float64(_gelu64), _gelu_vjp,
                 doc="PyTorch's exact GELU, x·Φ(x) (approximate='none'); d/dx = Φ + x·φ.")
silu = Primitive("silu", _silu, _silu_vjp,
                 doc="SiLU (swish), x·σ(x); d/dx = σ(x)(1 + x·σ(-x)).")
elu = Primitive("elu", _elu,
                lambda g, out, x, alpha: g * where(
                    1.0, out + alpha, condition=_value(_detached(x) > 0)),
                doc="x for x > 0, alpha·(e^x - 1) otherwise; d/dx = 1, or out + alpha (so "
                    "alpha at 0, as PyTorch).")


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


def _quietly(ufunc: np.ufunc) -> Callable:
    """`ufunc` with numpy's divide-by-zero warning silenced: x // 0 is ±inf and x % 0 nan,
    silently, as PyTorch gives them."""
    def forward(x: Any, y: Any, out: np.ndarray | None = None) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return ufunc(x, y, out=out)
    forward.__name__ = ufunc.__name__
    return forward


floor_divide = Primitive("floor_divide", _quietly(np.floor_divide),
                         lambda g, out, x, y: where(0.0, g, condition=True),
                         lambda g, out, x, y: where(0.0, g, condition=True),
                         doc="x // y, rounded toward -inf exactly as Python's (5.0 // 0.1 is "
                             "49.0); piecewise constant, so its gradient is 0, as PyTorch's.")
remainder = Primitive("remainder", _quietly(np.remainder),
                      lambda g, out, x, y: g,
                      lambda g, out, x, y: -g * floor_divide(_detached(x), _detached(y)),
                      doc="x % y with the sign of y, exactly as Python's (5.0 % 0.1 is "
                          "0.0999...); d/dx = 1, d/dy = -(x // y), as torch.remainder.")
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
