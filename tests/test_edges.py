"""Primitives and derived ops *at* the points the gradient checks avoid (issue 15).

Exact zeros, kinks and ties, ±inf and nan, saturation (|z| = 40 and 1e4), in float16,
float32 and float64. Each value and gradient is compared with its first-principles
definition, or with the convention PyTorch 2.13 documents where the derivative does not
exist (the convention is written beside each test). The suite turns warnings into errors,
so every test here also checks that no numpy warning reaches the user. A last section
compares with torch itself when it is importable (never a dependency).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import FLOAT_DTYPES, SATURATION, boundary_arrays

from tinygrad_nn import Tensor, costs, grad, jit, ops, optim
from tinygrad_nn import functional as F

INF, NAN = math.inf, math.nan


def value_and_grad(fn, x: np.ndarray, *others: np.ndarray):
    """fn's value and the gradient of its sum with respect to x (and `others`), as arrays."""
    ts = [Tensor(v, requires_grad=True) for v in (x, *others)]
    out = fn(*ts)
    # Seeded with ones rather than through out.sum(): a sum of +inf and -inf is numpy's
    # (warned) nan, which is not what these tests are about.
    out.backward(np.ones(out.shape, dtype=out.dtype))
    return (out.data, *[t.grad.data for t in ts])


# --- pow at a zero base (item 2) ----------------------------------------------------------


