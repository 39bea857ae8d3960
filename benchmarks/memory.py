"""Memory: peak resident memory after 1 and after 5 epochs of the tutorial's workload,
and a check that no graph node survives a training step.

Run: python benchmarks/memory.py [--examples N]
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys

from common import training_data

from tinygrad_nn import Network, Tensor


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def graph_nodes() -> int:
    """Live tensors made by a primitive (the graph), as opposed to parameters and grads."""
    gc.collect()
    return sum(type(o) is Tensor and o._op is not None for o in gc.get_objects())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50_000)
    args = parser.parse_args()
    X, Y, source = training_data(args.examples)
    print(f"[784, 30, 10], mini-batch 10, eta 3.0, {len(X)} examples of {source}\n")
    net = Network([784, 30, 10], seed=0)
    before = graph_nodes()
    net.update_mini_batch((X[:10], Y[:10]), 3.0)
    after = graph_nodes()
    print(f"live graph nodes before a training step: {before}, after: {after} "
          f"({'no graph node survives' if after == before else 'LEAK'})")
    net.SGD((X, Y), 1, 10, 3.0, verbose=False)
    one = peak_rss_mib()
    net.SGD((X, Y), 4, 10, 3.0, verbose=False)
    five = peak_rss_mib()
    print(f"peak RSS after 1 epoch:  {one:8.1f} MiB")
    print(f"peak RSS after 5 epochs: {five:8.1f} MiB  ({(five / one - 1) * 100:+.1f}%, "
          f"target within 5%)")


if __name__ == "__main__":
    main()
