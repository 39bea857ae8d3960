"""The command line: ``tinygrad-nn train`` and ``tinygrad-nn evaluate``.

``tinygrad-nn train`` with no options runs the tutorial's session (sec. 2.3) on the embedded
8x8 digits: a [64, 30, 10] sigmoid network, 30 epochs, mini-batches of 10, η = 3.0, the
quadratic cost. Each epoch prints ``Epoch k: correct / total`` on the validation split; the
test split is used once, at the end. ``--data-dir`` trains on an MNIST-format folder instead.

Mistakes in the options or the data end in one line, ``tinygrad-nn: error: ...``, and exit
status 2, never a traceback. tqdm (the progress bar) and matplotlib (``--plot``) are optional
and imported only here, only when used.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from . import datasets
from .costs import COSTS
from .network import ACTIVATIONS, EpochStats, Network
from .nn import INITS

PROG = "tinygrad-nn"


class UsageError(Exception):
    """A mistake on the command line; reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints the usage and exits; we want one line and a return value.
        raise UsageError(f"{message} (see {self.prog} --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _sizes(text: str) -> list[int]:
    parts = text.split(",")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer widths such as 784,30,10, got {text!r}") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected at least two layer widths, each >= 1, such as 784,30,10, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train and evaluate the tutorial's digit "
                                             "classifier with tinygrad_nn.")
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate}", parser_class=_Parser)

    train = sub.add_parser("train", help="train a network (default: the tutorial's session on "
                                          "the embedded digits)",
                           description="Train a network by mini-batch SGD (sec. 2.2). Defaults "
                                       "are the tutorial's: 30 epochs, mini-batch 10, eta 3.0, "
                                       "quadratic cost.")
    train.add_argument("--data-dir", metavar="DIR",
                       help="an MNIST-format folder (e.g. /usr/share/datasets/fashion-mnist); "
                            "default: the embedded 8x8 digits")
    train.add_argument("--sizes", type=_sizes, metavar="N,N,...",
                       help="layer widths, input first (default: inputs,30,10, i.e. 64,30,10 "
                            "for the digits and 784,30,10 for MNIST)")
    train.add_argument("--epochs", type=_count, default=30, help="default: 30")
    train.add_argument("--batch-size", type=_positive_int, default=10,
                       help="mini-batch size m (default: 10)")
    train.add_argument("--eta", type=_positive_float, default=3.0,
                       help="learning rate (default: 3.0)")
    train.add_argument("--cost", choices=list(COSTS), default="quadratic")
    train.add_argument("--activation", choices=list(ACTIVATIONS), default="sigmoid",
                       help="hidden layers' neuron; the output layer is sigmoid")
    train.add_argument("--init", choices=list(INITS), default="standard")
    train.add_argument("--seed", type=_count, default=0, help="default: 0 (reproducible)")
    train.add_argument("--save", metavar="MODEL.npz", help="write the trained network here")
    train.add_argument("--plot", metavar="CURVE.png",
                       help="plot training cost and validation accuracy per epoch "
                            "(needs matplotlib: pip install tinygrad_nn[plot])")
    train.add_argument("--quiet", action="store_true",
                       help="print only the final test accuracy")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    evaluate = sub.add_parser("evaluate", help="the accuracy of a saved network on the test "
                                                "split",
                              description="Print a saved network's accuracy on the test split.")
    evaluate.add_argument("model", metavar="MODEL.npz")
    evaluate.add_argument("--data-dir", metavar="DIR",
                          help="an MNIST-format folder; default: the embedded 8x8 digits")
    return parser


def _load_data(data_dir: str | None) -> datasets.Splits:
    if data_dir is None:
        return datasets.load_digits()
    if not os.path.isdir(data_dir):
        raise UsageError(f"--data-dir {data_dir}: no such directory")
    return datasets.load_mnist(data_dir)


def _check_output(option: str, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"{option} {path}: is a directory")


def _progress_bar(args: argparse.Namespace) -> Any:
    if args.quiet or args.no_progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is optional: pip install tinygrad_nn[cli]
        return None

    def bar(iterable: Any, total: int, desc: str) -> Any:
        return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False,
                    file=sys.stderr)

    return bar


def _plot(path: str, history: list[EpochStats]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [s.epoch for s in history]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6, 6))
    top.plot(epochs, [s.training_cost for s in history], marker="o")
    top.set_ylabel("training cost")
    bottom.plot(epochs, [100 * (s.test_accuracy or 0) for s in history], marker="o")
    bottom.set_ylabel("validation accuracy (%)")
    bottom.set_xlabel("epoch")
    bottom.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _accuracy_line(correct: int, total: int) -> str:
    return f"Test accuracy: {correct} / {total} ({100 * correct / total:.2f}%)"


def _train(args: argparse.Namespace) -> int:
    # Everything that can fail is checked before the training starts.
    if args.plot is not None:
        if importlib.util.find_spec("matplotlib") is None:
            raise UsageError("--plot needs matplotlib, which is not installed: "
                             "pip install tinygrad_nn[plot]")
        _check_output("--plot", args.plot)
    if args.save is not None:
        _check_output("--save", args.save)
    training_data, validation_data, test_data = _load_data(args.data_dir)
    n_inputs = training_data.X.shape[1]
    sizes = args.sizes or [n_inputs, 30, datasets.NUM_CLASSES]
    if sizes[0] != n_inputs:
        raise UsageError(f"--sizes {','.join(map(str, sizes))}: the data has {n_inputs} inputs, "
                         f"so the first width must be {n_inputs}")
    if sizes[-1] < datasets.NUM_CLASSES:
        raise UsageError(f"--sizes {','.join(map(str, sizes))}: the data has "
                         f"{datasets.NUM_CLASSES} classes, so the last width must be at least "
                         f"{datasets.NUM_CLASSES}")
    net = Network(sizes, cost=args.cost, seed=args.seed, activation=args.activation,
                  init=args.init)
    if not args.quiet:
        source = args.data_dir or "the embedded 8x8 digits"
        print(f"Training {sizes} on {source}: {len(training_data)} training, "
              f"{len(validation_data)} validation, {len(test_data)} test examples; "
              f"{args.epochs} epochs, mini-batch {args.batch_size}, eta {args.eta}, "
              f"{args.cost} cost", flush=True)
    start = time.perf_counter()
    history = net.SGD(training_data, args.epochs, args.batch_size, args.eta,
                      test_data=validation_data, verbose=not args.quiet,
                      progress=_progress_bar(args))
    seconds = time.perf_counter() - start
    if not args.quiet:
        print(f"Trained in {seconds:.1f} s")
    print(_accuracy_line(net.evaluate(test_data), len(test_data)))
    if args.save is not None:
        net.save(args.save)
        if not args.quiet:
            print(f"Saved the network to {args.save}")
    if args.plot is not None:
        _plot(args.plot, history)
        if not args.quiet:
            print(f"Plotted the learning curves to {args.plot}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.model):
        raise UsageError(f"{args.model}: no such file")
    net = Network.load(args.model)
    test_data = _load_data(args.data_dir).test
    n_inputs = test_data.X.shape[1]
    if net.sizes[0] != n_inputs:
        raise UsageError(f"{args.model}: the network has {net.sizes[0]} inputs but the test "
                         f"data has {n_inputs}")
    print(_accuracy_line(net.evaluate(test_data), len(test_data)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("choose a command: train or evaluate "
                             f"(see {PROG} --help)")
        return _train(args) if args.command == "train" else _evaluate(args)
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, OSError) as err:  # FileNotFoundError is an OSError
        message = " ".join(str(err).split())  # always one line
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
