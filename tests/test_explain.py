"""Tests for tinygrad_nn.explain: BP1-BP4 and the autograd agree layer by layer, the
trace reads well as text, round-trips as JSON and draws as DOT; the reverse walk shows each
gradient as the sum of the shares the core's own walk adds.
"""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

from tinygrad_nn import Tensor, backprop
from tinygrad_nn.explain import (
    DIFFERENCE,
    Trace,
    example_graph,
    explain,
    network_graph,
    random_network,
    walk,
    walk_example,
    walk_network,
)

ARCHITECTURES = [(1, 1), (2, 3, 1), (3, 4, 5, 2), (4, 2), (5, 12, 3)]
COSTS = ["quadratic", "cross-entropy"]


@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("sizes", ARCHITECTURES)
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_bp_and_autograd_agree(sizes, seed, cost):
    trace = explain(sizes, seed=seed, cost=cost)
    assert [t.layer for t in trace.layers] == list(range(2, len(sizes) + 1))
    assert trace.max_abs_diff < 1e-12
    assert abs(trace.cost_value - trace.cost_value_autograd) < 1e-12
    for t in trace.layers:
        assert t.max_abs_diff < 1e-12
        # max_abs_diff is what it claims, an absolute difference: recompute it.
        diffs = [np.abs(np.subtract(p, q)).max() for p, q in [
            (t.nabla_a, t.nabla_a_autograd), (t.delta, t.delta_autograd),
            (t.nabla_b, t.nabla_b_autograd), (t.nabla_w, t.nabla_w_autograd)]]
        assert t.max_abs_diff == max(diffs)
        # BP3 in the trace itself: ∂C/∂b^l is δ^l.
        assert t.nabla_b == t.delta
        # BP1/BP2 in the trace itself: δ^l = (∂C/∂a^l) ⊙ σ'(z^l), from the printed terms.
        np.testing.assert_allclose(np.multiply(t.nabla_a, t.sigma_prime), t.delta,
                                   rtol=1e-9, atol=1e-15)
        # BP4: ∂C/∂w^l = δ^l (a^{l-1})ᵀ.
        previous = trace.x if t.layer == 2 else trace.layers[t.layer - 3].a
        np.testing.assert_allclose(np.outer(t.delta, previous), t.nabla_w, rtol=1e-12)


def test_trace_matches_the_reference_directly():
    weights, biases, x, y = random_network((2, 3, 1), seed=5)
    trace = explain((2, 3, 1), seed=5)
    assert trace.x == x.tolist() and trace.y == y.tolist()
    zs, activations = backprop.feedforward(weights, biases, x)
    nabla_b, nabla_w = backprop.backprop(weights, biases, x, y)
    for t, z, a, nb, nw, w, b in zip(trace.layers, zs, activations[1:], nabla_b, nabla_w,
                                     weights, biases, strict=True):
        assert t.z == z.tolist() and t.a == a.tolist()
        assert t.w == w.tolist() and t.b == b.tolist()
        assert t.sigma_prime == backprop.sigmoid_prime(z).tolist()
        assert t.nabla_b == nb.tolist() and t.nabla_w == nw.tolist()
    # BP2's first factor of layer 2 is (w^3)ᵀ δ^3; BP1's of the output layer is a^L - y.
    np.testing.assert_allclose(trace.layers[0].nabla_a, weights[1].T @ trace.layers[1].delta)
    np.testing.assert_allclose(trace.layers[1].nabla_a, np.subtract(trace.layers[1].a, y))


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


