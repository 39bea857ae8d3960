"""`tinygrad-nn explain` and `tinygrad-nn graph`, end to end in a subprocess."""

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from tinygrad_nn.backprop import backprop
from tinygrad_nn.explain import random_network

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tinygrad_nn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_explain_prints_every_layer_with_bp_and_autograd() -> None:
    result = run("explain", "--sizes", "2,3,2", "--seed", "4")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "layer 2 (3 neurons, hidden)" in text and "layer 3 (2 neurons, output)" in text
    for label in ("BP1", "BP2", "BP3", "BP4", "autograd", "max |BP - autograd|", "σ'(z^2)",
                  "(w^3)ᵀδ^3", "w^2", "b^3", "by hand:", "absolute difference"):
        assert label in text, label


def test_explain_prints_the_pencil_check_of_the_docs() -> None:
    result = run("explain")
    assert result.returncode == 0, result.stderr
    assert "δ^2_1 = w^3_11 δ^3_1 σ'(z^2_1) = 1.304 × (-0.006505) × 0.1628 = -0.001381" in \
        result.stdout


def test_explain_walk_shows_each_gradient_as_a_sum() -> None:
    result = run("explain", "--walk")
    assert result.returncode == 0, result.stderr
    assert "∂f/∂x = 3.297 + 2 = 5.297" in result.stdout
    assert "∂f/∂y = 1.649 + 0.5 = 2.149" in result.stdout
    as_json = json.loads(run("explain", "--walk", "--json").stdout)
    assert as_json["output"] == "f" and as_json["steps"][-1]["grad"] == pytest.approx(5.2974, 1e-4)


def test_explain_walk_of_the_network() -> None:
    result = run("explain", "--walk", "--sizes", "2,3,1", "--seed", "0")
    assert result.returncode == 0, result.stderr
    assert "z2 = linear(x, w2, b2)" in result.stdout and "∂C/∂C = 1 (the seed)" in result.stdout
    assert "∂C/∂t10 = -0.03368 + (-0.03368) = -0.06736" in result.stdout


def test_explain_json_agrees_with_the_bp_reference() -> None:
    result = run("explain", "--sizes", "3,4,2", "--seed", "1", "--json")
    assert result.returncode == 0, result.stderr
    trace = json.loads(result.stdout)
    assert trace["sizes"] == [3, 4, 2] and len(trace["layers"]) == 2
    weights, biases, x, y = random_network([3, 4, 2], 1)
    np.testing.assert_array_equal(trace["x"], x)
    nabla_b, nabla_w = backprop(weights, biases, x, y)
    for layer, nb, nw in zip(trace["layers"], nabla_b, nabla_w):
        np.testing.assert_allclose(layer["nabla_b_autograd"], nb, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(layer["nabla_w_autograd"], nw, rtol=1e-12, atol=1e-15)
        assert layer["max_abs_diff"] < 1e-12
    assert "absolute" in trace["difference"]


@pytest.mark.skipif(shutil.which("dot") is None,
                    reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_graph_writes_a_valid_svg(tmp_path: Path) -> None:
    out = tmp_path / "graph.svg"
    result = run("graph", "--sizes", "2,3,1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    assert "w2" in out.read_text() and "sigmoid" in out.read_text()


def test_graph_dot_text_names_the_tutorial_quantities() -> None:
    result = run("graph", "--sizes", "2,3,1", "--dot")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("digraph")
    for name in ("x", "w2", "b2", "z2", "a2", "w3", "z3", "a3", "linear", "sigmoid",
                 "∂C/∂C = 1", "∂C/∂w2 = [[", "Forward: read down the arrows"):
        assert name in result.stdout, name


@pytest.mark.parametrize("args, words", [
    (["graph", "--out", "g.pdf"], "suffix"),
    (["graph", "--sizes", "2", "--out", "g.svg"], "--sizes"),
    (["graph"], "--out"),
    (["explain", "--sizes", "0,3"], "--sizes"),
    (["explain", "--cost", "nope"], "--cost"),
    (["explain", "--seed", "x"], "--seed"),
    (["explain", "--tape", "--walk"], "--walk"),
    (["explain", "--tape", "--json"], "--json"),
])
def test_bad_options_give_one_line_and_exit_2(args: list[str], words: str,
                                              tmp_path: Path) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinygrad-nn: error:"), result.stderr
    assert words in lines[0] and "Traceback" not in result.stderr
