"""Hypothesis strategies shared by the property tests (one module, reused everywhere).

The strategies of general use live in `tinygrad_nn.testing`, the public kit a user checks
their own operation with, and are re-exported here, so the suite and its users draw from
one place:

- `networks`, `make_network`, `Network`, `architectures`: sigmoid MLPs (2 to 6 layers of
  1 to 16 neurons, float64) with a mini-batch X and targets Y in [0, 1]; per-layer weight
  scales (`WEIGHT_SCALES`) and bias shifts (`SATURATING_SHIFTS`) make some layers saturate.
- `shapes`, `float_arrays`, `broadcastable_pairs`, `axes`, `arrays_away_from_zero`,
  `relu_inputs`, `distinct_arrays`, `away_from_integers`, `arrays_away_from_kinks`,
  `arrays_at_kinks`: arrays for gradient checks, away from kinks (relu at 0, ties in max)
  and poles (division by ~0, log of ~0), or at them on request.
- `boundary_arrays`, `saturated_logits`, `BOUNDARY_VALUES`, `FLOAT_DTYPES`, `SATURATION`:
  values where things break (zeros, kinks, saturation, inf, nan).

Defined here, because they describe this project's own tables and tests:

- `primitive_cases`, `derived_cases`: for every primitive of `tinygrad_nn.ops` and every
  derived function, a strategy for a call of it on valid inputs.
- `expressions`, `expression_pairs`: small random expression trees (depth <= 3) over the
  primitives, with broadcasting shapes and shared inputs.
- fuzzing, jit, differential-run and memory-layout strategies for their test files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_nn import Tensor, grad, ops
from tinygrad_nn.tensor import no_grad
from tinygrad_nn.testing import (  # noqa: F401  (re-exported: the suite's one place)
    BOUNDARY_VALUES,
    FLOAT_DTYPES,
    MAX_DIMS,
    MAX_SIDE,
    MODERATE_SCALES,
    SATURATING_SHIFTS,
    SATURATION,
    WEIGHT_SCALES,
    Network,
    architectures,
    arrays_at_kinks,
    arrays_away_from_kinks,
    arrays_away_from_zero,
    away_from_integers,
    axes,
    boundary_arrays,
    broadcastable_pairs,
    distinct_arrays,
    float_arrays,
    make_network,
    networks,
    relu_inputs,
    saturated_logits,
    shapes,
)

# --- one call of each primitive ------------------------------------------------------


@dataclass
class Case:
    """A call `fn(*inputs)` to gradient-check; every input requires grad."""

    description: str
    fn: object
    inputs: list[np.ndarray]


def _shape_text(arrays) -> str:
    return ", ".join(str(a.shape) for a in arrays)


@st.composite
def _binary_case(draw, name, right=float_arrays, left=float_arrays):
    a_shape, b_shape = draw(broadcastable_pairs())
    x, y = draw(left(a_shape)), draw(right(b_shape))
    prim = getattr(ops, name)
    return Case(f"{name}{_shape_text([x, y])}", lambda a, b: prim(a, b), [x, y])


@st.composite
def _unary_case(draw, name, values):
    x = draw(shapes().flatmap(values))
    prim = getattr(ops, name)
    return Case(f"{name}{x.shape}", lambda a: prim(a), [x])


@st.composite
def _sigmoid_slope_case(draw):
    # z and s drawn independently: the VJPs are the partial derivatives of s²e^{-z}
    z = draw(shapes().flatmap(lambda s: float_arrays(s, -3.0, 3.0)))
    s = draw(float_arrays(z.shape, 0.1, 0.9))
    return Case(f"sigmoid_slope{z.shape}", lambda a, b: ops.sigmoid_slope(a, b), [z, s])


@st.composite
def _matmul_case(draw):
    n, k, p, b = (draw(st.integers(1, MAX_SIDE)) for _ in range(4))
    a_shape, b_shape = draw(st.sampled_from([
        ((k,), (k,)), ((n, k), (k,)), ((k,), (k, p)), ((n, k), (k, p)),
        ((b, n, k), (k, p)), ((n, k), (b, k, p)), ((b, n, k), (b, k, p)),
        ((1, n, k), (b, k, p)), ((b, n, k), (k,)), ((k,), (b, k, p)),
    ]))
    x, y = draw(float_arrays(a_shape)), draw(float_arrays(b_shape))
    return Case(f"matmul{_shape_text([x, y])}", lambda a, c: ops.matmul(a, c), [x, y])


@st.composite
def _linear_case(draw):
    n_in, n_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    lead = draw(st.sampled_from([(), (1,), (3,), (2, 3)]))
    x = draw(float_arrays(lead + (n_in,)))
    w, b = draw(float_arrays((n_out, n_in))), draw(float_arrays((n_out,)))
    return Case(f"linear{_shape_text([x, w, b])}", lambda a, c, d: ops.linear(a, c, d),
                [x, w, b])


@st.composite
def _reduction_case(draw, name):
    shape = draw(shapes())
    x = draw(distinct_arrays(shape) if name == "max" else float_arrays(shape))
    axis, keepdims = draw(axes(len(shape))), draw(st.booleans())
    # Through the Tensor method, so the derived `mean` is checked the same way.
    return Case(f"{name}{x.shape}, axis={axis}, keepdims={keepdims}",
                lambda a: getattr(a, name)(axis=axis, keepdims=keepdims), [x])


@st.composite
def _broadcast_to_case(draw):
    target = draw(shapes())
    # The input: some of target's axes made 1, and some leading axes dropped.
    ones = draw(st.lists(st.booleans(), min_size=len(target), max_size=len(target)))
    small = tuple(1 if one else n for one, n in zip(ones, target))
    small = small[draw(st.integers(0, len(target))):]
    x = draw(float_arrays(small))
    return Case(f"broadcast_to{x.shape} -> {target}",
                lambda a: ops.broadcast_to(a, shape=target), [x])


@st.composite
def _reshape_case(draw):
    shape = draw(shapes())
    size = int(np.prod(shape, dtype=int))
    new = draw(st.sampled_from([(size,), tuple(reversed(shape)), (1, *shape), (-1,),
                                (size, 1), shape]))
    x = draw(float_arrays(shape))
    return Case(f"reshape{x.shape} -> {new}", lambda a: ops.reshape(a, shape=new), [x])


@st.composite
def _transpose_case(draw):
    shape = draw(shapes(min_dims=1))
    perm = draw(st.none() | st.permutations(range(len(shape))).map(tuple))
    x = draw(float_arrays(shape))
    return Case(f"transpose{x.shape}, axes={perm}",
                lambda a: ops.transpose(a, axes=perm), [x])


@st.composite
def indices(draw, shape):
    """An index into an array of `shape`: int, slice, tuple, or integer array with repeats."""
    n = shape[0]
    kinds = ["int", "slice", "array"] + (["tuple"] if len(shape) >= 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        return draw(st.integers(-n, n - 1))
    if kind == "slice":
        start, stop = draw(st.integers(0, n - 1)), draw(st.integers(1, n))
        return slice(min(start, stop - 1), stop, draw(st.sampled_from([1, 2])))
    if kind == "array":  # repeats must accumulate in the gradient (scatter-add)
        return np.asarray(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5)))
    return (draw(st.integers(0, n - 1)), slice(None, None, -1))


@st.composite
def _getitem_case(draw):
    shape = draw(shapes(min_dims=1))
    index = draw(indices(shape))
    x = draw(float_arrays(shape))
    return Case(f"getitem{x.shape}[{index!r}]", lambda a: ops.getitem(a, index=index), [x])


@st.composite
def _scatter_add_case(draw):
    shape = draw(shapes(min_dims=1))
    index = draw(indices(shape))
    g = draw(float_arrays(np.zeros(shape)[index].shape))
    return Case(f"scatter_add{g.shape} into {shape} at {index!r}",
                lambda a: ops.scatter_add(a, index=index, shape=shape), [g])


@st.composite
def _distinct_pair_case(draw, name):
    """maximum/minimum of two broadcastable arrays whose entries all differ: no ties."""
    a_shape, b_shape = draw(broadcastable_pairs())
    size_a = int(np.prod(a_shape, dtype=int))
    both = draw(distinct_arrays((size_a + int(np.prod(b_shape, dtype=int)),)))
    x, y = both[:size_a].reshape(a_shape), both[size_a:].reshape(b_shape)
    prim = getattr(ops, name)
    return Case(f"{name}{_shape_text([x, y])}", lambda a, b: prim(a, b), [x, y])


@st.composite
def _clip_case(draw):
    lo = draw(st.floats(-1.5, 0.5))
    hi = lo + draw(st.floats(0.1, 2.0))

    def away(v: float) -> float:  # 3e-3 on from a bound: both kinks stay 1e-3 away
        return v + 3e-3 if min(abs(v - lo), abs(v - hi)) < 1e-3 else v

    x = draw(hnp.arrays(np.float64, draw(shapes()), elements=st.floats(-2, 2).map(away)))
    return Case(f"clip{x.shape}, lo={lo!r}, hi={hi!r}",
                lambda a: ops.clip(a, lo=lo, hi=hi), [x])


@st.composite
def _where_case(draw):
    shapes3 = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=MAX_DIMS,
                                                     max_side=MAX_SIDE)).input_shapes
    x, y = draw(float_arrays(shapes3[0])), draw(float_arrays(shapes3[1]))
    condition = draw(hnp.arrays(np.bool_, shapes3[2]))
    return Case(f"where{_shape_text([x, y])}, condition {condition.shape}",
                lambda a, b: ops.where(a, b, condition=condition), [x, y])


@st.composite
def _leaky_relu_case(draw):
    x = draw(shapes().flatmap(relu_inputs))
    slope = draw(st.floats(0.0, 0.5))
    return Case(f"leaky_relu{x.shape}, slope={slope!r}",
                lambda a: ops.leaky_relu(a, slope=slope), [x])


@st.composite
def _concatenate_case(draw):
    shape = draw(shapes(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    sides = draw(st.lists(st.integers(1, MAX_SIDE), min_size=1, max_size=3))
    xs = []
    for side in sides:
        piece = list(shape)
        piece[axis] = side
        xs.append(draw(float_arrays(tuple(piece))))
    return Case(f"concatenate({_shape_text(xs)}, axis={axis})",
                lambda *ts: ops.concatenate(ts, axis=axis), xs)


@st.composite
def _quadratic_cost_case(draw):
    a_shape, y_shape = draw(broadcastable_pairs())
    a, y = draw(float_arrays(a_shape)), draw(float_arrays(y_shape))
    n = draw(st.integers(1, 4))
    return Case(f"quadratic_cost{_shape_text([a, y])}, n={n}",
                lambda u, v: ops.quadratic_cost(u, v, n=n), [a, y])


@st.composite
def _cast_case(draw):
    # float64 -> longdouble -> float64 is exact, so gradcheck's float64 tolerance holds.
    x = draw(shapes().flatmap(float_arrays))
    return Case(f"cast{x.shape} to longdouble and back",
                lambda a: ops.cast(ops.cast(a, dtype=np.longdouble) * 2, dtype=np.float64), [x])


def _pow_case():
    positive = lambda shape: float_arrays(shape, 0.5, 2.0)  # noqa: E731  x ** y needs x > 0
    return _binary_case("pow", left=positive,
                        right=lambda shape: float_arrays(shape, -2.0, 2.0))


# --- images: convolution and pooling (tests/test_conv.py too) ---------------------------------


@dataclass
class Geometry:
    """An image batch (n, c, h, w), a kernel, a stride and a padding (pairs) that fit it."""

    shape: tuple[int, int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]

    @property
    def out(self) -> tuple[int, int]:
        return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in
                     zip(self.shape[2:], self.kernel, self.stride, self.padding))

    @property
    def params(self) -> dict:
        return {"kernel": self.kernel, "stride": self.stride, "padding": self.padding}


@st.composite
def geometries(draw, max_side: int = 5, max_channels: int = 2, pool: bool = False) -> Geometry:
    """Kernels from 1 to the whole padded input, strides 1 to 3, paddings 0 to 2 (for a pool,
    at most half the kernel, as PyTorch requires)."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, max_channels)),
             draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    kernel, stride, padding = [], [], []
    for size in shape[2:]:
        p = draw(st.integers(0, 2))
        k = draw(st.integers(max(1, 2 * p if pool else 1), size + 2 * p))
        kernel.append(k)
        padding.append(min(p, k // 2) if pool else p)
        stride.append(draw(st.integers(1, 3)))
    return Geometry(shape, tuple(kernel), tuple(stride), tuple(padding))


@st.composite
def _conv2d_case(draw, which: str = "conv2d"):
    geo = draw(geometries())
    c_out = draw(st.integers(1, 3))
    x = draw(float_arrays(geo.shape))
    w = draw(float_arrays((c_out, geo.shape[1], *geo.kernel)))
    g = draw(float_arrays((geo.shape[0], c_out, *geo.out)))
    conv = {"stride": geo.stride, "padding": geo.padding}
    text = f"{which} x{geo.shape} w{w.shape} stride {geo.stride} padding {geo.padding}"
    if which == "conv2d_input_grad":
        return Case(text, lambda a, b: ops.conv2d_input_grad(a, b, shape=x.shape, **conv), [g, w])
    if which == "conv2d_weight_grad":
        return Case(text, lambda a, b: ops.conv2d_weight_grad(a, b, shape=w.shape, **conv), [g, x])
    if draw(st.booleans()):
        return Case(text + " no bias", lambda a, b: ops.conv2d(a, b, **conv), [x, w])
    b = draw(float_arrays((c_out,)))
    return Case(text, lambda a, c, d: ops.conv2d(a, c, d, **conv), [x, w, b])


@st.composite
def _pool_case(draw, which: str):
    geo = draw(geometries(pool=True))
    x = draw(distinct_arrays(geo.shape))  # no ties: max's finite differences stay valid
    g = draw(float_arrays((*geo.shape[:2], *geo.out)))
    text = f"{which} x{geo.shape} {geo.params}"
    if which in ("max_pool2d", "avg_pool2d"):
        prim = getattr(ops, which)
        return Case(text, lambda a: prim(a, **geo.params), [x])
    if which == "avg_pool2d_backward":
        return Case(text, lambda a: ops.avg_pool2d_backward(a, shape=x.shape, **geo.params),
                    [g])
    y = ops.max_pool2d(x, **geo.params)
    if which == "max_pool2d_backward":
        return Case(text, lambda a: ops.max_pool2d_backward(a, x=x, y=y, **geo.params), [g])
    d = draw(float_arrays(geo.shape))
    return Case(text, lambda a: ops.max_pool2d_gather(a, x=x, y=y, **geo.params), [d])


@st.composite
def _pad_case(draw):
    x = draw(shapes(min_dims=1).flatmap(float_arrays))
    widths = tuple(draw(st.tuples(st.integers(0, 2), st.integers(0, 2))) for _ in x.shape)
    value = draw(st.sampled_from([0.0, -1.5]))  # (-inf: tests/test_conv.py; not summable)
    return Case(f"pad{x.shape} {widths} value {value}",
                lambda a: ops.pad(a, widths=widths, value=value), [x])


@st.composite
def _batch_norm_case(draw):
    """Through functional.batch_norm: the fused primitive with the batch statistics it needs
    (its VJPs differentiate them too, so finite differences must move them as well)."""
    from tinygrad_nn import functional as F

    n, c = draw(st.integers(2, 4)), draw(st.integers(1, 3))
    shape = draw(st.sampled_from([(n, c), (n, c, 2, 3), (1, c, 2, 2)]))
    x = draw(float_arrays(shape)) + draw(float_arrays((1, c) + (1,) * (len(shape) - 2)))
    if np.ptp(x.reshape(x.shape[0], c, -1).swapaxes(0, 1).reshape(c, -1), axis=1).min() < 0.1:
        x = x + np.linspace(0, 1, x.size).reshape(shape)  # keep every variance away from 0
    w, b = draw(float_arrays((c,))), draw(float_arrays((c,)))
    return Case(f"batch_norm{shape}",
                lambda a, u, v: F.batch_norm(a, None, None, u, v, training=True), [x, w, b])


@st.composite
def _elu_case(draw):
    x = draw(shapes().flatmap(relu_inputs))  # away from the kink at 0
    alpha = draw(st.floats(0.1, 2.0))
    return Case(f"elu{x.shape}, alpha={alpha!r}", lambda a: ops.elu(a, alpha=alpha), [x])


#: A strategy of valid calls for every differentiable primitive in `tinygrad_nn.ops` (the
#: comparisons, `isfinite` and `uniform` have no VJP to check), plus the derived
#: `mean` and `concatenate` (whose primitive is made per number of inputs). A test
#: checks that no primitive of `ops` is missing from this table.
primitive_cases = {
    "add": _binary_case("add"),
    "sub": _binary_case("sub"),
    "mul": _binary_case("mul"),
    "div": _binary_case("div", right=arrays_away_from_zero),
    "pow": _pow_case(),
    "neg": _unary_case("neg", float_arrays),
    "exp": _unary_case("exp", lambda s: float_arrays(s, -3.0, 3.0)),
    "log": _unary_case("log", lambda s: float_arrays(s, 0.1, 10.0)),
    "sigmoid": _unary_case("sigmoid", lambda s: float_arrays(s, -6.0, 6.0)),
    "sigmoid_slope": _sigmoid_slope_case(),
    "tanh": _unary_case("tanh", lambda s: float_arrays(s, -3.0, 3.0)),
    "relu": _unary_case("relu", relu_inputs),
    "matmul": _matmul_case(),
    "linear": _linear_case(),
    "sum": _reduction_case("sum"),
    "mean": _reduction_case("mean"),
    "max": _reduction_case("max"),
    "broadcast_to": _broadcast_to_case(),
    "reshape": _reshape_case(),
    "transpose": _transpose_case(),
    "getitem": _getitem_case(),
    "scatter_add": _scatter_add_case(),
    "sqrt": _unary_case("sqrt", lambda s: float_arrays(s, 0.1, 4.0)),
    "abs": _unary_case("abs", relu_inputs),  # away from the kink at 0
    "clip": _clip_case(),
    "maximum": _distinct_pair_case("maximum"),
    "minimum": _distinct_pair_case("minimum"),
    "where": _where_case(),
    "leaky_relu": _leaky_relu_case(),
    "softplus": _unary_case("softplus", lambda s: float_arrays(s, -6.0, 6.0)),
    "logsumexp": _reduction_case("logsumexp"),
    "concatenate": _concatenate_case(),
    "quadratic_cost": _quadratic_cost_case(),
    "cast": _cast_case(),
    "copy": _unary_case("copy", float_arrays),
    "log_sigmoid": _unary_case("log_sigmoid", lambda s: float_arrays(s, -6.0, 6.0)),
    "sign": _unary_case("sign", relu_inputs),  # away from the jump at 0
    "floor": _unary_case("floor", lambda s: away_from_integers(s)),
    # (x / y away from integers: y = 1 and x away from them, so no jump is crossed)
    "floor_divide": _binary_case("floor_divide", right=lambda s: float_arrays(s, 1.0, 1.0),
                                 left=lambda s: away_from_integers(s)),
    "remainder": _binary_case("remainder", right=lambda s: float_arrays(s, 1.0, 1.0),
                              left=lambda s: away_from_integers(s)),
    "conv2d": _conv2d_case(),
    "conv2d_input_grad": _conv2d_case("conv2d_input_grad"),
    "conv2d_weight_grad": _conv2d_case("conv2d_weight_grad"),
    "max_pool2d": _pool_case("max_pool2d"),
    "max_pool2d_backward": _pool_case("max_pool2d_backward"),
    "max_pool2d_gather": _pool_case("max_pool2d_gather"),
    "avg_pool2d": _pool_case("avg_pool2d"),
    "avg_pool2d_backward": _pool_case("avg_pool2d_backward"),
    "pad": _pad_case(),
    "batch_norm": _batch_norm_case(),
    "gelu": _unary_case("gelu", lambda s: float_arrays(s, -4.0, 4.0)),
    "normal_cdf": _unary_case("normal_cdf", lambda s: float_arrays(s, -4.0, 4.0)),
    "normal_pdf": _unary_case("normal_pdf", lambda s: float_arrays(s, -4.0, 4.0)),
    "silu": _unary_case("silu", lambda s: float_arrays(s, -6.0, 6.0)),
    "elu": _elu_case(),
}


# --- random expression trees ---------------------------------------------------------


@dataclass(eq=False)
class Expr:
    """A node of an expression tree; `value` is its value at the drawn inputs."""

    op: str
    children: tuple = ()
    params: dict = field(default_factory=dict)
    value: np.ndarray | None = None
    leaf: int = -1  # for op == "input": the position of the input

    def evaluate(self, inputs, occurrence=None) -> Tensor:
        """The tree on `inputs`; with `occurrence`, each input node (each *use* of an
        input) is replaced by `occurrence(node)` instead, to untie shared inputs."""
        if self.op == "input":
            return inputs[self.leaf] if occurrence is None else occurrence(self)
        return _APPLY[self.op](*(c.evaluate(inputs, occurrence) for c in self.children),
                               **self.params)

    def uses(self) -> list[Expr]:
        """The input nodes, one per use of an input."""
        if self.op == "input":
            return [self]
        return [node for c in self.children for node in c.uses()]

    def depth(self) -> int:
        return 1 + max((c.depth() for c in self.children), default=-1)

    def ops(self) -> set[str]:
        return {self.op}.union(*(c.ops() for c in self.children))

    def __str__(self) -> str:
        if self.op == "input":
            return f"x{self.leaf}"
        args = [str(c) for c in self.children]
        if self.op in _INFIX:
            return f"({args[0]} {_INFIX[self.op]} {args[1]})"
        if self.op == "div_square_plus_one":
            return f"({args[0]} / ({args[1]}² + 1))"
        if self.op == "relu" and self.params["t"]:
            return f"relu({args[0]} - {self.params['t']!r})"
        if self.op == "relu":
            return f"relu({args[0]})"
        args += [f"{k}={v}" for k, v in self.params.items()]
        return f"{self.op}({', '.join(args)})"


_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@"}
_APPLY = {
    "neg": lambda a: -a,
    "exp": lambda a: a.exp(),
    "log1p_square": lambda a: (a * a + 1).log(),  # log of a positive: log(x² + 1)
    "sigmoid": lambda a: a.sigmoid(),
    "tanh": lambda a: a.tanh(),
    "relu": lambda a, t: (a - t).relu() if t else a.relu(),
    "sum": lambda a, axis, keepdims: a.sum(axis=axis, keepdims=keepdims),
    "mean": lambda a, axis, keepdims: a.mean(axis=axis, keepdims=keepdims),
    "max": lambda a, axis, keepdims: a.max(axis=axis, keepdims=keepdims),
    "reshape": lambda a, shape: a.reshape(shape),
    "transpose": lambda a, axes: a.transpose(axes) if axes is not None else a.T,
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "div_square_plus_one": lambda a, b: a / (b * b + 1),  # a denominator >= 1
    "matmul": lambda a, b: a @ b,
}

#: Thresholds that keep finite differences valid: relu's argument stays 1e-3 from 0,
#: the largest entry of a max beats the runner-up by 1e-3, denominators have
#: |y| >= 0.5 and exp's argument is at most 3 (so values stay moderate).
KINK_MARGIN, MIN_DENOMINATOR, MAX_EXP_ARG = 1e-3, 0.5, 3.0


def _top_gap(value: np.ndarray, axis) -> float:
    """The smallest gap between the largest and the second largest entry along `axis`."""
    reduced = _normal_axes(axis, value.ndim)
    kept = [n for i, n in enumerate(value.shape) if i not in reduced]
    rows = np.moveaxis(value, sorted(reduced), range(value.ndim - len(reduced), value.ndim))
    rows = rows.reshape(*kept, -1)
    if rows.shape[-1] < 2:
        return np.inf
    top2 = np.sort(rows, axis=-1)[..., -2:]
    return float(np.min(top2[..., 1] - top2[..., 0]))


def _normal_axes(axis, ndim: int) -> set[int]:
    if axis is None:
        return set(range(ndim))
    return {a % ndim for a in (axis if isinstance(axis, tuple) else (axis,))}


class _ExprBuilder:
    """Builds a tree top-down from the wanted output shape; values are computed bottom-up.

    Each node first builds its children, then picks among the operations that are
    valid at the children's values (relu only away from 0, max only without near
    ties, / only with safe denominators, exp only of bounded arguments).
    """

    def __init__(self, draw, inputs: list[np.ndarray]):
        self.draw, self.inputs = draw, inputs

    def leaf(self, shape) -> Expr:
        same = [i for i, x in enumerate(self.inputs) if x.shape == shape]
        if same and self.draw(st.booleans(), label="reuse an input"):
            i = self.draw(st.sampled_from(same))
        else:
            # Distinct entries (gaps 0.01 to 0.2): ties in max come only from the
            # expression itself (e.g. broadcasting), not from Hypothesis' favourite zeros.
            self.inputs.append(self.draw(distinct_arrays(shape, 1e-2, 0.2), label="input"))
            i = len(self.inputs) - 1
        return Expr("input", value=self.inputs[i], leaf=i)

    def node(self, op: str, children: tuple, **params) -> Expr:
        with no_grad():
            value = _APPLY[op](*(Tensor(c.value) for c in children), **params).data
        return Expr(op, children, params, value)

    def build(self, shape: tuple, depth: int) -> Expr:
        if depth == 0:
            return self.leaf(shape)
        # Hypothesis draws (and shrinks towards) the first entries of a list more often,
        # so the lists put the operations with the most to check first.
        kinds = ["binary", "unary", "reduce", "matmul", "reshape"]
        if len(shape) >= 2:
            kinds.append("transpose")
        kind = self.draw(st.sampled_from(kinds), label="node")
        return getattr(self, kind)(shape, depth - 1)

    def unary(self, shape, depth) -> Expr:
        child = self.build(shape, depth)
        v = child.value
        ops_ok = ["relu", "exp", "log1p_square", "sigmoid", "tanh", "neg"]
        if np.max(v) > MAX_EXP_ARG:
            ops_ok.remove("exp")
        op = self.draw(st.sampled_from(ops_ok), label="unary")
        if op != "relu":
            return self.node(op, (child,))
        # relu(x - t), with t = 0 when every entry is 1e-3 away from 0, else the middle of
        # the widest gap between the sorted entries (if one is wide enough).
        t = 0.0
        if np.min(np.abs(v)) < KINK_MARGIN:
            points = np.unique(v)
            if points.size < 2 or np.max(np.diff(points)) < 2 * KINK_MARGIN:
                return self.node("neg", (child,))
            i = int(np.argmax(np.diff(points)))
            t = float((points[i] + points[i + 1]) / 2)
        return self.node("relu", (child,), t=t)

    def reduce(self, shape, depth) -> Expr:
        keep_at = [i for i, n in enumerate(shape) if n == 1]
        choices = ["drop"] if len(shape) < MAX_DIMS else []
        choices += ["keep"] if keep_at else []
        if not choices:
            return self.unary(shape, depth)
        how = self.draw(st.sampled_from(choices), label="reduce how")
        k = self.draw(st.integers(1, MAX_SIDE), label="reduced side")
        if how == "keep":
            i = self.draw(st.sampled_from(keep_at))
            child_shape, keepdims = shape[:i] + (k,) + shape[i + 1:], True
        else:
            i = self.draw(st.integers(0, len(shape)))
            child_shape, keepdims = shape[:i] + (k,) + shape[i:], False
        ndim = len(child_shape)
        axis = i - ndim if self.draw(st.booleans(), label="negative axis") else i
        if ndim == 1 and not keepdims and self.draw(st.booleans(), label="axis=None"):
            axis = None
        child = self.build(child_shape, depth)
        ops_ok = ["max", "mean", "sum"]
        if _top_gap(child.value, axis) < KINK_MARGIN:
            ops_ok.remove("max")
        op = self.draw(st.sampled_from(ops_ok), label="reduction")
        return self.node(op, (child,), axis=axis, keepdims=keepdims)

    def reshape(self, shape, depth) -> Expr:
        size = int(np.prod(shape, dtype=int))
        options = {(size,), tuple(reversed(shape)), (size, 1)}
        if len(shape) < MAX_DIMS:
            options.add((1, *shape))
        options = sorted(o for o in options if o != shape and len(o) <= MAX_DIMS)
        if not options:
            return self.unary(shape, depth)
        child = self.build(self.draw(st.sampled_from(options), label="reshape from"), depth)
        return self.node("reshape", (child,), shape=shape)

    def transpose(self, shape, depth) -> Expr:
        perm = self.draw(st.none() | st.permutations(range(len(shape))).map(tuple))
        if perm is None:
            child_shape = tuple(reversed(shape))
        else:
            child_shape = [0] * len(shape)
            for i, p in enumerate(perm):
                child_shape[p] = shape[i]
            child_shape = tuple(child_shape)
        return self.node("transpose", (self.build(child_shape, depth),), axes=perm)

    def binary(self, shape, depth) -> Expr:
        # Each operand keeps an axis or makes it 1 (broadcast); every axis longer than 1
        # is kept by at least one operand. Then drop some leading axes of one operand.
        keep_a = self.draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
        keep_b = self.draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
        keep_a = [ka or (not kb and n > 1) for ka, kb, n in zip(keep_a, keep_b, shape)]
        a_shape = tuple(n if k else 1 for n, k in zip(shape, keep_a))
        b_shape = tuple(n if k else 1 for n, k in zip(shape, keep_b))
        # b may lose leading axes that a fully provides.
        droppable = 0
        while droppable < len(shape) and (keep_a[droppable] or shape[droppable] == 1):
            droppable += 1
        b_shape = b_shape[self.draw(st.integers(0, droppable), label="dropped axes"):]
        if self.draw(st.booleans(), label="swap operands"):
            a_shape, b_shape = b_shape, a_shape
        left, right = self.build(a_shape, depth), self.build(b_shape, depth)
        op = self.draw(st.sampled_from(["mul", "div", "sub", "add"]), label="binary")
        if op == "div" and np.min(np.abs(right.value)) < MIN_DENOMINATOR:
            op = "div_square_plus_one"
        return self.node(op, (left, right))

    def matmul(self, shape, depth) -> Expr:
        k = self.draw(st.integers(1, MAX_SIDE), label="inner")
        if len(shape) == 0:
            a_shape, b_shape = (k,), (k,)
        elif len(shape) == 1:
            (n,) = shape
            a_shape, b_shape = self.draw(st.sampled_from([((n, k), (k,)), ((k,), (k, n))]))
        else:
            *batch, n, p = shape
            batch = tuple(batch)
            a_shape, b_shape = self.draw(st.sampled_from([
                (batch + (n, k), (k, p)), ((n, k), batch + (k, p)),
                (batch + (n, k), batch + (k, p))]))
        left, right = self.build(a_shape, depth), self.build(b_shape, depth)
        return self.node("matmul", (left, right))


@dataclass
class Expression:
    """A drawn expression tree and the inputs it is evaluated at."""

    root: Expr
    inputs: list[np.ndarray]

    def __call__(self, *tensors: Tensor) -> Tensor:
        return self.root.evaluate(tensors)

    def contribution_sizes(self, scale: float = 1.0) -> list[np.ndarray]:
        """Per input, Σ over its uses of |scale · ∂sum(expr)/∂(that use)|.

        The autograd sums one contribution per use of an input; the rounding of that
        sum is relative to these sizes, not to the (possibly cancelled) total.
        """
        uses = self.root.uses()
        tensors = {id(node): Tensor(self.inputs[node.leaf], requires_grad=True)
                   for node in uses}
        out = self.root.evaluate(self.inputs, lambda node: tensors[id(node)]).sum()
        sizes = [np.zeros(x.shape) for x in self.inputs]
        if not out.requires_grad:
            return sizes
        grads = grad(out, [tensors[id(node)] for node in uses], allow_unused=True)
        for node, g in zip(uses, grads):
            if g is not None:
                sizes[node.leaf] = sizes[node.leaf] + np.abs(scale * g.data)
        return sizes

    def describe(self) -> str:
        shapes_text = ", ".join(f"x{i}: {x.shape}" for i, x in enumerate(self.inputs))
        return f"{self.root}  with inputs {shapes_text}"


MAX_DEPTH = 3


@st.composite
def expressions(draw, max_depth: int = MAX_DEPTH) -> Expression:
    """A random expression of depth <= max_depth over fresh (sometimes shared) inputs."""
    inputs: list[np.ndarray] = []
    builder = _ExprBuilder(draw, inputs)
    shape = draw(shapes(), label="output shape")
    root = builder.build(shape, draw(st.integers(1, max_depth), label="max depth"))
    return Expression(root, inputs)


@st.composite
def expression_pairs(draw, max_depth: int = MAX_DEPTH) -> tuple[Expression, Expression]:
    """Two expressions f, g over one shared list of inputs (g reuses f's where shapes fit)."""
    inputs: list[np.ndarray] = []
    builder = _ExprBuilder(draw, inputs)
    f = builder.build(draw(shapes(), label="f shape"), draw(st.integers(1, max_depth)))
    g = builder.build(draw(shapes(), label="g shape"), draw(st.integers(1, max_depth)))
    return Expression(f, inputs), Expression(g, inputs)


# --- one call of each derived function (functional.py) -------------------------------------


def _count(shape, axis) -> int:
    """How many elements each output of a reduction over `axis` combines."""
    return int(np.prod([shape[a] for a in _normal_axes(axis, len(shape))], dtype=int))


@st.composite
def _min_case(draw):
    shape = draw(shapes())
    x = draw(distinct_arrays(shape))  # no ties: min's kink
    axis, keepdims = draw(axes(len(shape))), draw(st.booleans())
    return Case(f"min{x.shape}, axis={axis}, keepdims={keepdims}",
                lambda a: a.min(axis=axis, keepdims=keepdims), [x])


@st.composite
def _spread_case(draw, name):
    """var or std over `axis` with ddof 0 or 1, reducing more than ddof elements.

    std's gradient (x - m)/((n - ddof) σ) is infinite where σ = 0, so std reduces at least
    two distinct entries (distinct arrays: σ > 0); var is smooth everywhere.
    """
    least = 2 if name == "std" else 1
    shape = draw(shapes(min_dims=1).filter(lambda s: np.prod(s) >= least))
    x = draw(distinct_arrays(shape))
    axis, keepdims = draw(axes(len(shape))), draw(st.booleans())
    if _count(shape, axis) < least:
        axis = None
    ddof = draw(st.integers(0, min(1, _count(shape, axis) - least)))
    return Case(f"{name}{x.shape}, axis={axis}, keepdims={keepdims}, ddof={ddof}",
                lambda a: getattr(a, name)(axis=axis, keepdims=keepdims, ddof=ddof), [x])


@st.composite
def _softmax_case(draw, name):
    shape = draw(shapes(min_dims=1))
    x = draw(float_arrays(shape, -5.0, 5.0))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return Case(f"{name}{x.shape}, axis={axis}", lambda a: getattr(a, name)(axis=axis), [x])


@st.composite
def _functional_where_case(draw):
    """functional.where(condition, x, y): the condition as a list, array or boolean Tensor."""
    shapes3 = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=MAX_DIMS,
                                                     max_side=MAX_SIDE)).input_shapes
    x, y = draw(float_arrays(shapes3[0])), draw(float_arrays(shapes3[1]))
    condition = draw(hnp.arrays(np.bool_, shapes3[2]))
    given = draw(st.sampled_from([condition, condition.tolist(), Tensor(condition)]))
    from tinygrad_nn import functional

    return Case(f"where(condition {condition.shape}, {_shape_text([x, y])})",
                lambda a, b: functional.where(given, a, b), [x, y])


