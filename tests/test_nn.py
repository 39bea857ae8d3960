"""Tests for tinygrad_nn.nn: Module, Linear (weights of shape (n_out, n_in)), activations."""

import numpy as np
import pytest

import tinygrad_nn
from tinygrad_nn import Tensor, costs, gradcheck, optim
from tinygrad_nn.nn import Linear, Module, ReLU, Sequential, Sigmoid, Tanh


def test_linear_shapes_follow_the_tutorial():
    layer = Linear(4, 3, rng=0)
    assert layer.weight.shape == (3, 4)  # w_jk joins input k to neuron j
    assert layer.bias.shape == (3,)
    assert layer.weight.requires_grad and layer.bias.requires_grad
    assert layer(np.ones((5, 4))).shape == (5, 3)
    assert layer(np.ones(4)).shape == (3,)


def test_linear_computes_w_a_plus_b_for_rows_and_single_examples():
    rng = np.random.default_rng(1)
    layer = Linear(4, 3, rng=rng)
    X = rng.standard_normal((6, 4))
    w, b = layer.weight.data, layer.bias.data
    np.testing.assert_allclose(layer(X).data, X @ w.T + b, rtol=1e-14)
    # One example as a flat vector gives z = w a + b, the book's column formula flattened.
    np.testing.assert_allclose(layer(X[2]).data, w @ X[2] + b, rtol=1e-14)


def test_linear_records_the_graph_and_its_gradient_is_right():
    layer = Linear(3, 2, rng=2)
    x = np.random.default_rng(3).standard_normal((4, 3))
    out = layer(x)
    assert out.requires_grad and out.grad_fn == "linear"

    def cost(w, b):  # gradcheck passes float64 copies of the parameters
        layer.weight, layer.bias = w, b
        return Sigmoid()(layer(x)).sum()

    assert gradcheck(cost, layer.weight, layer.bias)


def test_standard_init_is_unit_normal_and_scaled_init_divides_by_sqrt_n_in():
    n_in, n_out = 400, 500
    standard = Linear(n_in, n_out, init="standard", rng=0)  # the tutorial's; not the default
    scaled = Linear(n_in, n_out, init="scaled", rng=0)
    assert abs(standard.weight.data.std() - 1) < 0.01
    assert abs(standard.weight.data.mean()) < 0.01
    assert abs(scaled.weight.data.std() - 1 / np.sqrt(n_in)) < 0.01 / np.sqrt(n_in)
    # Biases stay N(0, 1) under both (500 draws: std within a few percent of 1).
    for layer in (standard, scaled):
        assert abs(layer.bias.data.std() - 1) < 0.15


def test_rng_makes_initialisation_reproducible():
    a, b = Linear(5, 4, rng=7), Linear(5, 4, rng=7)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    gen = np.random.default_rng(7)
    first, second = Linear(5, 4, rng=gen), Linear(5, 4, rng=gen)  # one generator, consumed
    assert not np.array_equal(first.weight.data, second.weight.data)


@pytest.mark.parametrize("args, kwargs", [
    ((0, 3), {}), ((3, 0), {}), ((2.5, 3), {}), ((True, 3), {}), ((3, 3), {"init": "uniform"}),
])
def test_linear_rejects_bad_arguments(args, kwargs):
    with pytest.raises(ValueError, match="Linear"):
        Linear(*args, **kwargs)


def test_activations_compute_their_functions():
    z = np.array([[-3.0, -0.5, 0.0, 0.5, 3.0]])
    np.testing.assert_allclose(Sigmoid()(Tensor(z)).data, 1 / (1 + np.exp(-z)), rtol=1e-15)
    np.testing.assert_allclose(Tanh()(Tensor(z)).data, np.tanh(z), rtol=1e-15)
    np.testing.assert_array_equal(ReLU()(Tensor(z)).data, np.maximum(z, 0))
    assert Sigmoid().parameters() == [] and ReLU().parameters() == []


def test_sequential_chains_layers_and_lists_parameters_in_order():
    l1, l2 = Linear(2, 3, rng=0), Linear(3, 1, rng=1)
    net = Sequential(l1, Sigmoid(), l2, Sigmoid())
    assert net.parameters() == [l1.weight, l1.bias, l2.weight, l2.bias]
    x = np.array([[0.5, -1.0]])
    expected = 1 / (1 + np.exp(-(1 / (1 + np.exp(-(x @ l1.weight.data.T + l1.bias.data)))
                                 @ l2.weight.data.T + l2.bias.data)))
    np.testing.assert_allclose(net(x).data, expected, rtol=1e-14)
    assert len(net) == 4 and net[2] is l2 and list(net)[0] is l1


def test_sequential_refuses_non_modules():
    with pytest.raises(TypeError, match="layer 1"):
        Sequential(Linear(2, 2), np.tanh)


class Custom(Module):
    """A module with every kind of attribute parameters() must look through."""

    def __init__(self):
        self.scale = Tensor(2.0, requires_grad=True)
        self.frozen = Tensor([1.0, 2.0])  # no grad: not a parameter
        self.blocks = [Linear(2, 2, rng=0), Linear(2, 2, rng=1)]
        self.head = Sequential(Linear(2, 1, rng=2))
        self.alias = self.blocks[0]  # the same module again: listed once
        self.note = "not a module"

    def forward(self, x):
        for block in self.blocks:
            x = block(x).sigmoid()
        return self.head(x) * self.scale


def test_parameters_are_recursive_deduplicated_and_deterministic():
    m = Custom()
    params = m.parameters()
    expected = [m.scale, m.blocks[0].weight, m.blocks[0].bias, m.blocks[1].weight,
                m.blocks[1].bias, m.head[0].weight, m.head[0].bias]
    assert len(params) == len(expected)
    assert all(p is q for p, q in zip(params, expected))
    assert [id(p) for p in Custom.parameters(m)] == [id(p) for p in params]


def test_zero_grad_clears_every_gradient_and_call_runs_forward():
    m = Custom()
    m(np.ones((3, 2))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_module_without_forward_says_so():
    with pytest.raises(NotImplementedError, match="forward"):
        Module()(1)


def test_sgd_on_a_sequential_learns_a_tiny_problem():
    # AND of two inputs, learned by one sigmoid neuron: the cost must fall.
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    Y = np.array([[0], [0], [0], [1]], dtype=float)
    net = Sequential(Linear(2, 1, init="standard", rng=0), Sigmoid())
    opt = optim.SGD(net.parameters(), lr=2.0)
    first = costs.quadratic_cost(net(X), Y).item()
    for _ in range(300):
        opt.zero_grad()
        costs.quadratic_cost(net(X), Y).backward()
        opt.step()
    assert costs.quadratic_cost(net(X), Y).item() < first / 10
    assert np.array_equal(net(X).data > 0.5, Y > 0.5)


def test_new_names_are_exported():
    for name in ("Linear", "Sequential", "Sigmoid", "Tanh", "ReLU", "Module", "Network",
                 "SGD", "Perceptron", "quadratic_cost", "cross_entropy_cost", "nand_gate"):
        assert hasattr(tinygrad_nn, name) and name in tinygrad_nn.__all__