def test_pow_derivative_in_the_base_at_exponent_zero_is_zero():
    # x^0 = 1 for every x (0^0 = 1 by IEEE and PyTorch), a constant: d/dx = 0, also at 0,
    # where y x^(y-1) would be 0 · 0^-1 = 0 · inf = NaN.
    out, dx = value_and_grad(lambda x: x ** 0.0, np.array([0.0, 1.0, -2.0]))
    np.testing.assert_array_equal(out, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(dx, [0.0, 0.0, 0.0])


def test_pow_derivatives_at_a_zero_base_follow_pytorch():
    # d/dx x^y = y x^(y-1): 0 for y = 0 (convention), 0 for y = 2, 1 for y = 1,
    # inf for y = 0.5 (y · 0^-0.5), -inf for y = -1 (-1 · 0^-2).
    x = np.zeros(5)
    y = np.array([0.0, 2.0, 1.0, 0.5, -1.0])
    out, dx, dy = value_and_grad(lambda a, b: a ** b, x, y)
    np.testing.assert_array_equal(out, [1.0, 0.0, 0.0, 0.0, INF])
    np.testing.assert_array_equal(dx, [0.0, 0.0, 1.0, INF, -INF])
    # d/dy 0^y = 0^y ln 0: for y >= 0, 0^y is constant in y (0, or 1 at y = 0): 0; for
    # y < 0 it is inf · -inf = -inf (PyTorch's values, written down).
    np.testing.assert_array_equal(dy, [0.0, 0.0, 0.0, 0.0, -INF])


def test_pow_exponent_derivative_of_a_negative_base_is_nan_silently():
    # ln x is nan below 0: d/dy (-2)^y = (-2)^y ln(-2) is nan (as PyTorch), with no warning.
    _, dx, dy = value_and_grad(lambda a, b: a ** b, np.array([-2.0]), np.array([2.0]))
    np.testing.assert_array_equal(dx, [-4.0])  # 2 · (-2)^1
    assert np.isnan(dy).all()


def test_polynomial_feature_of_a_relu_zero_has_a_finite_gradient():
    # f = Σ [h^0 + 2x + 1.5 h^2] with h = relu(x): df/dx = 0 + 2 + 3 relu(x) = [2, 5, 8].
    x = np.array([0.0, 1.0, 2.0])
    _, dx = value_and_grad(lambda t: t.relu() ** 0 + 2 * t + 1.5 * t.relu() ** 2, x)
    np.testing.assert_array_equal(dx, 2 + 3 * np.maximum(x, 0))


def test_pow_grad_of_grad_at_zero_base():
    # d²/dx² x^2 = 2 everywhere, also at 0; the masked VJP is itself made of primitives.
    x = Tensor([0.0, 3.0], requires_grad=True)
    (dx,) = grad((x ** 2).sum(), [x], create_graph=True)
    (d2x,) = grad(dx.sum(), [x])
    np.testing.assert_array_equal(d2x.data, [2.0, 2.0])


# --- std and var of equal values (item 3) -------------------------------------------------


@pytest.mark.parametrize("values", [[2.0, 2.0, 2.0], [7.0]])
@pytest.mark.parametrize("fn", ["std", "var"])
def test_spread_of_equal_values_has_gradient_zero(fn, values):
    # σ = 0 is σ's minimum: PyTorch's std_backward gives 0 there; var' = 2(x - m)/n = 0.
    out, dx = value_and_grad(lambda t: getattr(F, fn)(t), np.array(values))
    assert out == 0.0
    np.testing.assert_array_equal(dx, np.zeros(len(values)))


def test_std_is_still_exact_away_from_zero():
    # d σ/dx_i = (x_i - m)/(n σ): for [1, 3], m = 2, σ = 1, n = 2 → ∓1/2.
    out, dx = value_and_grad(lambda t: F.std(t), np.array([1.0, 3.0]))
    assert out == 1.0
    np.testing.assert_array_equal(dx, [-0.5, 0.5])


# --- clip with lo > hi (item 4) -----------------------------------------------------------


def test_clip_with_lo_above_hi_is_the_constant_hi_with_no_gradient():
    # numpy's clip (minimum(maximum(x, lo), hi)) and torch.clamp give hi everywhere: a
    # constant, so the gradient is 0, also where x == hi.
    x = np.array([0.0, 1.0, 1.5, 2.0, 3.0])
    out, dx = value_and_grad(lambda t: t.clip(2.0, 1.0), x)
    np.testing.assert_array_equal(out, np.full(5, 1.0))
    np.testing.assert_array_equal(dx, np.zeros(5))


def test_clip_with_lo_equal_to_hi_passes_the_gradient_at_the_bound():
    out, dx = value_and_grad(lambda t: t.clip(1.0, 1.0), np.array([0.0, 1.0, 3.0]))
    np.testing.assert_array_equal(out, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(dx, [0.0, 1.0, 0.0])


# --- linear's shapes (item 5) -------------------------------------------------------------


@pytest.mark.parametrize("x_shape, w_shape, b_shape", [
    ((3,), (2, 3), (4, 2)),      # a bias with a batch axis x does not have
    ((5, 3), (3,), (5,)),        # a 1-D weight
])
def test_linear_refuses_what_its_backward_cannot_undo(x_shape, w_shape, b_shape):
    x, w, b = (Tensor(np.ones(s), requires_grad=True) for s in (x_shape, w_shape, b_shape))
    with pytest.raises(ValueError, match=r"linear: input"):
        ops.linear(x, w, b)


def test_linear_with_a_per_example_bias_has_its_gradients():
    # z = x wᵀ + b with b of shape (m, n_out): dC/db = g, dC/dw = gᵀ x, dC/dx = g w.
    x, w, b = np.arange(6.0).reshape(2, 3), np.ones((4, 3)), np.zeros((2, 4))
    out, dx, dw, db = value_and_grad(lambda a, v, c: ops.linear(a, v, c), x, w, b)
    np.testing.assert_array_equal(out, x @ w.T + b)
    np.testing.assert_array_equal(dx, np.ones((2, 4)) @ w)
    np.testing.assert_array_equal(dw, np.ones((4, 2)) @ x)
    np.testing.assert_array_equal(db, np.ones((2, 4)))


# --- values PyTorch gives, without numpy's warnings (item 6) -------------------------------


def test_log_of_zero_and_its_gradient():
    out, dx = value_and_grad(lambda t: t.log(), np.array([0.0, 1.0]))
    np.testing.assert_array_equal(out, [-INF, 0.0])
    np.testing.assert_array_equal(dx, [INF, 1.0])


def test_sqrt_gradient_at_zero_is_inf():
    out, dx = value_and_grad(lambda t: t.sqrt(), np.array([0.0, 4.0]))
    np.testing.assert_array_equal(out, [0.0, 2.0])
    np.testing.assert_array_equal(dx, [INF, 0.25])  # 1/(2√x)


def test_max_over_a_nan_gives_nan_gradients():
    # torch.amax: the max of a row holding NaN is NaN, and so is every entry's share.
    out, dx = value_and_grad(lambda t: t.max(), np.array([1.0, NAN, 2.0]))
    assert np.isnan(out)
    assert np.isnan(dx).all()


def test_log_softmax_of_an_all_minus_inf_row_is_nan():
    # softmax of an all -inf row is 0/0: no value; torch.log_softmax gives NaN, silently.
    x = np.array([[-INF, -INF, -INF], [0.0, 0.0, 0.0]])
    out, dx = value_and_grad(lambda t: F.log_softmax(t, axis=1), x)
    assert np.isnan(out[0]).all() and np.isnan(dx[0]).all()
    np.testing.assert_allclose(out[1], np.full(3, -math.log(3)), rtol=1e-15)
    np.testing.assert_allclose(dx[1], np.zeros(3), atol=1e-15)  # 1 - 3 · ⅓


@pytest.mark.parametrize("dtype, big", [(np.float16, 1e5), (np.float32, 1e39)])
def test_a_constant_beyond_the_dtype_is_inf(dtype, big):
    t = Tensor(np.ones(2, dtype=dtype))
    for out in (t + big, t * big, t - big):
        assert out.dtype == dtype
    np.testing.assert_array_equal((t + big).data, [INF, INF])
    np.testing.assert_array_equal((t - big).data, [-INF, -INF])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sigmoid_softplus_and_bce_at_saturation_in_every_dtype(dtype):
    z = np.array([-1e4, -40.0, -20.0, 0.0, 20.0, 40.0, 1e4], dtype=dtype)
    exact = np.array([1 / (1 + math.exp(-v)) if v > -700 else 0.0 for v in z.astype(float)])
    out, dx = value_and_grad(ops.sigmoid, z)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, exact.astype(dtype), rtol=np.finfo(dtype).eps,
                               atol=np.finfo(dtype).tiny)
    # σ' = σ(z)σ(-z) >= 0 and at most ¼ (first principles), 0 where it underflows.
    assert ((dx >= 0) & (dx <= 0.25)).all()
    _, dsp = value_and_grad(ops.softplus, z)  # softplus' = σ
    np.testing.assert_array_equal(dsp, out)
    y = np.ones_like(z)
    _, dz = value_and_grad(lambda t: costs.binary_cross_entropy_with_logits(t, y), z)
    np.testing.assert_allclose(dz * z.size, out - 1, atol=np.finfo(dtype).eps)  # (σ - y)/N


# --- log_sigmoid, sign, floor (item 7) ----------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_log_sigmoid_is_exact_at_large_magnitudes(dtype):
    # log σ(z) = -log(1 + e^{-z}): -1e4 at z = -1e4 (e^{1e4} overflows in every dtype),
    # -e^{-z} to full precision for large z; derivative σ(-z) = 1 - σ(z).
    z = np.array([-1e4, -40.0, 0.0, 40.0, 1e4], dtype=dtype)
    out, dz = value_and_grad(ops.log_sigmoid, z)
    assert out.dtype == dz.dtype == dtype
    exact = np.array([-1e4, -40.0 - math.log1p(math.exp(-40.0)), -math.log(2.0),
                      -math.log1p(math.exp(-40.0)), 0.0])
    np.testing.assert_allclose(out, exact.astype(dtype), rtol=2 * np.finfo(dtype).eps)
    sig_minus = np.array([1.0, 1.0, 0.5, math.exp(-40.0) / (1 + math.exp(-40.0)), 0.0])
    # σ(-1e4) is σ at the sigmoid's clamp (-709 in float64, -88 in float32), which
    # _stable_sigmoid documents as within the dtype's smallest normal number of 0.
    np.testing.assert_allclose(dz, sig_minus.astype(dtype), rtol=2 * np.finfo(dtype).eps,
                               atol=np.finfo(dtype).tiny)


@pytest.mark.parametrize("name, expected", [("sign", [-1.0, 0.0, 1.0]),
                                            ("floor", [-2.0, 0.0, 2.0])])
def test_sign_and_floor_require_grad_and_have_zero_gradient(name, expected):
    # torch.sign and torch.floor: the output of a requires-grad x requires grad; the
    # functions are piecewise constant, so the gradient is 0 (also at their jumps).
    x = Tensor([-1.5, 0.0, 2.0], requires_grad=True)
    out = getattr(ops, name)(x)
    assert out.requires_grad
    np.testing.assert_array_equal(out.data, expected)
    out.backward(np.array([1.0, NAN, 3.0]))  # zeros_like(grad): even a NaN gives 0
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 0.0])


