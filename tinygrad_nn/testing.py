"""A kit to check your own operation: the property suite's Hypothesis strategies and
`check_primitive`.

A primitive (`ops.Primitive`) is a forward on arrays beside one vector–Jacobian product
per input, vjp(g, out, *inputs, **params) = g · ∂out/∂input. `check_primitive` draws
float64 inputs with Hypothesis, calls every VJP and compares it with central differences
(`gradcheck.numerical_grad`), compares the forward on arrays with the forward on Tensors,
and raises AssertionError with the counterexample when they disagree:

>>> import numpy as np
>>> from tinygrad_nn import ops
>>> square = ops.Primitive("square", np.square, lambda g, out, x: g * 2 * x)
>>> check_primitive(square, (2, 3))  # passes: nothing to say
>>> half = ops.Primitive("half_square", np.square, lambda g, out, x: g * x)
>>> check_primitive(half, (2, 3))
Traceback (most recent call last):
...
AssertionError: check_primitive: <primitive half_square>: the VJP of input 0 disagrees ...

The strategies are the ones the project's own properties draw from (tests/strategies.py
re-exports them): arrays of given shapes and dtypes, away from kinks or at them, arrays
with no ties, broadcasting shape pairs, boundary values (zeros, kinks, saturation, inf,
nan), and small sigmoid networks with their mini-batch, in the layout of
`tinygrad_nn.backprop`.

This module needs Hypothesis (``pip install hypothesis``); ``import tinygrad_nn`` does
not import it, so the package itself still needs numpy alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from . import ops
from .gradcheck import numerical_grad
from .tensor import Tensor

__all__ = [
    "BOUNDARY_VALUES",
    "FLOAT_DTYPES",
    "MAX_DIMS",
    "MAX_SIDE",
    "MODERATE_SCALES",
    "SATURATING_SHIFTS",
    "SATURATION",
    "WEIGHT_SCALES",
    "Network",
    "architectures",
    "arrays_at_kinks",
    "arrays_away_from_kinks",
    "arrays_away_from_zero",
    "away_from_integers",
    "axes",
    "boundary_arrays",
    "broadcastable_pairs",
    "check_primitive",
    "distinct_arrays",
    "float_arrays",
    "make_network",
    "networks",
    "relu_inputs",
    "saturated_logits",
    "shapes",
]

Shape = tuple[int, ...]

# --- arrays ----------------------------------------------------------------------------

#: Shapes of at most 3 dimensions of side at most 3: small, so finite differences
#: (two evaluations per element) stay cheap.
MAX_DIMS, MAX_SIDE = 3, 3


def shapes(min_dims: int = 0, max_dims: int = MAX_DIMS,
           max_side: int = MAX_SIDE) -> st.SearchStrategy[Shape]:
    """Shapes of `min_dims` to `max_dims` axes of side 1 to `max_side` (0-d included)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1,
                            max_side=max_side)


def _bounds_in(dtype: np.dtype, low: float, high: float) -> tuple[float, float]:
    """[low, high] narrowed to numbers `dtype` represents exactly (Hypothesis asks it of a
    float16 or float32 range): the bounds move inward, never outward."""
    t = dtype.type
    lo, hi = t(low), t(high)
    if float(lo) < low:
        lo = np.nextafter(lo, t(np.inf))
    if float(hi) > high:
        hi = np.nextafter(hi, t(-np.inf))
    return float(lo), float(hi)


def float_arrays(shape: Shape, low: float = -2.0, high: float = 2.0,
                 dtype: Any = "float64") -> st.SearchStrategy[np.ndarray]:
    """Arrays of `shape` and float `dtype` with finite entries in [low, high]."""
    dtype = np.dtype(dtype)
    lo, hi = _bounds_in(dtype, low, high)
    return hnp.arrays(dtype, shape, elements=st.floats(lo, hi, width=dtype.itemsize * 8,
                                                       allow_subnormal=False))


def arrays_away_from_zero(shape: Shape, low: float = 0.5,
                          high: float = 2.0) -> st.SearchStrategy[np.ndarray]:
    """float64 entries with low <= |x| <= high, either sign: safe denominators."""
    magnitudes = float_arrays(shape, low, high)
    signs = hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 1.0]))
    return st.builds(np.multiply, magnitudes, signs)


