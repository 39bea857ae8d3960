"""The command line: ``tinygrad-nn train``, ``evaluate``, ``explain`` and ``graph``.

``tinygrad-nn train`` with no options runs the tutorial's session (sec. 2.3) on the embedded
8x8 digits: a [64, 30, 10] sigmoid network, 30 epochs, mini-batches of 10, η = 3.0, the
quadratic cost. Each epoch prints ``Epoch k: correct / total`` on the validation split; the
test split is used once, at the end. ``--data-dir`` trains on an MNIST-format folder instead.

Every model is a `Network`, its stack built by `network.stack` from the library's tables
(`network.ACTIVATIONS`, `costs.COSTS`, `nn.INITS`), and every run goes through the one loop,
`training.fit`. With only the tutorial's options (and the sequel's ``--lmbda``) the loop is
driven by `Network.SGD`, with the tutorial's lines; ``--optimizer momentum|adam``,
``--lr-schedule``, ``--weight-decay``, ``--dropout`` or ``--patience`` drive it directly with
the optimizers of `optim`; the saved file and ``evaluate`` are the same either way.

Mistakes in the options or the data end in one line, ``tinygrad-nn: error: ...``, and exit
status 2, never a traceback. A reader that closes the output early (``tinygrad-nn train |
head -2``) stops the command quietly with status 141, as SIGPIPE stops `cat` or `yes`.
The progress bar (tqdm, a dependency of the package, imported only here and only when a bar
is drawn) goes to stderr, and only when stderr is a terminal, so a log piped to a file gets no
``\r`` frames; ``--progress`` forces it on, ``--no-progress`` off. matplotlib (``--plot``) is
optional. ``tinygrad-nn --version`` prints ``tinygrad-nn <version>``.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import __version__, datasets, optim, training
from ._threads import blas_threads, threads_for_model
from .costs import COSTS
from .network import ACTIVATIONS, Network, stack
from .nn import INITS

if TYPE_CHECKING:
    from .explain import Trace, Walk

PROG = "tinygrad-nn"
OPTIMIZERS = {"sgd": 3.0, "momentum": 0.3, "adam": 1e-3}  # name -> default learning rate
SCHEDULES = ("none", "step", "exponential", "cosine")
_PLOT_INSTALL = ('python -m pip install "tinygrad_nn[plot]", or from a clone of the '
                 'repository pip install -e ".[plot]"')


class UsageError(Exception):
    """A mistake on the command line; reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints the usage and exits; we want one line and a return value.
        raise UsageError(f"{message} (see {self.prog} --help)")


def _checked(convert: Callable[[str], Any], ok: Callable[[Any], bool],
             expected: str) -> Callable[[str], Any]:
    """An argparse type: `convert(text)`, refused with one line unless `ok(value)`."""
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