@st.composite
def _stack_case(draw):
    shape = draw(shapes())
    n = draw(st.integers(1, 3))
    xs = [draw(float_arrays(shape)) for _ in range(n)]
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    from tinygrad_nn import functional

    return Case(f"stack({_shape_text(xs)}, axis={axis})",
                lambda *ts: functional.stack(ts, axis=axis), xs)


@st.composite
def _squeeze_case(draw):
    shape = draw(shapes())
    ones = [i for i, n in enumerate(shape) if n == 1]  # only these may be named
    axis = None
    if ones:
        axis = draw(st.none() | st.sampled_from(ones)
                    | st.lists(st.sampled_from(ones), unique=True).map(tuple))
    x = draw(float_arrays(shape))
    return Case(f"squeeze{x.shape}, axis={axis}", lambda a: a.squeeze(axis), [x])


@st.composite
def _unsqueeze_case(draw):
    shape = draw(shapes())
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    x = draw(float_arrays(shape))
    return Case(f"unsqueeze{x.shape}, axis={axis}", lambda a: a.unsqueeze(axis), [x])


@st.composite
def _flatten_case(draw):
    shape = draw(shapes())
    start = draw(st.integers(-len(shape), len(shape) - 1)) if shape else 0
    x = draw(float_arrays(shape))
    return Case(f"flatten{x.shape}, start_axis={start}", lambda a: a.flatten(start), [x])


