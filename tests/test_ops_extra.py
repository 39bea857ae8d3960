"""Tests for the newer ops: sqrt, abs, clip, maximum/minimum, where, leaky_relu, softplus,
logsumexp, concatenate (primitives) and min, var, std, softmax, log_softmax, stack, squeeze,
unsqueeze, flatten (derived, in functional.py), argmax/argmin, broadcast_to.

One table, in the format of tests/test_ops.py, drives the same five checks that file runs on
its own table (forward vs numpy, backward vs the derivative worked out by hand, gradcheck,
float32 kept, second order); the checks are imported from there, so both tables are held to
exactly the same standard. Table inputs stay away from the kinks; the conventions *at* the
kinks, numerical stability for |z| up to 1e4 and the errors have their own tests below, and
Hypothesis property tests (random shapes, `strategies.derived_cases`) close the file.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import test_ops as checks
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import derived_cases, distinct_arrays, float_arrays, primitive_cases, shapes
from test_ops import Case, away_from_zero, count, distinct, unary, uniform, unreduce

from tinygrad_nn import Tensor, functional, gradcheck, ops
from tinygrad_nn import functional as F

# --- hand derivatives --------------------------------------------------------------------


def _mean_keep(x: np.ndarray, axis) -> np.ndarray:
    return np.mean(x, axis=axis, keepdims=True)


def var_vjp(g, x, axis, keepdims, ddof):
    """d/dx_i Σ (x_j - m)²/(n - ddof) = 2 (x_i - m)/(n - ddof) (the m-terms sum to 0)."""
    return (unreduce(g, x.shape, axis, keepdims) * 2 * (x - _mean_keep(x, axis))
            / (count(x.shape, axis) - ddof),)


def std_vjp(g, x, axis, keepdims, ddof):
    """d std = d var / (2 std) = (x_i - m) / ((n - ddof) std)."""
    s = np.std(x, axis=axis, ddof=ddof, keepdims=True)
    return (unreduce(g, x.shape, axis, keepdims) * (x - _mean_keep(x, axis))
            / ((count(x.shape, axis) - ddof) * s),)


def softmax_ref(x: np.ndarray, axis) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def lse_ref(x: np.ndarray, axis, keepdims: bool) -> np.ndarray:
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))  # inputs are moderate


def softmax_vjp(g, x, axis):
    """J = diag(s) - s sᵀ, so gᵀJ = s ⊙ (g - Σ g s)."""
    s = softmax_ref(x, axis)
    return (s * (g - np.sum(g * s, axis=axis, keepdims=True)),)


def log_softmax_vjp(g, x, axis):
    """∂(x_j - lse)/∂x_i = δ_ij - s_i, so gᵀJ = g - s Σ g."""
    return (g - softmax_ref(x, axis) * np.sum(g, axis=axis, keepdims=True),)


def split_back(g: np.ndarray, sizes: list[int], axis: int) -> tuple[np.ndarray, ...]:
    """concatenate's VJP: each input gets its own slice of g."""
    return tuple(np.split(g, np.cumsum(sizes)[:-1], axis=axis))