def relu_inputs(shape: Shape) -> st.SearchStrategy[np.ndarray]:
    """Entries with |x| >= 1e-3: a finite difference of step 1e-6 never crosses relu's kink."""
    return arrays_away_from_zero(shape, 1e-3, 3.0)


def arrays_away_from_kinks(shape: Shape, kinks: Sequence[float], margin: float = 1e-3,
                           low: float = -2.0, high: float = 2.0,
                           dtype: Any = "float64") -> st.SearchStrategy[np.ndarray]:
    """Entries in [low, high], each at least `margin` from every point of `kinks`.

    Where a derivative jumps (relu and abs at 0, clip at its bounds) a central difference
    of step ε straddles the jump; `margin` > ε keeps every difference on one side. An
    entry drawn too close is pushed to kink ± margin (so Hypothesis shrinks 0 to 1e-3);
    one that would then leave [low, high] or near another kink is drawn again.
    """
    dtype = np.dtype(dtype)
    lo, hi = _bounds_in(dtype, low, high)
    points = [float(k) for k in kinks]

    def push(v: float) -> float:
        for k in points:
            if abs(v - k) < margin:
                return k + margin if v >= k else k - margin
        return v

    def fits(v: float) -> bool:
        return lo <= v <= hi and all(abs(v - k) >= margin for k in points)

    elements = st.floats(lo, hi, width=dtype.itemsize * 8, allow_subnormal=False)
    rounded = elements.map(lambda v: float(dtype.type(push(v))))  # exact in dtype
    return hnp.arrays(dtype, shape, elements=rounded.filter(fits))


def arrays_at_kinks(shape: Shape, kinks: Sequence[float], low: float = -2.0,
                    high: float = 2.0, dtype: Any = "float64") -> st.SearchStrategy[np.ndarray]:
    """Entries that are often exactly a point of `kinks` (and so often tied with each
    other), mixed with ordinary values in [low, high]: where a derivative is a convention
    (relu'(0) = 0, ties in max share the gradient), for checks at the kink itself."""
    dtype = np.dtype(dtype)
    if not kinks:
        raise ValueError("arrays_at_kinks: give at least one kink")
    lo, hi = _bounds_in(dtype, low, high)
    elements = st.sampled_from([float(dtype.type(k)) for k in kinks]) | st.floats(
        lo, hi, width=dtype.itemsize * 8, allow_subnormal=False)
    return hnp.arrays(dtype, shape, elements=elements)


@st.composite
def distinct_arrays(draw: st.DrawFn, shape: Shape, min_gap: float = 1e-2,
                    max_gap: float = 1.0) -> np.ndarray:
    """float64 arrays whose entries all differ by at least `min_gap`: max has no ties."""
    size = int(np.prod(shape, dtype=int))
    gaps = draw(hnp.arrays(np.float64, size, elements=st.floats(min_gap, max_gap)))
    order = draw(st.permutations(range(size)))
    start = draw(st.floats(-2, 2))
    values = start + np.cumsum(gaps) - gaps[0]
    return values[np.asarray(order, dtype=int)].reshape(shape)