# --- where under jit: the mask of each step (item 8, issue 14) ----------------------------


def _leaky_step(w: Tensor, opt: optim.SGD):
    def step(x, y):
        opt.zero_grad()
        h = x @ w.T
        out = F.where(h > 0, h, 0.1 * h)  # leaky ReLU written with where
        cost = ((out - y) * (out - y)).sum()
        cost.backward()
        opt.step()
        return cost
    return step


def test_where_gradient_follows_each_steps_condition_under_jit():
    # The same steps eagerly and compiled: a replay must use each step's mask h > 0,
    # not the mask of the step it captured (x flips sign, so the mask flips).
    batches = [(np.array([[1.0, 2.0]]), np.array([[0.5]])),
               (np.array([[-1.0, -2.0]]), np.array([[0.5]])),
               (np.array([[2.0, 1.0]]), np.array([[-0.5]])),
               (np.array([[-2.0, 0.5]]), np.array([[1.0]]))] * 2
    results = []
    for compiled in (False, True):
        w = Tensor([[0.3, -0.2]], requires_grad=True)
        step = _leaky_step(w, optim.SGD([w], lr=0.1))
        step = jit(step) if compiled else step
        costs_seen = [step(x, y).item() for x, y in batches]
        results.append((costs_seen, w.data.copy()))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])


