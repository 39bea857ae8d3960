"""Tests for the command line, `tinygrad-nn` / `python -m tinygrad_nn`."""

import gzip
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_nn import cli
from tinygrad_nn.network import Network

ROOT = Path(__file__).resolve().parent.parent
EPOCH_LINE = re.compile(r"^Epoch (\d+): (\d+) / 300$", re.M)
ACCURACY_LINE = re.compile(r"^Test accuracy: (\d+) / (\d+) \((\d+\.\d\d)%\)$", re.M)


def run(*args, cwd=None):
    """`python -m tinygrad_nn ARGS` in a fresh interpreter that imports this checkout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, "-m", "tinygrad_nn", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def one_line_error(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("tinygrad-nn: error: ")
    assert "Traceback" not in stderr
    return lines[0]


def write_fake_mnist(folder: Path, side: int = 4, n_train: int = 60, n_test: int = 20) -> Path:
    """A tiny MNIST-format folder (gzip-compressed IDX files) of random images."""
    rng = np.random.default_rng(0)
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, side, side), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
            path = folder / f"{part}-{kind}-ubyte.gz"
            path.write_bytes(gzip.compress(header + array.tobytes()))
    return folder


def test_train_end_to_end_prints_epochs_and_test_accuracy(tmp_path):
    result = run("train", "--epochs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    epochs = EPOCH_LINE.findall(result.stdout)
    assert [int(k) for k, _ in epochs] == [0, 1]  # the validation split, 300 digits
    (correct, total, percent), = ACCURACY_LINE.findall(result.stdout)
    assert total == "300" and 0 <= int(correct) <= 300
    assert float(percent) == pytest.approx(100 * int(correct) / 300, abs=0.005)
    # Two epochs of the tutorial's network on the digits: well above chance (10%).
    assert int(correct) > 90
    # stderr is a pipe here, not a terminal: no bar, so a log file gets no \r frames.
    assert result.stderr == ""


def test_progress_forces_the_bar_into_a_pipe(tmp_path):
    pytest.importorskip("tqdm")
    result = run("train", "--epochs", "1", "--progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Epoch 0:" in result.stderr and "batch/s" in result.stderr  # tqdm's bar, on stderr
    assert "batch/s" not in result.stdout


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("argv, terminal, bar", [
    ([], True, True),                    # a terminal: the bar by default
    ([], False, False),                  # a pipe or a file: no bar
    (["--progress"], False, True),       # asked for
    (["--no-progress"], True, False),    # refused
    (["--quiet"], True, False),          # quiet prints only the accuracy
    (["--quiet", "--progress"], False, True),
])
def test_the_bar_follows_the_terminal_unless_told(argv, terminal, bar, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys, "stderr", _Terminal() if terminal else io.StringIO())
    args = cli.build_parser().parse_args(["train", *argv])
    assert (cli._progress_bar(args) is not None) == bar


def test_progress_and_no_progress_exclude_each_other(capsys):
    assert cli.main(["train", "--progress", "--no-progress"]) == 2
    assert "not allowed with" in one_line_error(capsys.readouterr().err)


def test_without_tqdm_training_goes_on_with_a_note(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` now raises ImportError
    args = cli.build_parser().parse_args(["train", "--progress"])
    assert cli._progress_bar(args) is None
    note = capsys.readouterr().err
    assert "tqdm is not installed" in note and "pip install tqdm" in note
    assert cli.main(["train", "--epochs", "1", "--progress", "--sizes", "64,10,10"]) == 0
    captured = capsys.readouterr()
    assert "Test accuracy" in captured.out and "tqdm is not installed" in captured.err


def test_version_prints_the_package_version(capsys):
    import tinygrad_nn

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"tinygrad-nn {tinygrad_nn.__version__}\n"
    result = run("--version")
    assert result.returncode == 0 and result.stdout == f"tinygrad-nn {tinygrad_nn.__version__}\n"


def test_train_in_process_matches_the_library(capsys):
    assert cli.main(["train", "--epochs", "3", "--seed", "4", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --no-progress: no bar
    net = Network([64, 30, 10], seed=4)
    from tinygrad_nn import datasets

    train, validation, test = datasets.load_digits()
    history = net.SGD(train, 3, 10, 3.0, test_data=validation, verbose=False)
    lines = EPOCH_LINE.findall(captured.out)
    assert [int(c) for _, c in lines] == [s.test_correct for s in history.epochs]
    assert f"Test accuracy: {net.evaluate(test)} / 300" in captured.out


def test_quiet_prints_only_the_test_accuracy(capsys):
    assert cli.main(["train", "--epochs", "1", "--quiet", "--sizes", "64,10,10"]) == 0
    captured = capsys.readouterr()
    assert ACCURACY_LINE.fullmatch(captured.out.strip())
    assert captured.err == ""


def test_options_reach_the_network(capsys, tmp_path):
    model = tmp_path / "m.npz"
    argv = ["train", "--epochs", "1", "--sizes", "64,12,10", "--batch-size", "5",
            "--eta", "0.5", "--cost", "cross-entropy", "--activation", "relu", "--init",
            "scaled", "--seed", "9", "--save", str(model), "--no-progress"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "mini-batch 5, eta 0.5, cross-entropy cost" in out
    net = Network.load(model)
    assert net.sizes == [64, 12, 10]
    assert (net.cost, net.activation) == ("cross-entropy", "relu")


def test_save_then_evaluate_reports_the_same_accuracy(tmp_path):
    model = tmp_path / "model.npz"
    trained = run("train", "--epochs", "2", "--save", str(model), "--quiet")
    assert trained.returncode == 0, trained.stderr
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    evaluated = run("evaluate", str(model))
    assert evaluated.returncode == 0, evaluated.stderr
    assert ACCURACY_LINE.findall(evaluated.stdout) == ACCURACY_LINE.findall(trained.stdout)


def test_data_dir_trains_on_an_mnist_format_folder(tmp_path, capsys):
    folder = write_fake_mnist(tmp_path)
    model = tmp_path / "fake.npz"
    argv = ["train", "--data-dir", str(folder), "--epochs", "1", "--no-progress",
            "--save", str(model)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    # 60 training images: 50 train, 10 validation (the last sixth), 20 test; 16 inputs.
    assert "Training [16, 30, 10]" in out and "50 training, 10 validation, 20 test" in out
    assert re.search(r"^Epoch 0: \d+ / 10$", out, re.M)
    assert re.search(r"^Test accuracy: \d+ / 20 ", out, re.M)
    assert cli.main(["evaluate", str(model), "--data-dir", str(folder)]) == 0
    assert re.search(r"^Test accuracy: \d+ / 20 ", capsys.readouterr().out, re.M)
    # A model for 16 inputs does not fit the 64-input digits.
    assert cli.main(["evaluate", str(model)]) == 2
    assert "has 16 inputs but the test data has 64" in one_line_error(capsys.readouterr().err)


BAD_ARGUMENTS = [
    (["train", "--sizes", "64,x,10"], "comma-separated layer widths"),
    (["train", "--sizes", "64"], "at least two layer widths"),
    (["train", "--sizes", "64,0,10"], "each >= 1"),
    (["train", "--sizes", "784,30,10"], "the first width must be 64"),
    (["train", "--sizes", "64,30,4"], "the last width must be at least 10"),
    (["train", "--epochs", "-1"], "--epochs: expected an integer >= 0"),
    (["train", "--epochs", "two"], "--epochs"),
    (["train", "--batch-size", "0"], "--batch-size: expected a positive integer"),
    (["train", "--eta", "0"], "--eta: expected a finite number > 0"),
    (["train", "--eta", "nan"], "--eta"),
    (["train", "--eta", "fast"], "--eta"),
    (["train", "--seed", "-1"], "--seed"),
    (["train", "--cost", "hinge"], "invalid choice: 'hinge'"),
    (["train", "--activation", "softmax"], "invalid choice"),
    (["train", "--init", "uniform"], "invalid choice"),
    (["train", "--data-dir", "/no/such/folder"], "no such directory"),
    (["train", "--save", "/no/such/folder/m.npz"], "does not exist"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["train", "--lr-schedule", "linear"], "invalid choice: 'linear'"),
    (["train", "--dropout", "1"], "--dropout: expected a number in [0, 1)"),
    (["train", "--dropout", "-0.1"], "--dropout"),
    (["train", "--dropout", "half"], "--dropout"),
    (["train", "--patience", "0"], "--patience: expected a positive integer"),
    (["train", "--weight-decay", "-1"], "--weight-decay: expected a finite number >= 0"),
    (["train", "--lmbda", "nan"], "--lmbda: expected a finite number >= 0"),
    (["train", "--lmbda", "1", "--weight-decay", "0.1"], "not allowed with argument"),
    (["evaluate"], "required: MODEL.npz"),
    (["evaluate", "/no/such/model.npz"], "no such file"),
    ([], "choose a command"),
    (["fly"], "invalid choice: 'fly'"),
]


@pytest.mark.parametrize("argv, message", BAD_ARGUMENTS, ids=lambda a: " ".join(a)
                         if isinstance(a, list) else None)
def test_bad_options_give_one_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert message in one_line_error(captured.err)
    assert "Epoch" not in captured.out  # nothing was trained


@pytest.mark.parametrize("argv", [["train", "--sizes", "64,,10"], ["train", "--eta", "-3"],
                                  ["evaluate", "missing.npz"]])
def test_bad_options_in_a_subprocess_never_show_a_traceback(argv, tmp_path):
    result = run(*argv, cwd=tmp_path)
    assert result.returncode == 2
    one_line_error(result.stderr)
    assert result.stdout == ""


def test_evaluate_refuses_a_file_that_is_not_a_model(tmp_path, capsys):
    bad = tmp_path / "model.npz"
    bad.write_text("hello")
    assert cli.main(["evaluate", str(bad)]) == 2
    assert "not a tinygrad_nn model file" in one_line_error(capsys.readouterr().err)
    arrays = tmp_path / "shapes.npz"
    np.savez(arrays, sizes=np.array([64, 30, 10]), weight_0=np.zeros((3, 3)))
    assert cli.main(["evaluate", str(arrays)]) == 2
    assert "'weight_0' has shape (3, 3)" in one_line_error(capsys.readouterr().err)


def test_broken_data_folder_is_one_line(tmp_path, capsys):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08")
    assert cli.main(["train", "--data-dir", str(tmp_path)]) == 2
    assert "no MNIST file named" in one_line_error(capsys.readouterr().err)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is not None,
                    reason="matplotlib is installed, so --plot works")
def test_plot_without_matplotlib_fails_before_training(tmp_path, capsys):
    assert cli.main(["train", "--plot", str(tmp_path / "curve.png")]) == 2
    captured = capsys.readouterr()
    line = one_line_error(captured.err)
    assert 'python -m pip install "tinygrad_nn[plot]"' in line
    assert 'pip install -e ".[plot]"' in line
    assert captured.out == "" and os.listdir(tmp_path) == []


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="matplotlib is not installed (pip install tinygrad_nn[plot])")
def test_plot_writes_the_learning_curves(tmp_path):
    curve = tmp_path / "curve.png"
    assert cli.main(["train", "--epochs", "2", "--quiet", "--plot", str(curve)]) == 0
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_help_says_both_ways_to_install_matplotlib(capsys):
    assert cli.main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert 'python -m pip install "tinygrad_nn[plot]"' in text
    assert 'from a clone of the repository pip install -e ".[plot]"' in text


def test_plot_message_without_matplotlib_says_both(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert cli.main(["train", "--plot", str(tmp_path / "curve.png")]) == 2
    line = one_line_error(capsys.readouterr().err)
    assert 'python -m pip install "tinygrad_nn[plot]"' in line
    assert 'pip install -e ".[plot]"' in line


def test_help_exits_0(capsys):
    assert cli.main(["--help"]) == 0
    assert "train" in capsys.readouterr().out
    assert cli.main(["train", "--help"]) == 0
    assert "--batch-size" in capsys.readouterr().out


# --- beyond the tutorial: the sequel's lmbda, optimizers, schedules, dropout, patience ---


def test_lmbda_alone_stays_on_network_sgd(capsys):
    assert cli.main(["train", "--epochs", "2", "--lmbda", "5", "--cost", "cross-entropy",
                     "--init", "scaled", "--eta", "0.5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    net = Network([64, 30, 10], cost="cross-entropy", init="scaled", seed=0)
    from tinygrad_nn import datasets

    train, validation, _ = datasets.load_digits()
    history = net.SGD(train, 2, 10, 0.5, test_data=validation, lmbda=5.0, verbose=False)
    assert [int(c) for _, c in EPOCH_LINE.findall(out)] == [
        s.test_correct for s in history.epochs]
    assert "optimizer" not in out  # the tutorial's header


def test_explicit_sgd_is_the_tutorials_path(capsys):
    assert cli.main(["train", "--epochs", "2", "--no-progress"]) == 0
    default = capsys.readouterr().out
    assert cli.main(["train", "--epochs", "2", "--no-progress", "--optimizer", "sgd",
                     "--lr-schedule", "none", "--dropout", "0"]) == 0
    explicit = capsys.readouterr().out
    strip = re.compile(r"^Trained in .*$", re.M)
    assert strip.sub("", default) == strip.sub("", explicit)


FIT_LINE = re.compile(r"^Epoch (\d+): training cost [\d.]+, validation cost [\d.]+, "
                      r"validation accuracy (\d+) / 300 \([\d.]+%\), lr ([\d.e+-]+), "
                      r"[\d.]+ s$", re.M)


def test_adam_with_a_schedule_dropout_and_weight_decay_trains_and_saves(tmp_path, capsys):
    model = tmp_path / "adam.npz"
    argv = ["train", "--epochs", "4", "--activation", "relu", "--init", "he", "--cost",
            "cross-entropy", "--optimizer", "adam", "--eta", "0.01", "--lr-schedule", "cosine",
            "--dropout", "0.1", "--weight-decay", "1e-4", "--save", str(model),
            "--no-progress"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert ("eta 0.01, cross-entropy cost, optimizer adam, lr schedule cosine, weight decay "
            "0.0001, dropout 0.1") in out
    epochs = FIT_LINE.findall(out)
    assert [int(k) for k, _, _ in epochs] == [0, 1, 2, 3]
    assert float(epochs[1][2]) == pytest.approx(0.01 * (1 + np.cos(np.pi / 4)) / 2, rel=1e-3)
    assert int(epochs[-1][1]) > 240  # 80% of the validation digits after 4 epochs
    (correct, _, _), = ACCURACY_LINE.findall(out)
    assert cli.main(["evaluate", str(model)]) == 0
    assert f"Test accuracy: {correct} / 300" in capsys.readouterr().out


@pytest.mark.parametrize("optimizer, eta", [("momentum", "0.3"), ("adam", "0.001")])
def test_each_optimizer_has_a_sensible_default_learning_rate(optimizer, eta, capsys):
    assert cli.main(["train", "--epochs", "3", "--optimizer", optimizer,
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"eta {eta}, quadratic cost, optimizer {optimizer}" in out
    assert len(FIT_LINE.findall(out)) == 3


@pytest.mark.parametrize("schedule, second_lr", [
    ("step", 0.03),  # x0.1 every max(1, 2 // 3) = 1 epoch
    ("exponential", 0.27), ("cosine", 0.15)])
def test_lr_schedules_reach_the_optimizer(schedule, second_lr, capsys):
    assert cli.main(["train", "--epochs", "2", "--optimizer", "momentum", "--lr-schedule",
                     schedule, "--no-progress"]) == 0
    lrs = [float(lr) for *_, lr in FIT_LINE.findall(capsys.readouterr().out)]
    assert lrs[0] == 0.3 and lrs[1] == pytest.approx(second_lr)


def test_patience_stops_early_and_keeps_the_best_weights(tmp_path, capsys):
    model = tmp_path / "best.npz"
    assert cli.main(["train", "--epochs", "30", "--optimizer", "adam", "--eta", "0.05",
                     "--patience", "1", "--no-progress", "--save", str(model)]) == 0
    out = capsys.readouterr().out
    epochs = FIT_LINE.findall(out)
    best = max(range(len(epochs)), key=lambda k: (int(epochs[k][1]), -k))
    assert len(epochs) < 30 and best == len(epochs) - 2  # stopped one epoch after the best
    assert f"Restored the weights of epoch {best} " in out
    from tinygrad_nn import datasets

    assert Network.load(model).evaluate(datasets.load_digits().validation) == int(
        epochs[best][1])


def test_lmbda_on_the_fit_path_is_weight_decay_over_n(capsys, monkeypatch):
    from tinygrad_nn import optim

    made = []
    original = optim.SGD.__init__

    def spy(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        original(self, params, lr, momentum, nesterov, weight_decay)
        made.append(self)

    monkeypatch.setattr(optim.SGD, "__init__", spy)
    assert cli.main(["train", "--epochs", "1", "--optimizer", "momentum", "--lmbda", "11.97",
                     "--quiet"]) == 0
    opt, = made
    assert [g["weight_decay"] for g in opt.param_groups] == [pytest.approx(0.01), 0.0]


def test_an_activation_added_to_the_table_works_with_every_optimizer(capsys, monkeypatch):
    """The CLI builds every model by `network.stack` from `network.ACTIVATIONS` (issue 16:
    a third table in the CLI made --optimizer adam fail with a KeyError)."""
    from tinygrad_nn import network, nn

    monkeypatch.setitem(network.ACTIVATIONS, "leaky", nn.LeakyReLU)
    assert cli.main(["train", "--epochs", "1", "--activation", "leaky", "--optimizer", "adam",
                     "--quiet"]) == 0
    assert ACCURACY_LINE.fullmatch(capsys.readouterr().out.strip())


# --- graph: DOT text to stdout or to a .dot file (issue 15, item 18) ---------------------------


def test_graph_dot_prints_the_dot_text_without_out(capsys):
    """--dot was refused without --out, then ignored --out."""
    assert cli.main(["graph", "--dot"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("digraph") and captured.out.endswith("}\n")
    assert "w2" in captured.out and captured.err == ""


@pytest.mark.parametrize("argv", [["--out", "{path}"], ["--dot", "--out", "{path}"]],
                         ids=["out-dot", "dot-and-out"])
def test_graph_writes_dot_text_to_a_dot_file(tmp_path, capsys, argv):
    """--out g.dot was refused ("cannot tell the image format"); DOT needs no Graphviz."""
    path = tmp_path / "g.dot"
    assert cli.main(["graph", *(a.format(path=path) for a in argv)]) == 0
    assert capsys.readouterr().out == f"wrote {path}\n"
    text = path.read_text()
    assert text.startswith('digraph "g" {') and "w2" in text and "sigmoid" in text
    assert os.listdir(tmp_path) == ["g.dot"]


@pytest.mark.parametrize("argv, words", [
    ([], "--out GRAPH.svg (or .png, or .dot for the DOT text), or --dot"),
    (["--dot", "--out", "g.svg"], "--dot writes DOT text, but --out g.svg is not a .dot file"),
], ids=["nowhere", "dot-into-svg"])
def test_graph_without_a_destination_or_with_two_says_so(capsys, tmp_path, monkeypatch, argv,
                                                        words):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["graph", *argv]) == 2
    assert words in one_line_error(capsys.readouterr().err)
    assert os.listdir(tmp_path) == []


# --- a closed pipe (issue 15, item 18) ---------------------------------------------------------


def test_train_into_a_closed_pipe_stops_quietly_with_status_141(tmp_path):
    """`tinygrad-nn train | head -2` said "error: [Errno 32] Broken pipe", status 2."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-m", "tinygrad_nn", "train", "--no-progress"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                          cwd=tmp_path) as child:
        assert child.stdout.readline().startswith(b"Training [64, 30, 10]")
        child.stdout.close()  # what `head -1` does after its line
        err = child.stderr.read()
        status = child.wait(timeout=120)
    # No message, no "Exception ignored", no traceback; the status SIGPIPE would give.
    assert (status, err) == (141, b"")