#: A strategy of valid calls for every function of `tinygrad_nn.functional` that is not in
#: `primitive_cases` (mean is there). Inputs avoid the kinks: no ties for min, σ > 0 for std.
derived_cases = {
    "min": _min_case(),
    "var": _spread_case("var"),
    "std": _spread_case("std"),
    "softmax": _softmax_case("softmax"),
    "log_softmax": _softmax_case("log_softmax"),
    "where": _functional_where_case(),
    "stack": _stack_case(),
    "squeeze": _squeeze_case(),
    "unsqueeze": _unsqueeze_case(),
    "flatten": _flatten_case(),
}


# --- classification batches for the losses of logits ---------------------------------------


@dataclass
class ClassificationBatch:
    """Logits (n, classes), integer labels (n,) and rows of probabilities (n, classes)."""

    logits: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray


@st.composite
def classification_batches(draw, max_examples: int = 5, max_classes: int = 5,
                           scale: float = 5.0) -> ClassificationBatch:
    """1 to `max_examples` examples of 1 to `max_classes` classes, logits in [-scale, scale].

    The probability rows are positive (at least ~1e-3 / classes per entry) and sum to 1.
    """
    n = draw(st.integers(1, max_examples), label="n")
    classes = draw(st.integers(1, max_classes), label="classes")
    logits = draw(float_arrays((n, classes), -scale, scale), label="logits")
    labels = draw(hnp.arrays(np.int64, n, elements=st.integers(0, classes - 1)), label="labels")
    weights = draw(float_arrays((n, classes), 0.0, 1.0), label="weights") + 1e-3
    return ClassificationBatch(logits, labels, weights / weights.sum(axis=1, keepdims=True))


