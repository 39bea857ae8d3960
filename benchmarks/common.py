"""Shared pieces of the benchmarks: the data, timing, and optional PyTorch and jax."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tinygrad_nn import datasets  # noqa: E402

try:
    import torch
except ImportError:  # optional: never a dependency
    torch = None


def optional_jax():
    """jax with float64 enabled, or None when it is not importable (never a dependency).

    Imported on demand rather than with this module: importing jax takes a second.
    """
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    return jax


def training_data(n: int = 50_000, dtype=np.float64) -> tuple[np.ndarray, np.ndarray, str]:
    """(X, one-hot Y, description): Fashion-MNIST's first 50,000 images when installed."""
    directory = datasets.find_fashion_mnist()
    if directory is not None:
        train = datasets.load_mnist(directory, dtype=dtype).train
        return train.X[:n], train.one_hot(10)[:n], f"Fashion-MNIST ({directory})"
    rng = np.random.default_rng(0)
    X = rng.random((n, 784)).astype(dtype)
    Y = np.eye(10, dtype=dtype)[rng.integers(0, 10, n)]
    return X, Y, "synthetic data of MNIST's shape (dataset-fashion-mnist not installed)"


def sigmoid_sgd_step(params, optimizer) -> Callable[[np.ndarray, np.ndarray], None]:
    """One training step of sigmoid layers `params` [(w, b) Tensors] with the quadratic cost,
    as `Network.SGD` takes it, by `optimizer`: the step the large-batch benchmarks time."""
    from tinygrad_nn import ops
    from tinygrad_nn.costs import quadratic_cost

    def step(x: np.ndarray, y: np.ndarray) -> None:
        a = x  # the array itself, as Network's step takes it (Tensor(x) would copy it)
        for w, b in params:
            a = ops.linear(a, w, b).sigmoid()
        cost = quadratic_cost(a, y)
        optimizer.zero_grad()
        cost.backward()
        optimizer.step()

    return step


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """The best wall-clock time of `repeat` runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def best_of_each(runs: list[tuple[str, Callable[[], object]]],
                 repeat: int = 3) -> list[tuple[str, float]]:
    """(name, best time in seconds) for each run: the runs are taken in turn, `repeat` rounds.

    Interleaved, so that a burst of other work on the machine slows one run of several rows
    rather than every run of one row: the ratios between rows hold up better.
    """
    times = {name: float("inf") for name, _ in runs}
    for _ in range(repeat):
        for name, fn in runs:
            times[name] = min(times[name], best_of(fn, 1))
    return list(times.items())


def table(rows: list[tuple[str, float]], reference: str, unit: str = "s") -> str:
    """Rows of (name, time) with each time's ratio to the row named `reference`."""
    ref = dict(rows)[reference]
    width = max(len(name) for name, _ in rows) + 2
    lines = [f"{'':<{width}}{'time (' + unit + ')':>12}{'ratio to ' + reference:>40}"]
    lines += [f"{name:<{width}}{t:>12.3f}{t / ref:>40.2f}" for name, t in rows]
    return "\n".join(lines)


def torch_sgd_epoch(layers, X: np.ndarray, Y: np.ndarray, batch: int, lr: float,
                    dtype: np.dtype) -> None:
    """One epoch of the sigmoid network with the quadratic cost in PyTorch eager.

    `layers` are (w, b) arrays in the tutorial's convention; X and Y are already in
    the order the epoch visits them.
    """
    tdtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    params = [torch.tensor(p, dtype=tdtype, requires_grad=True) for pair in layers for p in pair]
    Xt, Yt = torch.tensor(X, dtype=tdtype), torch.tensor(Y, dtype=tdtype)
    opt = torch.optim.SGD(params, lr=lr)
    for k in range(0, len(X), batch):
        a = Xt[k:k + batch]
        for i in range(0, len(params), 2):
            a = torch.sigmoid(torch.nn.functional.linear(a, params[i], params[i + 1]))
        cost = ((Yt[k:k + batch] - a) ** 2).sum() * (0.5 / len(a))
        opt.zero_grad()
        cost.backward()
        opt.step()