# --- properties over boundary arrays ------------------------------------------------------

#: Each elementwise op with its first-principles value and derivative, in float64 (numpy
#: under errstate: the reference may divide by 0; the code under test may not warn).
#: (tanh is left out: its derivative 1 - t² from the rounded output t is ill-conditioned
#: near saturation in float16, as PyTorch's is; the value tests elsewhere cover it.)
REFERENCE = {
    "relu": (lambda t: ops.relu(t), lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    "abs": (lambda t: ops.abs(t), np.abs, np.sign),
    "sign": (lambda t: ops.sign(t), np.sign, np.zeros_like),
    "floor": (lambda t: ops.floor(t), np.floor, np.zeros_like),
    "neg": (lambda t: ops.neg(t), np.negative, lambda x: -np.ones_like(x)),
    "softplus": (lambda t: ops.softplus(t), lambda x: np.logaddexp(0, x),
                 lambda x: 1 / (1 + np.exp(-x))),
    "clip": (lambda t: ops.clip(t, lo=-1.0, hi=1.0), lambda x: np.clip(x, -1, 1),
             lambda x: ((x >= -1) & (x <= 1)) * 1.0),
    "leaky_relu": (lambda t: ops.leaky_relu(t, slope=0.25),
                   lambda x: np.where(x > 0, x, 0.25 * x), lambda x: np.where(x > 0, 1.0, 0.25)),
    "sqrt": (lambda t: ops.sqrt(t), np.sqrt, lambda x: 0.5 / np.sqrt(x)),
    "log": (lambda t: ops.log(t), np.log, lambda x: 1 / x),
}


def _close(actual: np.ndarray, expected: np.ndarray, dtype) -> None:
    """Equal up to the dtype's rounding of one or two operations (2 ε relative; the
    piecewise-linear ops are exact), infinities and NaNs in the same places. The absolute
    `tiny`: σ below the sigmoid's clamp (softplus' at -1e4) is σ(-88) = 6e-39 in float32,
    which _stable_sigmoid documents as within the smallest normal number of 0."""
    with np.errstate(over="ignore"):  # 1/1e-6 is inf in float16: the reference rounds too
        expected = expected.astype(dtype)
    np.testing.assert_allclose(actual, expected, rtol=2 * np.finfo(dtype).eps,
                               atol=np.finfo(dtype).tiny, equal_nan=True)


@pytest.mark.property
@pytest.mark.parametrize("name", sorted(REFERENCE))
@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(x=boundary_arrays(kinds=("zero", "kink", "saturated", "inf")))
def test_elementwise_op_at_boundaries_matches_its_definition(name, x):
    """Value and gradient equal the definition at zeros, kinks, saturation and ±inf, with
    no warning, in every float dtype."""
    op, value, derivative = REFERENCE[name]
    out, dx = value_and_grad(op, x)
    assert out.dtype == dx.dtype == x.dtype
    with np.errstate(all="ignore"):
        wide = x.astype(np.float64)
        expected_value, expected_grad = value(wide), derivative(wide)
    _close(out, expected_value, x.dtype)
    _close(dx, expected_grad, x.dtype)


@pytest.mark.property
@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(x=boundary_arrays(kinds=("zero", "saturated", "inf", "nan")))
def test_sigmoid_family_at_boundaries_is_silent_and_bounded(x):
    """σ ∈ [0, 1], σ' ∈ [0, ¼], log σ <= 0 with derivative σ(-z) ∈ [0, 1]; NaN only from
    NaN; no warning in any dtype."""
    for op, low, high in ((ops.sigmoid, 0, 1), (ops.log_sigmoid, -INF, 0)):
        out, dx = value_and_grad(op, x)
        finite = ~np.isnan(x)
        np.testing.assert_array_equal(np.isnan(out), ~finite)
        assert ((out[finite] >= low) & (out[finite] <= high)).all()
        assert ((dx[finite] >= 0) & (dx[finite] <= 1)).all()


@pytest.mark.property
@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(x=boundary_arrays(kinds=("zero", "kink", "saturated")), data=st.data())
def test_reductions_at_ties_share_and_sum_to_one(x, data):
    """max over ties shares the gradient (shares sum to 1 per row, as torch.amax); std of
    equal values has gradient 0 (torch's std_backward)."""
    x64 = x.astype(np.float64)
    _, dx = value_and_grad(lambda t: t.max(axis=-1), x64)
    np.testing.assert_allclose(dx.sum(axis=-1), np.ones(x.shape[:-1]), rtol=1e-15)
    winners = x64 == x64.max(axis=-1, keepdims=True)
    np.testing.assert_allclose(dx, winners / winners.sum(axis=-1, keepdims=True), rtol=1e-15)
    if (x64 == x64.flat[0]).all():
        _, ds = value_and_grad(lambda t: F.std(t), x64)
        np.testing.assert_array_equal(ds, np.zeros_like(x64))


# --- against torch, when it is importable -------------------------------------------------


def test_conventions_match_torch():
    torch = pytest.importorskip("torch")
    base = np.array([0.0, 0.0, 0.0, 0.0, 2.0, -2.0])
    exponent = np.array([0.0, 2.0, 1.0, -1.0, 0.0, 2.0])
    cases = {
        "pow": (lambda a, b: a ** b, lambda a, b: a ** b, (base, exponent)),
        "std of equal": (lambda a: F.std(a), lambda a: a.std(correction=0), (np.ones(3),)),
        "var of equal": (lambda a: F.var(a), lambda a: a.var(correction=0), (np.ones(3),)),
        "clip lo > hi": (lambda a: a.clip(2.0, 1.0), lambda a: torch.clamp(a, 2.0, 1.0),
                         (np.array([0.0, 1.0, 2.0, 3.0]),)),
        "sqrt at 0": (lambda a: a.sqrt(), torch.sqrt, (np.array([0.0, 1.0]),)),
        "log at 0": (lambda a: a.log(), torch.log, (np.array([0.0, 1.0]),)),
        "max over nan": (lambda a: a.max(), torch.amax, (np.array([1.0, NAN]),)),
        "log_sigmoid": (ops.log_sigmoid, torch.nn.functional.logsigmoid,
                        (np.array([-1e4, -40.0, 0.0, 40.0, 1e4]),)),
        "sign": (lambda t: ops.sign(t), torch.sign, (np.array([-1.0, 0.0, 1.0]),)),
        "floor": (lambda t: ops.floor(t), torch.floor, (np.array([-1.5, 0.0, 1.5]),)),
        "log_softmax -inf": (lambda a: F.log_softmax(a, axis=0),
                             lambda a: torch.log_softmax(a, 0), (np.full(3, -INF),)),
    }
    for name, (ours, theirs, inputs) in cases.items():
        got = value_and_grad(ours, *inputs)
        ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in inputs]
        out = theirs(*ts)
        want = (out.detach().numpy(), *(g.numpy() for g in torch.autograd.grad(out.sum(), ts)))
        for a, b in zip(got, want):
            # atol: σ(-1e4) is σ at the sigmoid's clamp, 1.2e-308, where torch has 0.
            np.testing.assert_allclose(a, b, rtol=1e-15, atol=np.finfo(float).tiny,
                                       equal_nan=True, err_msg=name)