# --- fuzzing the public API (tests/test_fuzz.py) ---------------------------------------------
# Unlike the strategies above, these draw *invalid* inputs too: empty and 0-d arrays, integer
# dtypes, axes and indices out of range, shapes that do not broadcast or reshape.

#: Values of fuzzed arrays: |x| <= 50, so e^x stays finite even in float32 (max ~3.4e38).
FUZZ_BOUND = 50


def fuzz_dtypes():
    """float64, float32 or int64 (integer tensors are allowed everywhere but requires_grad)."""
    return st.sampled_from([np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.int64)])


def fuzz_shapes(pairs: bool = False):
    """A shape of 0 to 3 axes of length 0 to 3 (0-d and empty included); with pairs=True, two
    shapes that broadcast together."""
    if pairs:
        return hnp.mutually_broadcastable_shapes(
            num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=3
        ).map(lambda s: s.input_shapes)
    return hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)


def fuzz_arrays(dtype, shape):
    """Finite values of `dtype`: integers in [-20, 20], floats in [-50, 50] (zeros included)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "i":
        elements = st.integers(-20, 20)
    else:
        elements = st.floats(-FUZZ_BOUND, FUZZ_BOUND, width=dtype.itemsize * 8,
                             allow_subnormal=False)
    return hnp.arrays(dtype, shape, elements=elements)


def fuzz_axes(ndim: int):
    """A reduction's `axis`: None, an int or a tuple, in range or not, repeats included."""
    axis = st.integers(-ndim - 2, ndim + 1)
    return st.none() | axis | st.lists(axis, max_size=3).map(tuple)


