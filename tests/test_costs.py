"""Tests for tinygrad_nn.costs: eq. 2.1 and the cross-entropy, by hand and against backprop.py."""

import math

import numpy as np
import pytest

from tinygrad_nn import Tensor, backprop
from tinygrad_nn.costs import clamp_epsilon, cross_entropy_cost, quadratic_cost
from tinygrad_nn.nn import Linear, Sequential, Sigmoid

COSTS = [quadratic_cost, cross_entropy_cost]


def test_quadratic_cost_by_hand():
    a = [[0.2, 0.8], [0.6, 0.4]]
    y = [[0.0, 1.0], [1.0, 0.0]]
    # ||y - a||² = 0.04 + 0.04 and 0.16 + 0.16; n = 2 rows: 0.4 / (2·2) = 0.1.
    assert quadratic_cost(a, y).item() == pytest.approx(0.1, rel=1e-14)


def test_quadratic_cost_of_one_example_given_as_a_vector():
    # A 1-D a is one example: n = 1, C = ½ ||y - a||² = ½ (0.25 + 0.25 + 1).
    assert quadratic_cost([0.5, 0.5, 0.0], [1.0, 0.0, 1.0]).item() == pytest.approx(0.75)


def test_quadratic_cost_divides_by_the_number_of_rows_not_of_entries():
    a = np.zeros((4, 10))
    y = np.zeros((4, 10))
    y[:, 0] = 1.0  # each row's ||y - a||² is 1
    assert quadratic_cost(a, y).item() == pytest.approx(1 / 2)


def test_quadratic_cost_gradient_is_a_minus_y_over_n():
    a = Tensor([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]], requires_grad=True)
    y = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    quadratic_cost(a, y).backward()
    np.testing.assert_allclose(a.grad.data, (a.data - y) / 3, rtol=1e-14)


def test_cross_entropy_by_hand():
    a = [[0.9, 0.2], [0.3, 0.6]]
    y = [[1.0, 0.0], [0.0, 1.0]]
    # -(1/2) [ln 0.9 + ln 0.8 + ln 0.7 + ln 0.6]
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.7) + math.log(0.6)) / 2
    assert cross_entropy_cost(a, y).item() == pytest.approx(expected, rel=1e-14)


def test_cross_entropy_with_fractional_targets_is_minimal_at_a_equals_y():
    y = np.array([0.3, 0.7])
    at_y = cross_entropy_cost(y, y).item()
    expected = -(0.3 * math.log(0.3) + 0.7 * math.log(0.7)) * 2
    assert at_y == pytest.approx(expected, rel=1e-14)
    for a in ([0.31, 0.7], [0.3, 0.69], [0.5, 0.5]):
        assert cross_entropy_cost(a, y).item() > at_y


def test_cross_entropy_of_sigmoid_outputs_has_error_a_minus_y():
    # The sequel's point: with sigmoid outputs, dC/dz = (a - y)/n, no σ'(z) factor.
    z = Tensor([[2.0, -1.0, 0.5], [-3.0, 0.0, 4.0]], requires_grad=True)
    y = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    a = z.sigmoid()
    cross_entropy_cost(a, y).backward()
    np.testing.assert_allclose(z.grad.data, (a.data - y) / 2, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_is_finite_and_silent_at_zero_and_one(dtype):
    # pytest turns numpy's divide-by-zero warnings into errors, so silence is checked too.
    a = Tensor(np.array([[0.0, 1.0, 1.0, 0.0]], dtype=dtype), requires_grad=True)
    y = np.array([[1.0, 0.0, 1.0, 0.0]], dtype=dtype)
    cost = cross_entropy_cost(a, y)
    eps = clamp_epsilon(dtype)
    # Two outputs are exactly wrong: each costs -ln ε; the two right ones cost -ln(1 - ε) ≈ 0.
    assert np.isfinite(cost.item())
    assert cost.item() == pytest.approx(-2 * math.log(eps), rel=1e-6)
    cost.backward()
    assert np.all(np.isfinite(a.grad.data))
    # Outside [ε, 1 - ε] the clamped output no longer depends on a: no gradient (documented).
    np.testing.assert_array_equal(a.grad.data[0, :2], [0.0, 0.0])


def test_clamp_epsilon_is_the_machine_epsilon():
    assert clamp_epsilon(np.float64) == np.finfo(np.float64).eps
    assert clamp_epsilon(np.float32) == np.finfo(np.float32).eps
    assert 1 - clamp_epsilon(np.float64) < 1


def test_cross_entropy_clamp_does_not_touch_ordinary_outputs():
    a = Tensor([[1e-10, 0.5, 1 - 1e-10]], requires_grad=True)
    y = np.array([[0.0, 1.0, 1.0]])
    expected = -(math.log(1 - 1e-10) + math.log(0.5) + math.log(1 - 1e-10))
    assert cross_entropy_cost(a, y).item() == pytest.approx(expected, rel=1e-12)
    cross_entropy_cost(a, y).backward()
    # dC/da = -(y/a - (1 - y)/(1 - a)), exactly as without the clamp.
    grad = -(y / a.data - (1 - y) / (1 - a.data))
    np.testing.assert_allclose(a.grad.data, grad, rtol=1e-9)


@pytest.mark.parametrize("cost", COSTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("a_shape, y_shape", [((10,), (10, 1)), ((10, 1), (10,)),
                                              ((3, 10), (10,)), ((2, 3), (3, 2))])
def test_mismatched_shapes_are_an_error_naming_both(cost, a_shape, y_shape):
    with pytest.raises(ValueError) as info:
        cost(np.full(a_shape, 0.5), np.full(y_shape, 0.5))
    message = str(info.value)
    assert str(a_shape) in message and str(y_shape) in message
    assert cost.__name__ in message


@pytest.mark.parametrize("cost", COSTS, ids=lambda f: f.__name__)
def test_no_examples_is_an_error(cost):
    with pytest.raises(ValueError, match="no examples"):
        cost(np.zeros((0, 10)), np.zeros((0, 10)))


@pytest.mark.parametrize("name, cost", [("quadratic", quadratic_cost),
                                        ("cross-entropy", cross_entropy_cost)])
def test_costs_agree_with_the_hand_derived_reference(name, cost):
    """The same network's mean cost from the autograd costs and from backprop.total_cost."""
    rng = np.random.default_rng(4)
    l1, l2 = Linear(5, 4, rng=rng), Linear(4, 3, rng=rng)
    net = Sequential(l1, Sigmoid(), l2, Sigmoid())
    X, Y = rng.uniform(0, 1, (7, 5)), rng.uniform(0, 1, (7, 3))
    ours = cost(net(X), Y).item()
    reference = backprop.total_cost([l1.weight.data, l2.weight.data],
                                    [l1.bias.data, l2.bias.data], X, Y, cost=name)
    assert ours == pytest.approx(float(reference), rel=1e-12)
