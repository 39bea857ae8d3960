"""Large batch: [784, 256, 256, 10], mini-batch 128, one epoch, float32 and float64.

At this size the arithmetic dominates and per-op overhead hardly matters, so the
question is whether the autograd wastes arithmetic (extra copies, upcasts).
Rows: tinygrad_nn's autograd (the same loop Network.SGD runs, built from
nn.Linear, sigmoid and quadratic_cost, in the chosen dtype), hand-written
vectorized numpy (BP1-BP4 with in-place updates), and PyTorch eager when importable.

Run: python benchmarks/large_batch.py [--examples N]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import best_of, table, torch, torch_sgd_epoch, training_data

from tinygrad_nn import Tensor, ops
from tinygrad_nn.costs import quadratic_cost
from tinygrad_nn.nn import Linear
from tinygrad_nn.optim import SGD

SIZES, BATCH, ETA = [784, 256, 256, 10], 128, 0.5


def initial_parameters(dtype) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    layers = [Linear(n_in, n_out, "scaled", rng) for n_in, n_out in zip(SIZES, SIZES[1:])]
    return [(la.weight.data.astype(dtype), la.bias.data.astype(dtype)) for la in layers]


def run_ours(X, Y, dtype) -> None:
    params = [(Tensor(w, requires_grad=True), Tensor(b, requires_grad=True))
              for w, b in initial_parameters(dtype)]
    opt = SGD([p for pair in params for p in pair], ETA)
    for k in range(0, len(X), BATCH):
        a = Tensor(X[k:k + BATCH])
        for w, b in params:
            a = ops.linear(a, w, b).sigmoid()
        cost = quadratic_cost(a, Y[k:k + BATCH])
        opt.zero_grad()
        cost.backward()
        opt.step()


def run_numpy(X, Y, dtype) -> None:
    params = initial_parameters(dtype)
    for k in range(0, len(X), BATCH):
        x, y = X[k:k + BATCH], Y[k:k + BATCH]
        activations = [x]
        for w, b in params:
            activations.append(1.0 / (1.0 + np.exp(-(activations[-1] @ w.T + b))))
        a = activations[-1]
        delta = (a - y) * a * (1.0 - a)                       # BP1
        step = dtype(ETA / len(x))
        for i in range(len(params) - 1, -1, -1):
            w, b = params[i]
            previous = activations[i]
            if i:
                back = (delta @ w) * previous * (1.0 - previous)  # BP2, before w changes
            w -= step * (delta.T @ previous)                    # BP4, eq. 2.5
            b -= step * delta.sum(axis=0)                       # BP3, eq. 2.6
            if i:
                delta = back


def run_torch(X, Y, dtype) -> None:
    torch_sgd_epoch(initial_parameters(dtype), X, Y, BATCH, ETA, dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for dtype in (np.float32, np.float64):
        X, Y, source = training_data(args.examples, dtype)
        name = np.dtype(dtype).name
        print(f"\n{SIZES}, mini-batch {BATCH}, one epoch of {len(X)} examples of {source}, "
              f"{name}, best of {args.repeat}")
        def timed(run, X=X, Y=Y, dtype=dtype) -> float:
            return best_of(lambda: run(X, Y, dtype), args.repeat)

        rows = [(f"tinygrad_nn {name}", timed(run_ours)), (f"numpy {name}", timed(run_numpy))]
        if torch is not None:
            rows.append((f"PyTorch eager {name}", timed(run_torch)))
        print(table(rows, f"numpy {name}"))
        if torch is not None:
            print(f"tinygrad_nn / PyTorch {name}: {rows[0][1] / rows[2][1]:.2f} "
                  f"(target <= 1.2 for float32)")
    if torch is None:
        print("\nPyTorch not importable: pip install torch==2.13.0 to add its rows")


if __name__ == "__main__":
    main()