@st.composite
def fuzz_new_shapes(draw, size: int):
    """A target of reshape for an array of `size` elements: often valid, sometimes not."""
    kind = draw(st.sampled_from(["split", "split", "random", "int"]))
    if kind == "int":
        return draw(st.integers(-2, 30))
    if kind == "random":
        return tuple(draw(st.lists(st.integers(-2, 6), max_size=4)))
    divisors = [d for d in range(1, size + 1) if size % d == 0] or [0, 1, 2]
    d = draw(st.sampled_from(divisors))
    rest = size // d if d else draw(st.integers(0, 3))
    shape = draw(st.sampled_from([(size,), (-1,), (d, rest), (rest, d), (d, -1), (-1, d),
                                  (1, d, rest), (d, 1, -1), ()]))
    return shape


def _fuzz_slices():
    bound = st.none() | st.integers(-4, 4)
    return st.builds(slice, bound, bound, st.sampled_from([None, 1, 2, -1, -2, 0]))


def fuzz_indices(shape):
    """An index for x[...]: ints and slices in and out of range, None, Ellipsis, lists of
    ints, and tuples of these (too many of them included)."""
    del shape  # drawn independently of the shape on purpose: out of range is the point
    single = (st.integers(-4, 4) | _fuzz_slices() | st.none() | st.just(Ellipsis)
              | st.lists(st.integers(-4, 4), max_size=3))
    return single | st.lists(single, min_size=1, max_size=4).map(tuple)


