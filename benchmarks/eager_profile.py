"""Where the time of an eager step goes: Network([784, 30, 10]), mini-batch 10, float64.

The step Network.SGD takes without jit (`training.train_step`: forward and cost, zero_grad,
backward, the SGD update), over an epoch's mini-batches, each phase timed apart; then each
phase's numpy work alone (the same arithmetic as plain numpy calls on the same arrays: what
a replay runs, see benchmarks/jit_profile.py) and what is left, the Python of the autograd:
building the graph, walking it, the optimizer's loop. The walk is also timed with every VJP
replaced by one that returns an empty array of the right shape (its own cost, no gradients).

All on one BLAS thread, as `fit` runs this model. Best of `--repeat` sweeps.

Run: python benchmarks/eager_profile.py [--examples N] [--repeat N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from common import training_data

from tinygrad_nn import Network, ops, optim
from tinygrad_nn._threads import blas_threads
from tinygrad_nn.ops import _quadratic_cost, _stable_sigmoid

SIZES, BATCH, ETA = [784, 30, 10], 10, 3.0
PHASES = ("forward and cost", "zero_grad", "backward", "optimizer step")


def best_sweep(step: Callable[[np.ndarray, np.ndarray], tuple[float, ...]], batches: list,
               repeat: int) -> np.ndarray:
    """us per mini-batch of each phase `step(x, y)` times (its seconds per phase), in the
    best of `repeat` sweeps over `batches` by their total."""
    best = None
    for _ in range(repeat):
        total = np.zeros(len(PHASES))
        for x, y in batches:
            total += step(x, y)
        if best is None or total.sum() < best.sum():
            best = total
    return 1e6 * best / len(batches)


def phases(net: Network, opt: optim.SGD, batches: list, repeat: int) -> np.ndarray:
    """us per step of each of PHASES, the best sweep (by its total)."""
    model, cost, clock = net.model, net._cost_fn, time.perf_counter

    def step(x: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
        t0 = clock()
        c = cost(model(x), y)
        t1 = clock()
        opt.zero_grad()
        t2 = clock()
        c.backward()
        t3 = clock()
        opt.step()
        t4 = clock()
        return t1 - t0, t2 - t1, t3 - t2, t4 - t3

    return best_sweep(step, batches, repeat)


def numpy_phases(net: Network, batches: list, repeat: int) -> np.ndarray:
    """us per step of the same arithmetic in plain numpy calls (allocating, as eager does)."""
    (w2, w3), (b2, b3) = net.weights, net.biases
    n, clock = float(BATCH), time.perf_counter
    copies = [a.copy() for a in (w2, b2, w3, b3)]  # updated in their place, as SGD updates
    scratch = [np.empty_like(a) for a in copies]

    def step(x: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
        t0 = clock()
        z2 = x @ w2.T + b2
        e2 = np.empty_like(z2)  # the e^{-z} each sigmoid keeps for its VJP
        a2 = _stable_sigmoid(z2, saved=e2)
        z3 = a2 @ w3.T + b3
        e3 = np.empty_like(z3)
        a3 = _stable_sigmoid(z3, saved=e3)
        _quadratic_cost(a3, y, BATCH)
        t1 = clock()
        d3 = np.array(1.0) * (a3 - y) * (1.0 / n) * (a3 * (a3 * e3))
        g_a2 = d3 @ w3
        g_w3, g_b3 = d3.T @ a2, d3.sum(axis=0)
        d2 = g_a2 * (a2 * (a2 * e2))
        g_w2, g_b2 = d2.T @ x, d2.sum(axis=0)
        t2 = clock()
        for p, g, s in zip(copies, (g_w2, g_b2, g_w3, g_b3), scratch):
            np.multiply(g, ETA, out=s)
            np.subtract(p, s, out=p)
        t3 = clock()
        return t1 - t0, 0.0, t2 - t1, t3 - t2

    return best_sweep(step, batches, repeat)


def walk_alone(net: Network, batches: list, repeat: int) -> float:
    """us per backward() with each VJP of linear, sigmoid and the cost returning np.empty."""
    model, cost = net.model, net._cost_fn
    saved = {p: p.vjps for p in (ops.linear, ops.sigmoid, ops.quadratic_cost)}

    def stub(i: int):
        def vjp(g, out, *inputs, **params):
            return np.empty(np.shape(inputs[i]))
        return vjp

    try:
        for p, vjps in saved.items():
            p.vjps = tuple(stub(i) for i in range(len(vjps)))
        best = np.inf
        for _ in range(repeat):
            total = 0.0
            for x, y in batches:
                c = cost(model(x), y)
                t0 = time.perf_counter()
                c.backward()
                total += time.perf_counter() - t0
                for q in net.parameters():
                    q.grad = None
            best = min(best, total)
    finally:
        for p, vjps in saved.items():
            p.vjps = vjps
    return 1e6 * best / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    X, Y, source = training_data(args.examples)
    batches = [(X[k:k + BATCH].copy(), Y[k:k + BATCH].copy()) for k in range(0, len(X), BATCH)]
    net = Network(SIZES, seed=0)
    opt = optim.SGD(net.parameters(), ETA)
    with blas_threads(1):
        eager = phases(net, opt, batches, args.repeat)
        plain = numpy_phases(net, batches, args.repeat)
        walk = walk_alone(net, batches, args.repeat)
    print(f"one eager step of Network({SIZES}), mini-batch {BATCH}, float64, {source}: "
          f"us per step, best of {args.repeat} sweeps over {len(batches)} mini-batches\n")
    print(f"{'':22}{'eager':>9}{'numpy alone':>13}{'Python of the autograd':>24}")
    for name, e, p in zip(PHASES, eager, plain):
        print(f"{name:22}{e:9.1f}{p:13.1f}{e - p:24.1f}")
    print(f"{'total':22}{eager.sum():9.1f}{plain.sum():13.1f}{eager.sum() - plain.sum():24.1f}")
    print(f"\nbackward() with every VJP returning np.empty (the walk's own cost): {walk:.1f} us")


if __name__ == "__main__":
    main()
