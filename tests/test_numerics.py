"""Numerics at the extremes: |z| up to 1e4, outputs of exactly 0 and 1, log of 0.

Every function here is computed in a form that cannot overflow (sigmoid clamps e^{-z},
softplus is logaddexp, logsumexp shifts by the max, the logits losses go through log_softmax
and softplus, cross_entropy_cost clamps a into [eps, 1 - eps]). So values and gradients are
finite and numpy never warns; the suite turns any warning into an error, and the checks below
also say so explicitly.

`log` is the exception on purpose: log(0) is -inf, as in numpy, with numpy's RuntimeWarning;
`detect_anomaly()` turns it into an AnomalyError naming the op and the line.
"""

from __future__ import annotations

import inspect
import os
import warnings

import numpy as np
import pytest

from tinygrad_nn import AnomalyError, Tensor, detect_anomaly, ops
from tinygrad_nn.costs import (
    COSTS,
    LOSSES,
    binary_cross_entropy_with_logits,
    cross_entropy,
    cross_entropy_cost,
    nll_loss,
    quadratic_cost,
)
from tinygrad_nn.functional import log_softmax, softmax

EXTREMES = np.array([-1e4, -1e3, -800.0, -710.0, -709.0, -100.0, -40.0, -36.0, -1.0, -1e-8, 0.0,
                     1e-8, 1.0, 36.0, 40.0, 100.0, 709.0, 710.0, 800.0, 1e3, 1e4])
FLOATS = [np.float64, np.float32]
THIS_FILE = os.path.basename(__file__)


def line() -> int:
    """The caller's line number."""
    return inspect.currentframe().f_back.f_lineno


