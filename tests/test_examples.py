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
    tables = out.split("\nsigmoid neuron at z = ")[1:]
    assert [t[:4] for t in tables] == ["0.02", "1.02"]
    ratios = {}
    for table in tables:
        a, b = map(float, re.search(r"Δz² = ([+-][\d.e+-]+), ⅙σ'''\(z\)Δz³ = ([+-][\d.e+-]+)",
                                     table).groups())
        rows = re.findall(
            r"^  ([\d.]+)\s+([+-][\d.e+-]+)\s+([+-][\d.e+-]+)\s+([\d.e+-]+)\s*([\d.]*)$",
            table, re.M)
        assert len(rows) == 6
        for step, actual, predicted, error, _ in rows:
            assert 0 < float(step) <= 1
            assert abs(float(actual)) < 0.01  # a small change of the sigmoid neuron's output
            # eq. 1.8 predicts the change well: to 1e-3 next to the inflection point, where
            # the s² term nearly vanishes, to 1e-2 at z = 1.02 where it does not
            bound = 1e-3 if table.startswith("0.02") else 1e-2
            assert float(error) < bound * abs(float(actual))
            assert float(predicted) == pytest.approx(float(actual), rel=2 * bound)
        # the error at the full step is Taylor's remainder: its s² and s³ terms, to 10%
        assert float(rows[0][3]) == pytest.approx(abs(a + b), rel=0.1)
        ratios[table[:4]] = [float(r[4]) for r in rows[1:]]
    # next to the inflection point the s³ term (of the opposite sign) spoils the first
    # halvings, and the ratios climb towards 4 as the step shrinks ...
    near = ratios["0.02"]
    assert near[0] < 3 and near == sorted(near) and 3.5 < near[-1] < 4.5
    # ... while one unit away, where σ'' is not small, halving the step quarters the error
    assert all(3.9 < r < 4.1 for r in ratios["1.02"])


def test_why_reverse_mode():
    out = run_example("why_reverse_mode.py", "--repeat", "1", "--draws", "40")
    assert "parameters of [64, 30, 10]: 30·64 + 30 + 10·30 + 10 = 2260" in out
    ratio, difference = re.search(r"^ratio (\d+) \(worst times: \d+\); largest \|difference\| "
                                  r"of the two gradients: ([\d.e+-]+)$", out, re.M).groups()
    assert int(ratio) > 100  # 4,520 forward passes against one forward and one backward
    assert float(difference) < 1e-6  # and the two gradients agree
    rows = re.findall(r"^  m = (\d+)\s+rms ([\d.]+) .* rms · √m = ([\d.]+)$", out, re.M)
    assert [int(m) for m, _, _ in rows] == [1, 10, 100]
    rms = [float(r) for _, r, _ in rows]
    assert rms[0] > rms[1] > rms[2]
    scaled = [float(s) for _, _, s in rows]  # the 1/√m law: rms · √m about constant
    assert max(scaled) < 1.6 * min(scaled)


def test_finite_difference_step():
    out = run_example("finite_difference_step.py")
    rows = {float(eps): tuple(map(float, rest)) for eps, *rest in re.findall(
        r"^  (1e-0\d)   ([\d.e+-]+)\s+([\w.e+-]+)\s+([\d.e+-]+)\s+([\w.e+-]+)$", out, re.M)}
    assert sorted(rows) == [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3]
    error = {eps: r[0] for eps, r in rows.items()}
    assert error[1e-4] < error[1e-3] / 50  # truncation: shrinks like ε² while it dominates
    assert error[1e-8] > error[1e-7] > error[1e-6]  # rounding: grows like 1/ε below the best ε
    assert min(error, key=error.get) in (1e-5, 1e-4)  # the two balance in between
    assert error[1e-6] < 1e-9  # far inside gradcheck's tolerance (atol 1e-6, rtol 1e-5)
    if "extended precision available: True" in out:
        assert rows[1e-6][3] > 100  # at ε = 1e-6 rounding dominates truncation


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
    out = run_example("ten_vs_four_outputs.py", "--epochs", "3", "--seeds", "2")
    runs = re.findall(r"^seed (\d): 10 outputs (\d+) / 300, 4 outputs (\d+) / 300$", out, re.M)
    assert [int(seed) for seed, _, _ in runs] == [0, 1]
    ten = [int(t) for _, t, _ in runs]
    four = [int(f) for _, _, f in runs]
    assert min(ten + four) > 30  # both learn something in 3 epochs (chance: 30 of 300)
    for name, counts in ((r"10 outputs \(one-hot\):", ten),
                         (r"4 outputs \(binary code\):", four)):
        mean, percent, median, low, high = re.search(
            name + r"\s+mean ([\d.]+) / 300 = ([\d.]+)%, median ([\d.]+), range (\d+)-(\d+)",
            out).groups()
        assert float(mean) == pytest.approx(sum(counts) / 2, abs=0.05)
        assert float(percent) == pytest.approx(100 * sum(counts) / 600, abs=0.05)
        assert float(median) == pytest.approx(sum(counts) / 2)
        assert (int(low), int(high)) == (min(counts), max(counts))
    wins = int(re.search(r"^10 outputs beat 4 for (\d) of 2 seeds$", out, re.M)[1])
    assert wins == sum(t > f for t, f in zip(ten, four))


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
          "why_reverse_mode.py", "finite_difference_step.py",
          "digits.py", "fashion_mnist.py", "fashion_cnn.py"]  # recipes: test_recipes.py
