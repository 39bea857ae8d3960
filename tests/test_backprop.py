"""Tests for the hand-derived BP1-BP4 reference, tinygrad_nn.backprop.

The reference is checked against hand calculations and against central finite
differences written here in plain numpy: it must not be tested with the
autograd it is meant to witness.
"""

import ast
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from tinygrad_nn.backprop import (
    COSTS,
    CrossEntropyCost,
    QuadraticCost,
    backprop,
    backprop_batch,
    backprop_deltas,
    backprop_deltas_batch,
    feedforward,
    feedforward_batch,
    sigmoid,
    sigmoid_prime,
    total_cost,
    update_mini_batch,
    update_mini_batch_per_example,
)

ARCHITECTURES = [[1, 1], [2, 3, 1], [3, 4, 5, 2], [4, 2]]
COST_NAMES = sorted(COSTS)


def make_net(sizes, seed=0, dtype=np.float64):
    """Random weights w^l of shape (n_l, n_{l-1}) and biases b^l of shape (n_l,)."""
    rng = np.random.default_rng(seed)
    weights = [
        rng.standard_normal((n, k)).astype(dtype)
        for k, n in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    biases = [rng.standard_normal(n).astype(dtype) for n in sizes[1:]]
    return weights, biases


def make_data(sizes, m, seed=1, dtype=np.float64):
    """m examples as rows: inputs in [0, 1] (eq. 1.9 style) and targets in (0, 1)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (m, sizes[0])).astype(dtype)
    Y = rng.uniform(0.05, 0.95, (m, sizes[-1])).astype(dtype)
    return X, Y


def numerical_gradient(f, params, eps=1e-6):
    """Central differences (f(θ + ε e_i) - f(θ - ε e_i)) / 2ε for every entry of every array.

    ``f`` takes no arguments and reads ``params``, which are perturbed in place
    and restored. Returns a list of arrays shaped like ``params``.
    """
    grads = []
    for p in params:
        g = np.zeros_like(p, dtype=np.float64)
        for i in np.ndindex(p.shape):
            orig = p[i]
            p[i] = orig + eps
            f_plus = f()
            p[i] = orig - eps
            f_minus = f()
            p[i] = orig
            g[i] = (f_plus - f_minus) / (2 * eps)
        grads.append(g)
    return grads


def assert_lists_close(actual, expected, rtol, atol):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def example_cost(weights, biases, x, y, cost):
    """C_x computed from the forward pass alone: what the gradient must differentiate."""
    return float(COSTS[cost].fn(feedforward(weights, biases, x)[1][-1], y))


# --------------------------------------------------------------------------
# The module is an independent witness
# --------------------------------------------------------------------------


def test_imports_only_numpy_and_stdlib():
    source = Path(sys.modules["tinygrad_nn.backprop"].__file__).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "backprop.py must not import from its own package"
            imported.add(node.module.split(".")[0])
    assert imported <= {"numpy", "collections", "typing", "__future__"}


# --------------------------------------------------------------------------
# sigmoid (eq. 1.6) and its derivative
# --------------------------------------------------------------------------


def test_sigmoid_values():
    z = np.array([-5.0, -1.0, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(sigmoid(z), 1 / (1 + np.exp(-z)), rtol=1e-15)
    assert sigmoid(0.0) == 0.5
    np.testing.assert_allclose(sigmoid(-z), 1 - sigmoid(z), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_extremes_finite_without_warnings(dtype):
    z = np.array([-1e4, -800.0, -100.0, 100.0, 800.0, 1e4], dtype=dtype)
    # Both numpy's floating-point flags and Python warnings become errors here.
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        s = sigmoid(z)
        sp = sigmoid_prime(z)
    assert s.dtype == dtype and sp.dtype == dtype
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(sp))
    assert s[0] == 0.0 and s[-1] == 1.0
    assert sp[0] == 0.0 and sp[-1] == 0.0


def test_sigmoid_prime_is_sigma_times_one_minus_sigma():
    z = np.linspace(-8, 8, 33)
    s = sigmoid(z)
    np.testing.assert_allclose(sigmoid_prime(z), s * (1 - s), rtol=1e-12, atol=1e-17)
    assert sigmoid_prime(0.0) == 0.25


def test_sigmoid_prime_matches_finite_differences():
    z = np.linspace(-6, 6, 25)
    eps = 1e-6
    numeric = (sigmoid(z + eps) - sigmoid(z - eps)) / (2 * eps)
    np.testing.assert_allclose(sigmoid_prime(z), numeric, rtol=1e-7, atol=1e-10)


# --------------------------------------------------------------------------
# Costs and BP1
# --------------------------------------------------------------------------


def test_quadratic_cost_fn():
    a, y = np.array([0.2, 0.9]), np.array([0.0, 1.0])
    assert QuadraticCost.fn(a, y) == pytest.approx(0.5 * (0.2**2 + 0.1**2), rel=1e-15)
    # A batch of rows gives one cost per row.
    np.testing.assert_allclose(QuadraticCost.fn(np.stack([a, y]), np.stack([y, y])), [0.025, 0])


def test_cross_entropy_fn_matches_formula_inside_0_1():
    a, y = np.array([0.2, 0.9, 0.5]), np.array([0.0, 1.0, 0.3])
    expected = -np.sum(y * np.log(a) + (1 - y) * np.log(1 - a))
    assert CrossEntropyCost.fn(a, y) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_fn_at_exactly_0_and_1(dtype):
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        # Saturated and right: cost exactly 0 (0 ln 0 = 0).
        right = CrossEntropyCost.fn(np.array([0.0, 1.0], dtype), np.array([0.0, 1.0], dtype))
        # Saturated and wrong: large but finite, -ln(tiny) per output.
        wrong = CrossEntropyCost.fn(np.array([0.0, 1.0], dtype), np.array([1.0, 0.0], dtype))
    assert right == 0.0
    assert wrong.dtype == dtype
    assert wrong == pytest.approx(-2 * np.log(np.finfo(dtype).tiny), rel=1e-6)


@pytest.mark.parametrize("cost", COST_NAMES)
def test_bp1_delta_matches_finite_differences(cost):
    # δ^L = ∂C_x/∂z^L, with a^L = σ(z^L); y in (0, 1) and not only 0/1.
    rng = np.random.default_rng(3)
    z = rng.standard_normal(5) * 2
    y = np.array([0.0, 1.0, 0.3, 0.7, 1.0])
    f = COSTS[cost].fn
    (numeric,) = numerical_gradient(lambda: f(sigmoid(z), y), [z])
    analytic = COSTS[cost].delta(z, sigmoid(z), y)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


def test_cross_entropy_delta_has_no_sigma_prime():
    z, y = np.array([-2.0, 0.0, 4.0]), np.array([1.0, 0.0, 0.5])
    np.testing.assert_array_equal(CrossEntropyCost.delta(z, sigmoid(z), y), sigmoid(z) - y)


# --------------------------------------------------------------------------
# One example: hand-checkable cases
# --------------------------------------------------------------------------


def test_feedforward_shapes_and_first_activation():
    weights, biases = make_net([3, 4, 2])
    x = np.array([0.1, 0.5, 0.9])
    zs, activations = feedforward(weights, biases, x)
    assert [z.shape for z in zs] == [(4,), (2,)]
    assert [a.shape for a in activations] == [(3,), (4,), (2,)]
    np.testing.assert_array_equal(activations[0], x)
    np.testing.assert_allclose(zs[0], weights[0] @ x + biases[0], rtol=1e-15)
    np.testing.assert_allclose(activations[2], sigmoid(zs[1]), rtol=1e-15)


@pytest.mark.parametrize("cost", COST_NAMES)
def test_single_neuron_by_hand(cost):
    # Sizes [1, 1]: z = w x + b, a = σ(z). By the chain rule
    # ∂C/∂b = δ and ∂C/∂w = δ x, with δ = (a - y) σ'(z) (quadratic) or a - y (cross-entropy).
    w, b, x, y = 0.5, -0.25, 2.0, 1.0
    z = w * x + b  # 0.75
    a = 1 / (1 + math.exp(-z))
    delta = (a - y) * a * (1 - a) if cost == "quadratic" else a - y
    nabla_b, nabla_w = backprop([np.array([[w]])], [np.array([b])], [x], [y], cost)
    assert nabla_b[0].shape == (1,) and nabla_w[0].shape == (1, 1)
    assert nabla_b[0][0] == pytest.approx(delta, rel=1e-14)
    assert nabla_w[0][0, 0] == pytest.approx(delta * x, rel=1e-14)


def test_two_three_one_net_by_chain_rule():
    # [2, 3, 1], quadratic cost, with every sum of BP2 and BP4 written out by hand.
    weights, biases = make_net([2, 3, 1], seed=5)
    x, y = np.array([0.3, 0.8]), np.array([0.25])
    w2, w3 = weights
    z2 = [w2[j, 0] * x[0] + w2[j, 1] * x[1] + biases[0][j] for j in range(3)]
    a2 = [1 / (1 + math.exp(-v)) for v in z2]
    z3 = sum(w3[0, k] * a2[k] for k in range(3)) + biases[1][0]
    a3 = 1 / (1 + math.exp(-z3))
    d3 = (a3 - y[0]) * a3 * (1 - a3)
    d2 = [w3[0, j] * d3 * a2[j] * (1 - a2[j]) for j in range(3)]

    deltas = backprop_deltas(weights, biases, x, y)
    nabla_b, nabla_w = backprop(weights, biases, x, y)
    np.testing.assert_allclose(deltas[1], [d3], rtol=1e-13)
    np.testing.assert_allclose(deltas[0], d2, rtol=1e-13)
    np.testing.assert_allclose(nabla_b[1], [d3], rtol=1e-13)
    np.testing.assert_allclose(nabla_b[0], d2, rtol=1e-13)
    np.testing.assert_allclose(nabla_w[1], [[d3 * a2[k] for k in range(3)]], rtol=1e-13)
    np.testing.assert_allclose(
        nabla_w[0], [[d2[j] * x[k] for k in range(2)] for j in range(3)], rtol=1e-13
    )


def test_zero_gradient_when_output_equals_target():
    weights, biases = make_net([2, 3, 2])
    x = np.array([0.4, 0.6])
    y = feedforward(weights, biases, x)[1][-1]
    for cost in COST_NAMES:
        nabla_b, nabla_w = backprop(weights, biases, x, y, cost)
        for g in nabla_b + nabla_w:
            np.testing.assert_array_equal(g, 0.0)


# --------------------------------------------------------------------------
# One example: against central finite differences of C_x (float64)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cost", COST_NAMES)
@pytest.mark.parametrize("sizes", ARCHITECTURES, ids=str)
def test_backprop_matches_finite_differences(sizes, cost):
    weights, biases = make_net(sizes, seed=len(sizes))
    X, Y = make_data(sizes, 1)
    x, y = X[0], Y[0]
    nabla_b, nabla_w = backprop(weights, biases, x, y, cost)
    num_w = numerical_gradient(lambda: example_cost(weights, biases, x, y, cost), weights)
    num_b = numerical_gradient(lambda: example_cost(weights, biases, x, y, cost), biases)
    assert_lists_close(nabla_w, num_w, rtol=1e-7, atol=1e-9)
    assert_lists_close(nabla_b, num_b, rtol=1e-7, atol=1e-9)


def test_deltas_are_gradients_wrt_z():
    # δ^l = ∂C_x/∂z^l: perturb z^l by adding to b^l, which shifts z^l one-for-one.
    weights, biases = make_net([3, 4, 2])
    x, y = np.array([0.2, 0.4, 0.9]), np.array([0.1, 0.8])
    numeric = numerical_gradient(lambda: example_cost(weights, biases, x, y, "quadratic"), biases)
    assert_lists_close(backprop_deltas(weights, biases, x, y), numeric, rtol=1e-7, atol=1e-9)


def test_cost_accepts_name_or_class():
    weights, biases = make_net([2, 3, 1])
    x, y = np.array([0.1, 0.2]), np.array([1.0])
    for name, cls in COSTS.items():
        by_name = backprop(weights, biases, x, y, name)
        by_class = backprop(weights, biases, x, y, cls)
        for a, b in zip(by_name[0] + by_name[1], by_class[0] + by_class[1], strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="unknown cost 'mse'.*cross-entropy"):
        backprop(weights, biases, x, y, "mse")
    with pytest.raises(TypeError, match="fn"):
        backprop(weights, biases, x, y, 42)


# --------------------------------------------------------------------------
# Mini-batches
# --------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", ARCHITECTURES, ids=str)
def test_batch_forms_equal_per_example_forms(sizes):
    weights, biases = make_net(sizes)
    X, Y = make_data(sizes, 7)
    zs, activations = feedforward_batch(weights, biases, X)
    deltas = backprop_deltas_batch(weights, biases, X, Y)
    assert [a.shape for a in activations] == [(7, n) for n in sizes]
    assert [d.shape for d in deltas] == [(7, n) for n in sizes[1:]]
    for i in range(len(X)):
        zs_i, activations_i = feedforward(weights, biases, X[i])
        assert_lists_close([z[i] for z in zs], zs_i, rtol=1e-12, atol=1e-12)
        assert_lists_close([a[i] for a in activations], activations_i, rtol=1e-12, atol=1e-12)
        deltas_i = backprop_deltas(weights, biases, X[i], Y[i])
        assert_lists_close([d[i] for d in deltas], deltas_i, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cost", COST_NAMES)
@pytest.mark.parametrize("sizes", ARCHITECTURES, ids=str)
def test_backprop_batch_is_sum_of_per_example(sizes, cost):
    weights, biases = make_net(sizes)
    X, Y = make_data(sizes, 9)
    nabla_b, nabla_w = backprop_batch(weights, biases, X, Y, cost)
    per_example = [backprop(weights, biases, x, y, cost) for x, y in zip(X, Y, strict=True)]
    sum_b = [sum(g[0][i] for g in per_example) for i in range(len(biases))]
    sum_w = [sum(g[1][i] for g in per_example) for i in range(len(weights))]
    assert_lists_close(nabla_b, sum_b, rtol=1e-12, atol=1e-12)
    assert_lists_close(nabla_w, sum_w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cost", COST_NAMES)
def test_gradient_of_mean_cost_is_batch_sum_over_m(cost):
    # The normalisation trap of eqs. 2.4-2.6: ∇(mean cost) = backprop_batch / m.
    sizes, m = [3, 4, 2], 5
    weights, biases = make_net(sizes)
    X, Y = make_data(sizes, m)
    nabla_b, nabla_w = backprop_batch(weights, biases, X, Y, cost)
    num_w = numerical_gradient(lambda: float(total_cost(weights, biases, X, Y, cost)), weights)
    num_b = numerical_gradient(lambda: float(total_cost(weights, biases, X, Y, cost)), biases)
    assert_lists_close([g / m for g in nabla_w], num_w, rtol=1e-7, atol=1e-9)
    assert_lists_close([g / m for g in nabla_b], num_b, rtol=1e-7, atol=1e-9)


def test_total_cost_is_eq_2_1():
    sizes = [2, 3, 2]
    weights, biases = make_net(sizes)
    X, Y = make_data(sizes, 6)
    outputs = [feedforward(weights, biases, x)[1][-1] for x in X]
    expected = sum(np.sum((y - a) ** 2) for y, a in zip(Y, outputs, strict=True)) / (2 * len(X))
    assert total_cost(weights, biases, X, Y) == pytest.approx(expected, rel=1e-14)
    expected_ce = np.mean([CrossEntropyCost.fn(a, y) for a, y in zip(outputs, Y, strict=True)])
    assert total_cost(weights, biases, X, Y, "cross-entropy") == pytest.approx(
        expected_ce, rel=1e-14
    )


@pytest.mark.parametrize("cost", COST_NAMES)
def test_update_mini_batch_matches_per_example_and_eqs_2_5_2_6(cost):
    sizes, m, eta = [3, 4, 5, 2], 8, 0.7
    weights, biases = make_net(sizes)
    X, Y = make_data(sizes, m)
    saved = [p.copy() for p in weights + biases]

    new_w, new_b = update_mini_batch(weights, biases, X, Y, eta, cost)
    slow_w, slow_b = update_mini_batch_per_example(weights, biases, X, Y, eta, cost)
    assert_lists_close(new_w, slow_w, rtol=1e-12, atol=1e-12)
    assert_lists_close(new_b, slow_b, rtol=1e-12, atol=1e-12)

    nabla_b, nabla_w = backprop_batch(weights, biases, X, Y, cost)
    step_w = [w - eta / m * g for w, g in zip(weights, nabla_w, strict=True)]  # eq. 2.5
    step_b = [b - eta / m * g for b, g in zip(biases, nabla_b, strict=True)]  # eq. 2.6
    assert_lists_close(new_w, step_w, rtol=1e-15, atol=0)
    assert_lists_close(new_b, step_b, rtol=1e-15, atol=0)

    for before, after in zip(saved, weights + biases, strict=True):
        np.testing.assert_array_equal(before, after)  # inputs not mutated


def test_small_step_decreases_cost():
    sizes = [3, 4, 2]
    weights, biases = make_net(sizes)
    X, Y = make_data(sizes, 10)
    new_w, new_b = update_mini_batch(weights, biases, X, Y, eta=0.1)
    assert total_cost(new_w, new_b, X, Y) < total_cost(weights, biases, X, Y)


# --------------------------------------------------------------------------
# dtype and input validation
# --------------------------------------------------------------------------


def test_float32_in_float32_out():
    sizes = [3, 4, 2]
    weights, biases = make_net(sizes, dtype=np.float32)
    X, Y = make_data(sizes, 4, dtype=np.float32)
    outputs = []
    for cost in COST_NAMES:
        outputs += feedforward(weights, biases, X[0])[0] + feedforward(weights, biases, X[0])[1]
        outputs += feedforward_batch(weights, biases, X)[1]
        outputs += backprop_deltas(weights, biases, X[0], Y[0], cost)
        outputs += backprop_deltas_batch(weights, biases, X, Y, cost)
        for nabla in (
            backprop(weights, biases, X[0], Y[0], cost),
            backprop_batch(weights, biases, X, Y, cost),
            update_mini_batch(weights, biases, X, Y, 0.5, cost),
            update_mini_batch_per_example(weights, biases, X, Y, 0.5, cost),
        ):
            outputs += nabla[0] + nabla[1]
        outputs.append(total_cost(weights, biases, X, Y, cost))
        outputs.append(COSTS[cost].fn(X[0, :2], Y[0]))
        outputs.append(COSTS[cost].delta(X[0, :2], X[0, :2], Y[0]))
    assert all(o.dtype == np.float32 for o in outputs)
    # And the float32 gradient is the float64 one, to float32 precision.
    nabla_b32, nabla_w32 = backprop_batch(weights, biases, X, Y)
    nabla_b64, nabla_w64 = backprop_batch(
        [w.astype(np.float64) for w in weights], [b.astype(np.float64) for b in biases], X, Y
    )
    assert_lists_close(nabla_w32, nabla_w64, rtol=1e-4, atol=1e-6)
    assert_lists_close(nabla_b32, nabla_b64, rtol=1e-4, atol=1e-6)


def test_mismatched_weight_shapes_name_the_shapes():
    weights = [np.zeros((30, 784)), np.zeros((10, 31))]
    biases = [np.zeros(30), np.zeros(10)]
    msg = r"backprop: weights\[1\] has shape \(10, 31\) but layer 2 has 30 neurons"
    with pytest.raises(ValueError, match=msg):
        backprop(weights, biases, np.zeros(784), np.zeros(10))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda w, b: feedforward(w, [b[0]], np.zeros(2)), "2 weight matrices and 1 bias"),
        (
            lambda w, b: feedforward([w[0][0]] + w[1:], b, np.zeros(2)),
            r"weights\[0\] has shape \(2,\)",
        ),
        (lambda w, b: feedforward(w, [b[0], np.zeros(2)], np.zeros(2)), r"biases\[1\].*\(1,\)"),
        (lambda w, b: feedforward(w, [b[0][:, None], b[1]], np.zeros(2)), r"\(3, 1\).*\(3,\)"),
        (lambda w, b: feedforward(w, b, np.zeros(3)), r"x has shape \(3,\).*needs shape \(2,\)"),
        (lambda w, b: feedforward(w, b, np.zeros((2, 1))), "not a column vector"),
        (lambda w, b: backprop(w, b, np.zeros(2), np.zeros(2)), r"y has shape \(2,\).*\(1,\)"),
        (lambda w, b: feedforward_batch(w, b, np.zeros(2)), r"X has shape \(2,\).*\(m, 2\)"),
        (lambda w, b: total_cost(w, b, np.zeros((0, 2)), np.zeros((0, 1))), "m >= 1"),
        (
            lambda w, b: backprop_batch(w, b, np.zeros((4, 2)), np.zeros((3, 1))),
            r"Y has shape \(3, 1\).*\(4, 1\)",
        ),
        (
            lambda w, b: update_mini_batch(w, b, np.zeros((4, 3)), np.zeros((4, 1)), 0.1),
            r"update_mini_batch: X has shape \(4, 3\)",
        ),
    ],
)
def test_bad_shapes_raise_value_error_with_shapes(call, match):
    weights, biases = make_net([2, 3, 1])
    with pytest.raises(ValueError, match=match):
        call(weights, biases)