def value_and_grad(fn, z: np.ndarray, dtype=np.float64):
    """fn(Tensor(z)) and d(sum of the output)/dz, with every numpy warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = Tensor(np.asarray(z, dtype=dtype), requires_grad=True)
        y = fn(x)
        (y.sum() if y.ndim else y).backward()
    return y.data, x.grad.data


def near(dtype, magnitude: float = 1.0) -> float:
    """An absolute tolerance: a few units in the last place of `magnitude` in `dtype`.

    A result computed at |z| ~ 1e4 in float32 (as logsumexp's output is) carries an absolute
    error of about eps·1e4 ≈ 1e-3, and so does everything computed from it.
    """
    return 4 * float(np.finfo(dtype).eps) * max(1.0, magnitude)


def reference_logsumexp(v: np.ndarray, axis: int = -1) -> np.ndarray:
    """log Σ e^v in float64, shifted by the max: the independent reference."""
    v = np.asarray(v, dtype=np.float64)
    m = v.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(v - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def assert_finite(*arrays):
    for a in arrays:
        assert np.isfinite(a).all(), a


# --- sigmoid, softplus, logsumexp, log_softmax ---------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_and_its_gradient_are_finite_bounded_and_symmetric(dtype):
    s, ds = value_and_grad(ops.sigmoid, EXTREMES, dtype)
    assert s.dtype == dtype and ds.dtype == dtype
    assert_finite(s, ds)
    assert ((s >= 0) & (s <= 1)).all()
    assert (np.diff(s) >= 0).all()  # monotone, even where it saturates
    assert ((ds >= 0) & (ds <= 0.25)).all()
    assert ds[EXTREMES == 0.0] == 0.25
    # σ(-z) = 1 - σ(z): the two ends mirror each other
    np.testing.assert_allclose(s + s[::-1], 1.0, atol=np.finfo(dtype).eps)
    assert s[-1] == 1.0 and s[0] < 1e-37  # saturated, not NaN


def test_sigmoid_gradient_is_relatively_exact_where_sigma_rounds_to_1():
    z = np.array([20.0, 30.0, 36.0, 40.0, 100.0])
    _, ds = value_and_grad(ops.sigmoid, z)
    np.testing.assert_allclose(ds, np.exp(-z) / (1 + np.exp(-z)) ** 2, rtol=1e-12)


@pytest.mark.parametrize("dtype", FLOATS)
def test_softplus_at_the_extremes(dtype):
    y, dy = value_and_grad(ops.softplus, EXTREMES, dtype)
    assert_finite(y, dy)
    assert (y >= 0).all()
    assert y[-1] == 1e4 and y[0] == 0.0  # log(1 + e^z) -> z and -> 0
    np.testing.assert_allclose(y[EXTREMES > 40], EXTREMES[EXTREMES > 40], rtol=1e-7)
    assert ((dy >= 0) & (dy <= 1)).all() and dy[-1] == 1.0  # the derivative is σ(z)


@pytest.mark.parametrize("dtype", FLOATS)
def test_logsumexp_at_the_extremes(dtype):
    rows = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, 1e4], [-1e4, -1e4, -1e4], [-1e4, 0.0, 1e4]])
    y, dy = value_and_grad(lambda x: x.logsumexp(axis=1), rows, dtype)
    assert_finite(y, dy)
    np.testing.assert_allclose(y, [1e4, 1e4 + np.log(3), -1e4 + np.log(3), 1e4],
                               rtol=0, atol=near(dtype, 1e4))
    # The gradient is softmax: each row sums to 1
    np.testing.assert_allclose(dy.sum(axis=1), 1.0, atol=near(dtype, 1e4))
    np.testing.assert_allclose(dy[1], 1 / 3, atol=near(dtype, 1e4))


@pytest.mark.parametrize("dtype", FLOATS)
def test_log_softmax_and_softmax_at_the_extremes(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [1e3, 1e3 + 1, -1e3]])
    y, dy = value_and_grad(lambda x: log_softmax(x, axis=1), z, dtype)
    assert_finite(y, dy)
    assert (y <= 0).all()
    expected = z - reference_logsumexp(z, axis=1)[:, None]
    np.testing.assert_allclose(y, expected, rtol=0, atol=near(dtype, 2e4))
    np.testing.assert_allclose(y[0], [0.0, -2e4, -1e4], rtol=0, atol=near(dtype, 2e4))
    p, dp = value_and_grad(lambda x: softmax(x, axis=1), z, dtype)
    assert_finite(p, dp)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=near(dtype, 1e4))


# --- log at 0: -inf, with numpy's warning; an AnomalyError in anomaly mode ----------------


def test_log_of_0_is_minus_inf_silently():
    # As PyTorch: log(0) = -inf and log(-1) = nan, with no warning (the suite's
    # warnings-as-errors would turn numpy's "divide by zero" into a failure here).
    x = Tensor([0.0, 1.0, -1.0], requires_grad=True)
    y = x.log()
    assert y.data[0] == -np.inf and y.data[1] == 0.0 and np.isnan(y.data[2])
    # Its gradient 1/x is +inf at 0 (torch.log's too), again silently.
    y.sum().backward()
    assert x.grad.data[2] == -1.0
    assert x.grad.data[0] == np.inf and x.grad.data[1] == 1.0


def test_log_of_0_under_detect_anomaly_names_the_op_and_the_line():
    x = Tensor([0.0, 1.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the anomaly, not numpy's warning, is what is raised
        with detect_anomaly(), pytest.raises(AnomalyError) as info:
            expected = line() + 1
            x.log()
    text = str(info.value)
    assert text.startswith("log forward produced -inf")
    assert f"{THIS_FILE}:{expected}" in text
    assert isinstance(info.value, FloatingPointError)


# --- the costs --------------------------------------------------------------------------------

TARGETS = np.array([[1.0, 0.0, 0.5, 1.0, 0.0]])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("cost", [quadratic_cost, cross_entropy_cost], ids=["quadratic", "xent"])
@pytest.mark.parametrize("scale", [1.0, 36.0, 100.0, 1e3, 1e4])
def test_costs_of_sigmoid_outputs_at_large_z_are_finite(cost, scale, dtype):
    z = scale * np.array([[1.0, -1.0, 1.0, -1.0, 1.0]])
    c, dz = value_and_grad(lambda x: cost(ops.sigmoid(x), TARGETS.astype(dtype)), z, dtype)
    assert_finite(c, dz)
    assert c.dtype == dtype and dz.dtype == dtype
    assert c >= 0


@pytest.mark.parametrize("a", [0.0, 1.0])
@pytest.mark.parametrize("y", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_cost_at_a_0_and_a_1_is_finite_with_a_finite_gradient(a, y, dtype):
    c, da = value_and_grad(lambda t: cross_entropy_cost(t, np.array([[y]], dtype)),
                           np.array([[a]]), dtype)
    assert_finite(c, da)
    eps = np.finfo(dtype).eps
    # The clamp into [eps, 1 - eps]: the worst term is -ln(eps), about 36 in float64.
    assert 0 <= c <= -np.log(eps) * 1.0001
    if a == y:
        assert c < 1e-6  # a right, saturated output costs (almost) nothing


def test_cross_entropy_cost_of_a_saturated_wrong_answer_is_the_documented_bound():
    c, _ = value_and_grad(lambda t: cross_entropy_cost(t, [[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    np.testing.assert_allclose(c, -2 * np.log(np.finfo(np.float64).eps), rtol=1e-12)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("scale", [1.0, 100.0, 1e3, 1e4])
def test_softmax_cross_entropy_of_logits_at_large_z(scale, dtype):
    z = scale * np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.5]])
    labels = np.array([1, 1])  # the first row is confidently wrong, the second right
    c, dz = value_and_grad(lambda x: cross_entropy(x, labels), z, dtype)
    assert_finite(c, dz)
    expected = np.mean(reference_logsumexp(z) - z[[0, 1], labels])
    np.testing.assert_allclose(c, expected, rtol=0, atol=near(dtype, 2 * scale))
    np.testing.assert_allclose(dz.sum(axis=1), 0.0, atol=near(dtype, scale))  # (p - y)/n
    c2, dz2 = value_and_grad(lambda x: cross_entropy(x, np.eye(3, dtype=dtype)[labels]), z,
                             dtype)
    np.testing.assert_allclose(c2, c, rtol=0, atol=near(dtype, 2 * scale))
    np.testing.assert_allclose(dz2, dz, atol=near(dtype, scale))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("scale", [1.0, 100.0, 1e3, 1e4])
def test_binary_cross_entropy_with_logits_at_large_z(scale, dtype):
    z = scale * np.array([[1.0, -1.0, 1.0, -1.0]])
    y = np.array([[1.0, 0.0, 0.0, 1.0]], dtype)  # two right, two wrong by `scale`
    c, dz = value_and_grad(lambda x: binary_cross_entropy_with_logits(x, y), z, dtype)
    assert_finite(c, dz)
    # Right answers cost softplus(-scale) ~ 0, wrong ones softplus(scale) ~ scale: mean over 4.
    expected = (2 * np.logaddexp(0, -scale) + 2 * np.logaddexp(0, scale)) / 4
    np.testing.assert_allclose(c, expected, rtol=0, atol=near(dtype, scale))
    assert (np.abs(dz) <= 0.25 + near(dtype)).all()  # |σ(z) - y| / 4


@pytest.mark.parametrize("dtype", FLOATS)
def test_nll_of_log_softmax_at_large_z(dtype):
    z = np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 0.0]])
    c, dz = value_and_grad(lambda x: nll_loss(log_softmax(x, axis=1), [1, 2]), z, dtype)
    assert_finite(c, dz)
    np.testing.assert_allclose(c, (2e4 + np.log(3)) / 2, rtol=0, atol=near(dtype, 2e4))


# Every cost and loss of costs.py, called on extreme inputs of the form it expects.
EXTREME_CALLS = {
    "quadratic": lambda z: COSTS["quadratic"](ops.sigmoid(z), np.eye(3)[[0, 2]]),
    "cross-entropy": lambda z: COSTS["cross-entropy"](ops.sigmoid(z), np.eye(3)[[0, 2]]),
    "softmax-cross-entropy": lambda z: LOSSES["softmax-cross-entropy"](z, [0, 2]),
    "sigmoid-cross-entropy": lambda z: LOSSES["sigmoid-cross-entropy"](z, np.eye(3)[[0, 2]]),
    "nll": lambda z: LOSSES["nll"](log_softmax(z, axis=1), [0, 2]),
}


def test_every_cost_and_loss_is_covered_here():
    assert set(COSTS) | set(LOSSES) <= set(EXTREME_CALLS), (
        "a new cost or loss: add it to EXTREME_CALLS")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(EXTREME_CALLS))
def test_every_cost_and_loss_is_finite_at_z_of_1e4(name, dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]])  # right, wrong and tied answers
    c, dz = value_and_grad(EXTREME_CALLS[name], z, dtype)
    assert_finite(c, dz)
    assert c.shape == () and c >= 0


# --- detect_anomaly -------------------------------------------------------------------------


def test_anomaly_in_a_forward_names_the_first_op_and_its_line():
    x = Tensor([-1.0, 4.0], requires_grad=True)
    with detect_anomaly():
        y = x * 2  # fine
        with pytest.raises(AnomalyError) as info:
            expected = line() + 1
            z = y.sqrt()  # sqrt(-2) is nan: the first bad op
            (z * 0).sum()  # never reached
    text = str(info.value)
    assert text.startswith("sqrt forward produced nan (output shape (2,))")
    assert f"{THIS_FILE}:{expected} in test_anomaly_in_a_forward_names_the_first_op" in text


def test_anomaly_in_a_backward_names_the_op_and_the_line_that_created_it():
    x = Tensor([0.0, 1.0], requires_grad=True)
    with detect_anomaly():
        a = x.sqrt()  # fine forward (0 and 1), infinite derivative at 0, but...
        b = a * a
        created = line() + 1
        c = b.sqrt()  # ...this one is reached first by the backward walk
        with pytest.raises(AnomalyError) as info:
            c.sum().backward()
    text = str(info.value)
    assert text.startswith("sqrt backward produced inf in the gradient of its input 0")
    assert f"{THIS_FILE}:{created} " in text
    assert x.grad is None  # stopped before reaching the leaf


def test_anomaly_mode_reports_overflow_and_nan_without_numpy_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with detect_anomaly():
            with pytest.raises(AnomalyError, match=r"^exp forward produced inf"):
                Tensor([1e3]).exp()
            with pytest.raises(AnomalyError, match=r"^div forward produced nan"):
                Tensor([0.0], requires_grad=True) / 0.0
            with pytest.raises(AnomalyError, match=r"^mul forward produced nan"):
                Tensor([np.inf]) * 0.0


def test_finite_computations_pass_anomaly_mode_unchanged():
    x = Tensor(np.linspace(-3, 3, 7), requires_grad=True)
    with detect_anomaly():
        c = (ops.sigmoid(x * 1e4) + ops.softplus(x)).logsumexp()
        c.backward()
    y = Tensor(x.data, requires_grad=True)
    (ops.sigmoid(y * 1e4) + ops.softplus(y)).logsumexp().backward()
    np.testing.assert_array_equal(x.grad.data, y.grad.data)


def test_outside_the_context_nothing_is_checked():
    with detect_anomaly():
        pass
    with np.errstate(all="ignore"):  # numpy's own warnings are not the subject here
        x = Tensor([0.0, 1.0], requires_grad=True)
        y = x.log()  # -inf, no AnomalyError
        y.sum().backward()  # inf gradient, no AnomalyError
    assert y.data[0] == -np.inf and x.grad.data[0] == np.inf


def test_a_graph_built_in_anomaly_mode_is_not_checked_after_it():
    x = Tensor([0.0, 1.0], requires_grad=True)
    with detect_anomaly():
        y = x.sqrt()
    with np.errstate(all="ignore"):
        y.sum().backward()
    assert x.grad.data[0] == np.inf


def anomaly_on() -> bool:
    """Whether anomaly mode is on, seen from outside: does log(0) raise AnomalyError?"""
    try:
        with np.errstate(all="ignore"):
            Tensor([0.0]).log()
    except AnomalyError:
        return True
    return False


def test_detect_anomaly_nests_and_restores():
    assert not anomaly_on()
    with detect_anomaly():
        assert anomaly_on()
        with detect_anomaly():
            assert anomaly_on()
        assert anomaly_on()  # leaving the inner context keeps the outer one on
    assert not anomaly_on()


def test_the_same_detect_anomaly_object_can_be_entered_twice():
    mode = detect_anomaly()
    with mode:
        with mode:
            assert anomaly_on()
        assert anomaly_on()
    assert not anomaly_on()


def test_detect_anomaly_restores_after_an_exception():
    with pytest.raises(AnomalyError), detect_anomaly():
        Tensor([-1.0]).sqrt()
    assert not anomaly_on()
    with pytest.raises(KeyError), detect_anomaly():
        raise KeyError("unrelated")
    assert not anomaly_on()
