"""One epoch of Nielsen's own network.py beside Network.SGD, on the same data and machine.

The tutorial tells its readers to clone the Python 3 port of Nielsen's code
(github.com/MichalDanielDobrzanski/DeepLearningPython35); this script imports the
``network.py`` you point it at (nothing of it is copied here) and times one epoch of
``Network([784, 30, 10]).SGD(training_data, 1, 10, 3.0)`` on the first 50,000 Fashion-MNIST
images in the book's format, against tinygrad_nn's `Network.SGD`, eager and compiled, on
the same images (best of N, rows taken in turn).

Run: python benchmarks/nielsen.py PATH/TO/network.py [--repeat 3] [--examples 50000]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import random

import numpy as np
from common import best_of_each, table, training_data

from tinygrad_nn import Network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("network_py", help="Nielsen's network.py (the Python 3 port)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--examples", type=int, default=50_000)
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("nielsen_network", args.network_py)
    book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(book)
    X, Y, source = training_data(args.examples)
    pairs = list(zip(X[:, :, np.newaxis], Y[:, :, np.newaxis], strict=True))  # book format

    def nielsen() -> None:
        np.random.seed(0)  # the book's network draws weights from numpy's global generator
        random.seed(0)  # and shuffles with Python's
        with contextlib.redirect_stdout(io.StringIO()):  # its "Epoch 0 complete" line
            book.Network([784, 30, 10]).SGD(list(pairs), 1, 10, 3.0)

    rows = best_of_each([
        ("Nielsen's network.py", nielsen),
        ("Network.SGD", lambda: Network([784, 30, 10], seed=0).SGD((X, Y), 1, 10, 3.0,
                                                                   verbose=False)),
        ("Network.SGD(jit=True)", lambda: Network([784, 30, 10], seed=0).SGD(
            (X, Y), 1, 10, 3.0, verbose=False, jit=True)),
    ], args.repeat)
    print(f"one epoch of [784, 30, 10], mini-batch 10, eta 3.0, {len(X)} images of {source}, "
          f"float64, best of {args.repeat} taken in turn")
    print(table(rows, "Network.SGD"))


if __name__ == "__main__":
    main()