def broadcastable_pairs(max_dims: int = MAX_DIMS) -> st.SearchStrategy[tuple[Shape, Shape]]:
    """Two shapes that broadcast together (size-1 axes, missing leading axes, 0-d)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=max_dims,
                                             max_side=MAX_SIDE).map(
        lambda s: cast(tuple[Shape, Shape], s.input_shapes))


@st.composite
def axes(draw: st.DrawFn, ndim: int) -> int | tuple[int, ...] | None:
    """An `axis` argument for a reduction over an array of `ndim` dimensions: None, an int
    (possibly negative) or a sorted tuple of distinct axes."""
    if ndim == 0:
        return None
    kind = draw(st.sampled_from(["none", "int", "negative", "tuple"]))
    if kind == "none":
        return None
    if kind == "tuple":
        chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                               unique=True))
        return tuple(sorted(chosen))
    axis = draw(st.integers(0, ndim - 1))
    return axis - ndim if kind == "negative" else axis


def away_from_integers(shape: Shape, low: int = -3, high: int = 3,
                       margin: float = 0.05) -> st.SearchStrategy[np.ndarray]:
    """float64 entries at least `margin` from every integer (floor's jumps)."""
    fractions = hnp.arrays(np.float64, shape, elements=st.floats(margin, 1 - margin))
    whole = hnp.arrays(np.float64, shape, elements=st.integers(low, high).map(float))
    return st.tuples(whole, fractions).map(lambda t: t[0] + t[1])


# --- boundary inputs: where things break -----------------------------------------------
# The strategies above draw away from kinks, poles and saturation so that finite
# differences are valid; these draw *at* them, for tests of conventions.

#: The float dtypes the boundary tests run in.
FLOAT_DTYPES = (np.float16, np.float32, np.float64)
#: Saturation: σ(±40) rounds to 0 or 1 in float64 (|z| > 36.04), and 1e4 overflows e^|z|
#: in every dtype; both fit float16 (max 65504).
SATURATION = (40.0, 1e4)
#: Boundary values by kind: exact zeros (both signs), kinks and ties (clip's bounds at ±1,
#: integers for floor, 0 for relu and abs), saturation, infinities and nan.
BOUNDARY_VALUES = {
    "zero": (0.0, -0.0),
    "kink": (0.0, 1.0, -1.0, 2.0),
    "saturated": (40.0, -40.0, 1e4, -1e4),
    "inf": (np.inf, -np.inf),
    "nan": (np.nan,),
}


@st.composite
def boundary_arrays(draw: st.DrawFn, dtype: Any = None,
                    kinds: Sequence[str] = tuple(BOUNDARY_VALUES),
                    max_side: int = 4) -> np.ndarray:
    """An array of `dtype` (drawn from FLOAT_DTYPES if None) mixing boundary values of
    `kinds` with ordinary ones; half the time every entry is equal (ties in max, std 0)."""
    dtype = np.dtype(dtype if dtype is not None else draw(st.sampled_from(FLOAT_DTYPES)))
    pool = sorted({v for kind in kinds for v in BOUNDARY_VALUES[kind]}, key=repr)
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=max_side))
    if draw(st.booleans()):
        return np.full(shape, draw(st.sampled_from(pool)), dtype=dtype)
    ordinary = st.floats(-3.0, 3.0, width=16)  # exact in every dtype
    values = draw(st.lists(st.sampled_from(pool) | ordinary, min_size=int(np.prod(shape)),
                           max_size=int(np.prod(shape))))
    return np.array(values, dtype=dtype).reshape(shape)


def saturated_logits(dtype: Any = None, max_side: int = 4) -> st.SearchStrategy[np.ndarray]:
    """Weighted inputs z^L of an output layer at saturation: ±40 and ±1e4, with some
    ordinary values, in the float dtypes (finite: no inf or nan)."""
    return boundary_arrays(dtype, kinds=("zero", "saturated"), max_side=max_side)


# --- sigmoid networks ------------------------------------------------------------------

#: Per-layer weight scales. Weights and biases are uniform in [-scale, scale] and
#: activations lie in (0, 1), so with 16 inputs a scale of 10 gives |z| up to ~40.
WEIGHT_SCALES = (0.1, 1.0, 3.0, 10.0)
#: Scales that keep every sigmoid away from hard saturation (|z| rarely above ~20).
MODERATE_SCALES = (0.1, 1.0, 3.0)
#: Per-layer bias shifts. A shift of ±25 pushes *every* unit of a layer into saturation
#: on one side (a confident, right or wrong, output layer), where σ'(z) ~ 1e-11 for
#: every unit at once and no unsaturated unit dominates the layer's gradient.
SATURATING_SHIFTS = (0.0, 0.0, 0.0, 25.0, -25.0)


@dataclass
class Network:
    """A drawn sigmoid MLP with its mini-batch, in the layout of `tinygrad_nn.backprop`.

    `weights[l-2]` is w^l of shape (n_l, n_{l-1}), `biases[l-2]` is b^l of shape
    (n_l,), X is (m, n_1) and Y is (m, n_L): the arguments of `backprop.backprop_batch`.
    """

    sizes: list[int]
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    X: np.ndarray
    Y: np.ndarray
    scales: list[float] = field(default_factory=list)
    shifts: list[float] = field(default_factory=list)
    seed: int = 0
    targets: str = "uniform"

    @property
    def m(self) -> int:
        """The mini-batch size: the number of rows of X."""
        return self.X.shape[0]

    def describe(self) -> str:
        """The sizes, the mini-batch and the draws that made it, for a failure message."""
        return (f"network sizes={self.sizes} (layers 1..{len(self.sizes)}), "
                f"mini-batch m={self.m}, weight scales per layer={self.scales}, "
                f"bias shifts={self.shifts}, targets={self.targets}, seed={self.seed}")


