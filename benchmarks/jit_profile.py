"""Where the time of a compiled step goes: Network([784, 30, 10]), mini-batch 10, float64.

Captures the step Network.SGD takes (forward, quadratic cost, backward, the SGD update)
with tinygrad_nn.jit, then replays it many times, timing each call of the replay in
sequence (inside full replays, sweeping an epoch's mini-batches from the initial weights
as Network.SGD does, so the arrays hold the values of real training), and prints the
mean time of each call in microseconds, grouped into forward, backward and update, with
their total. Against it: the arithmetic floor (the two large products of the 784 x 30
layer, x @ w2.T forward and the weight gradient d2.T @ x, timed alone) and what is left,
the overhead of the other calls. Then a step of an epoch of Network.SGD(jit=True) taken
apart: the replay, the jitted call's own work, gathering the mini-batch, the epoch's fixed
costs shared among its steps; and a step of lean hand-written numpy for comparison.

Run: python benchmarks/jit_profile.py [--sweeps N] [--examples N]
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np
from common import best_of_each, training_data
from epoch import run_lean_numpy, run_network, shuffles

from tinygrad_nn import Network, optim
from tinygrad_nn.jit import Plan, describe, jit
from tinygrad_nn.network import as_arrays

SIZES, BATCH, ETA = [784, 30, 10], 10, 3.0


def replayed_entries(plan: Plan) -> list:
    """The entries that have a call in `plan.calls`, in order, as `jit.describe` numbers them
    (`plan.replayed`: live, and not a view of an input)."""
    found = [e for e, replayed in zip(plan.entries, plan.replayed) if replayed]
    if len(found) != len(plan.calls):  # an entry may need two calls (a broadcast operand)
        raise RuntimeError(f"{len(found)} replayed entries for {len(plan.calls)} calls: this "
                           f"profile times one call per entry")
    return found


def listing(plan: Plan, net: Network) -> dict[int, str]:
    """The text `describe` gives each replayed call, by its number (1, 2, ...)."""
    names = {}
    for number, layer in enumerate(net.layers, start=2):
        names[id(layer.weight.data)] = f"w{number}"
        names[id(layer.bias.data)] = f"b{number}"
    text = describe(plan, names, ["x", "y"])
    lines = {}
    for line in text.splitlines():
        match = re.match(r"\s+(\d+)  (.*?)\s{2,}\(", line)
        if match:
            lines[int(match[1])] = match[2].strip()
    return lines


def timer_overhead(n: int = 200_000) -> float:
    """The mean of t1 - t0 for two perf_counter_ns calls back to back, in ns."""
    clock, total = time.perf_counter_ns, 0
    for _ in range(n):
        t0 = clock()
        t1 = clock()
        total += t1 - t0
    return total / n


def profile(plan: Plan, batches: list, initial: tuple,
            sweeps: int) -> tuple[np.ndarray, float]:
    """Per call, the mean ns inside full replays, and the ns of a whole replay run untimed.

    Each of `sweeps` rounds replays `batches` from the state `initial` (as `plan.save()`
    gave it) twice: timing every call, then untimed; the lowest round's means are kept.
    """
    calls, inputs, clock = plan.calls, plan.inputs, time.perf_counter_ns
    best, untimed = np.full(len(calls), np.inf), np.inf
    for _ in range(sweeps):
        plan.restore(initial)
        total = [0] * len(calls)
        for x, y in batches:
            np.copyto(inputs[0], x)
            np.copyto(inputs[1], y)
            for i, call in enumerate(calls):
                t0 = clock()
                call()
                total[i] += clock() - t0
        best = np.minimum(best, np.array(total) / len(batches))
        plan.restore(initial)
        t0 = clock()
        for x, y in batches:
            np.copyto(inputs[0], x)
            np.copyto(inputs[1], y)
            for call in calls:
                call()
        untimed = min(untimed, (clock() - t0) / len(batches))
    return best, untimed


def floor(x: np.ndarray, w: np.ndarray, d: np.ndarray, n: int = 20_000) -> tuple[float, float]:
    """ns of the forward x @ w.T and of the weight gradient d.T @ x, each alone, into buffers."""
    z, g = np.empty((len(x), len(w))), np.empty(w.shape)
    wt, dt = w.T, d.T

    def forward() -> None:
        for _ in range(n):
            np.matmul(x, wt, out=z)

    def gradient() -> None:
        for _ in range(n):
            np.matmul(dt, x, out=g)
    times = dict(best_of_each([("forward", forward), ("gradient", gradient)], 7))
    return 1e9 * times["forward"] / n, 1e9 * times["gradient"] / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweeps", type=int, default=4,
                        help="replays of the epoch's mini-batches timed call by call")
    parser.add_argument("--examples", type=int, default=50_000)
    args = parser.parse_args()
    X, Y, source = training_data(args.examples)
    order = shuffles(len(X))
    Xs, Ys = X[order], Y[order]
    batches = [(Xs[k:k + BATCH], Ys[k:k + BATCH]) for k in range(0, len(X), BATCH)]
    net = Network(SIZES, seed=0)
    start = [a.copy() for a in net.weights + net.biases]
    opt = optim.SGD(net.parameters(), ETA)

    def step(x, y) -> None:  # the step Network.SGD takes
        net._step(x, y, opt)

    compiled = jit(step)
    compiled(*batches[0])  # capture
    compiled(*batches[1])  # check
    plan = next(iter(compiled.plans.values()))
    for array, value in zip(net.weights + net.biases, start):
        np.copyto(array, value)  # in place: the plan still holds
    initial = plan.save()  # each sweep starts from the initial weights, as an epoch does
    entries, text = replayed_entries(plan), listing(plan, net)
    overhead = timer_overhead()
    means, untimed = profile(plan, batches, initial, args.sweeps)
    means, untimed = np.maximum(means - overhead, 0.0) / 1e3, untimed / 1e3
    replays = args.sweeps * len(batches)

    print(f"one replayed step of Network({SIZES}), mini-batch {BATCH}, float64, {source}")
    print(f"{len(plan.calls)} calls; mean us per call, timed in sequence inside {replays} "
          f"replays ({args.sweeps} sweeps over an epoch's {len(batches)} mini-batches from the "
          f"initial weights, each followed by an untimed sweep; the lowest sweep's mean), less "
          f"the timer's own {overhead:.0f} ns\n")
    width = max(len(t) for t in text.values()) + 2
    totals: dict[str, float] = {}
    phase = None
    for number, (e, mean) in enumerate(zip(entries, means), start=1):
        if e.phase != phase:
            phase = e.phase
            print(f"{phase}:")
        totals[phase] = totals.get(phase, 0.0) + mean
        print(f"  {number:>4}  {text.get(number, e.op.name):<{width}}{mean:8.2f}")
    total = float(means.sum())
    print()
    for phase, value in totals.items():
        count = sum(e.phase == phase for e in entries)
        print(f"{phase + ':':<10}{value:8.1f} us in {count:2d} calls ({100 * value / total:4.1f}%)")
    print(f"{'total:':<10}{total:8.1f} us in {len(entries):2d} calls, timed call by call")
    print(f"{'untimed:':<10}{untimed:8.1f} us a replay, the same sweeps with no timer (the "
          f"mini-batch copied in included)")

    w2 = net.layers[0].weight.data
    d2 = np.random.default_rng(0).standard_normal((BATCH, SIZES[1]))
    forward, gradient = floor(batches[0][0], w2, d2)
    arithmetic = (forward + gradient) / 1e3
    print(f"\narithmetic floor: x @ w2.T {forward / 1e3:.1f} us + d2.T @ x {gradient / 1e3:.1f} us"
          f" = {arithmetic:.1f} us (each alone, in a loop): {100 * arithmetic / untimed:.0f}% of "
          f"the untimed replay")
    rest = untimed - arithmetic
    print(f"the rest: {rest:.1f} us of the untimed replay, {rest / (len(entries) - 2):.2f} us for "
          f"each of the other {len(entries) - 2} calls (with the bias added in call 1 and the "
          f"two copies in)")

    def replay_alone() -> None:
        plan.restore(initial)
        for x, y in batches:
            np.copyto(plan.inputs[0], x)
            np.copyto(plan.inputs[1], y)
            for call in plan.calls:
                call()

    def jitted_calls() -> None:
        plan.restore(initial)
        for x, y in batches:
            compiled(x, y)

    def gathers() -> None:
        for k in range(0, len(X), BATCH):
            batch = order[k:k + BATCH]
            X[batch], Y[batch]

    steps = len(X) // BATCH
    parts = dict(best_of_each([
        ("replay", replay_alone), ("call", jitted_calls), ("gather", gathers),
        ("check", lambda: as_arrays((X, Y), SIZES[0], SIZES[-1])),
        ("epoch", lambda: run_network(X, Y, compiled=True)),
        ("lean", lambda: run_lean_numpy(X, Y))], 5))
    replay, call = (1e6 * parts[name] / len(batches) for name in ("replay", "call"))
    gather, check, epoch, lean = (1e6 * parts[name] for name in (
        "gather", "check", "epoch", "lean"))
    gather /= steps
    total_parts = call + gather + check / steps
    print(f"\nper step of an epoch of Network.SGD(jit=True) on {len(X)} examples ({steps} steps),"
          f" us, each part timed apart (best of 5, taken in turn):")
    print(f"  the replayed calls, untimed, mini-batch copied in  {replay:7.1f}")
    print(f"  the jitted call's own work (key, plan.holds())     {call - replay:7.1f}")
    print(f"  gathering the mini-batch, X[batch] and Y[batch]    {gather:7.1f}")
    print(f"  checking the data once per SGD call (as_arrays)    {check / steps:7.1f}"
          f"  ({check / 1e3:.0f} ms an epoch)")
    print(f"  sum of the parts                                   {total_parts:7.1f}")
    print(f"  a step of the epoch, measured whole                {epoch / steps:7.1f}"
          f"  (also: the shuffle, the capture and check, the loop)")
    print(f"  a step of lean hand-written numpy (epoch.py)       {lean / steps:7.1f}"
          f"  (it copies the shuffled data once an epoch)")


if __name__ == "__main__":
    main()
