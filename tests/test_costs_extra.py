"""Tests for the losses of logits in tinygrad_nn.costs: cross_entropy (softmax, then the negative
log-likelihood), binary_cross_entropy_with_logits and nll_loss, and the LOSSES registry.

Each is checked against values worked out by hand (with math, not with the autograd), against
its gradient formula ((softmax(z) - y)/n, (σ(z) - y)/N, -1/n at the picked entries), by
gradcheck, for stability at |z| = 1e4, and for the errors it raises.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import classification_batches, float_arrays, shapes

from tinygrad_nn import Tensor, gradcheck
from tinygrad_nn import functional as F
from tinygrad_nn.costs import (
    COSTS,
    LOSSES,
    binary_cross_entropy_with_logits,
    cross_entropy,
    cross_entropy_cost,
    nll_loss,
    quadratic_cost,
)

LOGITS = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [-2.0, 0.0, 5.0]])
LABELS = np.array([2, 0, 1])


def softmax_rows(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


# --- cross_entropy ---------------------------------------------------------------------------


def test_cross_entropy_with_labels_by_hand():
    # Row 0: -log(e³/(e + e² + e³)); row 1: log 3 (uniform); row 2: -log(1/(e⁻² + 1 + e⁵)).
    e = math.e
    rows = [math.log(e + e**2 + e**3) - 3, math.log(3),
            math.log(e**-2 + 1 + e**5) - 0]
    assert cross_entropy(LOGITS, LABELS).item() == pytest.approx(sum(rows) / 3, rel=1e-14)


def test_cross_entropy_of_one_example_of_two_equal_logits_is_ln_2():
    assert cross_entropy([[0.0, 0.0]], [1]).item() == pytest.approx(math.log(2), rel=1e-15)


def test_cross_entropy_with_one_hot_rows_equals_labels_and_labels_can_be_lists():
    one_hot = np.eye(3)[LABELS]
    by_labels = cross_entropy(LOGITS, LABELS).item()
    assert cross_entropy(LOGITS, one_hot).item() == pytest.approx(by_labels, rel=1e-15)
    assert cross_entropy(Tensor(LOGITS), LABELS.tolist()).item() == by_labels
    assert cross_entropy(LOGITS, Tensor(LABELS)).item() == by_labels  # int Tensor


def test_cross_entropy_with_probability_rows_by_hand():
    y = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.25, 0.25, 0.5]])
    log_s = np.log(softmax_rows(LOGITS))
    expected = -(y * log_s).sum() / 3
    assert cross_entropy(LOGITS, y).item() == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("kind", ["labels", "one-hot", "probabilities"])
def test_cross_entropy_gradient_is_softmax_minus_target_over_n(kind):
    y = {"labels": np.eye(3)[LABELS], "one-hot": np.eye(3)[LABELS],
         "probabilities": np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.25, 0.25, 0.5]])}[kind]
    z = Tensor(LOGITS, requires_grad=True)
    cross_entropy(z, LABELS if kind == "labels" else y).backward()
    np.testing.assert_allclose(z.grad.data, (softmax_rows(LOGITS) - y) / 3, rtol=1e-12,
                               atol=1e-16)


def test_cross_entropy_gradcheck_for_logits_and_probability_targets():
    # Targets inside (0, 1): finite differences must not step outside [0, 1], which is refused.
    y = Tensor([[0.2, 0.3, 0.5], [0.9, 0.05, 0.05], [0.25, 0.25, 0.5]], requires_grad=True)
    assert gradcheck(lambda z: cross_entropy(z, LABELS), Tensor(LOGITS, requires_grad=True))
    # With respect to the target too: dC/dy = -log softmax(z)/n.
    assert gradcheck(cross_entropy, Tensor(LOGITS, requires_grad=True), y)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_is_finite_and_silent_for_logits_of_1e4(dtype):
    z = Tensor(np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=dtype),
               requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = cross_entropy(z, [1, 2])  # row 0: the right class is 2e4 below the winner
        loss.backward()
    # Row 0 costs 2e4 exactly; row 1 is uniform: ln 3.
    assert loss.item() == pytest.approx((2e4 + math.log(3)) / 2, rel=1e-6)
    assert np.isfinite(z.grad.data).all()
    np.testing.assert_allclose(z.grad.data[0], [0.5, -0.5, 0.0], atol=1e-7)
    assert loss.dtype == dtype and z.grad.dtype == dtype


def test_float32_logits_with_float64_one_hot_rows_stay_float32():
    z = Tensor(LOGITS.astype(np.float32), requires_grad=True)
    loss = cross_entropy(z, np.eye(3)[LABELS])
    loss.backward()
    assert loss.dtype == np.float32 and z.grad.dtype == np.float32


# --- nll_loss --------------------------------------------------------------------------------


def test_nll_loss_by_hand_and_its_gradient_picks_one_entry_per_row():
    p = np.array([[0.5, 0.5], [0.25, 0.75], [0.9, 0.1]])
    log_p = Tensor(np.log(p), requires_grad=True)
    loss = nll_loss(log_p, [0, 1, 1])
    assert loss.item() == pytest.approx(-(math.log(0.5) + math.log(0.75) + math.log(0.1)) / 3,
                                        rel=1e-14)
    loss.backward()
    np.testing.assert_array_equal(log_p.grad.data,
                                  np.array([[-1, 0], [0, -1], [0, -1]]) / 3)


def test_cross_entropy_is_nll_loss_of_log_softmax():
    z = Tensor(LOGITS, requires_grad=True)
    expected = nll_loss(F.log_softmax(z, axis=1), LABELS).item()
    assert cross_entropy(z, LABELS).item() == expected
    assert gradcheck(lambda t: nll_loss(t, LABELS), Tensor(LOGITS, requires_grad=True))


# --- binary_cross_entropy_with_logits --------------------------------------------------------

Z = np.array([[0.0, 2.0, -1.0], [3.0, -0.5, 1.5]])
Y = np.array([[1.0, 0.0, 0.5], [1.0, 0.0, 0.25]])


def test_bce_with_logits_by_hand():
    a = sigmoid(Z)
    expected = -(Y * np.log(a) + (1 - Y) * np.log(1 - a)).mean()  # all six elements
    assert binary_cross_entropy_with_logits(Z, Y).item() == pytest.approx(expected, rel=1e-13)
    assert binary_cross_entropy_with_logits([0.0, 0.0], [1.0, 0.0]).item() == pytest.approx(
        math.log(2), rel=1e-15)


def test_bce_with_logits_is_the_sequel_cost_of_sigmoid_outputs_per_element():
    # cross_entropy_cost sums over an example's outputs and averages over rows; this averages
    # over every element: the two differ by the number of outputs per row.
    ours = binary_cross_entropy_with_logits(Z, Y).item()
    sequel = cross_entropy_cost(Tensor(Z).sigmoid(), Y).item()
    assert ours == pytest.approx(sequel / Z.shape[1], rel=1e-12)


def test_bce_with_logits_gradient_is_sigmoid_minus_target_over_n():
    z = Tensor(Z, requires_grad=True)
    binary_cross_entropy_with_logits(z, Y).backward()
    np.testing.assert_allclose(z.grad.data, (sigmoid(Z) - Y) / Z.size, rtol=1e-12)
    y = Tensor(np.clip(Y, 0.1, 0.9), requires_grad=True)  # finite differences stay in [0, 1]
    assert gradcheck(binary_cross_entropy_with_logits, Tensor(Z, requires_grad=True), y)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_with_logits_is_finite_and_exact_for_logits_of_1e4(dtype):
    z = Tensor(np.array([1e4, -1e4, 1e4, -1e4], dtype=dtype), requires_grad=True)
    y = np.array([0.0, 1.0, 1.0, 0.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = binary_cross_entropy_with_logits(z, y)
        loss.backward()
    # Two confidently wrong (1e4 each), two confidently right (0 each): no clamp at -ln ε.
    assert loss.item() == pytest.approx(2e4 / 4, rel=1e-6)
    np.testing.assert_allclose(z.grad.data, [0.25, -0.25, 0.0, 0.0], atol=1e-30)
    assert loss.dtype == dtype and z.grad.dtype == dtype


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("loss", "logits", "target", "match"), [
    (cross_entropy, np.zeros(3), [0], r"cross_entropy: logits must have shape \(n, classes\)"),
    (cross_entropy, np.zeros((2, 3)), [0, 1, 2], r"labels have shape \(3,\) .* 2 examples"),
    (cross_entropy, np.zeros((2, 3)), [0.0, 1.0], "labels must be integers, got dtype float64"),
    (cross_entropy, np.zeros((2, 3)), np.array([True, False]), "labels must be integers"),
    (cross_entropy, np.zeros((2, 3)), [0, 3], r"row 1 has label 3, outside 0..2"),
    (cross_entropy, np.zeros((2, 3)), [-1, 0], r"row 0 has label -1, outside 0..2"),
    (cross_entropy, np.zeros((2, 3)), np.zeros((2, 4)),
     r"target probabilities have shape \(2, 4\) but the logits have shape \(2, 3\)"),
    (cross_entropy, np.zeros((2, 3)), np.zeros((3, 2)), r"\(3, 2\) .* \(2, 3\)"),
    (cross_entropy, np.zeros((2, 3)), [[0.5, 0.5, 0.0], [0.0, 1.5, -0.5]],
     r"must lie in \[0, 1\], but the one at index \(1, 1\) is 1.5"),
    (cross_entropy, np.zeros((0, 3)), np.zeros(0, dtype=int), "no examples"),
    (nll_loss, np.zeros((2, 3)), [0, 5], r"nll_loss: row 1 has label 5, outside 0..2"),
    (nll_loss, np.zeros((2, 3)), [[0], [1]], r"nll_loss: labels have shape \(2, 1\)"),
    (nll_loss, np.zeros((2, 3)), np.array([0.0, 1.0]), "nll_loss: labels must be integers"),
    (nll_loss, np.zeros((2, 3, 1)), [0, 1], r"nll_loss: log_probs must have shape"),
    (binary_cross_entropy_with_logits, np.zeros((2, 3)), np.zeros(3),
     r"binary_cross_entropy_with_logits: targets have shape \(3,\) but the logits have "
     r"shape \(2, 3\)"),
    (binary_cross_entropy_with_logits, np.zeros(2), [0.0, 2.0],
     r"targets must lie in \[0, 1\], but the one at index \(1,\) is 2.0"),
    (binary_cross_entropy_with_logits, np.zeros(2), [np.nan, 1.0], r"index \(0,\) is nan"),
    (binary_cross_entropy_with_logits, np.zeros((0, 2)), np.zeros((0, 2)), "no examples"),
], ids=lambda v: v.__name__ if callable(v) else None)
def test_losses_refuse_bad_targets_with_a_message_naming_them(loss, logits, target, match):
    with pytest.raises(ValueError, match=match):
        loss(logits, target)


# --- registries ------------------------------------------------------------------------------


def test_costs_keep_the_sigmoid_contract_and_losses_hold_the_logit_losses():
    assert COSTS == {"quadratic": quadratic_cost, "cross-entropy": cross_entropy_cost}
    assert LOSSES == {"softmax-cross-entropy": cross_entropy,
                      "sigmoid-cross-entropy": binary_cross_entropy_with_logits,
                      "nll": nll_loss}


# --- properties ------------------------------------------------------------------------------


@pytest.mark.property
@given(batch=classification_batches())
def test_cross_entropy_gradcheck_and_gradient_formula(batch):
    z = Tensor(batch.logits, requires_grad=True)
    assert gradcheck(lambda t: cross_entropy(t, batch.labels), z)
    assert gradcheck(lambda t: cross_entropy(t, batch.probabilities), z)
    cross_entropy(z, batch.probabilities).backward()
    n = len(batch.logits)
    np.testing.assert_allclose(z.grad.data, (softmax_rows(batch.logits) - batch.probabilities)
                               / n, rtol=1e-10, atol=1e-15)


@pytest.mark.property
@given(batch=classification_batches(), shift=float_arrays((1,), -50.0, 50.0))
def test_cross_entropy_ignores_a_constant_added_to_a_row_and_is_at_least_zero(batch, shift):
    by_labels = cross_entropy(batch.logits, batch.labels).item()
    assert by_labels >= 0
    assert cross_entropy(batch.logits + shift, batch.labels).item() == pytest.approx(
        by_labels, rel=1e-9, abs=1e-11)
    one_hot = np.eye(batch.logits.shape[1])[batch.labels]
    assert cross_entropy(batch.logits, one_hot).item() == pytest.approx(by_labels, rel=1e-12,
                                                                        abs=1e-15)


@pytest.mark.property
@given(data=st.data())
def test_bce_with_logits_gradcheck_and_gradient_formula(data):
    shape = data.draw(shapes(min_dims=1), label="shape")
    z = data.draw(float_arrays(shape, -10.0, 10.0), label="logits")
    # Inside [1e-3, 1 - 1e-3], so that the finite differences (step 1e-6) stay in [0, 1].
    y = data.draw(float_arrays(shape, 1e-3, 1 - 1e-3), label="targets")
    assert gradcheck(binary_cross_entropy_with_logits, Tensor(z, requires_grad=True),
                     Tensor(y, requires_grad=True))
    t = Tensor(z, requires_grad=True)
    binary_cross_entropy_with_logits(t, y).backward()
    np.testing.assert_allclose(t.grad.data, (sigmoid(z) - y) / z.size, rtol=1e-10, atol=1e-15)