_positive_int = _checked(int, lambda v: v >= 1, "a positive integer")
_count = _checked(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _checked(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
_at_least_0 = _checked(float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
_probability = _checked(float, lambda v: 0 <= v < 1, "a number in [0, 1)")


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
    """The parser of ``tinygrad-nn``: the ``train`` and ``evaluate`` commands and their options."""
    parser = _Parser(prog=PROG, description="Train and evaluate the tutorial's digit "
                                             "classifier with tinygrad_nn.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,evaluate,explain,graph}",
                                parser_class=_Parser)

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
    train.add_argument("--eta", type=_positive_float,
                       help="learning rate (default: 3.0 for sgd, the tutorial's; 0.3 for "
                            "momentum; 0.001 for adam)")
    train.add_argument("--cost", choices=list(COSTS), default="quadratic",
                       help="cost of the sigmoid outputs (default: quadratic, eq. 2.1)")
    train.add_argument("--activation", choices=list(ACTIVATIONS), default="sigmoid",
                       help="hidden layers' neuron; the output layer is sigmoid")
    train.add_argument("--init", choices=list(INITS), default=None,
                       help="weight initialisation (default: standard, the tutorial's N(0, 1), "
                            "for sigmoid and tanh; he for relu, which N(0, 1) leaves stuck)")
    train.add_argument("--optimizer", choices=list(OPTIMIZERS), default="sgd",
                       help="sgd (default), momentum (SGD with momentum 0.9) or adam")
    train.add_argument("--lr-schedule", choices=list(SCHEDULES), default="none",
                       help="per-epoch learning rate: step (x0.1 every epochs/3 epochs), "
                            "exponential (x0.9 per epoch), cosine (to 0 over the epochs); "
                            "default: none")
    decay = train.add_mutually_exclusive_group()
    decay.add_argument("--lmbda", type=_at_least_0, default=0.0, metavar="LAMBDA",
                       help="the sequel's L2 regularisation: w <- (1 - eta*lambda/n) w - ... "
                            "(biases not decayed; default: 0)")
    decay.add_argument("--weight-decay", type=_at_least_0, metavar="WD",
                       help="the optimizer's weight decay (L2, lambda/n in the sequel's "
                            "terms; biases not decayed)")
    train.add_argument("--dropout", type=_probability, default=0.0, metavar="P",
                       help="drop each hidden neuron with probability P while training "
                            "(default: 0)")
    train.add_argument("--patience", type=_positive_int, metavar="N",
                       help="stop after N epochs without a better validation accuracy and "
                            "keep the best weights")
    train.add_argument("--seed", type=_count, default=0, help="default: 0 (reproducible)")
    train.add_argument("--save", metavar="MODEL.npz", help="write the trained network here")
    train.add_argument("--plot", metavar="CURVE.png",
                       help="plot training cost and validation accuracy per epoch "
                            f"(needs matplotlib: {_PLOT_INSTALL})")
    train.add_argument("--quiet", action="store_true",
                       help="print only the final test accuracy")
    bar = train.add_mutually_exclusive_group()
    bar.add_argument("--progress", action="store_true", default=None,
                     help="draw the progress bar even when stderr is not a terminal")
    bar.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                     help="no progress bar (default: a bar on stderr when it is a terminal)")
    train.add_argument("--jit", action="store_true",
                       help="capture the training step once and replay it (same results, "
                            "faster at small mini-batches)")

    evaluate = sub.add_parser("evaluate", help="the accuracy of a saved network on the test "
                                                "split",
                              description="Print a saved network's accuracy on the test split.")
    evaluate.add_argument("model", metavar="MODEL.npz")
    evaluate.add_argument("--data-dir", metavar="DIR",
                          help="an MNIST-format folder; default: the embedded 8x8 digits")

    explain = sub.add_parser("explain", help="BP1-BP4 beside autograd, layer by layer",
                             description="For a random small network and one example, print "
                                         "every term of BP1-BP4 for each layer (w, b, z, a, "
                                         "σ'(z), (w^{l+1})ᵀδ^{l+1}, δ, ∂C/∂b, ∂C/∂w) beside the "
                                         "autograd's values, and the largest absolute "
                                         "difference |BP - autograd|.")
    explain.add_argument("--sizes", type=_sizes, default=None, metavar="2,3,1",
                         help="layer widths, input first (default: 2,3,1)")
    explain.add_argument("--seed", type=_count, default=0)
    explain.add_argument("--cost", choices=sorted(COSTS), default="quadratic")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.add_argument("--tape", action="store_true",
                         help="instead, print one training step as jit captures it: the "
                              "numbered numpy calls of the forward, backward and update")
    explain.add_argument("--batch-size", type=_positive_int, default=10,
                         help="the mini-batch of the step --tape shows (default: 10)")
    explain.add_argument("--walk", action="store_true",
                         help="instead, the reverse walk of backward() step by step, each "
                              "gradient as the sum of its shares: of f = x*y + exp(x)*y, or "
                              "with --sizes of the network's cost for one example")

    graph = sub.add_parser("graph", help="draw the computation graph of one training step",
                           description="Draw the graph of one training step of a small "
                                       "sigmoid network (forward and cost, with gradients) "
                                       "through Graphviz's dot program.")
    graph.add_argument("--sizes", type=_sizes, default=[2, 3, 1], metavar="2,3,1")
    graph.add_argument("--seed", type=_count, default=0)
    graph.add_argument("--out", metavar="GRAPH.svg",
                       help="the file to write: .svg or .png (drawn by Graphviz's dot) or .dot "
                            "(the DOT text, no Graphviz needed)")
    graph.add_argument("--dot", action="store_true",
                       help="the Graphviz DOT text instead of a drawing: on stdout, or in the "
                            "--out file (which must then end in .dot)")
    return parser


def _explain(args: argparse.Namespace) -> int:
    from .explain import explain, step_tape, walk_example, walk_network

    sizes = args.sizes or [2, 3, 1]
    if args.tape:
        if args.json or args.walk:
            raise UsageError(f"--tape prints text; it has no {'--json' if args.json else '--walk'}"
                             f" form")
        print(step_tape(sizes, args.batch_size, cost=args.cost, seed=args.seed))
        return 0
    result: Walk | Trace
    if args.walk:
        result = (walk_example() if args.sizes is None
                  else walk_network(sizes, seed=args.seed, cost=args.cost))
    else:
        result = explain(sizes, seed=args.seed, cost=args.cost)
    if args.json:
        print(result.to_json())
    else:
        sys.stdout.write(result.to_text())
    return 0


def _graph(args: argparse.Namespace) -> int:
    from . import viz

    if args.out is None and not args.dot:
        raise UsageError("say where the graph goes: --out GRAPH.svg (or .png, or .dot for the "
                         "DOT text), or --dot to print the DOT text")
    if args.out is not None:
        _check_output("--out", args.out)
        if args.dot and not args.out.lower().endswith(".dot"):
            raise UsageError(f"--dot writes DOT text, but --out {args.out} is not a .dot file; "
                             f"use --out GRAPH.dot, or drop --dot to draw the graph")
    cost, names = viz.training_step_graph(args.sizes, seed=args.seed)
    if args.out is None:
        sys.stdout.write(viz.to_dot(cost, names=names, gradients=True))
        return 0
    try:
        path = viz.render(cost, args.out, names=names, gradients=True)
    except viz.GraphvizNotFound as err:
        raise UsageError(str(err)) from None
    print(f"wrote {path}")
    return 0



def _load_data(data_dir: str | None) -> datasets.Splits:
    if data_dir is None:
        return datasets.load_digits()
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise UsageError(f"--data-dir {data_dir}: not a directory")
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
    """tqdm's bar on stderr: when asked (--progress), or by default when stderr is a terminal,
    so a log piped to a file gets no carriage-return frames; None for no bar."""
    wanted = args.progress
    if wanted is None:
        wanted = not args.quiet and _is_terminal(sys.stderr)
    if not wanted:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # a dependency, but a broken install should still train
        print(f"{PROG}: no progress bar: tqdm is not installed (python -m pip install tqdm); "
              f"training without it", file=sys.stderr)
        return None

    def bar(iterable: Any, total: int, desc: str) -> Any:
        return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False,
                    file=sys.stderr)

    return bar


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _plot(path: str, costs: list[float], accuracies: list[float | None]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = list(range(len(costs)))
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(6, 6))
    top.plot(epochs, costs, marker="o")
    top.set_ylabel("training cost")
    bottom.plot(epochs, [100 * (a or 0) for a in accuracies], marker="o")
    bottom.set_ylabel("validation accuracy (%)")
    bottom.set_xlabel("epoch")
    bottom.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _test_line(net: Network, test_data: datasets.Dataset) -> str:
    """The test accuracy line (each command measures it inside its BLAS thread limit)."""
    return _accuracy_line(net.evaluate(test_data), len(test_data))


def _accuracy_line(correct: int, total: int) -> str:
    return f"Test accuracy: {correct} / {total} ({100 * correct / total:.2f}%)"


def _train(args: argparse.Namespace) -> int:
    # Everything that can fail is checked before the training starts.
    training_data, validation_data, test_data = _load_data(args.data_dir)
    sizes = _train_sizes(args, training_data.X.shape[1])
    init = args.init or ("he" if args.activation == "relu" else "standard")
    net = Network(sizes, cost=args.cost, seed=args.seed, activation=args.activation, init=init)
    eta = OPTIMIZERS[args.optimizer] if args.eta is None else args.eta
    tutorial = (args.optimizer == "sgd" and args.lr_schedule == "none"
                and args.weight_decay is None and args.dropout == 0 and args.patience is None)
    if not args.quiet:
        source = args.data_dir or "the embedded 8x8 digits"
        print(f"Training {sizes} on {source}: {len(training_data)} training, "
              f"{len(validation_data)} validation, {len(test_data)} test examples; "
              f"{args.epochs} epochs, mini-batch {args.batch_size}, eta {eta}, "
              f"{args.cost} cost{'' if tutorial else _extras(args)}", flush=True)
    start = time.perf_counter()
    # The whole job on the threads `fit` would use, from here, not only `fit`: with one busy
    # process per core the job's median was 1.06-1.22x its median with BLAS pinned to one
    # thread in four runs with only `fit` limited, 1.09x and 0.93x in two runs so
    # (benchmarks/contention.py --repeat 11 or 7, 2026-12-06).
    with blas_threads(threads_for_model(net.parameters(), args.batch_size)):
        if tutorial:
            # The tutorial's (and with --lmbda the sequel's) session: its lines, its optimizer.
            history = net.SGD(training_data, args.epochs, args.batch_size, eta,
                              test_data=validation_data, lmbda=args.lmbda,
                              verbose=not args.quiet, progress=_progress_bar(args),
                              jit=args.jit).epochs
            curves = [r.train_cost for r in history], [r.test_accuracy for r in history]
        else:
            history = _fit(args, net, eta, training_data, validation_data)
            curves = history.train_cost, history.val_accuracy
        if not args.quiet:
            print(f"Trained in {time.perf_counter() - start:.1f} s")
        print(_test_line(net, test_data))
    _save_and_plot(args, net, *curves)
    return 0


def _train_sizes(args: argparse.Namespace, n_inputs: int) -> list[int]:
    """The layer widths for the data, and the output files checked, before any training."""
    if args.plot is not None:
        if importlib.util.find_spec("matplotlib") is None:
            raise UsageError(f"--plot needs matplotlib, which is not installed: {_PLOT_INSTALL}")
        _check_output("--plot", args.plot)
    if args.save is not None:
        _check_output("--save", args.save)
    sizes = args.sizes or [n_inputs, 30, datasets.NUM_CLASSES]
    if sizes[0] != n_inputs:
        raise UsageError(f"--sizes {','.join(map(str, sizes))}: the data has {n_inputs} inputs, "
                         f"so the first width must be {n_inputs}")
    if sizes[-1] < datasets.NUM_CLASSES:
        raise UsageError(f"--sizes {','.join(map(str, sizes))}: the data has "
                         f"{datasets.NUM_CLASSES} classes, so the last width must be at least "
                         f"{datasets.NUM_CLASSES}")
    return sizes


def _save_and_plot(args: argparse.Namespace, net: Network, costs: list[float],
                   accuracies: list[float | None]) -> None:
    if args.save is not None:
        net.save(args.save)
        if not args.quiet:
            print(f"Saved the network to {args.save}")
    if args.plot is not None:
        _plot(args.plot, costs, accuracies)
        if not args.quiet:
            print(f"Plotted the learning curves to {args.plot}")


def _extras(args: argparse.Namespace) -> str:
    """The header's account of the options beyond the tutorial's."""
    parts = [f"optimizer {args.optimizer}", f"lr schedule {args.lr_schedule}"]
    if args.weight_decay is not None:
        parts.append(f"weight decay {args.weight_decay}")
    if args.lmbda:
        parts.append(f"lmbda {args.lmbda}")
    if args.dropout:
        parts.append(f"dropout {args.dropout}")
    if args.patience is not None:
        parts.append(f"patience {args.patience}")
    return ", " + ", ".join(parts)


def _fit(args: argparse.Namespace, net: Network, eta: float, training_data: datasets.Dataset,
         validation_data: datasets.Dataset) -> training.FitHistory:
    """Train the network's own layers with `training.fit`: same model, other optimizers.

    The model is `network.stack`, the function that builds every `Network`'s stack, over the
    network's Linear layers (the same tensors, so `net` ends up trained and `net.save` writes
    it), with a Dropout after each hidden activation if asked; the cost is the network's
    (`fit` turns the labels into one-hot rows for it, as `Network.SGD` does).
    """
    model = stack(net.layers, args.activation, args.dropout, net.rng)
    # --lmbda is the sequel's λ; the optimizers' weight decay is λ/n (identical for SGD).
    decay = args.weight_decay if args.weight_decay is not None else args.lmbda / len(
        training_data)
    params = optim.decay_groups(net.parameters(), decay) if decay else net.parameters()
    if args.optimizer == "adam":
        opt: optim.Optimizer = optim.Adam(params, lr=eta)
    else:
        opt = optim.SGD(params, lr=eta, momentum=0.9 if args.optimizer == "momentum" else 0.0)
    epochs = args.epochs
    schedule = {"none": lambda: None,
                "step": lambda: optim.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1),
                "exponential": lambda: optim.ExponentialLR(opt, gamma=0.9),
                "cosine": lambda: optim.CosineAnnealingLR(opt, T_max=max(1, epochs)),
                }[args.lr_schedule]()
    return training.fit(model, COSTS[args.cost], opt, training_data, epochs, args.batch_size,
                        validation_data, schedule=schedule, patience=args.patience, seed=net.rng,
                        progress=_progress_bar(args), verbose=not args.quiet, jit=args.jit)