@pytest.mark.parametrize("z", [-SATURATION[0], SATURATION[1]])
def test_cross_entropy_cost_of_sigmoid_matches_torch_bce_with_logits(z):
    torch = pytest.importorskip("torch")
    zs = np.array([[z, -z], [0.5, z]])
    y = np.array([[1.0, 0.0], [0.25, 1.0]])
    t = Tensor(zs, requires_grad=True)
    cost = costs.cross_entropy_cost(ops.sigmoid(t), y)
    cost.backward()
    tz = torch.tensor(zs, requires_grad=True)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        tz, torch.tensor(y), reduction="sum") / zs.shape[0]  # 1/n over rows
    ref.backward()
    np.testing.assert_allclose(cost.item(), ref.item(), rtol=1e-15)
    np.testing.assert_allclose(t.grad.data, tz.grad.numpy(), rtol=1e-15, atol=1e-300)


@pytest.mark.parametrize("make, expected", [
    (lambda: Tensor(1e300, dtype=np.float32), np.float32(np.inf)),
    (lambda: Tensor(np.array([1e300, -1e300]), dtype=np.float32),
     np.array([np.inf, -np.inf], np.float32)),
    (lambda: Tensor([1e300, -1e300]).astype(np.float16), np.array([np.inf, -np.inf], np.float16)),
])
def test_a_float_beyond_a_narrower_dtype_becomes_inf_silently(make, expected):
    """numpy warns "overflow encountered in cast"; PyTorch gives ±inf silently (the suite
    runs with warnings as errors, so a warning fails this test)."""
    values = make().data
    assert values.dtype == expected.dtype and np.array_equal(values, expected)