def sigmoid_ref(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


COND = np.array([[True, False, True, False], [False, False, True, True],
                 [True, True, False, True]])
LO, HI = -0.5, 0.7


#: (axis, keepdims, ddof) for the reductions: every kind of axis, keepdims both ways, and
#: ddof 0 and 1 for var and std, in few enough combinations to stay quick.
REDUCTIONS = [(None, False, 0), (0, True, 1), (-1, False, 1), ((0, 2), True, 0),
              ((-1, 0), False, 1)]


def reduction_cases() -> list[Case]:
    shape = (2, 3, 4)
    cases = []
    for axis, keepdims, ddof in REDUCTIONS:
        tag = f"axis={axis},keepdims={keepdims}"
        cases.append(Case(
            f"min[{tag}]", lambda x, a=axis, k=keepdims: x.min(axis=a, keepdims=k),
            lambda x, a=axis, k=keepdims: np.min(x, axis=a, keepdims=k),
            lambda g, x, a=axis, k=keepdims: (
                unreduce(g, x.shape, a, k) * (x == np.min(x, axis=a, keepdims=True)),),
            (shape,), (distinct,)))
        cases.append(Case(
            f"logsumexp[{tag}]", lambda x, a=axis, k=keepdims: x.logsumexp(axis=a, keepdims=k),
            lambda x, a=axis, k=keepdims: lse_ref(x, a, k),
            lambda g, x, a=axis, k=keepdims: (
                unreduce(g, x.shape, a, k) * np.exp(x - lse_ref(x, a, True)),),
            (shape,)))
        for name, hand in (("var", var_vjp), ("std", std_vjp)):
            cases.append(Case(
                f"{name}[{tag},ddof={ddof}]",
                lambda x, n=name, a=axis, k=keepdims, d=ddof:
                    getattr(x, n)(axis=a, keepdims=k, ddof=d),
                lambda x, n=name, a=axis, k=keepdims, d=ddof:
                    getattr(np, n)(x, axis=a, keepdims=k, ddof=d),
                lambda g, x, a=axis, k=keepdims, d=ddof, h=hand: h(g, x, a, k, d),
                (shape,)))
    return cases


def softmax_cases() -> list[Case]:
    cases = []
    for axis in (-1, 0, 1):
        cases.append(Case(f"softmax[axis={axis}]", lambda x, a=axis: x.softmax(axis=a),
                          lambda x, a=axis: softmax_ref(x, a),
                          lambda g, x, a=axis: softmax_vjp(g, x, a), ((2, 3, 4),)))
        cases.append(Case(f"log_softmax[axis={axis}]", lambda x, a=axis: x.log_softmax(axis=a),
                          lambda x, a=axis: np.log(softmax_ref(x, a)),
                          lambda g, x, a=axis: log_softmax_vjp(g, x, a), ((2, 3, 4),)))
    return cases


def shape_cases() -> list[Case]:
    cases = []
    for axis, shapes_ in ((0, ((1, 3), (2, 3))), (1, ((2, 1), (2, 2), (2, 3))),
                          (-1, ((2, 3, 1), (2, 3, 2)))):
        sizes = [s[axis] for s in shapes_]
        cases.append(Case(f"concatenate[axis={axis},{len(shapes_)} inputs]",
                          lambda *xs, a=axis: ops.concatenate(xs, axis=a),
                          lambda *xs, a=axis: np.concatenate(xs, axis=a),
                          lambda g, *xs, a=axis, s=tuple(sizes): split_back(g, list(s), a),
                          shapes_))
    for axis in (0, 1, -1, -3):
        cases.append(Case(f"stack[axis={axis}]", lambda *xs, a=axis: F.stack(xs, axis=a),
                          lambda *xs, a=axis: np.stack(xs, axis=a),
                          lambda g, *xs, a=axis: tuple(np.moveaxis(g, a, 0)),
                          ((2, 3), (2, 3), (2, 3))))
    for axis in (None, 1, (0, 3)):
        cases.append(Case(f"squeeze[axis={axis}]", lambda x, a=axis: x.squeeze(a),
                          lambda x, a=axis: np.squeeze(x, axis=a),
                          lambda g, x: (g.reshape(x.shape),), ((1, 1, 3, 1),)))
    for axis in (0, 1, -1, 2):
        cases.append(Case(f"unsqueeze[axis={axis}]", lambda x, a=axis: x.unsqueeze(a),
                          lambda x, a=axis: np.expand_dims(x, a),
                          lambda g, x: (g.reshape(x.shape),), ((2, 3),)))
    for start in (0, 1, 2, -1):
        cases.append(Case(f"flatten[start_axis={start}]", lambda x, s=start: x.flatten(s),
                          lambda x, s=start: x.reshape(x.shape[:s % 3] + (-1,)),
                          lambda g, x: (g.reshape(x.shape),), ((2, 3, 4),)))
    cases += [
        Case("squeeze[function]", lambda x: F.squeeze(x, 0), lambda x: x[0],
             lambda g, x: (g[None],), ((1, 4),)),
        Case("unsqueeze[function]", lambda x: F.unsqueeze(x, 0), lambda x: x[None],
             lambda g, x: (g[0],), ((4,),)),
        Case("flatten[function,0-d]", lambda x: F.flatten(x), lambda x: x.reshape(1),
             lambda g, x: (g.reshape(()),), ((),)),
        Case("broadcast_to[method,(3,1)->(2,3,4)]", lambda x: x.broadcast_to((2, 3, 4)),
             lambda x: np.broadcast_to(x, (2, 3, 4)),
             lambda g, x: (g.sum(axis=(0, 2)).reshape(3, 1),), ((3, 1),)),
        Case("broadcast_to[method,list shape]", lambda x: x.broadcast_to([2, 4]),
             lambda x: np.broadcast_to(x, (2, 4)), lambda g, x: (g.sum(axis=0),), ((4,),)),
    ]
    return cases


CASES: list[Case] = [
    # --- elementwise: sqrt, abs, clip, leaky_relu, softplus --------------------------------
    unary("sqrt", lambda x: x.sqrt(), np.sqrt, lambda x: 0.5 / np.sqrt(x),
          domain=uniform(0.5, 3.0)),
    unary("sqrt[function,0-d]", ops.sqrt, np.sqrt, lambda x: 0.5 / np.sqrt(x), shape=(),
          domain=uniform(0.5, 3.0)),
    unary("abs", lambda x: x.abs(), np.abs, np.sign, domain=away_from_zero(0.1, 2.0)),
    unary("abs[function]", ops.abs, np.abs, np.sign, domain=away_from_zero(0.1, 2.0)),
    # Inside [lo, hi] the gradient passes; outside it is 0. Uniform draws miss the bounds.
    unary("clip", lambda x: x.clip(LO, HI), lambda x: np.clip(x, LO, HI),
          lambda x: ((x >= LO) & (x <= HI)).astype(x.dtype)),
    unary("clip[lo only]", lambda x: x.clip(lo=0.1), lambda x: np.maximum(x, 0.1),
          lambda x: (x >= 0.1).astype(x.dtype)),
    unary("clip[hi only]", lambda x: x.clip(hi=-0.2), lambda x: np.minimum(x, -0.2),
          lambda x: (x <= -0.2).astype(x.dtype)),
    unary("clip[function]", lambda x: ops.clip(x, lo=LO, hi=HI), lambda x: np.clip(x, LO, HI),
          lambda x: ((x >= LO) & (x <= HI)).astype(x.dtype)),
    unary("leaky_relu[default slope 0.01]", lambda x: x.leaky_relu(),
          lambda x: np.where(x > 0, x, 0.01 * x), lambda x: np.where(x > 0, 1.0, 0.01),
          domain=away_from_zero(0.1, 2.0)),
    unary("leaky_relu[slope=0.2]", lambda x: x.leaky_relu(0.2),
          lambda x: np.where(x > 0, x, 0.2 * x), lambda x: np.where(x > 0, 1.0, 0.2),
          domain=away_from_zero(0.1, 2.0)),
    unary("leaky_relu[function]", lambda x: ops.leaky_relu(x, slope=0.1),
          lambda x: np.where(x > 0, x, 0.1 * x), lambda x: np.where(x > 0, 1.0, 0.1),
          domain=away_from_zero(0.1, 2.0)),
    unary("softplus", lambda x: x.softplus(), lambda x: np.log1p(np.exp(x)), sigmoid_ref,
          domain=uniform(-4.0, 4.0)),
    unary("softplus[function]", ops.softplus, lambda x: np.log1p(np.exp(x)), sigmoid_ref),
    # --- maximum / minimum: the winner takes g (ties have their own tests) -----------------
    Case("maximum", lambda x, y: x.maximum(y), np.maximum,
         lambda g, x, y: (g * (x > y), g * (y > x)), ((3, 4), (3, 4))),
    Case("minimum", lambda x, y: x.minimum(y), np.minimum,
         lambda g, x, y: (g * (x < y), g * (y < x)), ((3, 4), (3, 4))),
    Case("maximum[function,(3,1)vs(1,4)]", ops.maximum, np.maximum,
         lambda g, x, y: ((g * (x > y)).sum(axis=1, keepdims=True),
                          (g * (y > x)).sum(axis=0, keepdims=True)), ((3, 1), (1, 4))),
    Case("minimum[function,(2,3,4)vs(4,)]", ops.minimum, np.minimum,
         lambda g, x, y: (g * (x < y), (g * (y < x)).sum(axis=(0, 1))), ((2, 3, 4), (4,))),
    unary("maximum[number]", lambda x: x.maximum(0.3), lambda x: np.maximum(x, 0.3),
          lambda x: (x > 0.3).astype(x.dtype)),
    unary("minimum[number]", lambda x: x.minimum(-0.3), lambda x: np.minimum(x, -0.3),
          lambda x: (x < -0.3).astype(x.dtype)),
    # --- where(cond, a, b): g goes to a where cond holds, to b elsewhere ----------------------
    Case("where", lambda x, y: F.where(COND, x, y), lambda x, y: np.where(COND, x, y),
         lambda g, x, y: (g * COND, g * ~COND), ((3, 4), (3, 4))),
    Case("where[broadcast (3,1),(1,4),()]", lambda x, y, z: F.where(COND[:, :1], y, z) * x,
         lambda x, y, z: np.where(COND[:, :1], y, z) * x,
         lambda g, x, y, z: ((g * np.where(COND[:, :1], y, z)).sum(axis=1, keepdims=True),
                             (g * x * COND[:, :1]).sum(axis=0, keepdims=True),
                             (g * x * ~COND[:, :1]).sum()),
         ((3, 1), (1, 4), ())),
    unary("where[tensor condition,number]", lambda x: F.where(x > 0, x, 0.5),
          lambda x: np.where(x > 0, x, 0.5), lambda x: (x > 0).astype(x.dtype),
          domain=away_from_zero(0.1, 2.0)),
    # --- reductions, softmax, shapes ----------------------------------------------------------
    *reduction_cases(),
    Case("var[function,tuple axis]", lambda x: functional.var(x, axis=(0, 1), ddof=1),
         lambda x: np.var(x, axis=(0, 1), ddof=1),
         lambda g, x: var_vjp(g, x, (0, 1), False, 1), ((2, 3, 4),)),
    Case("std[function,axis=0,ddof=1]", lambda x: functional.std(x, axis=0, ddof=1),
         lambda x: np.std(x, axis=0, ddof=1), lambda g, x: std_vjp(g, x, 0, False, 1),
         ((4, 3),)),
    Case("logsumexp[function]", lambda x: ops.logsumexp(x, axis=1, keepdims=False),
         lambda x: lse_ref(x, 1, False),
         lambda g, x: (g[:, None] * np.exp(x - lse_ref(x, 1, True)),), ((3, 4),)),
    *softmax_cases(),
    Case("softmax[function]", lambda x: F.softmax(x), lambda x: softmax_ref(x, -1),
         lambda g, x: softmax_vjp(g, x, -1), ((3, 4),)),
    Case("log_softmax[function]", lambda x: F.log_softmax(x, axis=0),
         lambda x: np.log(softmax_ref(x, 0)), lambda g, x: log_softmax_vjp(g, x, 0), ((3, 4),)),
    *shape_cases(),
]

IDS = [c.name for c in CASES]
assert len(set(IDS)) == len(IDS), "case names must be unique"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_matches_numpy(case: Case):
    checks.test_forward_matches_numpy(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_matches_hand_derivative(case: Case):
    checks.test_backward_matches_hand_derivative(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck(case: Case):
    checks.test_gradcheck(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_stays_float32_forward_and_backward(case: Case):
    checks.test_float32_stays_float32_forward_and_backward(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_second_order_matches_finite_differences_of_the_gradient(case: Case):
    checks.test_second_order_matches_finite_differences_of_the_gradient(case)


def test_concatenate_and_stack_send_each_input_its_own_slice():
    a, b, c = (Tensor(np.full(s, v), requires_grad=True)
               for s, v in (((2, 1), 1.0), ((2, 2), 2.0), ((2, 3), 3.0)))
    g = np.arange(12.0).reshape(2, 6)
    ops.concatenate([a, b, c], axis=1).backward(g)
    np.testing.assert_array_equal(a.grad.data, g[:, :1])
    np.testing.assert_array_equal(b.grad.data, g[:, 1:3])
    np.testing.assert_array_equal(c.grad.data, g[:, 3:])
    x, y = Tensor([1.0, 2.0], requires_grad=True), Tensor([3.0, 4.0], requires_grad=True)
    F.stack([x, y, x], axis=1).backward(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(x.grad.data, [0.0 + 2.0, 3.0 + 5.0])  # used twice: summed
    np.testing.assert_array_equal(y.grad.data, [1.0, 4.0])


# --- argmax / argmin: plain integer arrays, off the graph ------------------------------------


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_argmax_argmin_are_numpys_and_not_differentiable(name, axis):
    data = distinct(np.random.default_rng(3), (3, 4))
    x = Tensor(data, requires_grad=True)
    result = getattr(x, name)(axis=axis) if axis is not None else getattr(x, name)()
    assert not isinstance(result, Tensor)
    assert np.asarray(result).dtype.kind == "i"
    np.testing.assert_array_equal(result, getattr(np, name)(data, axis=axis))


def test_argmax_takes_the_first_of_tied_entries():
    x = Tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])
    np.testing.assert_array_equal(x.argmax(axis=1), [1, 0])
    np.testing.assert_array_equal(x.argmin(axis=1), [0, 2])


# --- conventions at the kinks ---------------------------------------------------------------


def test_abs_derivative_at_zero_is_zero():
    x = Tensor([-2.0, 0.0, 3.0], requires_grad=True)
    x.abs().backward(np.array([5.0, 7.0, 11.0]))
    np.testing.assert_array_equal(x.grad.data, [-5.0, 0.0, 11.0])


@pytest.mark.parametrize(("name", "x_grad", "y_grad"), [
    ("maximum", [1.0, 4.0, 0.0, 4.0], [1.0, 0.0, 6.0, 4.0]),
    ("minimum", [1.0, 0.0, 6.0, 4.0], [1.0, 4.0, 0.0, 4.0]),
])
def test_ties_in_maximum_and_minimum_give_each_side_half(name, x_grad, y_grad):
    # Entries 0 and 3 tie (g = 2 and 8: 1 and 4 to each side); 1 and 2 have a winner.
    x = Tensor([1.0, 2.0, 3.0, -1.0], requires_grad=True)
    y = Tensor([1.0, 0.0, 5.0, -1.0], requires_grad=True)
    getattr(x, name)(y).backward(np.array([2.0, 4.0, 6.0, 8.0]))
    np.testing.assert_array_equal(x.grad.data, x_grad)
    np.testing.assert_array_equal(y.grad.data, y_grad)


def test_maximum_ties_under_broadcasting_are_summed_back_by_halves():
    # x (3,1) against y (1,3): a tie on the diagonal only.
    x = Tensor([[0.0], [1.0], [2.0]], requires_grad=True)
    y = Tensor([[0.0, 1.0, 2.0]], requires_grad=True)
    x.maximum(y).backward(np.ones((3, 3)))
    # x_i = i beats the i entries y_j < i and ties once: i + 1/2; likewise y_j gets j + 1/2.
    np.testing.assert_array_equal(x.grad.data, [[0.5], [1.5], [2.5]])
    np.testing.assert_array_equal(y.grad.data, [[0.5, 1.5, 2.5]])


def test_maximum_with_a_number_tie_gives_the_tensor_half():
    x = Tensor([0.0, 1.0, -1.0], requires_grad=True)
    x.maximum(0.0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.5, 1.0, 0.0])


def test_min_ties_share_the_gradient_equally():
    x = Tensor([[1.0, 1.0, 2.0], [4.0, 3.0, 3.0]], requires_grad=True)
    x.min(axis=1).backward(np.array([2.0, 6.0]))
    np.testing.assert_array_equal(x.grad.data, [[1.0, 1.0, 0.0], [0.0, 3.0, 3.0]])


def test_clip_passes_the_gradient_at_both_bounds_inclusive():
    x = Tensor([LO, HI, LO - 1e-9, HI + 1e-9, 0.0, -3.0, 3.0], requires_grad=True)
    out = x.clip(LO, HI)
    out.backward(np.full(7, 2.0))
    np.testing.assert_array_equal(out.data, [LO, HI, LO, HI, 0.0, LO, HI])
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0, 0.0, 0.0, 2.0, 0.0, 0.0])


@pytest.mark.parametrize("slope", [0.01, 0.2, 0.0])
def test_leaky_relu_derivative_at_zero_is_the_slope(slope):
    x = Tensor([0.0, -1.0, 1.0], requires_grad=True)
    (x.leaky_relu() if slope == 0.01 else x.leaky_relu(slope)).backward(np.ones(3))
    np.testing.assert_array_equal(x.grad.data, [slope, slope, 1.0])


def test_where_sends_no_gradient_to_the_branch_not_taken_even_if_it_is_inf():
    # The classic trap: where(x > 0, log(x), 0) must not give NaN gradients at x <= 0.
    x = Tensor([2.0, 0.5], requires_grad=True)
    F.where([True, False], x.log(), x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.5, 3.0])