def _evaluate(args: argparse.Namespace) -> int:
    if os.path.isdir(args.model):
        raise UsageError(f"{args.model}: is a directory, not a model file")
    if not os.path.isfile(args.model):
        raise UsageError(f"{args.model}: no such file")
    net = Network.load(args.model)
    test_data = _load_data(args.data_dir).test
    n_inputs = test_data.X.shape[1]
    if net.sizes[0] != n_inputs:
        raise UsageError(f"{args.model}: the network has {net.sizes[0]} inputs but the test "
                         f"data has {n_inputs}")
    # On as many BLAS threads as `fit` trains this model with (at the tutorial's batch of 10).
    with blas_threads(threads_for_model(net.parameters(), 10)):
        print(_test_line(net, test_data))
    return 0


def _negative_values_attached(argv: list[str]) -> list[str]:
    """``--eta -inf`` as ``--eta=-inf``: argparse takes "-inf" (or "-1e-3") for an option.

    Only a value that parses as a number is attached, so the option's own check then reports
    it in the learner's words (``--eta: expected a finite number > 0, got '-inf'``).
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if (token.startswith("--") and "=" not in token and i + 1 < len(argv)
                and argv[i + 1].startswith("-") and _is_number(argv[i + 1])):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
        else:
            out.append(token)
            i += 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: The status of a program killed by SIGPIPE as shells report it (128 + 13), what `yes`,
#: `cat` or `seq` give in ``... | head``: quiet, yet not success, since the command stopped
#: early (`train --save` saved nothing). Scripts under ``set -o pipefail`` know it.
BROKEN_PIPE_STATUS = 141


def _stdout_closed() -> int:
    """The reader of stdout went away (``tinygrad-nn train | head -2``): stop quietly.

    Python's recipe: point stdout at /dev/null, so that the flush at exit does not fail a
    second time with "Exception ignored ... BrokenPipeError".
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # stdout has no file (a test's capture)
        pass
    return BROKEN_PIPE_STATUS


COMMANDS = {"train": _train, "evaluate": _evaluate, "explain": _explain, "graph": _graph}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(_negative_values_attached(sys.argv[1:] if argv is None
                                                          else list(argv)))
        if args.command is None:
            raise UsageError("choose a command: train, evaluate, explain or graph "
                             f"(see {PROG} --help)")
        status = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe must be met here, not at interpreter exit
        return status
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _stdout_closed()
    except (UsageError, ValueError, OSError) as err:  # FileNotFoundError is an OSError
        message = " ".join(str(err).split())  # always one line
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
