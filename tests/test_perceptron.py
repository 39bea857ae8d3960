"""Tests for tinygrad_nn.perceptron: eqs. 1.1/1.5, the NAND gate of fig. 1.3, logic from NANDs."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_nn import Tensor, no_grad
from tinygrad_nn.nn import Linear, Sequential, Sigmoid
from tinygrad_nn.perceptron import (
    NotDifferentiableError,
    Perceptron,
    half_adder,
    nand,
    nand_gate,
    truth_table,
    xor,
)

# The tutorial's table: A, B, A&B, !(A&B).
TUTORIAL_TABLE = [(1, 0, 0, 1), (1, 1, 1, 0), (0, 0, 0, 1), (0, 1, 0, 1)]


def test_nand_gate_has_the_tutorials_weights_and_truth_table():
    gate = nand_gate()
    np.testing.assert_array_equal(gate.weight, [-2.0, -2.0])
    assert gate.bias == 3.0
    table = dict(truth_table(gate))
    for a, b, a_and_b, nand_ab in TUTORIAL_TABLE:
        assert table[(a, b)] == nand_ab == 1 - a_and_b
    assert len(table) == 4


def test_perceptron_is_eq_1_5_with_zero_at_the_threshold():
    # 1 if w·x + b > 0, 0 if w·x + b <= 0: exactly at 0 the output is 0.
    p = Perceptron([1.0, 1.0], -1.0)
    np.testing.assert_array_equal(p([[0.5, 0.5], [0.5, 0.6], [0.5, 0.4]]).data, [0, 1, 0])
    # Eq. 1.1 with threshold t is eq. 1.5 with b = -t.
    w, t = np.array([0.3, 0.9, -0.4]), 0.35
    X = np.random.default_rng(0).uniform(0, 1, (50, 3))
    np.testing.assert_array_equal(Perceptron(w, -t)(X).data, (X @ w > t).astype(float))


def test_a_layer_of_perceptrons_gives_one_column_per_perceptron():
    layer = Perceptron([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], [0.0, -0.5, 1.5])
    out = layer([[1.0, 1.0], [0.0, 1.0]])
    np.testing.assert_array_equal(out.data, [[1, 1, 0], [0, 1, 1]])
    assert layer([1.0, 0.0]).shape == (3,)


@pytest.mark.parametrize("weight, bias, match", [
    ([[1.0, 2.0]], 0.0, "bias of shape"),
    ([1.0, 2.0], [0.0], "bias of shape"),
    ([[[1.0]]], 0.0, "weight must have shape"),
    ([np.nan, 1.0], 0.0, "finite"),
])
def test_perceptron_rejects_bad_weights(weight, bias, match):
    with pytest.raises(ValueError, match=match):
        Perceptron(weight, bias)


def test_perceptron_rejects_inputs_of_the_wrong_width():
    with pytest.raises(ValueError, match=r"expected \(2,\) or \(m, 2\)"):
        nand_gate()([1.0, 0.0, 1.0])


def test_xor_truth_table_from_nands():
    assert truth_table(xor) == [((0, 0), 0), ((0, 1), 1), ((1, 0), 1), ((1, 1), 0)]


def test_half_adder_truth_table_adds_two_bits():
    for (a, b), (total, carry) in truth_table(half_adder):
        assert 2 * carry + total == a + b
    assert dict(truth_table(half_adder))[(1, 1)] == (0, 1)


def test_gates_work_elementwise_on_arrays():
    a, b = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    np.testing.assert_array_equal(nand(a, b), [1, 1, 1, 0])
    np.testing.assert_array_equal(xor(a, b), a ^ b)
    total, carry = half_adder(a, b)
    np.testing.assert_array_equal(total, a ^ b)
    np.testing.assert_array_equal(carry, a & b)
    np.testing.assert_array_equal(xor(a, 1), 1 - a)  # broadcasting


class CountingGate(Perceptron):
    """fig. 1.3's NAND perceptron, counting how often it is evaluated."""

    def __init__(self):
        super().__init__([-2.0, -2.0], 3.0)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


def test_xor_and_half_adder_use_only_the_nand_perceptron():
    gate = CountingGate()
    assert truth_table(lambda a, b: xor(a, b, gate=gate)) == truth_table(xor)
    assert gate.calls == 4 * 4  # four NANDs per row
    gate.calls = 0
    half_adder(np.array([0, 1]), np.array([1, 1]), gate=gate)
    assert gate.calls == 5  # sum: four NANDs; carry = NAND(n, n): a fifth
    # Replace the NAND perceptron by an OR perceptron: the circuits compute something else.
    or_gate = Perceptron([2.0, 2.0], -1.0)
    assert truth_table(lambda a, b: xor(a, b, gate=or_gate)) != truth_table(xor)