def architectures(min_layers: int = 2, max_layers: int = 6,
                  max_width: int = 16) -> st.SearchStrategy[list[int]]:
    """Layer sizes [n_1, ..., n_L]: L in [min_layers, max_layers], each n_l in [1, max_width]."""
    return st.lists(st.integers(1, max_width), min_size=min_layers, max_size=max_layers)


@st.composite
def networks(draw: st.DrawFn, min_layers: int = 2, max_layers: int = 6, max_width: int = 16,
             max_batch: int = 8, scales: tuple[float, ...] = WEIGHT_SCALES,
             output_scales: tuple[float, ...] | None = None,
             shifts: tuple[float, ...] = SATURATING_SHIFTS,
             output_shifts: tuple[float, ...] | None = None,
             float32_exact: bool = False) -> Network:
    """A sigmoid network (eq. 1.6 in every layer), a mini-batch X with entries in [-1, 1]
    and targets Y in [0, 1].

    Hypothesis draws (and shrinks) the architecture, the batch size, each layer's weight
    scale (from `scales`) and bias shift (from `shifts`), and the kind of targets; the
    arrays come from a numpy generator seeded by a drawn integer (a 6-layer network of
    width 16 has over a thousand parameters, too many to draw one by one).
    `output_scales` and `output_shifts`, if given, replace the last layer's choices (e.g.
    to keep a^L away from 1 for the cross-entropy cost). With `float32_exact`, every array
    is rounded to the nearest float32 (but kept as float64), so that a float32 run and a
    float64 run use exactly the same network.
    """
    sizes = draw(architectures(min_layers, max_layers, max_width), label="sizes")
    m = draw(st.integers(1, max_batch), label="m")
    n_layers = len(sizes) - 1
    layer_scales = draw(st.lists(st.sampled_from(scales), min_size=n_layers,
                                 max_size=n_layers), label="scales")
    if output_scales is not None:
        layer_scales[-1] = draw(st.sampled_from(output_scales), label="output scale")
    layer_shifts = draw(st.lists(st.sampled_from(shifts), min_size=n_layers,
                                 max_size=n_layers), label="bias shifts")
    if output_shifts is not None:
        layer_shifts[-1] = draw(st.sampled_from(output_shifts), label="output shift")
    targets = draw(st.sampled_from(["uniform", "binary", "mixed"]), label="targets")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    return make_network(sizes, m, layer_scales, layer_shifts, seed, targets, float32_exact)


def make_network(sizes: list[int], m: int, scales: list[float], shifts: list[float] | None = None,
                 seed: int = 0, targets: str = "uniform", float32_exact: bool = False) -> Network:
    """The network `networks` draws, from its parameters: for fixed examples in tests.

    w^l and b^l are uniform in [-scale_l, scale_l] (plus shift_l for b^l), X is uniform
    in [-1, 1]; targets are "uniform" in [0, 1], "binary" (0 or 1) or "mixed".
    """
    shifts = [0.0] * len(scales) if shifts is None else shifts
    rng = np.random.default_rng(seed)
    weights = [s * rng.uniform(-1, 1, (n, k)) for s, k, n in zip(scales, sizes[:-1], sizes[1:])]
    biases = [s * rng.uniform(-1, 1, n) + shift
              for s, shift, n in zip(scales, shifts, sizes[1:])]
    X = rng.uniform(-1, 1, (m, sizes[0]))
    Y = rng.uniform(0, 1, (m, sizes[-1]))
    if targets == "binary":  # one-hot style targets, exactly 0 or 1
        Y = np.round(Y)
    elif targets == "mixed":
        Y = np.where(rng.uniform(size=Y.shape) < 0.5, np.round(Y), Y)
    if float32_exact:
        def exact(a: np.ndarray) -> np.ndarray:
            return a.astype(np.float32).astype(np.float64)

        weights, biases = [exact(w) for w in weights], [exact(b) for b in biases]
        X, Y = exact(X), exact(Y)
    return Network(list(sizes), weights, biases, X, Y, list(scales), list(shifts), seed,
                   targets)