# --- training steps for capture and replay (tests/test_jit.py) -------------------------------
# Names only: tests/test_jit.py builds the models, costs and optimizers they stand for.

#: Optimizer configurations: plain SGD, momentum, Nesterov with weight decay, Adam, AdamW.
JIT_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
#: Costs of a module's outputs: quadratic (eq. 2.1) on sigmoid outputs, softmax
#: cross-entropy with integer labels, and the sequel's cross-entropy from logits.
JIT_COSTS = ("quadratic", "cross_entropy", "binary_cross_entropy_with_logits")
JIT_ACTIVATIONS = ("sigmoid", "tanh", "relu")


@dataclass
class TrainingRun:
    """A model and a sequence of training steps, by name: what one step of `jit` must replay.

    `batch_sizes[k]` is the mini-batch of step k; the first three are equal, so the first
    plan is captured, checked and replayed at least once. Labels for ``cross_entropy`` are
    `label_dtype` integers; targets of the other costs are floats of `target_dtype` (None:
    the model's dtype). `seed` seeds the weights and every mini-batch.
    """

    sizes: list[int]
    activation: str
    cost: str
    optimizer: str
    dtype: type
    batch_sizes: list[int]
    seed: int
    label_dtype: type = np.int64
    target_dtype: type | None = None

    def describe(self) -> str:
        return (f"sizes={self.sizes}, {self.activation}, cost {self.cost}, {self.optimizer}, "
                f"{np.dtype(self.dtype).name}, batches {self.batch_sizes}, seed {self.seed}, "
                f"labels {np.dtype(self.label_dtype).name}, targets {self.target_dtype}")