# --- not differentiable, and saying so ---


def test_output_is_off_the_graph_and_refuses_a_gradient():
    out = nand_gate()([[1.0, 1.0]])
    assert not out.requires_grad
    with pytest.raises(NotDifferentiableError, match="sigmoid"):
        out.backward()
    with pytest.raises(NotDifferentiableError, match="derivative 0 almost everywhere"):
        _ = out.grad


def test_input_that_requires_grad_is_refused_with_the_reason():
    x = Tensor([[1.0, 0.0]], requires_grad=True)
    with pytest.raises(NotDifferentiableError, match="step function.*sigmoid neurons"):
        nand_gate()(x)
    # Inside no_grad (or on x.detach()) it computes.
    with no_grad():
        assert nand_gate()(x * 1.0).item() == 1.0
    assert nand_gate()(x.detach()).item() == 1.0


def test_weights_that_require_grad_are_refused():
    with pytest.raises(NotDifferentiableError, match="set by hand"):
        Perceptron(Tensor([1.0, 1.0], requires_grad=True), 0.0)


def test_perceptron_has_nothing_to_learn():
    assert nand_gate().parameters() == []


def test_perceptron_after_trainable_layers_needs_no_grad():
    net = Sequential(Linear(2, 2, rng=0), Sigmoid(), Perceptron([1.0, -1.0], 0.0))
    with pytest.raises(NotDifferentiableError):
        net(np.ones((3, 2)))
    with no_grad():
        assert net(np.ones((3, 2))).shape == (3,)


# --- sec. 1.4.1: scaling every weight and bias by c > 0 changes no output ---
#
# In exact arithmetic this holds for any perceptron network. In floating point, c·w·x + c·b
# can round to the other side of 0 when w·x + b is exactly 0, so the networks below avoid
# that case the way the NAND gate does: even integer weights and odd integer biases on 0/1
# inputs make every w·x + b an odd integer, never 0. The second property allows any real
# weights and inputs but scales by powers of two, which floating point multiplies exactly.


@st.composite
def perceptron_networks(draw, real: bool = False):
    """A list of perceptron layers (widths 1..4, 1..3 layers) and a batch of inputs."""
    widths = draw(st.lists(st.integers(1, 4), min_size=2, max_size=4))
    layers = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        if real:
            values = st.floats(-10, 10, allow_subnormal=False)
            w = draw(st.lists(values, min_size=n_in * n_out, max_size=n_in * n_out))
            b = draw(st.lists(values, min_size=n_out, max_size=n_out))
        else:
            w = [2 * k for k in draw(st.lists(st.integers(-5, 5), min_size=n_in * n_out,
                                              max_size=n_in * n_out))]
            b = [2 * k + 1 for k in draw(st.lists(st.integers(-6, 5), min_size=n_out,
                                                  max_size=n_out))]
        layers.append((np.reshape(w, (n_out, n_in)), np.array(b, dtype=float)))
    rows = draw(st.integers(1, 8))
    entries = st.floats(0, 1, allow_subnormal=False) if real else st.integers(0, 1)
    X = np.array(draw(st.lists(st.lists(entries, min_size=widths[0], max_size=widths[0]),
                               min_size=rows, max_size=rows)), dtype=float)
    return layers, X


def run(layers, X, c=1.0):
    return Sequential(*(Perceptron(w, b).scaled(c) for w, b in layers))(X).data


@pytest.mark.property
@given(perceptron_networks(), st.floats(1e-8, 1e8))
def test_scaling_by_any_positive_c_leaves_every_output_unchanged(net, c):
    layers, X = net
    np.testing.assert_array_equal(run(layers, X, c), run(layers, X))


@pytest.mark.property
@given(perceptron_networks(real=True), st.integers(-30, 30))
def test_scaling_real_weights_by_powers_of_two_leaves_every_output_unchanged(net, k):
    layers, X = net
    np.testing.assert_array_equal(run(layers, X, 2.0 ** k), run(layers, X))


@pytest.mark.property
@given(st.floats(1e-8, 1e8))
def test_scaled_nand_still_builds_xor_and_half_adder(c):
    gate = nand_gate().scaled(c)
    assert truth_table(lambda a, b: xor(a, b, gate=gate)) == truth_table(xor)
    assert truth_table(lambda a, b: half_adder(a, b, gate=gate)) == truth_table(half_adder)


def test_scaling_by_a_negative_c_does_change_the_outputs():
    # The claim needs c > 0: c < 0 flips every decision (and c = 0 makes every output 0).
    assert truth_table(nand_gate().scaled(-1.0)) != truth_table(nand_gate())
