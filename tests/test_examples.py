"""Every script in examples/ runs (with few epochs) and prints what it promises."""

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run([sys.executable, "-W", "error", str(EXAMPLES / name), *args],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_every_example_is_short_documented_and_tested():
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == sorted(TESTED)
    for name in scripts:
        text = (EXAMPLES / name).read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 60, name
        assert text.startswith('"""') and re.search(r"(sec\.|eq\.|fig\.) \d", text), name


def test_nand_perceptron():
    out = run_example("nand_perceptron.py")
    rows = re.findall(r"^ (\d)  (\d)\s+([+-]\d+)\s+(\d)\s+(\d)$", out, re.M)
    assert len(rows) == 4
    for a, b, z, output, expected in rows:
        assert int(z) == -2 * int(a) - 2 * int(b) + 3  # eq. 1.5 with fig. 1.3's weights
        assert output == expected == str(int(not (int(a) and int(b))))


def test_digits_cnn_reads_the_digits_as_images():
    """A conv3x3-pool network on the (1, 8, 8) digits, trained by fit: above 95% of the
    validation split (98.3% with its seed) in well under a second."""
    out = run_example("digits_cnn.py")
    correct, total = map(int, re.search(r"^Validation accuracy: (\d+) / (\d+)", out,
                                        re.M).groups())
    assert total == 300 and correct / total > 0.95
    assert re.search(r"^Test accuracy: \d+ / 300 ", out, re.M)


def test_xor_half_adder():
    out = run_example("xor_half_adder.py")
    xor_rows = re.findall(r"^ (\d)  (\d)      (\d)$", out, re.M)
    assert [(int(a) ^ int(b)) for a, b, _ in xor_rows] == [int(o) for *_, o in xor_rows]
    assert len(xor_rows) == 4
    adder_rows = re.findall(r"^ (\d)  (\d)    (\d)     (\d)$", out, re.M)
    assert len(adder_rows) == 4
    for a, b, total, carry in adder_rows:
        assert int(a) + int(b) == 2 * int(carry) + int(total)
    assert "unchanged" in out


def test_sigmoid_vs_perceptron():
    out = run_example("sigmoid_vs_perceptron.py")
    assert "perceptron output: 1 -> 0" in out
    rows = re.findall(r"^  ([\d.]+)\s+([+-][\d.e+-]+)\s+([+-][\d.e+-]+)\s+([\d.e+-]+)\s*([\d.]*)$",
                      out, re.M)
    assert len(rows) == 6
    for step, actual, predicted, error, _ in rows:
        assert abs(float(actual)) < 0.01  # a small change of the sigmoid neuron's output
        assert float(error) < 1e-3 * abs(float(actual))  # eq. 1.8 predicts the change well
        assert float(predicted) == pytest.approx(float(actual), rel=2e-3)
        assert float(step) > 0
    ratios = [float(r[4]) for r in rows[1:]]
    assert 3.5 < ratios[-1] < 4.5  # second order: halving the step quarters the error


def test_digits_session():
    out = run_example("digits_session.py", "--epochs", "3")
    epochs = re.findall(r"^Epoch (\d+): (\d+) / 300$", out, re.M)
    assert [int(k) for k, _ in epochs] == [0, 1, 2]
    assert int(epochs[-1][1]) > 90  # far above chance (30 of 300)
    assert "(64, 1) column, gives a (10, 1) column" in out


def write_fake_mnist(folder: Path, n_train: int = 120, n_test: int = 30) -> Path:
    """A small MNIST-format folder of 28x28 images: two classes, told apart by brightness."""
    rng = np.random.default_rng(0)
    for part, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 2, n).astype(np.uint8)
        images = (rng.integers(0, 100, (n, 28, 28)) + 150 * labels[:, None, None])
        for kind, array in (("images-idx3", images.astype(np.uint8)), ("labels-idx1", labels)):
            header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
            (folder / f"{part}-{kind}-ubyte.gz").write_bytes(
                gzip.compress(header + array.tobytes()))
    return folder


def test_mnist_session(tmp_path):
    out = run_example("mnist_session.py", str(write_fake_mnist(tmp_path)), "--epochs", "2")
    epochs = re.findall(r"^Epoch (\d+): (\d+) / 30$", out, re.M)
    assert [int(k) for k, _ in epochs] == [0, 1]
    assert re.search(r"^2 epochs in [\d.]+ s$", out, re.M)


def test_ten_vs_four_outputs():
    out = run_example("ten_vs_four_outputs.py", "--epochs", "3")
    ten = re.search(r"10 outputs \(one-hot\):\s+(\d+) / 300 = ([\d.]+)%", out)
    four = re.search(r"4 outputs \(binary code\):\s+(\d+) / 300 = ([\d.]+)%", out)
    assert ten and four
    for match in (ten, four):
        assert float(match[2]) == pytest.approx(100 * int(match[1]) / 300, abs=0.05)
        assert int(match[1]) > 30  # both learn something in 3 epochs


def test_binary_output_layer():
    out = run_example("binary_output_layer.py", "--epochs", "3")
    rows = re.findall(r"^\s*(\d+)\s+(\d)\s+(\d)\s+([01]{4})\s+([01]{4})$", out, re.M)
    assert len(rows) == 8
    for _, _, winner, _, binary in rows:
        assert binary == format(int(winner), "04b")
    agree, confident = map(int, re.search(
        r"for (\d+) of 300 test images,\nincluding all (\d+) whose", out).groups())
    assert confident <= agree <= 300 and confident > 0


TESTED = ["nand_perceptron.py", "xor_half_adder.py", "sigmoid_vs_perceptron.py",
          "digits_session.py", "mnist_session.py", "ten_vs_four_outputs.py",
          "binary_output_layer.py",
          "digits_cnn.py",
          "digits.py", "fashion_mnist.py", "fashion_cnn.py"]  # recipes: test_recipes.py