def test_std_gradient_of_constant_values_is_zero():
    """std's docstring: gradient 0 where every value is equal (σ = 0), as PyTorch 2.13.

    The bare chain rule gives sqrt'(0) · var' = ∞ · 0 = NaN; torch's std_backward (and this
    std) take 0, σ's subgradient at its minimum. With one value too, and per axis.
    """
    x = Tensor([2.0, 2.0, 2.0], requires_grad=True)
    x.std().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 0.0])
    one = Tensor([5.0], requires_grad=True)
    one.std().backward()
    np.testing.assert_array_equal(one.grad.data, [0.0])
    rows = Tensor([[1.0, 1.0], [1.0, 3.0]], requires_grad=True)
    F.std(rows, axis=1).sum().backward()  # row 0 constant; row 1: (x - m)/(n σ) = ∓1/2
    np.testing.assert_array_equal(rows.grad.data, [[0.0, 0.0], [-0.5, 0.5]])


# --- numerical stability: |z| up to 1e4 ------------------------------------------------------

LARGE = np.array([[-1e4, 0.0, 1e4], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4], [1e4, 1e4 - 1, 3.0]])


def _no_warning_finite(fn, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = Tensor(z, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any numpy RuntimeWarning fails the test
        out = fn(x)
        out.backward(np.ones(out.shape, dtype=z.dtype))
    assert np.isfinite(out.data).all(), out.data
    assert np.isfinite(x.grad.data).all(), x.grad.data
    assert out.dtype == z.dtype and x.grad.dtype == z.dtype
    return out.data, x.grad.data


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logsumexp_is_stable_for_large_inputs(dtype):
    out, g = _no_warning_finite(lambda x: x.logsumexp(axis=1), LARGE.astype(dtype))
    ln2, ln3 = np.log(2), np.log(3)
    expected = [1e4, -1e4 + ln3, 1e4 + ln2, 1e4 + np.log1p(np.exp(-1.0))]
    np.testing.assert_allclose(out, expected, rtol=2 * np.finfo(dtype).eps)
    # The gradient is softmax: rows sum to 1 (to a few ulps of 1 in either dtype).
    np.testing.assert_allclose(g.sum(axis=1), 1.0, rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_softmax_and_softmax_are_stable_for_large_inputs(dtype):
    out, g = _no_warning_finite(lambda x: x.log_softmax(axis=1), LARGE.astype(dtype))
    np.testing.assert_allclose(out[0], [-2e4, -1e4, 0.0], atol=0, rtol=1e-6)
    assert (out <= 0).all()
    s, _ = _no_warning_finite(lambda x: x.softmax(axis=1), LARGE.astype(dtype))
    np.testing.assert_array_equal(s[0], [0.0, 0.0, 1.0])
    assert ((s >= 0) & (s <= 1)).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softplus_is_stable_for_large_inputs(dtype):
    z = np.array([-1e4, -100.0, -1.0, 0.0, 1.0, 100.0, 1e4], dtype=dtype)
    out, g = _no_warning_finite(lambda x: x.softplus(), z)
    assert out[0] == 0.0 and out[-1] == 1e4 and out[-2] == 100.0
    assert out[3] == pytest.approx(np.log(2), rel=1e-6)
    # softplus' = σ: 0 and 1 at the ends (up to the documented float32 clamp of σ at z = -88).
    assert 0 <= g[0] < 1e-37 and g[-1] == 1.0 and g[3] == 0.5


def test_softmax_of_large_float32_logits_keeps_relative_precision():
    z = np.array([[1e4, 1e4, -1e4], [1e4 - 1, 1e4, 1e4 + 1]], dtype=np.float32)
    expected = softmax_ref(z.astype(np.float64), 1)
    np.testing.assert_allclose(Tensor(z).softmax(axis=1).data, expected, rtol=1e-5, atol=1e-7)
    x = Tensor(z, requires_grad=True)
    x.logsumexp(axis=1).sum().backward()  # its gradient is softmax too
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-5, atol=1e-7)


def test_logsumexp_of_an_all_minus_inf_row_is_minus_inf():
    out = Tensor([[-np.inf, -np.inf], [0.0, -np.inf]]).logsumexp(axis=1).data
    np.testing.assert_array_equal(out, [-np.inf, 0.0])


def test_logsumexp_of_an_all_minus_inf_row_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Tensor([[-np.inf, -np.inf]]).logsumexp(axis=1)


# --- errors ----------------------------------------------------------------------------------


def test_maximum_of_shapes_that_do_not_broadcast_names_both():
    with pytest.raises(ValueError, match=r"maximum: shapes \(2, 3\) and \(4,\)"):
        Tensor(np.ones((2, 3))).maximum(Tensor(np.ones(4)))


@pytest.mark.parametrize("axis", [3, -4])
def test_unsqueeze_axis_out_of_range(axis):
    with pytest.raises(ValueError, match=r"unsqueeze: axis .* \(2, 3\)"):
        Tensor(np.ones((2, 3))).unsqueeze(axis)


def test_var_with_ddof_as_large_as_the_count_is_refused():
    with pytest.raises(ValueError, match="ddof=2 but only 2"):
        Tensor(np.ones((3, 2))).var(axis=1, ddof=2)


def test_concatenate_of_nothing_is_refused():
    with pytest.raises(ValueError, match="concatenate: needs at least one"):
        ops.concatenate([])


def test_stack_of_different_shapes_names_the_op():
    with pytest.raises(ValueError, match=r"concatenate: .*\(1, 2\)"):
        F.stack([Tensor(np.ones(2)), Tensor(np.ones(3))])


def test_flatten_start_axis_out_of_range_is_refused():
    with pytest.raises((ValueError, IndexError), match="flatten"):
        Tensor(np.ones((2, 3))).flatten(5)


def test_squeeze_of_an_axis_longer_than_one_names_op_and_shape():
    with pytest.raises(ValueError, match=r"squeeze.*\(2, 3\)"):
        Tensor(np.ones((2, 3))).squeeze(1)


# --- properties: random shapes and values ----------------------------------------------------


def test_every_derived_function_has_a_strategy():
    public = {name for name, value in vars(functional).items()
              if callable(value) and not name.startswith("_")
              and getattr(value, "__module__", None) == functional.__name__}
    missing = public - set(derived_cases) - set(primitive_cases)
    assert not missing, f"derived functions with no strategy in tests/strategies.py: {missing}"


#: A quarter of the profile's examples for each of the ten derived functions (10 by default,
#: 100 under `thorough`): at the full count they alone would take most of the time budget.
FEWER_EXAMPLES = settings(max_examples=max(10, settings.default.max_examples // 4))


@pytest.mark.property
@pytest.mark.parametrize("name", sorted(derived_cases))
@FEWER_EXAMPLES
@given(data=st.data())
def test_derived_function_matches_finite_differences(name, data):
    case = data.draw(derived_cases[name], label=name)
    assert gradcheck(case.fn, *[Tensor(x, requires_grad=True) for x in case.inputs]), \
        case.description


@pytest.mark.property
@given(data=st.data())
def test_maximum_plus_minimum_is_the_sum_even_at_ties(data):
    """max(x, y) + min(x, y) = x + y, and with half the gradient each way at a tie, its
    gradient is exactly 1 for both inputs everywhere: ties are drawn on purpose."""
    shape = data.draw(shapes(), label="shape")
    few_values = hnp.arrays(np.float64, shape, elements=st.integers(-2, 2).map(float))
    a = Tensor(data.draw(few_values, label="x"), requires_grad=True)
    b = Tensor(data.draw(few_values, label="y"), requires_grad=True)
    total = a.maximum(b) + a.minimum(b)
    np.testing.assert_array_equal(total.data, a.data + b.data)
    total.sum().backward()
    np.testing.assert_array_equal(a.grad.data, np.ones(shape))
    np.testing.assert_array_equal(b.grad.data, np.ones(shape))


@pytest.mark.property
@given(x=shapes(min_dims=1).flatmap(lambda s: float_arrays(s, -50.0, 50.0)),
       shift=st.floats(-100, 100), data=st.data())
def test_softmax_rows_sum_to_one_and_ignore_a_constant_shift(x, shift, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    s = Tensor(x).softmax(axis=axis).data
    np.testing.assert_allclose(s.sum(axis=axis), 1.0, rtol=1e-12)
    np.testing.assert_allclose(Tensor(x + shift).softmax(axis=axis).data, s, rtol=1e-9)
    np.testing.assert_allclose(np.exp(Tensor(x).log_softmax(axis=axis).data), s, rtol=1e-12)


@pytest.mark.property
@given(x=shapes(min_dims=1).flatmap(lambda s: float_arrays(s, -50.0, 50.0)), data=st.data())
def test_logsumexp_lies_between_max_and_max_plus_log_n(x, data):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    lse = Tensor(x).logsumexp(axis=axis).data
    top = np.max(x, axis=axis)
    assert (lse >= top - 1e-12).all()
    assert (lse <= top + np.log(x.shape[axis]) + 1e-12).all()


@pytest.mark.property
@given(x=shapes().flatmap(distinct_arrays), shift=st.floats(-5, 5))
def test_var_is_shift_invariant_and_std_squared(x, shift):
    v = Tensor(x).var().data
    assert v >= 0
    np.testing.assert_allclose(Tensor(x + shift).var().data, v, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(Tensor(x).std().data ** 2, v, rtol=1e-12)


@pytest.mark.property
@given(x=shapes().flatmap(lambda s: float_arrays(s, -30.0, 30.0)),
       slope=st.floats(0.0, 0.99))
def test_elementwise_identities(x, slope):
    t = Tensor(x)
    np.testing.assert_array_equal(t.abs().data, t.maximum(-t).data)
    np.testing.assert_array_equal(t.clip(LO, HI).data, t.maximum(LO).minimum(HI).data)
    np.testing.assert_array_equal(t.leaky_relu(slope).data, t.maximum(t * slope).data)
    # softplus(x) - softplus(-x) = x: log(1 + e^x) - log(1 + e^-x) = log e^x.
    np.testing.assert_allclose((t.softplus() - (-t).softplus()).data, x, rtol=1e-12,
                               atol=1e-12)