def test_text_has_one_block_per_layer_naming_every_term():
    text = explain((3, 4, 5, 2), seed=1).to_text()
    headers = re.findall(r"^layer (\d+) \((\d+) neurons?, (hidden|output)\)$", text, flags=re.M)
    assert headers == [("2", "4", "hidden"), ("3", "5", "hidden"), ("4", "2", "output")]
    blocks = re.split(r"^layer \d+ .*$", text, flags=re.M)[1:]
    assert len(blocks) == 3
    for i, block in enumerate(blocks):
        n = i + 2
        for term in (f"w^{n}", f"b^{n}", f"z^{n} = w^{n} a^{n - 1} + b^{n}", "eq. 1.6",
                     f"σ'(z^{n}) = a^{n}(1 - a^{n})", f"∂C/∂a^{n}  autograd",
                     f"∂C/∂z^{n}  autograd", f"∂C/∂b^{n} = δ^{n}  BP3",
                     f"∂C/∂w^{n} = δ^{n} (a^{n - 1})ᵀ  BP4", "max |BP - autograd|", "by hand:"):
            assert term in block, (n, term)
        if n == 4:
            assert "∇_a C = a^4 - y  BP1" in block and "δ^4 = ∇_a C ⊙ σ'(z^4)  BP1" in block
            assert "BP2" not in block
        else:
            assert f"(w^{n + 1})ᵀδ^{n + 1}  BP2" in block
            assert f"δ^{n} = (w^{n + 1})ᵀδ^{n + 1} ⊙ σ'(z^{n})  BP2" in block
            assert "BP1" not in block
    assert "layer 3 (1 neuron, output)" in explain((2, 3, 1)).to_text()


def test_the_difference_is_stated_the_same_way_everywhere():
    trace = explain((2, 3, 1))
    assert "absolute" in DIFFERENCE and "not a relative" in DIFFERENCE
    assert f"difference: {DIFFERENCE}" in " ".join(trace.to_text().split())
    assert json.loads(trace.to_json())["difference"] == DIFFERENCE
    assert "absolute difference" in " ".join(explain.__doc__.split())
    assert "absolute difference" in Trace.max_abs_diff.__doc__
    assert "absolute" in trace.to_dot()


def test_the_pencil_check_of_the_docs():
    # docs/backprop.md: δ²₁ = 1.304 × (−0.006505) × 0.16276 = −0.001381 on [2, 3, 1], seed 0.
    trace = explain((2, 3, 1), seed=0)
    hidden, output = trace.layers
    assert round(output.w[0][0], 4) == 1.304
    assert round(output.delta[0], 6) == -0.006505
    assert round(hidden.sigma_prime[0], 5) == 0.16276
    assert round(hidden.delta[0], 6) == -0.001381
    assert 1.304 * -0.006505 * 0.16276 == pytest.approx(hidden.delta[0], rel=1e-3)
    text = trace.to_text()
    assert "δ^2_1 = w^3_11 δ^3_1 σ'(z^2_1) = 1.304 × (-0.006505) × 0.1628 = -0.001381" in text
    assert "δ^3_1 = (a^3_1 - y_1) σ'(z^3_1) = (0.1083 - 0.1757) × 0.09657 = -0.006505" in text
    assert "∂C/∂w^2_11 = a^1_1 δ^2_1 = 0.03359 × (-0.001381) = -4.637e-05" in text
    # Every number of the by-hand lines is one the table above them prints.
    for line in re.findall(r"by hand: (.*)", text):
        product = line.split(" = ")[-2]
        for number in re.findall(r"-?\d+\.\d+(?:e-\d+)?", product):
            assert number in text.replace(line, ""), (number, line)


@pytest.mark.parametrize("sizes", [(2, 2, 2, 1), (2, 3, 5, 1)])
def test_by_hand_lines_sum_over_the_layer_above(sizes):
    text = explain(sizes, seed=2).to_text()
    by_hand = re.findall(r"by hand: (δ\^2_1 = .*)", text)[0]
    if sizes[2] <= 3:
        assert "Σ_k w^3_k1 δ^3_k" in by_hand and by_hand.count(" × ") == sizes[2] + 1
    else:
        assert "((w^3)ᵀδ^3)_1" in by_hand


