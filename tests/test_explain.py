"""Tests for tinygrad_nn.explain: BP1-BP4 and the autograd agree layer by layer, and the
trace reads well as text and round-trips as JSON.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tinygrad_nn import backprop
from tinygrad_nn.explain import Trace, explain, network_graph, random_network

ARCHITECTURES = [(1, 1), (2, 3, 1), (3, 4, 5, 2), (4, 2), (5, 12, 3)]
COSTS = ["quadratic", "cross-entropy"]


@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("sizes", ARCHITECTURES)
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_bp_and_autograd_agree(sizes, seed, cost):
    trace = explain(sizes, seed=seed, cost=cost)
    assert [t.layer for t in trace.layers] == list(range(2, len(sizes) + 1))
    assert trace.max_diff < 1e-12
    assert abs(trace.cost_value - trace.cost_value_autograd) < 1e-12
    for t in trace.layers:
        assert t.max_diff < 1e-12
        # max_diff is what it claims: recompute it from the stored lists.
        diffs = [np.abs(np.subtract(p, q)).max() for p, q in [
            (t.delta, t.delta_autograd), (t.nabla_b, t.nabla_b_autograd),
            (t.nabla_w, t.nabla_w_autograd)]]
        assert t.max_diff == max(diffs)
        # BP3 in the trace itself: ∂C/∂b^l is δ^l.
        assert t.nabla_b == t.delta


def test_trace_matches_the_reference_directly():
    weights, biases, x, y = random_network((2, 3, 1), seed=5)
    trace = explain((2, 3, 1), seed=5)
    assert trace.x == x.tolist() and trace.y == y.tolist()
    zs, activations = backprop.feedforward(weights, biases, x)
    nabla_b, nabla_w = backprop.backprop(weights, biases, x, y)
    for t, z, a, nb, nw in zip(trace.layers, zs, activations[1:], nabla_b, nabla_w, strict=True):
        assert t.z == z.tolist() and t.a == a.tolist()
        assert t.nabla_b == nb.tolist() and t.nabla_w == nw.tolist()


def test_network_graph_cost_is_the_batch_mean():
    # With a batch of two copies of the example the mean cost is still C_x, so its
    # gradient is BP3's; without the 1/m normalisation it would be twice that.
    weights, biases, x, y = random_network((2, 3, 1), seed=0)
    graph = network_graph(weights, biases, np.stack([x, x]), np.stack([y, y]))
    graph.cost.backward()
    nabla_b, _ = backprop.backprop(weights, biases, x, y)
    np.testing.assert_allclose(graph.biases[-1].grad.data, nabla_b[-1], rtol=1e-12)


def test_random_network_shapes_and_ranges():
    weights, biases, x, y = random_network((3, 4, 2), seed=2)
    assert [w.shape for w in weights] == [(4, 3), (2, 4)]
    assert [b.shape for b in biases] == [(4,), (2,)]
    assert x.shape == (3,) and y.shape == (2,)
    assert ((0 <= x) & (x <= 1)).all() and ((0 <= y) & (y <= 1)).all()


def test_text_has_one_block_per_layer_naming_the_equations():
    text = explain((3, 4, 5, 2), seed=1).to_text()
    headers = re.findall(r"^layer (\d+) \((\d+) neurons?\)$", text, flags=re.M)
    assert headers == [("2", "4"), ("3", "5"), ("4", "2")]
    blocks = re.split(r"^layer \d+ .*$", text, flags=re.M)[1:]
    assert len(blocks) == 3
    for i, block in enumerate(blocks):
        n = i + 2
        assert f"z^{n} = w^{n} a^{n - 1} + b^{n}" in block
        assert "eq. 1.6" in block
        assert ("BP1" if n == 4 else "BP2") in block
        assert ("BP2" if n == 4 else "BP1") not in block
        for name in ("BP3", "BP4", f"∂C/∂z^{n}  autograd", "max |BP - autograd|"):
            assert name in block
    assert "layer 3 (1 neuron)" in explain((2, 3, 1)).to_text()


def test_text_columns_are_aligned_and_wide_layers_are_summarised():
    text = explain((2, 3, 1)).to_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("  ")]
    # x, y and two costs; 9 rows per layer, plus the extra rows of w^2's 3 x 2 matrices.
    assert len(rows) == 4 + (9 + 2 * 2) + 9
    for ln in rows:
        # A label column of 26 characters, then numbers right-aligned in cells of 11.
        assert ln[25] == " ", ln
        cells = ln[26:]
        assert len(cells) % 11 == 0, ln
        for i in range(0, len(cells), 11):
            float(cells[i:i + 11])
    wide = explain((20, 30, 10)).to_text()
    assert "||.|| =" in wide and "(30 x 20)" in wide and "... (30 values)" in wide
    assert max(len(ln) for ln in wide.splitlines()) < 120


def test_json_round_trip():
    trace = explain((3, 4, 2), seed=3, cost="cross-entropy")
    data = json.loads(trace.to_json())
    assert {"sizes", "seed", "cost", "x", "y", "layers", "max_diff"} <= set(data)
    assert data["sizes"] == [3, 4, 2] and data["seed"] == 3 and data["cost"] == "cross-entropy"
    assert len(data["x"]) == 3 and len(data["y"]) == 2
    assert [layer["layer"] for layer in data["layers"]] == [2, 3]
    for layer, n, n_prev in zip(data["layers"], (4, 2), (3, 4), strict=True):
        assert layer["neurons"] == n
        for key in ("z", "a", "delta", "delta_autograd", "nabla_b", "nabla_b_autograd"):
            assert len(layer[key]) == n
        for key in ("nabla_w", "nabla_w_autograd"):
            assert np.asarray(layer[key]).shape == (n, n_prev)
        assert isinstance(layer["max_diff"], float)
    # Floats survive exactly: json writes the shortest repr that round-trips.
    assert data["layers"][0]["nabla_w"] == trace.layers[0].nabla_w
    assert data["max_diff"] == trace.max_diff


def test_deterministic_for_a_seed():
    first, second = explain((2, 3, 1), seed=4), explain((2, 3, 1), seed=4)
    assert first == second
    assert first.to_text() == second.to_text() and first.to_json() == second.to_json()
    assert explain((2, 3, 1), seed=5) != first
    assert isinstance(first, Trace)


@pytest.mark.parametrize("sizes", [(3,), (), (2, 0, 1), (2.0, 1), (True, 1)])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes must list"):
        explain(sizes)


def test_bad_cost():
    with pytest.raises(ValueError, match="unknown cost 'hinge'.*quadratic"):
        explain(cost="hinge")
