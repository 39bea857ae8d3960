"""Every cost at saturation against BP1 (issue 15): the hand-derived δ^L of
`tinygrad_nn.backprop` (which imports nothing of the autograd) must equal the autograd's
dC/dz^L at z^L = ±40 and ±1e4, where σ(z) rounds to exactly 0 or 1 in float64.

For the quadratic cost δ^L = (a - y) σ'(z); for the cross-entropy cost δ^L = a - y (the
σ' cancels), so a saturated *wrong* output still learns: δ^L = ±1, never 0.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import saturated_logits

from tinygrad_nn import Network, Tensor, backprop, costs, ops
from tinygrad_nn.testing import boundary_arrays

TINY = np.finfo(np.float64).tiny

#: The output activations backprop supports: the sigmoid only (its network is the book's).
#: Below z = -709 the autograd's σ is σ(-709) = 1.2e-308 (ops._stable_sigmoid's documented
#: clamp) where backprop's is 0: within the smallest normal float64, hence atol=TINY.
OUTPUT_ACTIVATIONS = {"sigmoid": (ops.sigmoid, backprop.sigmoid)}


def autograd_delta(cost: str, z: np.ndarray, y: np.ndarray, activation: str) -> np.ndarray:
    """n · dC/dz^L from the autograd, C averaged over the n rows: the per-example δ^L."""
    t = Tensor(z, requires_grad=True)
    costs.COSTS[cost](OUTPUT_ACTIVATIONS[activation][0](t), y).backward()
    return t.grad.data * (z.shape[0] if z.ndim >= 2 else 1)  # n: rows, or one example


@pytest.mark.parametrize("activation", sorted(OUTPUT_ACTIVATIONS))
@pytest.mark.parametrize("cost", sorted(costs.COSTS))
@pytest.mark.parametrize("z_value", [-40.0, 40.0, -1e4, 1e4])
def test_bp1_at_saturation(cost, activation, z_value):
    z = np.array([[z_value, -z_value], [z_value, z_value]])
    y = np.array([[1.0, 0.0], [0.0, 0.5]])  # wrong, right and half-right saturated outputs
    a = OUTPUT_ACTIVATIONS[activation][1](z)
    expected = backprop.COSTS[cost].delta(z, a, y)
    np.testing.assert_allclose(autograd_delta(cost, z, y, activation), expected,
                               rtol=1e-15, atol=TINY)


def test_cross_entropy_delta_is_a_minus_y_where_sigma_has_rounded():
    # BP1 from first principles: σ(-40) = 4.2e-18 and σ(40) = 1 - 4.2e-18 round in 1 - σ;
    # a wrong saturated output (z = -40, y = 1) has δ^L = σ(-40) - 1 = -1, not 0.
    z = np.array([[-40.0, 40.0, -1e4]])
    y = np.array([[1.0, 0.0, 1.0]])
    delta = autograd_delta("cross-entropy", z, y, "sigmoid")
    np.testing.assert_array_equal(delta, [[np.exp(-40.0) / (1 + np.exp(-40.0)) - 1.0,
                                           1.0 / (1 + np.exp(-40.0)), -1.0]])


def test_cross_entropy_cost_is_exact_where_sigma_has_rounded():
    # C = softplus(z) - y z: at z = -1e4, y = 1 the cost is 1e4 (not the clamp's 36).
    a = ops.sigmoid(Tensor([[-1e4, 40.0]], requires_grad=True))
    assert costs.cross_entropy_cost(a, [[1.0, 1.0]]).item() == 1e4 + np.log1p(np.exp(-40.0))


@pytest.mark.parametrize("y", [[[1.5, 0.0]], [[-0.1, 0.0]], [[np.nan, 0.0]]])
def test_cross_entropy_cost_refuses_targets_outside_the_unit_interval(y):
    with pytest.raises(ValueError, match=r"cross_entropy_cost: desired outputs y must lie in "
                                         r"\[0, 1\], but the one at index \(0, 0\)"):
        costs.cross_entropy_cost(ops.sigmoid(Tensor([[0.0, 1.0]], requires_grad=True)), y)


def test_cross_entropy_cost_of_plain_values_stays_finite_and_silent():
    c = costs.cross_entropy_cost(np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]))
    assert np.isfinite(c.item())


@pytest.mark.parametrize("z_value", [-40.0, 40.0])
def test_network_cross_entropy_gradient_at_saturation_is_a_minus_y(z_value):
    # Network(cost="cross-entropy") feeds its sigmoid output to COSTS: the output biases'
    # gradient is the mean over rows of δ^L = a - y (BP3), and BP1-BP4 agree.
    net = Network([2, 3], cost="cross-entropy", seed=0)
    net.weights = [np.zeros((3, 2))]
    net.biases = [np.array([z_value, -z_value, z_value])]
    X, Y = np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    costs.COSTS[net.cost](net.forward(X), Y).backward()
    a = backprop.sigmoid(np.tile(net.biases[0], (2, 1)))
    np.testing.assert_allclose(net.layers[0].bias.grad.data, (a - Y).mean(axis=0), rtol=1e-15)
    nabla_b, nabla_w = backprop.backprop_batch(net.weights, net.biases, X, Y, "cross-entropy")
    np.testing.assert_allclose(net.layers[0].bias.grad.data, nabla_b[0] / 2, rtol=1e-15)
    np.testing.assert_allclose(net.layers[0].weight.grad.data, nabla_w[0] / 2, rtol=1e-15)


@pytest.mark.property
@pytest.mark.parametrize("cost", sorted(costs.COSTS))
@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(z=saturated_logits(dtype=np.float64))
def test_bp1_holds_at_drawn_saturated_logits(cost, z):
    rng = np.random.default_rng(z.size)
    y = rng.choice([0.0, 0.5, 1.0], size=z.shape)
    expected = backprop.COSTS[cost].delta(z, backprop.sigmoid(z), y)
    # Away from saturation a - y cancels (σ(0.06) - 0.5), and the two σ formulas (each
    # within an ulp of numbers <= 1) differ by a few ulps of 1: hence atol = 4 ε.
    np.testing.assert_allclose(autograd_delta(cost, z, y, "sigmoid"), expected,
                               rtol=1e-15, atol=4 * np.finfo(np.float64).eps)


# --- the sigmoid's VJP from the e^{-z} its forward saved --------------------------------------

#: Around the forward's clamp of z (-709 in float64, -88 in float32) and beyond, where
#: e^{-z} would overflow unclamped, besides saturation and zeros.
CLAMP_VALUES = [-87.0, -88.0, -89.0, -104.0, -708.0, -709.0, -710.0, -745.0, -750.0, 709.0,
                88.0]


def _laid_out(z: np.ndarray, layout: str) -> np.ndarray:
    if layout == "fortran":
        return np.asfortranarray(z)
    if layout == "strided":  # every other column of a wider array: not contiguous
        wide = np.zeros(z.shape[:-1] + (2 * z.shape[-1],), dtype=z.dtype)
        wide[..., ::2] = z
        return wide[..., ::2]
    return z


@pytest.mark.property
@settings(max_examples=max(20, settings.default.max_examples))
@given(z=boundary_arrays(kinds=("zero", "saturated", "kink")),
       clamp=st.lists(st.sampled_from(CLAMP_VALUES), max_size=3),
       layout=st.sampled_from(["C", "fortran", "strided"]),
       seed=st.integers(0, 2**16))
def test_sigmoid_vjp_from_its_saved_exp_is_sigmoid_slope_bit_for_bit(z, clamp, layout, seed):
    """The sigmoid keeps e^{-z} from its forward (`saved`) and its VJP multiplies it in,
    rather than calling `sigmoid_slope`, which recomputes e^{-z} from z: the same products in
    the same order, so the same bits, at saturation, at the clamp, in float16 (no saved: the
    recompute), float32 and float64, in any memory layout. A mutant that saves e^{-z}
    before the clamp fails it: z = [-1.0] float32 with -89.0 set, beyond float32's clamp."""
    flat = z.reshape(-1).copy()
    with np.errstate(over="ignore"):
        flat[:len(clamp)] = np.array(clamp[:flat.size], dtype=np.float64).astype(z.dtype)
    z = _laid_out(flat.reshape(z.shape), layout)
    g = np.random.default_rng(seed).uniform(-2, 2, z.shape).astype(z.dtype)
    t = Tensor(z, requires_grad=True)
    s = ops.sigmoid(t)
    saved = s._params.get("saved")
    assert (saved is None) == (z.dtype == np.float16)
    s.backward(g)
    expected = g * ops.sigmoid_slope(z, s.data)  # the recompute, on plain arrays
    assert t.grad.dtype == z.dtype
    np.testing.assert_array_equal(t.grad.data, expected)


def test_the_sigmoid_saves_nothing_when_no_gradient_will_be_taken():
    """e^{-z} is kept only for a VJP: not under no_grad(), not for a z that needs no grad."""
    from tinygrad_nn import no_grad

    z = Tensor(np.array([[-3.0, 0.0, 40.0]]), requires_grad=True)
    with no_grad():
        assert "saved" not in ops.sigmoid(z)._params
    assert "saved" not in ops.sigmoid(Tensor(np.array([1.0])))._params
    assert ops.sigmoid(z)._params["saved"].shape == z.shape
