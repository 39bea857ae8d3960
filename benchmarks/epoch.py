"""One epoch of the tutorial's workload: [784, 30, 10], mini-batch 10, eta = 3.0, quadratic cost.

Rows (same data, same shuffles, float64, one process, best of 3):
  Network.SGD                 tinygrad_nn's autograd (the library's training loop)
  BP1-BP4 vectorized          the hand-derived reference in its mini-batch form driving the
                              same SGD loop: hand-written numpy, no autograd (the bar)
  lean hand-written numpy     the same algorithm inlined, in-place updates, no checks
  BP1-BP4 per example         the book's algorithm: backprop one example at a time
  PyTorch eager f64 / f32     the same network and SGD, when torch is importable

Run: python benchmarks/epoch.py [--examples N]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import best_of, table, torch, torch_sgd_epoch, training_data

from tinygrad_nn import Network, backprop

SIZES, BATCH, ETA = [784, 30, 10], 10, 3.0


def shuffles(n: int) -> np.ndarray:
    return np.random.default_rng(1).permutation(n)


def run_network(X, Y) -> None:
    Network(SIZES, seed=0).SGD((X, Y), 1, BATCH, ETA, verbose=False)


def run_reference(update, X, Y) -> None:
    net = Network(SIZES, seed=0)
    weights, biases = net.weights, net.biases
    order = shuffles(len(X))
    Xs, Ys = X[order], Y[order]
    for k in range(0, len(X), BATCH):
        weights, biases = update(weights, biases, Xs[k:k + BATCH], Ys[k:k + BATCH], ETA)


def run_lean_numpy(X, Y) -> None:
    """The same algorithm as lean as numpy allows: in-place updates, nothing checked."""
    net = Network(SIZES, seed=0)
    (w2, w3), (b2, b3) = net.weights, net.biases
    order = shuffles(len(X))
    Xs, Ys = X[order], Y[order]
    for k in range(0, len(X), BATCH):
        x, y = Xs[k:k + BATCH], Ys[k:k + BATCH]
        a2 = 1.0 / (1.0 + np.exp(-(x @ w2.T + b2)))
        a3 = 1.0 / (1.0 + np.exp(-(a2 @ w3.T + b3)))
        d3 = (a3 - y) * a3 * (1.0 - a3)          # BP1
        d2 = (d3 @ w3) * a2 * (1.0 - a2)         # BP2
        step = ETA / len(x)
        w3 -= step * (d3.T @ a2)                 # BP4, eq. 2.5
        b3 -= step * d3.sum(axis=0)              # BP3, eq. 2.6
        w2 -= step * (d2.T @ x)
        b2 -= step * d2.sum(axis=0)


def run_torch(X, Y, dtype) -> None:
    net = Network(SIZES, seed=0)
    order = shuffles(len(X))
    torch_sgd_epoch(list(zip(net.weights, net.biases)), X[order], Y[order], BATCH, ETA, dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    X, Y, source = training_data(args.examples)
    print(f"one epoch of {SIZES}, mini-batch {BATCH}, eta {ETA}, {len(X)} examples of {source}")
    print(f"best of {args.repeat}, float64 unless marked\n")
    rows = [
        ("Network.SGD", best_of(lambda: run_network(X, Y), args.repeat)),
        ("BP1-BP4 vectorized (numpy)",
         best_of(lambda: run_reference(backprop.update_mini_batch, X, Y), args.repeat)),
        ("lean hand-written numpy", best_of(lambda: run_lean_numpy(X, Y), args.repeat)),
        ("BP1-BP4 per example (book)",
         best_of(lambda: run_reference(backprop.update_mini_batch_per_example, X, Y),
                 args.repeat)),
    ]
    if torch is not None:
        rows += [(f"PyTorch eager {name}", best_of(lambda d=d: run_torch(X, Y, d), args.repeat))
                 for name, d in (("float64", np.float64), ("float32", np.float32))]
    print(table(rows, "BP1-BP4 vectorized (numpy)"))
    times = dict(rows)
    print(f"\nNetwork.SGD / vectorized numpy: {times['Network.SGD'] / rows[1][1]:.2f} "
          f"(target <= 1.25)")
    if torch is not None:
        print(f"Network.SGD / PyTorch eager float64: "
              f"{times['Network.SGD'] / times['PyTorch eager float64']:.2f} (target <= 0.5)")
    else:
        print("PyTorch not importable: pip install torch==2.13.0 to add its rows")
    print(f"Network.SGD / lean hand-written numpy: "
          f"{times['Network.SGD'] / times['lean hand-written numpy']:.2f}")
    print(f"per example / Network.SGD: "
          f"{times['BP1-BP4 per example (book)'] / times['Network.SGD']:.1f}x (target > 5)")


if __name__ == "__main__":
    main()