# --- check_primitive ----------------------------------------------------------------------


def check_primitive(op: ops.Primitive, *shapes: Shape | st.SearchStrategy,
                    max_examples: int = 30, seed: int | None = None,
                    kinks: Sequence[float] | None = None, at_kinks: bool = False,
                    margin: float = 1e-3, bounds: tuple[float, float] = (-2.0, 2.0),
                    eps: float = 1e-6, atol: float = 1e-6, rtol: float = 1e-5,
                    **params: Any) -> None:
    """Check a primitive's forward and every one of its VJPs on inputs Hypothesis draws.

    Each positional argument after `op` stands for one input: a shape (float64 entries in
    `bounds` are drawn) or a Hypothesis strategy of arrays (cast to float64). Every other
    keyword is a parameter of the primitive, passed as `op(*inputs, **params)`; a parameter
    given as a strategy is drawn afresh for each example (``axis=axes(2)``).

    For each example, in float64:

    1. the forward on arrays (the first-order backward's path) equals the forward on
       Tensors, and neither changes its inputs in place;
    2. VJP i, called as the graph walk calls it, vjp(g, out, *inputs, **params) with a
       fixed cotangent g of out's shape (entries ±[0.5, 1.5], never all 1, so a VJP that
       drops g fails) and summed back to input i's shape as the walk does (`ops.sum_to`),
       equals the central differences of Σ g·op(...) (`gradcheck.numerical_grad`, step
       `eps`) within atol + rtol·|numerical|, gradcheck's rule.

    Kinks (values where the derivative jumps: relu's 0, clip's bounds) come from `kinks`,
    or else from an attribute ``op.kinks`` the primitive may declare. By default the
    entries are drawn at least `margin` away from them (`arrays_away_from_kinks`), so no
    difference straddles one. With ``at_kinks=True`` they are drawn exactly at them, and
    often tied (`arrays_at_kinks`); there a derivative is a convention, so an entry also
    passes if its gradient lies between the one-sided differences (relu'(0) = 0 or 1/2,
    max's tie shared: both pass; NaN or a value outside does not).

    Hypothesis runs `max_examples` examples and shrinks a failure to a small one. The
    search is deterministic by default; an integer `seed` makes another reproducible one.
    Raises AssertionError naming the primitive, the input, the drawn inputs, the
    analytical and numerical gradients and the largest difference.
    """
    if not isinstance(op, ops.Primitive):
        raise TypeError(f"check_primitive: op must be an ops.Primitive, got {type(op).__name__}")
    if not op.vjps:
        raise ValueError(f"check_primitive: {op!r} has no VJPs: it is not differentiable, "
                         f"so there is nothing to compare with finite differences")
    if not shapes or len(shapes) > len(op.vjps):
        raise ValueError(f"check_primitive: {op!r} has {len(op.vjps)} VJP(s); give one shape "
                         f"(or strategy of arrays) per input, got {len(shapes)}")
    kinks = tuple(getattr(op, "kinks", ()) if kinks is None else kinks)
    if at_kinks and not kinks:
        raise ValueError("check_primitive: at_kinks=True needs kinks (kinks=(0.0,), or a "
                         "`kinks` attribute on the primitive)")
    if kinks and not at_kinks and margin <= eps:
        raise ValueError(f"check_primitive: margin={margin} must exceed eps={eps}, or the "
                         f"differences may straddle a kink")
    inputs = [_input_strategy(s, kinks, at_kinks, margin, bounds) for s in shapes]
    calls = st.tuples(st.tuples(*inputs),
                      st.fixed_dictionaries({k: v if isinstance(v, st.SearchStrategy)
                                             else st.just(v) for k, v in params.items()}))
    tolerance = _Tolerance(eps, atol, rtol, at_kinks)

    @settings(max_examples=max_examples, deadline=None, database=None,
              derandomize=seed is None, report_multiple_bugs=False, print_blob=False,
              phases=(Phase.explicit, Phase.generate, Phase.shrink),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                     HealthCheck.data_too_large])
    @given(calls)
    def drawn_example(call: tuple[tuple[np.ndarray, ...], dict[str, Any]]) -> None:
        arrays, drawn = call
        _check_call(op, [np.array(x, dtype=np.float64, order="C") for x in arrays], drawn,
                    tolerance)

    if seed is not None:
        drawn_example = hypothesis_seed(seed)(drawn_example)
    drawn_example()