@st.composite
def training_runs(draw, min_layers: int = 2, max_layers: int = 4, max_width: int = 12,
                  min_steps: int = 3, max_steps: int = 8, max_batch: int = 8) -> TrainingRun:
    """An architecture (widths 1 to `max_width`), an activation, a cost, an optimizer, a dtype
    (float64 or float32) and `min_steps` to `max_steps` mini-batch sizes of two kinds."""
    sizes = draw(architectures(min_layers, max_layers, max_width), label="sizes")
    activation = draw(st.sampled_from(JIT_ACTIVATIONS), label="activation")
    cost = draw(st.sampled_from(JIT_COSTS), label="cost")
    optimizer = draw(st.sampled_from(JIT_OPTIMIZERS), label="optimizer")
    dtype = draw(st.sampled_from([np.float64, np.float32]), label="dtype")
    first = draw(st.integers(1, max_batch), label="first batch size")
    other = draw(st.integers(1, max_batch), label="other batch size")
    steps = draw(st.integers(max(min_steps, 3), max(max_steps, 3)), label="steps")
    rest = draw(st.lists(st.sampled_from([first, other]), min_size=steps - 3,
                         max_size=steps - 3), label="later batch sizes")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    label_dtype = draw(st.sampled_from([np.int64, np.int32]), label="label dtype")
    target_dtype = draw(st.sampled_from([None, np.float64]), label="target dtype")
    return TrainingRun(sizes, activation, cost, optimizer, dtype, [first] * 3 + rest, seed,
                       label_dtype, target_dtype)


@dataclass
class SGDRun:
    """Arguments of `Network.SGD` on random data: `n` examples of which the last mini-batch
    has `n % mini_batch_size` (when not 0) examples."""

    sizes: list[int]
    activation: str
    n: int
    mini_batch_size: int
    epochs: int
    eta: float
    lmbda: float
    seed: int


@st.composite
def sgd_runs(draw, max_layers: int = 4, max_width: int = 12) -> SGDRun:
    """Network sizes, a mini-batch size of 1 to 10 and a data set of 1 to 4 full mini-batches
    plus a remainder (often not 0: a short last mini-batch), 1 to 3 epochs, lmbda 0 or > 0."""
    sizes = draw(architectures(2, max_layers, max_width), label="sizes")
    activation = draw(st.sampled_from(JIT_ACTIVATIONS), label="activation")
    mini_batch_size = draw(st.integers(1, 10), label="mini_batch_size")
    full = draw(st.integers(1, 4), label="full mini-batches")
    remainder = draw(st.integers(0, mini_batch_size - 1), label="short last mini-batch")
    epochs = draw(st.integers(1, 3), label="epochs")
    eta = draw(st.sampled_from([0.1, 1.0, 3.0]), label="eta")
    lmbda = draw(st.sampled_from([0.0, 0.1, 5.0]), label="lmbda")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    return SGDRun(sizes, activation, mini_batch_size * full + remainder, mini_batch_size,
                  epochs, eta, lmbda, seed)


