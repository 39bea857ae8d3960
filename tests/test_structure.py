"""Structure and memory: deep and wide graphs, nothing left alive after a step, determinism.

- The graph walk is iterative, so depth is limited by memory, not by Python's recursion limit;
  a tensor used many times gets the *sum* of its contributions.
- After a training step no graph node survives: the cost and its intermediates are freed
  (tinygrad's test_gc idea), and by reference counting alone, without waiting for the
  cycle collector.
- The same seed gives bit-identical weights, whatever else has used numpy's global generator.
"""

from __future__ import annotations

import gc
import random
import sys
import weakref
from contextlib import contextmanager

import numpy as np
import pytest

from tinygrad_nn import Network, Tensor, datasets, optim
from tinygrad_nn.autograd import toposort
from tinygrad_nn.costs import quadratic_cost
from tinygrad_nn.functional import stack

# --- deep and wide graphs -----------------------------------------------------------------


def test_backward_over_a_100000_op_chain_with_a_shared_multiplier():
    """y_k = y_{k-1}·a + 1 for k = 1..N (2N = 100,000 ops), a used N times along the chain.

    y_N = x a^N + Σ_{j<N} a^j, so dy/dx = a^N and dy/da = N x a^{N-1} + Σ_{j<N} j a^{j-1}.
    """
    n, x0, a0 = 50_000, 0.75, 1.00001
    x = Tensor(x0, requires_grad=True)
    a = Tensor(a0, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * a + 1.0
    limit = sys.getrecursionlimit()
    order = toposort([y])
    assert len(order) == 2 * n + 2  # every op and both leaves, each once
    first = weakref.ref(order[2])  # the first op of the chain (after the two leaves)
    del order
    y.backward()
    assert sys.getrecursionlimit() == limit
    j = np.arange(n, dtype=np.float64)
    assert x.grad.item() == pytest.approx(a0 ** n, rel=1e-10)
    expected_da = n * x0 * a0 ** (n - 1) + np.sum(j * a0 ** (j - 1))
    assert a.grad.item() == pytest.approx(expected_da, rel=1e-9)
    # Dropping the head frees all 100,000 nodes without a recursive teardown.
    del y
    gc.collect()
    assert first() is None


def test_one_tensor_used_10000_times_gets_the_sum_of_the_contributions():
    rng = np.random.default_rng(0)
    c = rng.standard_normal((10_000, 3))
    x = Tensor(rng.standard_normal(3), requires_grad=True)
    total = (x * c[0]).sum()
    for row in c[1:]:
        total = total + (x * row).sum()
    total.backward()
    np.testing.assert_allclose(x.grad.data, c.sum(axis=0), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(total.item(), float((c @ x.data).sum()), rtol=1e-12)


def test_one_node_with_2000_inputs():
    # A wide node rather than a long chain: stack joins 2,000 tensors in one concatenate.
    # (Not 10,000: concatenate's backward is quadratic in the number of inputs, ~15 s there.)
    rng = np.random.default_rng(1)
    c = rng.standard_normal((2_000, 2))
    x = Tensor(rng.standard_normal(2), requires_grad=True)
    s = stack([x * row for row in c])
    assert s.shape == (2_000, 2)
    (s * s).sum().backward()  # d/dx Σ_i (x c_i)² = 2 x Σ_i c_i²
    np.testing.assert_allclose(x.grad.data, 2 * x.data * (c * c).sum(axis=0), rtol=1e-12)


def test_a_diamond_repeated_1000_times_accumulates_exactly():
    # y ← y + y, 1,000 times: each node used twice, d y_N / d x = 2^N in exact powers of two.
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(1000):  # 2**1000 is still a float64
        y = y + y
    y.backward()
    assert x.grad.item() == 2.0 ** 1000


# --- nothing left alive after training --------------------------------------------------------


def graph_nodes() -> list[Tensor]:
    """Every live Tensor made by a primitive (a graph node), as seen by the garbage collector."""
    return [o for o in gc.get_objects() if type(o) is Tensor and o._op is not None]


@contextmanager
def no_new_graph_nodes(collect: bool):
    """Fail if graph nodes made inside the block are still alive after it.

    Nodes alive before (other tests' leftovers) are held, so their ids cannot be reused. With
    collect=False the cycle collector is off throughout: the nodes must die by reference
    counting alone, as soon as the last reference to the cost goes.
    """
    gc.collect()
    before = graph_nodes()
    known = {id(t) for t in before}
    enabled = gc.isenabled()
    if not collect:
        gc.disable()
    try:
        yield
        if collect:
            gc.collect()
        alive = [t for t in graph_nodes() if id(t) not in known]
        assert not alive, (f"{len(alive)} graph nodes survived, e.g. "
                           f"{sorted({t.grad_fn for t in alive})}")
    finally:
        if enabled:
            gc.enable()
        del before


@pytest.fixture
def small():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (7, 4))
    labels = rng.integers(0, 3, 7)
    return X, labels


def test_weakrefs_to_every_node_of_a_step_die_with_the_cost(small):
    X, labels = small
    net = Network([4, 5, 3], seed=0)
    opt = optim.SGD(net.parameters(), 0.5)
    cost = quadratic_cost(net.forward(X), np.eye(3)[labels])
    opt.zero_grad()
    cost.backward()
    opt.step()
    nodes = [t for t in toposort([cost]) if t._op is not None]
    assert len(nodes) >= 5  # linear, sigmoid, linear, sigmoid, cost
    refs = [weakref.ref(t) for t in nodes]
    del nodes, cost
    gc.collect()
    assert [r for r in refs if r() is not None] == []
    # What is left: the parameters and their gradients, all leaves.
    for p in net.parameters():
        assert p.is_leaf and p.grad is not None and p.grad.is_leaf


@pytest.mark.parametrize("collect", [True, False], ids=["gc.collect", "refcount-only"])
def test_no_graph_node_survives_update_mini_batch(small, collect):
    X, labels = small
    net = Network([4, 5, 3], seed=0)
    with no_new_graph_nodes(collect):
        cost = net.update_mini_batch((X, labels), 0.5)
    assert type(cost) is float


@pytest.mark.parametrize("collect", [True, False], ids=["gc.collect", "refcount-only"])
@pytest.mark.parametrize("kwargs", [{}, {"lmbda": 0.1, "monitor_training_cost": True}],
                         ids=["tutorial", "sequel"])
def test_no_graph_node_survives_an_sgd_epoch(small, collect, kwargs):
    X, labels = small
    net = Network([4, 5, 3], cost="cross-entropy", seed=0)
    with no_new_graph_nodes(collect):
        history = net.SGD((X, labels), 1, 3, 0.5, test_data=(X, labels), verbose=False,
                          **kwargs)
    assert len(history.epochs) == 1


def test_no_graph_node_survives_a_failed_step(small):
    # An error half-way through a forward pass must not leave the partial graph behind.
    X, labels = small
    net = Network([4, 5, 3], seed=0)
    with no_new_graph_nodes(collect=True):
        with pytest.raises(ValueError):
            quadratic_cost(net.forward(X), np.ones((7, 4)))  # wrong target shape


def test_backward_does_not_keep_the_graph_in_the_gradients(small):
    X, labels = small
    net = Network([4, 5, 3], seed=0)
    with no_new_graph_nodes(collect=False):
        cost = quadratic_cost(net.forward(X), np.eye(3)[labels])
        cost.backward()
        del cost
    assert all(p.grad.is_leaf for p in net.parameters())


# --- determinism -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    train = datasets.load_digits().train
    return train.X[:150], train.labels[:150]


def train_weights(data, seed, **kwargs) -> bytes:
    net = Network([64, 12, 10], seed=seed, **kwargs)
    net.SGD(data, 2, 7, 3.0, verbose=False)  # 150 = 21·7 + 3: a short last mini-batch too
    return b"".join(a.tobytes() for a in (*net.weights, *net.biases))


@pytest.mark.parametrize("kwargs", [{}, {"cost": "cross-entropy", "activation": "relu",
                                         "init": "scaled"}], ids=["tutorial", "variant"])
def test_the_same_seed_gives_bit_identical_weights(digits, kwargs):
    first = train_weights(digits, 5, **kwargs)
    # Whatever happens to the global generators in between does not matter.
    np.random.seed(12345)
    np.random.uniform(size=100)
    random.seed(6)
    second = train_weights(digits, 5, **kwargs)
    assert first == second
    assert train_weights(digits, 6, **kwargs) != first  # the seed does matter


def test_a_seeded_generator_object_is_as_good_as_an_integer_seed(digits):
    first = train_weights(digits, np.random.default_rng(8))
    assert first == train_weights(digits, np.random.default_rng(8))
    assert first == train_weights(digits, 8)


def test_training_reads_no_global_randomness(digits, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("training used numpy's global generator")

    for name in ("rand", "randn", "random", "permutation", "shuffle", "uniform", "normal",
                 "randint", "choice"):
        monkeypatch.setattr(np.random, name, forbidden)
    train_weights(digits, 0)  # would raise if any of them were called
