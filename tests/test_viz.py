"""Tests for tinygrad_nn.viz: the DOT text of a graph (with and without the gradients of the
teaching picture), rendering through Graphviz, the notebook display, and the training-step
graph. The DOT text is parsed back with a regex, so the tests check the structure (which
nodes, which edges, which labels) rather than the exact layout of the text.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tinygrad_nn import Tensor, backprop, viz
from tinygrad_nn.explain import example_graph, random_network
from tinygrad_nn.viz import Graph, GraphvizNotFound, render, svg, to_dot, training_step_graph

HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(
    not HAS_DOT, reason="Graphviz's dot is not installed (apt-get install graphviz)"
)

_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_NODE = re.compile(rf"^\s*(\w+) \[label={_QUOTED}(.*)\];$")
_EDGE = re.compile(rf"^\s*(\w+) -> (\w+)(?: \[label={_QUOTED}.*\])?;$")


def undo_escapes(text: str) -> str:
    """A DOT label as the reader sees it: \\n and \\l end lines, \\x is x; no-break spaces
    are spaces."""
    text = re.sub(r"\\(.)", lambda e: "\n" if e[1] in "nl" else e[1], text)
    return text.removesuffix("\n").replace("\u00a0", " ")


def parse(dot: str) -> tuple[dict[str, tuple[str, str]], list[tuple[str, str]]]:
    """{node id: (label with DOT escapes undone, other attributes)} and the edge list."""
    nodes, edges = {}, []
    for line in dot.splitlines():
        if m := _NODE.match(line):
            nodes[m[1]] = (undo_escapes(m[2]), m[3])
        elif m := _EDGE.match(line):
            edges.append((m[1], m[2]))
    return nodes, edges


def edge_labels(dot: str) -> dict[tuple[str, str], list[str]]:
    """{(source, op): [labels]} for the labelled edges (the shares of gradients mode)."""
    out: dict[tuple[str, str], list[str]] = {}
    for line in dot.splitlines():
        if (m := _EDGE.match(line)) and m[3] is not None:
            out.setdefault((m[1], m[2]), []).append(undo_escapes(m[3]))
    return out


def kinds(nodes: dict[str, tuple[str, str]]) -> dict[str, list[str]]:
    """Node ids by kind: tensors t*, ops op*, constants c*."""
    out: dict[str, list[str]] = {"t": [], "op": [], "c": []}
    for node in nodes:
        out[re.match(r"[a-z]+", node)[0]].append(node)
    return out


def by_name(nodes: dict[str, tuple[str, str]]) -> dict[str, str]:
    """First word of each label (a tensor's name, an op's primitive) -> node id."""
    return {label.split()[0]: node for node, (label, _) in nodes.items()}


@pytest.fixture
def xy_expr():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = Tensor([4.0, 5.0, 6.0], requires_grad=True)
    xy = x * y
    s = xy + x
    out = s.sum()
    return out, {x: "x", y: "y", xy: "xy", s: "s", out: "out"}


# --- to_dot: structure --------------------------------------------------------------------


def test_known_expression_has_exactly_these_nodes_and_edges(xy_expr):
    out, names = xy_expr
    dot = to_dot(out, names=names)
    assert dot.startswith('digraph "graph" {') and dot.rstrip().endswith("}")
    nodes, edges = parse(dot)
    # Every line is a node, an edge or graph boilerplate: nothing the regex missed.
    body = [ln for ln in dot.splitlines()[1:-1] if not re.match(r"^\s*(node|edge) \[", ln)]
    assert len(body) == len(nodes) + len(edges)

    k = kinds(nodes)
    tensors = sorted(nodes[t][0].split()[0] for t in k["t"])
    ops = sorted(nodes[o][0] for o in k["op"])
    assert tensors == ["out", "s", "x", "xy", "y"]
    assert ops == ["add", "mul", "sum"]
    assert k["c"] == []

    ids = {nodes[n][0].split()[0]: n for n in k["t"]}
    op_of = {nodes[o][0]: o for o in k["op"]}
    expected = {
        (ids["x"], op_of["mul"]), (ids["y"], op_of["mul"]), (op_of["mul"], ids["xy"]),
        (ids["xy"], op_of["add"]), (ids["x"], op_of["add"]), (op_of["add"], ids["s"]),
        (ids["s"], op_of["sum"]), (op_of["sum"], ids["out"]),
    }
    assert sorted(edges) == sorted(expected)


def test_inputs_are_listed_in_argument_order():
    a = Tensor([1.0], requires_grad=True)
    b = Tensor([2.0], requires_grad=True)
    nodes, edges = parse(to_dot(b - a, names={a: "a", b: "b"}))
    ids = by_name(nodes)
    into_sub = [src for src, dst in edges if dst == ids["sub"]]
    assert into_sub == [ids["b"], ids["a"]]


def test_shapes_and_values_in_labels(xy_expr):
    out, names = xy_expr
    nodes, _ = parse(to_dot(out, names=names))
    labels = {label.split()[0]: label for label, _ in nodes.values()}
    assert labels["x"].splitlines()[0] == "x (3,)"
    assert labels["out"].splitlines()[0] == "out ()"
    assert "= 38" in labels["out"]  # 1*4 + 2*5 + 3*6 + 1 + 2 + 3
    big = Tensor(np.zeros((5, 7)), requires_grad=True)
    nodes, _ = parse(to_dot(big.sum(axis=0), names={big: "W"}))
    labels = {label.split()[0]: label for label, _ in nodes.values()}
    assert labels["W"] == "W (5, 7)"  # too big for values
    assert labels["t1"].splitlines()[0] == "t1 (7,)"  # unnamed: its node id


def test_op_labels_show_non_default_params():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    ops = [label for node, (label, _) in parse(to_dot(x.sum(axis=0).sum()))[0].items()
           if node.startswith("op")]
    assert sorted(ops) == ["sum", "sum axis=0"]
    nodes, _ = parse(to_dot(x.reshape(3, 2).sum(axis=1, keepdims=True).sum()))
    labels = {label for label, _ in nodes.values()}
    assert {"reshape shape=(3, 2)", "sum axis=1 keepdims=True"} <= labels


def test_dtype_shown_unless_float64():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    nodes, _ = parse(to_dot((x * x).sum(), names={x: "x"}))
    assert nodes[by_name(nodes)["x"]][0].startswith("x (3,) float32")
    y = Tensor(np.ones(3), requires_grad=True)
    nodes, _ = parse(to_dot((y * y).sum(), names={y: "y"}))
    assert "float" not in nodes[by_name(nodes)["y"]][0]


def test_gradient_markers_appear_after_backward(xy_expr):
    out, names = xy_expr
    before, _ = parse(to_dot(out, names=names))
    assert not any("grad" in label for label, _ in before.values())
    out.backward()
    after, _ = parse(to_dot(out, names=names))
    labels = {label.split()[0]: label for label, _ in after.values()}
    assert "grad [5, 6, 7]" in labels["x"]  # y + 1
    assert "grad [1, 2, 3]" in labels["y"]  # x
    assert "grad" not in labels["xy"]  # intermediate gradients are freed, not retained
    big = Tensor(np.ones((4, 4)), requires_grad=True)
    (big * 2.0).sum().backward()
    nodes, _ = parse(to_dot((big * 2.0).sum(), names={big: "W"}))
    assert nodes[by_name(nodes)["W"]][0].splitlines()[-1] == "grad (4, 4)"


def test_constants_appear_and_look_different():
    x = Tensor([1.0, 2.0], requires_grad=True)
    target = Tensor([0.5, 0.5])  # no grad: a constant tensor
    out = ((x - target) * 0.5).sum()
    nodes, edges = parse(to_dot(out, names={x: "x", target: "target"}))
    k = kinds(nodes)
    assert len(k["c"]) == 1 and nodes[k["c"][0]][0] == "0.5"
    (mul,) = [o for o in k["op"] if nodes[o][0] == "mul"]
    assert (k["c"][0], mul) in edges
    ids = by_name(nodes)
    assert "dashed" in nodes[ids["target"]][1] and "dashed" in nodes[k["c"][0]][1]
    assert "filled" in nodes[ids["x"]][1] and "dashed" not in nodes[ids["x"]][1]
    assert "peripheries=2" in nodes[k["t"][-1]][1]  # the output
    assert "dashed" not in nodes[k["t"][-1]][1] and "filled" not in nodes[k["t"][-1]][1]


def test_graph_of_a_leaf_or_a_no_grad_tensor():
    nodes, edges = parse(to_dot(Tensor([1.0, 2.0]), names=None))
    assert list(nodes) == ["t0"] and edges == []


def test_labels_are_dot_escaped(xy_expr):
    out, _ = xy_expr
    x = out._parents[0]._parents[1]
    dot = to_dot(out, name='my "graph"', names={id(x): 'x "quoted" \\ back\nslash'})
    assert dot.startswith('digraph "my \\"graph\\"" {')
    assert '"x \\"quoted\\" \\\\ back\\lslash (3,)' in dot
    nodes, _ = parse(dot)
    assert any(label.startswith('x "quoted" \\ back\nslash (3,)') for label, _ in nodes.values())


def test_names_keys_must_be_tensors_or_ids(xy_expr):
    out, _ = xy_expr
    with pytest.raises(TypeError, match="names must map Tensors"):
        to_dot(out, names={"x": "x"})
    with pytest.raises(TypeError, match="expected a Tensor"):
        to_dot(np.ones(3))


def test_output_is_deterministic():
    def build():
        x = Tensor([1.0, -2.0], requires_grad=True)
        w = Tensor([[0.5, 0.25], [1.0, 2.0]], requires_grad=True)
        h = (w @ x).sigmoid()
        return (h * h + x.exp()).sum(), {x: "x", w: "w"}

    (out1, names1), (out2, names2) = build(), build()
    assert to_dot(out1, names=names1) == to_dot(out2, names=names2)
    assert to_dot(out1) == to_dot(out1)


def test_ten_thousand_op_chain_needs_no_recursion():
    x = Tensor(0.5, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0
    nodes, edges = parse(to_dot(y))
    k = kinds(nodes)
    assert (len(k["t"]), len(k["op"]), len(k["c"])) == (10_001, 10_000, 10_000)
    assert len(edges) == 3 * 10_000


# --- render -------------------------------------------------------------------------------


@needs_dot
def test_render_svg_is_valid(tmp_path, xy_expr):
    out, names = xy_expr
    out.backward()
    names[out] = 'out <"&>'  # characters that must survive DOT and XML escaping
    path = render(out, tmp_path / "graph.svg", names=names)
    assert path == tmp_path / "graph.svg"
    text = path.read_text()
    assert text.startswith("<?xml") or "<svg" in text
    root = ET.fromstring(text.encode())
    assert root.tag.endswith("svg")
    drawn = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert "mul" in drawn and "grad [5, 6, 7]" in drawn and 'out <"&>' in drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.svg"]  # no temp file left


@needs_dot
def test_render_png_and_overwrite(tmp_path):
    cost, names = training_step_graph()
    path = tmp_path / "step.PNG"
    path.write_bytes(b"old")
    render(cost, str(path), names)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in tmp_path.iterdir()] == ["step.PNG"]


@needs_dot
def test_render_reports_dot_failure_and_keeps_old_file(tmp_path, monkeypatch):
    false = shutil.which("false")
    if false is None:
        pytest.skip("no `false` program to stand in for a failing dot")
    x = Tensor([1.0], requires_grad=True)
    path = tmp_path / "g.svg"
    path.write_text("old")
    monkeypatch.setattr(shutil, "which", lambda name: false)
    with pytest.raises(RuntimeError, match="exited with status 1"):
        render(x.sum(), path)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["g.svg"]


def test_render_without_graphviz_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    x = Tensor([1.0], requires_grad=True)
    with pytest.raises(GraphvizNotFound) as info:
        render(x.sum(), tmp_path / "g.svg")
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    for hint in ("apt-get install graphviz", "brew install graphviz", "to_dot"):
        assert hint in message
    assert list(tmp_path.iterdir()) == []


def test_render_writes_the_dot_text_to_a_dot_file_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no Graphviz needed
    x = Tensor([1.0], requires_grad=True)
    path = tmp_path / "g.DOT"
    path.write_text("old")
    assert render(x.sum(), path) == path
    assert path.read_text() == to_dot(x.sum(), name="g")
    assert [p.name for p in tmp_path.iterdir()] == ["g.DOT"]  # replaced, no temporary file


@pytest.mark.parametrize("name", ["g.pdf", "g.gv", "graph"])
def test_render_rejects_other_suffixes(tmp_path, name):
    x = Tensor([1.0], requires_grad=True)
    suffix = Path(name).suffix
    with pytest.raises(ValueError, match=re.escape(repr(suffix)) if suffix else "no suffix"):
        render(x.sum(), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@needs_dot
def test_render_into_missing_directory(tmp_path):
    x = Tensor([1.0], requires_grad=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        render(x.sum(), tmp_path / "nope" / "g.svg")


# --- training_step_graph ------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(2, 3, 1), (3, 4, 5, 2)])
def test_training_step_graph_names_and_gradients(sizes):
    cost, names = training_step_graph(sizes, seed=1)
    layers = range(2, len(sizes) + 1)
    expected = {"x", "y", "C"} | {f"{v}{n}" for n in layers for v in "wbza"}
    assert set(names.values()) == expected
    tensor = {label: t for t, label in names.items()}
    assert tensor["C"] is cost and cost.shape == ()
    for n in layers:
        assert tensor[f"w{n}"].shape == (sizes[n - 1], sizes[n - 2])
        assert tensor[f"z{n}"].grad is not None  # δ^l shows in the drawing

    # The same network and example as explain's, so BP3/BP4 must agree with the grads.
    weights, biases, x, y = random_network(sizes, seed=1)
    nabla_b, nabla_w = backprop.backprop(weights, biases, x, y)
    for n, nb, nw in zip(layers, nabla_b, nabla_w, strict=True):
        np.testing.assert_allclose(tensor[f"b{n}"].grad.data, nb, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(tensor[f"w{n}"].grad.data, nw, rtol=1e-12, atol=1e-15)

    nodes, _ = parse(to_dot(cost, names=names))
    ops = [label for node, (label, _) in nodes.items() if node.startswith("op")]
    assert ops.count("linear") == ops.count("sigmoid") == len(sizes) - 1
    labels = {label.split()[0]: label for label, _ in nodes.values()}
    assert any(line.startswith("grad") for line in labels["w2"].splitlines())
    assert labels["C"].startswith("C ()")


def test_training_step_graph_is_deterministic():
    (c1, names1), (c2, names2) = training_step_graph(seed=3), training_step_graph(seed=3)
    assert to_dot(c1, names=names1) == to_dot(c2, names=names2)
    c3, names3 = training_step_graph(seed=4)
    assert to_dot(c1, names=names1) != to_dot(c3, names=names3)



# --- the teaching picture: values, gradients and shares -----------------------------------


def test_gradients_mode_shows_every_gradient_and_the_shares_that_sum_to_it():
    f, names = example_graph()
    dot = to_dot(f, names=names, gradients=True)
    nodes, edges = parse(dot)
    ids = by_name(nodes)
    for node, (label, _) in nodes.items():
        if node.startswith("t"):  # every tensor: its value and ∂f/∂t
            name = label.split()[0]
            assert "\n= " in label and f"∂f/∂{name} = " in label, label
    assert "∂f/∂f = 1" in nodes[ids["f"]][0]  # the output too
    assert "∂f/∂x = 5.297" in nodes[ids["x"]][0]
    shares = edge_labels(dot)
    out_of_x = sorted(label for (src, _), labels in shares.items() if src == ids["x"]
                      for label in labels)
    assert out_of_x == ["∂t2/∂x = 2\nsends 1 × 2 = 2", "∂t3/∂x = 1.649\nsends 2 × 1.649 = 3.297"]
    assert "Forward: read down the arrows" in dot and "Backward: read up" in dot
    assert len(edges) == 11 and f.grad is None  # nothing stored


def test_gradients_mode_needs_a_one_element_output():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="one-element"):
        to_dot(x * 2, gradients=True)


def test_small_matrices_are_shown_row_by_row_with_aligned_columns():
    cost, names = training_step_graph()
    nodes, _ = parse(to_dot(cost, names=names, gradients=True))
    w2 = nodes[by_name(nodes)["w2"]][0].splitlines()
    assert w2[:4] == ["w2 (3, 2)", "= [[ 0.1257, -0.1321],", "   [ 0.6404,  0.1049],",
                      "   [-0.5357,  0.3616]]"]
    assert w2[4].startswith("∂C/∂w2 = [[-4.637e-05, -0.001007],")
    assert len({line.index("]") for line in w2[1:4]}) == 1  # the columns line up
    assert "∂C/∂C = 1" in nodes[by_name(nodes)["C"]][0]
    assert "∂C/∂z2 = [[-0.001381, -0.001439, 0.001121]]" in nodes[by_name(nodes)["z2"]][0]


def test_the_docstring_states_the_reading_direction_of_the_picture():
    doc = " ".join(viz.__doc__.split())
    assert "inputs and the weights are at the top and the cost C at the bottom" in doc
    assert "**top-down**, along the arrows, is the forward pass" in doc
    assert "**bottom-up**, against the arrows, is the backward pass" in doc


@needs_dot
def test_the_picture_has_the_inputs_above_the_cost():
    cost, names = training_step_graph()
    root = ET.fromstring(svg(to_dot(cost, names=names, gradients=True)).encode())
    ys = {}
    for text in root.iter("{http://www.w3.org/2000/svg}text"):
        first = (text.text or "").split(" ")[0]
        ys.setdefault(first, float(text.get("y")))
    assert ys["x"] < ys["z2"] < ys["a3"] < ys["C"]  # SVG's y grows downwards


@needs_dot
def test_svg_is_the_same_on_every_run_and_names_no_version():
    f, names = example_graph()
    text = to_dot(f, names=names, gradients=True)
    first, second = svg(text), svg(text)
    assert first == second and "Generated by graphviz" not in first
    ET.fromstring(first.encode())


@needs_dot
def test_graph_draws_itself_as_svg_in_a_notebook():
    f, names = example_graph()
    graph = Graph(f, names, gradients=True)
    picture = graph._repr_svg_()
    assert picture is not None and "<svg" in picture and "5.297" in picture
    assert graph._repr_html_() is None  # the notebook shows the SVG, not the text
    assert graph.to_svg() == picture


def test_graph_falls_back_to_text_without_graphviz(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    f, names = example_graph()
    graph = Graph(f, names, gradients=True)
    assert graph._repr_svg_() is None
    page = graph._repr_html_()
    assert page.startswith("<pre>") and "∂f/∂x = 5.297" in page and "Graphviz" in page
    assert "x () = 0.5   ∂f/∂x = 5.297   (leaf)" in repr(graph)
    assert "f () = 4.297   ∂f/∂f = 1   = add(t2, t4)" in repr(graph)
    with pytest.raises(GraphvizNotFound):
        graph.to_svg()


def test_graph_falls_back_to_text_when_dot_fails(monkeypatch):
    false = shutil.which("false")
    if false is None:
        pytest.skip("no `false` program to stand in for a failing dot")
    monkeypatch.setattr(shutil, "which", lambda name: false)
    x = Tensor(2.0, requires_grad=True)
    graph = Graph(x * x, {x: "x"})
    assert graph._repr_svg_() is None and "<pre>" in graph._repr_html_()
    assert graph.to_dot() == to_dot(x * x, names={x: "x"})


def test_graph_text_without_gradients_lists_every_tensor():
    x = Tensor([1.0, 2.0], requires_grad=True)
    text = Graph((x * 3.0).sum(), {x: "x"}).to_text()
    assert text.splitlines() == ["x (2,) = [1, 2]   (leaf)", "t1 (2,) = [3, 6]   = mul(x, const)",
                                 "t2 () = 9   = sum(t1)"]


@needs_dot
def test_render_draws_the_gradients_when_asked(tmp_path):
    cost, names = training_step_graph()
    path = render(cost, tmp_path / "step.svg", names=names, gradients=True)
    text = path.read_text()
    assert "∂C/∂C = 1" in text and "Generated by graphviz" not in text