def _input_strategy(spec: Shape | st.SearchStrategy, kinks: tuple, at_kinks: bool,
                    margin: float, bounds: tuple[float, float]) -> st.SearchStrategy:
    """The strategy of one input: given as is, or arrays of the given shape."""
    if isinstance(spec, st.SearchStrategy):
        return spec
    shape = tuple(spec)
    if at_kinks:
        return arrays_at_kinks(shape, kinks, *bounds)
    if kinks:
        return arrays_away_from_kinks(shape, kinks, margin, *bounds)
    return float_arrays(shape, *bounds)


@dataclass(frozen=True)
class _Tolerance:
    eps: float
    atol: float
    rtol: float
    at_kinks: bool


def _check_call(op: ops.Primitive, arrays: list[np.ndarray], params: dict[str, Any],
                tol: _Tolerance) -> None:
    """One drawn example: the forward both ways, then each VJP against the differences."""
    out = _check_forward(op, arrays, params)
    g = _cotangent(np.shape(out))
    tensors = [Tensor(x, requires_grad=True) for x in arrays]
    numeric = numerical_grad(lambda *ts: op(*ts, **params), *tensors, eps=tol.eps,
                             projection=g)
    for i, (x, vjp, n) in enumerate(zip(arrays, op.vjps, numeric)):
        kept = [a.copy() for a in arrays]
        analytic = vjp(g, out, *kept, **params)
        for j, (before, after) in enumerate(zip(arrays, kept)):
            if not np.array_equal(before, after, equal_nan=True):
                _fail(op, f"the VJP of input {i} changed input {j} in place", arrays, params,
                      [f"input {j} before: {_show(before)}", f"input {j} after:  {_show(after)}"])
        analytic = _summed_back(op, i, analytic, x.shape, arrays, params)
        _compare(op, i, analytic, n, g, arrays, params, tol)  # type: ignore[arg-type]  # (n: all inputs require grad)


def _check_forward(op: ops.Primitive, arrays: list[np.ndarray],
                   params: dict[str, Any]) -> np.ndarray:
    """The forward on plain arrays, checked against the forward on Tensors; neither may
    write into its inputs."""
    copies = [x.copy() for x in arrays]
    out = np.asarray(op(*copies, **params))
    tensors = [Tensor(x, requires_grad=True) for x in arrays]
    out_t = op(*tensors, **params)
    for j, (x, c, t) in enumerate(zip(arrays, copies, tensors)):
        for path, after in (("arrays", c), ("Tensors", t.data)):
            if not np.array_equal(x, after, equal_nan=True):
                _fail(op, f"the forward on {path} changed input {j} in place", arrays, params,
                      [f"input {j} before: {_show(x)}", f"input {j} after:  {_show(after)}"])
    if not isinstance(out_t, Tensor):
        _fail(op, f"the forward on Tensors returned {type(out_t).__name__}, not a Tensor",
              arrays, params, [])
    if out.shape != out_t.shape or out.dtype != out_t.dtype or not np.allclose(
            out, out_t.data, rtol=1e-13, atol=0.0, equal_nan=True):
        # (not bit for bit: a BLAS may round differently for arrays at other addresses)
        _fail(op, "the forward on arrays and the forward on Tensors disagree", arrays, params,
              [f"on arrays:  {_show(out)} ({out.dtype}, shape {out.shape})",
               f"on Tensors: {_show(out_t.data)} ({out_t.dtype}, shape {out_t.shape})"])
    return out


def _cotangent(shape: Shape) -> np.ndarray:
    """The fixed g the VJPs get: entries of size 0.5 to 1.5 and random sign (numpy's seed 0,
    as gradcheck's projection), so that a VJP that drops g, or a sign, shows."""
    rng = np.random.default_rng(0)
    return np.asarray(rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape))