def test_cross_entropy_states_the_cancellation():
    text = explain((2, 3, 1), cost="cross-entropy").to_text()
    assert "∇_a C = (a^3 - y) / (a^3 (1 - a^3))  BP1" in text
    assert "cancels" in text


def test_text_columns_are_aligned_and_wide_layers_are_summarised():
    text = explain((2, 3, 1)).to_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("  ") and "by hand" not in ln]
    # x, y and two costs; 14 rows per layer, plus the extra rows of w^2 and its gradients.
    assert len(rows) == 4 + (14 + 3 * 2) + 14
    x_row = next(ln for ln in rows if ln.lstrip().startswith("x = a^1"))
    start = len(x_row) - 2 * 11  # x has two entries: the cells start here on every row
    for ln in rows:
        assert ln[start - 1] == " ", ln  # the labels end before the numbers begin
        cells = ln[start:]
        assert len(cells) % 11 == 0, ln
        for i in range(0, len(cells), 11):
            float(cells[i:i + 11])
    wide = explain((20, 30, 10)).to_text()
    assert "||.|| =" in wide and "(30 x 20)" in wide and "... (30 values)" in wide
    assert max(len(ln) for ln in wide.splitlines() if "by hand" not in ln) < 120


def test_json_round_trip():
    trace = explain((3, 4, 2), seed=3, cost="cross-entropy")
    data = json.loads(trace.to_json())
    assert {"sizes", "seed", "cost", "x", "y", "layers", "max_abs_diff", "difference"} <= set(data)
    assert data["sizes"] == [3, 4, 2] and data["seed"] == 3 and data["cost"] == "cross-entropy"
    assert len(data["x"]) == 3 and len(data["y"]) == 2
    assert [layer["layer"] for layer in data["layers"]] == [2, 3]
    for layer, n, n_prev in zip(data["layers"], (4, 2), (3, 4), strict=True):
        assert layer["neurons"] == n
        for key in ("b", "z", "a", "sigma_prime", "nabla_a", "nabla_a_autograd", "delta",
                    "delta_autograd", "nabla_b", "nabla_b_autograd"):
            assert len(layer[key]) == n
        for key in ("w", "nabla_w", "nabla_w_autograd"):
            assert np.asarray(layer[key]).shape == (n, n_prev)
        assert isinstance(layer["max_abs_diff"], float)
    # Floats survive exactly: json writes the shortest repr that round-trips.
    assert data["layers"][0]["nabla_w"] == trace.layers[0].nabla_w
    assert data["max_abs_diff"] == trace.max_abs_diff


def test_trace_picture_has_a_table_per_layer_and_both_directions():
    dot = explain((2, 3, 1)).to_dot()
    assert dot.startswith('digraph "trace" {') and dot.rstrip().endswith("}")
    for node in ("l1", "l2", "l3", "cost"):
        assert re.search(rf"^  {node} \[label=<<table", dot, flags=re.M), node
    for term in ("w²", "b²", "z² = w²a¹ + b²", "σ'(z²)", "(w³)ᵀδ³", "δ² = (w³)ᵀδ³ ⊙ σ'(z²)",
                 "∂C/∂b² = δ²", "∂C/∂w² = δ²(a¹)ᵀ", "∇_a C = a³ - y", "BP1", "BP2", "BP3", "BP4"):
        assert html.escape(term, quote=True) in dot, term
    # The 3 x 2 matrix w² is shown, all six entries, and the pencil check's numbers.
    for number in ("0.1257", "-0.1321", "0.6404", "0.1049", "-0.5357", "0.3616", "0.1628",
                   "-0.006505", "-0.001381", "1.304"):
        assert f">{number}<" in dot, number
    assert "l1:a_e:e -> l2:z:w" in dot and "l3:delta:w -> l2:na_e:e" in dot
    assert "cost:c:w -> l3:na_e:e" in dot
    assert "&lt; 1e-15" in dot  # the agreement as a bound, so the picture is machine-proof