class ClosedPipe:
    """A stdout whose reader has gone: every write fails as a closed pipe does."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        pass


def test_a_closed_pipe_is_not_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["explain"]) == 141
    assert capsys.readouterr().err == ""


def test_relu_gets_he_initialisation_unless_told_otherwise(capsys, monkeypatch):
    """`--activation relu` alone trained to 22% (issue 18): N(0, 1) weights leave most relu
    units stuck. Without --init, relu gets he; sigmoid and tanh keep the tutorial's N(0, 1)."""
    made = []
    original = cli.Network

    def spy(*args, **kwargs):
        made.append(kwargs["init"])
        return original(*args, **kwargs)

    monkeypatch.setattr(cli, "Network", spy)
    accuracy = {}
    for extra, expected in (([], "he"), (["--init", "standard"], "standard")):
        assert cli.main(["train", "--epochs", "5", "--activation", "relu", "--quiet",
                         *extra]) == 0
        assert made[-1] == expected
        correct, total = map(int, ACCURACY_LINE.search(capsys.readouterr().out).groups()[:2])
        accuracy[expected] = correct / total
    assert accuracy["he"] > 0.85 and accuracy["he"] > accuracy["standard"]
    assert cli.main(["train", "--epochs", "1", "--quiet"]) == 0 and made[-1] == "standard"