def _summed_back(op: ops.Primitive, i: int, g_in: Any, shape: Shape, arrays: list[np.ndarray],
                 params: dict[str, Any]) -> np.ndarray:
    """A VJP's result summed to its input's shape, as the graph walk does (`ops.sum_to`)."""
    if not hasattr(g_in, "shape"):
        _fail(op, f"the VJP of input {i} returned {type(g_in).__name__}, not an array (the "
                  f"graph walk reads its .shape)", arrays, params, [])
    try:
        summed = ops.sum_to(g_in, shape) if g_in.shape != shape else g_in
    except (RuntimeError, ValueError):
        summed = None
    if summed is None:
        _fail(op, f"the VJP of input {i} returned shape {g_in.shape}, which does not sum back "
                  f"to the input's shape {shape}", arrays, params, [])
    return np.asarray(summed, dtype=np.float64)


def _compare(op: ops.Primitive, i: int, analytic: np.ndarray, numeric: np.ndarray,
             g: np.ndarray, arrays: list[np.ndarray], params: dict[str, Any],
             tol: _Tolerance) -> None:
    """VJP i against the central differences; at kinks, against the one-sided ones too."""
    err = np.abs(analytic - numeric)
    passes = err <= tol.atol + tol.rtol * np.abs(numeric)  # False for NaN
    lines = []
    if tol.at_kinks and not passes.all():
        left, right = _one_sided(op, arrays, params, i, g, tol.eps)
        low, high = np.minimum(left, right), np.maximum(left, right)
        slack = tol.atol + tol.rtol * np.maximum(np.abs(left), np.abs(right))
        passes |= (low - slack <= analytic) & (analytic <= high + slack)
        lines += [f"one-sided (left):  {_show(left)}", f"one-sided (right): {_show(right)}"]
    if passes.all():
        return
    worst = np.unravel_index(np.argmax(np.where(passes, -1.0, np.nan_to_num(err, nan=np.inf))),
                             err.shape)
    index = tuple(int(j) for j in worst)
    beyond = " (and lies outside the one-sided ones)" if lines else ""
    _fail(op, f"the VJP of input {i} disagrees with central differences{beyond}", arrays,
          params, [
        f"cotangent g: {_show(g)}",
        f"analytical (VJP {i}): {_show(analytic)}",
        f"numerical (central differences, eps={tol.eps:g}): {_show(numeric)}",
        *lines,
        f"largest difference {err[worst]:.6g} at index {index}: analytical "
        f"{float(analytic[worst])!r}, numerical {float(numeric[worst])!r} (allowed "
        f"{tol.atol:g} + {tol.rtol:g}·|numerical| = "
        f"{tol.atol + tol.rtol * abs(numeric[worst]):.3g})",
    ])


def _one_sided(op: ops.Primitive, arrays: list[np.ndarray], params: dict[str, Any], i: int,
               g: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """(f(x) - f(x - h e_k))/h and (f(x + h e_k) - f(x))/h for each entry k of input i,
    f = Σ g·op(...): the left and right derivatives, which differ at a kink (and are not
    central differences: the difference between them is the point)."""
    xs = [x.copy() for x in arrays]

    def f() -> float:
        return float(np.sum(g * op(*xs, **params)))

    base, x = f(), xs[i]
    left, right = np.empty(x.shape), np.empty(x.shape)
    for k in np.ndindex(x.shape):
        original = x[k]
        x[k] = original + h
        right[k] = (f() - base) / h
        x[k] = original - h
        left[k] = (base - f()) / h
        x[k] = original
    return left, right


def _show(a: Any) -> str:
    """An array on one line, with enough digits to type it back in."""
    with np.printoptions(precision=17, floatmode="maxprec", threshold=40):
        return " ".join(repr(np.asarray(a)).split())


def _fail(op: ops.Primitive, what: str, arrays: list[np.ndarray], params: dict[str, Any],
          lines: list[str]) -> NoReturn:
    """Raise the AssertionError: what went wrong, the drawn example, then the evidence."""
    shown = [f"input {j}: {_show(x)} (shape {x.shape})" for j, x in enumerate(arrays)]
    if params:
        shown.append(f"params: {params!r}")
    raise AssertionError(f"check_primitive: {op!r}: {what}\n  "
                         + "\n  ".join(shown + lines))
