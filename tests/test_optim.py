"""Tests for tinygrad_nn.optim.SGD: eqs. 2.2/2.3 (and 2.5/2.6 with a mini-batch mean cost)."""

import math

import numpy as np
import pytest

from tinygrad_nn import Tensor
from tinygrad_nn.costs import quadratic_cost
from tinygrad_nn.optim import SGD


def test_one_step_by_hand():
    w = Tensor([1.0, -2.0], requires_grad=True)
    b = Tensor(0.5, requires_grad=True)
    # C = w0² + 3 w1² + b w0: dC/dw = [2 w0 + b, 6 w1] = [2.5, -12], dC/db = w0 = 1.
    (w[0] * w[0] + 3 * w[1] * w[1] + b * w[0]).backward()
    SGD([w, b], lr=0.1).step()
    np.testing.assert_allclose(w.data, [1.0 - 0.25, -2.0 + 1.2], rtol=1e-15)
    assert b.item() == pytest.approx(0.5 - 0.1)


def test_step_with_a_mean_cost_is_eqs_2_5_and_2_6():
    # For z = w·x + b and C = 1/(2m) Σ_j (z_j - y_j)², the step is w - (η/m) Σ_j (z_j - y_j) x_j.
    X = np.array([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]])
    y = np.array([1.0, 0.0, 2.0])
    w0, b0, eta = np.array([0.5, -0.5]), 0.25, 0.2
    w, b = Tensor(w0.copy(), requires_grad=True), Tensor(b0, requires_grad=True)
    quadratic_cost((X @ w + b).reshape(3, 1), y.reshape(3, 1)).backward()
    SGD([w, b], eta).step()
    residual = X @ w0 + b0 - y
    np.testing.assert_allclose(w.data, w0 - eta / 3 * (residual @ X), rtol=1e-14)
    assert b.item() == pytest.approx(b0 - eta / 3 * residual.sum(), rel=1e-14)


def test_step_updates_the_array_in_place():
    w = Tensor([1.0, 2.0], requires_grad=True)
    array = w.data
    view = array[:1]
    (w * w).sum().backward()
    SGD([w], lr=0.25).step()
    assert w.data is array  # the same array: layers holding it see the new values
    assert view[0] == 0.5


def test_parameters_without_a_gradient_are_left_alone_and_zero_grad_clears():
    used, unused = Tensor([1.0], requires_grad=True), Tensor([5.0], requires_grad=True)
    opt = SGD([used, unused], lr=1.0)
    (used * 3).sum().backward()
    opt.step()
    assert used.item() == -2.0 and unused.item() == 5.0
    opt.zero_grad()
    assert used.grad is None and unused.grad is None


def test_gradients_accumulate_until_zero_grad():
    w = Tensor([0.0], requires_grad=True)
    opt = SGD([w], lr=1.0)
    (w * 2).sum().backward()
    (w * 2).sum().backward()
    opt.step()
    assert w.item() == -4.0  # the two backward passes added up, as in PyTorch


@pytest.mark.parametrize("lr", [0, -0.1, math.nan, math.inf, True, "0.1", None])
def test_learning_rate_must_be_a_positive_number(lr):
    with pytest.raises(ValueError, match="learning rate"):
        SGD([Tensor([1.0], requires_grad=True)], lr)


def test_parameters_must_be_trainable_tensors():
    with pytest.raises(TypeError, match="parameter 0"):
        SGD([np.zeros(3)], 0.1)
    with pytest.raises(ValueError, match="parameter 1"):
        SGD([Tensor([1.0], requires_grad=True), Tensor([1.0])], 0.1)
    w = Tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="leaf"):
        SGD([w * 2], 0.1)