# --- differential runs of a jitted step (tests/test_jit_differential.py) ---------------------
# Names only, as above: tests/test_jit_differential.py builds the models, steps and changes.

#: Hidden activations: nn's modules, and functions of Tensor methods and `F.where`.
DIFF_ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "where_leaky", "maximum_leaky",
                    "clip", "abs_relu")
#: Every cost of tinygrad_nn.costs (cross_entropy with labels and with one-hot rows, nll_loss
#: on log_softmax) and a Huber loss written with `F.where`.
DIFF_COSTS = ("quadratic", "cross_entropy_cost", "cross_entropy_labels", "cross_entropy_one_hot",
              "bce_with_logits", "nll_log_softmax", "huber")
#: Every optimizer of tinygrad_nn.optim, with and without momentum and weight decay.
DIFF_OPTIMIZERS = ("sgd", "sgd_weight_decay", "momentum", "nesterov", "adam",
                   "adam_weight_decay", "adamw")
#: Changes made to both twins between two calls ("none" first: what examples shrink to).
DIFF_CHANGES = ("none", "lr", "clear_state", "drop_state_entry", "drop_momentum",
                "remove_param", "eval", "train", "dropout_p", "zero_grad_outside")
#: What the step returns (it also always stores its cost in a dict, outside its result).
DIFF_RETURNS = ("cost", "cost_and_output", "dict", "nothing")


@dataclass
class DifferentialRun:
    """A model, an optimizer and the calls of one training step, by name.

    `calls[k]` is (rows, negated): a negated call feeds minus the previous call's inputs (its
    first rows) with the same targets, so every first-layer x·wᵀ flips sign and every mask
    after it (relu, where, maximum, clip, abs) changes; ``init="xavier"`` starts the biases
    at 0, so then every first-layer pre-activation flips. Only the last call may be short.
    `changes[k]` is made to both twins before call k + 1: (a name of `DIFF_CHANGES`, a small
    integer choosing the parameter, the factor or the new p). `zero_grad` False: the step
    never zeroes the gradients (they accumulate, as in PyTorch).
    """

    sizes: list[int]
    activations: list[str]
    init: str
    dropout: float | None
    cost: str
    optimizer: str
    dtype: type
    calls: list[tuple[int, bool]]
    changes: list[tuple[str, int]]
    zero_grad: bool
    returns: str
    seed: int


@st.composite
def differential_runs(draw, activations=DIFF_ACTIVATIONS, costs=DIFF_COSTS,
                      changes=("none",), zero_grad: bool | None = True, min_calls: int = 6,
                      max_calls: int = 9) -> DifferentialRun:
    """Tiny models (1 or 2 hidden layers of 2 to 8 units) of the given `activations` and
    `costs`, any optimizer and dtype, and `min_calls` to `max_calls` calls on fresh or
    negated batches (the last possibly short), with `changes` drawn between calls (pass
    DIFF_CHANGES for all); `zero_grad` None: drawn."""
    sizes = [draw(st.integers(1, 4), label="n_in"),
             *draw(st.lists(st.integers(2, 8), min_size=1, max_size=2), label="hidden"),
             draw(st.integers(1, 4), label="n_out")]
    hidden = st.sampled_from(activations)
    chosen = draw(st.lists(hidden, min_size=len(sizes) - 2, max_size=len(sizes) - 2),
                  label="activations")
    rows = draw(st.integers(1, 6), label="rows")
    n = draw(st.integers(min_calls, max_calls), label="calls")
    negated = draw(st.lists(st.booleans(), min_size=n - 1, max_size=n - 1), label="negated")
    last = draw(st.integers(1, rows), label="rows of the last call")
    calls = [(rows, False), *((rows, neg) for neg in negated[:-1]), (last, negated[-1])]
    change = st.tuples(st.sampled_from(changes), st.integers(0, 7))
    return DifferentialRun(
        sizes, chosen, draw(st.sampled_from(["xavier", "scaled"]), label="init"),
        draw(st.sampled_from([None, 0.3]), label="dropout"),
        draw(st.sampled_from(costs), label="cost"),
        draw(st.sampled_from(DIFF_OPTIMIZERS), label="optimizer"),
        draw(st.sampled_from([np.float64, np.float32]), label="dtype"), calls,
        draw(st.lists(change, min_size=n - 1, max_size=n - 1), label="changes"),
        draw(st.booleans() if zero_grad is None else st.just(zero_grad), label="zero_grad"),
        draw(st.sampled_from(DIFF_RETURNS), label="returns"),
        draw(st.integers(0, 2**32 - 1), label="seed"))


@st.composite
def changes_after_forward(draw, max_depth: int = MAX_DEPTH):
    """(expression, fill, changed) for tests/test_aliasing.py: an `expressions()` tree, a
    value to overwrite every user array with after the forward pass (nan included), and per
    input whether an optimizer steps it between forward and backward (at least one does)."""
    expression = draw(expressions(max_depth), label="expression")
    fill = draw(st.sampled_from([0.0, -1.0, 7.5, 1e6, np.nan]), label="fill")
    n = len(expression.inputs)
    changed = draw(st.lists(st.booleans(), min_size=n, max_size=n).filter(any), label="changed")
    return expression, fill, changed


# --- memory layouts (tests/test_gradcheck.py) -------------------------------------------------

#: Ways one array of values can sit in memory: what code that writes into an input
#: (finite differences) or reads it through `reshape` must survive.
LAYOUTS = ("C", "Fortran", "transposed", "read-only", "broadcast", "strided", "reversed")


@st.composite
def laid_out_arrays(draw, low: float = -2.0, high: float = 2.0) -> tuple[str, np.ndarray]:
    """(layout, array): float64 values in [low, high], 1 to 3 axes of side 1 to 3, laid out
    as one of `LAYOUTS` (a broadcast view is read-only with a zero stride)."""
    layout = draw(st.sampled_from(LAYOUTS), label="layout")
    shape = draw(shapes(min_dims=1), label="shape")
    if layout == "broadcast":
        axis = draw(st.integers(0, len(shape) - 1), label="broadcast axis")
        small = draw(float_arrays(shape[:axis] + (1,) + shape[axis + 1:], low, high))
        return layout, np.broadcast_to(small, shape)
    if layout == "transposed":
        return layout, draw(float_arrays(shape[::-1], low, high)).T
    if layout == "strided":  # every other element along every axis of a bigger array
        return layout, draw(float_arrays(tuple(2 * n for n in shape), low, high))[
            tuple(slice(None, None, 2) for _ in shape)]
    values = draw(float_arrays(shape, low, high))
    if layout == "Fortran":
        return layout, np.asfortranarray(values)
    if layout == "read-only":
        values.flags.writeable = False
    elif layout == "reversed":
        values = values[::-1]
    return layout, values