def test_deterministic_for_a_seed():
    first, second = explain((2, 3, 1), seed=4), explain((2, 3, 1), seed=4)
    assert first == second
    assert first.to_text() == second.to_text() and first.to_json() == second.to_json()
    assert explain((2, 3, 1), seed=5) != first
    assert isinstance(first, Trace)


@pytest.mark.parametrize("sizes", [(3,), (), (2, 0, 1), (2.0, 1), (True, 1)])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes must be a list of layer widths"):
        explain(sizes)


def test_bad_cost():
    with pytest.raises(ValueError, match="unknown cost 'hinge'.*quadratic"):
        explain(cost="hinge")


# --- the walk -----------------------------------------------------------------------------


def test_walk_example_shows_each_gradient_as_a_sum():
    w = walk_example()
    by_name = {s.name: s for s in w.steps}
    assert [s.name for s in w.steps][0] == "f" and set(by_name) == {"f", "t4", "t3", "t2", "x", "y"}
    assert by_name["x"].sum_text() == "∂f/∂x = 3.297 + 2 = 5.297"
    assert by_name["y"].sum_text() == "∂f/∂y = 1.649 + 0.5 = 2.149"
    assert by_name["f"].sum_text() == "∂f/∂f = 1 (the seed)"
    text = w.to_text()
    assert "exp's VJP sends  x: 2 × 1.649 = 3.297" in text
    assert "mul's VJP sends  x: 1 × 2 = 2,  y: 1 × 0.5 = 0.5" in text
    assert "x.grad = 5.297" in text and "t3 = exp(x) = 1.649" in text


def test_walk_totals_are_backwards_and_shares_add_up():
    f, names = example_graph()
    w = walk(f, names)
    f.backward()  # the real thing, after the walk (which stores nothing)
    x, y = (t for t, n in names.items() if n in "xy")
    by_name = {s.name: s for s in w.steps}
    assert by_name["x"].grad == x.grad.data and by_name["y"].grad == y.grad.data
    x_shares = [s.value for s in by_name["x"].received]
    assert x_shares[0] == np.exp(0.5) * 2.0 and x_shares[1] == 2.0  # e^x y, then y
    for step in w.steps:
        if step.received:  # the sum, in arrival order, is the core's total, bit for bit
            total = step.received[0].value
            for share in step.received[1:]:
                total = total + share.value
            np.testing.assert_array_equal(total, step.grad)


def test_walk_changes_no_grad():
    f, names = example_graph()
    walk(f, names)
    assert all(t.grad is None for t in names)


def test_walk_network_matches_bp():
    w = walk_network((2, 3, 1), seed=0)
    by_name = {s.name: s for s in w.steps}
    trace = explain((2, 3, 1), seed=0)
    np.testing.assert_allclose(by_name["w2"].grad, trace.layers[0].nabla_w, rtol=1e-12)
    np.testing.assert_allclose(by_name["z3"].grad.ravel(), trace.layers[1].delta, rtol=1e-12)
    # The squared difference uses t10 twice: its gradient is the sum of two shares.
    assert len(by_name["t10"].received) == 2
    data = json.loads(w.to_json())
    assert data["output"] == "C" and data["steps"][0]["name"] == "C"
    assert data["steps"][0]["grad"] == 1.0


def test_walk_refuses_what_it_cannot_walk():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="one-element"):
        walk(x * 2)
    with pytest.raises(ValueError, match="one-element"):
        walk(Tensor(1.0))
    with pytest.raises(TypeError, match="expected a Tensor"):
        walk(1.0)


def test_the_old_name_of_the_difference_still_reads():
    trace = explain((2, 3, 1), seed=0)
    assert trace.max_diff == trace.max_abs_diff
    assert [layer.max_diff for layer in trace.layers] == [
        layer.max_abs_diff for layer in trace.layers]
    record = json.loads(trace.to_json())
    assert record["max_diff"] == record["max_abs_diff"]
    assert all(layer["max_diff"] == layer["max_abs_diff"] for layer in record["layers"])
