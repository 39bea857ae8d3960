"""The recipe's CNN: ms per training step, ours (eager and jit) against PyTorch CPU eager.

conv3x3(16)-BN-ReLU-maxpool2-conv3x3(32)-BN-ReLU-maxpool2-fc128-ReLU-fc10, softmax
cross-entropy, Adam (lr 3e-3), mini-batch 64, float32, on Fashion-MNIST's training images
when installed (else random images of its shape). Written with tinygrad_nn.functional, so
it measures the primitives (conv2d, max_pool2d, batch_norm) and the jit, not a module
layer. PyTorch runs the same network, initial weights and batches with the same number of
threads. The first (capturing) jit call is excluded; a fixed number of steps is timed,
best of `--repeat` rounds taken in turn.

Run: python benchmarks/conv.py [--steps N] [--repeat R] [--threads T]

--threads T sets both libraries' threads (OpenBLAS's through OPENBLAS_NUM_THREADS, set
before numpy is imported; PyTorch's with set_num_threads). On a loaded machine two BLAS
threads contend with other processes and both libraries slow down many times over; one
thread each gives steadier figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if "--threads" in sys.argv:  # before numpy (and OpenBLAS) is loaded
    os.environ["OPENBLAS_NUM_THREADS"] = sys.argv[sys.argv.index("--threads") + 1]

import numpy as np  # noqa: E402
from common import table, torch  # noqa: E402

from tinygrad_nn import Tensor, costs, datasets, ops, optim  # noqa: E402
from tinygrad_nn import functional as F  # noqa: E402
from tinygrad_nn.jit import jit  # noqa: E402

BATCH, LR = 64, 3e-3


def images(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(x (n, 1, 28, 28) float32, labels, description)."""
    directory = datasets.find_fashion_mnist()
    if directory is not None:
        train = datasets.load_mnist(directory, dtype=np.float32).train
        x, labels = train.X[:n], np.argmax(train.one_hot(10)[:n], axis=1)
        return x.reshape(-1, 1, 28, 28), labels, f"Fashion-MNIST ({directory})"
    rng = np.random.default_rng(0)
    return (rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n),
            "random images of Fashion-MNIST's shape (dataset not installed)")


def initial_weights() -> dict[str, np.ndarray]:
    """PyTorch's default scheme: U(±1/√fan_in) for weights and biases; BN at 1 and 0."""
    rng = np.random.default_rng(0)

    def uniform(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        bound = 1 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    return {"c1w": uniform((16, 1, 3, 3), 9), "c1b": uniform((16,), 9),
            "g1": np.ones(16, np.float32), "b1": np.zeros(16, np.float32),
            "c2w": uniform((32, 16, 3, 3), 144), "c2b": uniform((32,), 144),
            "g2": np.ones(32, np.float32), "b2": np.zeros(32, np.float32),
            "f1w": uniform((128, 32 * 7 * 7), 32 * 7 * 7), "f1b": uniform((128,), 32 * 7 * 7),
            "f2w": uniform((10, 128), 128), "f2b": uniform((10,), 128)}


def our_step(compiled: bool):
    p = {k: Tensor(v, requires_grad=True) for k, v in initial_weights().items()}
    running = {k: np.zeros(c, np.float32) if k[0] == "m" else np.ones(c, np.float32)
               for k, c in (("m1", 16), ("v1", 16), ("m2", 32), ("v2", 32))}
    opt = optim.Adam(list(p.values()), lr=LR)

    def block(h: Tensor, k: str) -> Tensor:
        h = F.conv2d(h, p[f"c{k}w"], p[f"c{k}b"], padding=1)
        h = F.batch_norm(h, running[f"m{k}"], running[f"v{k}"], p[f"g{k}"], p[f"b{k}"],
                         training=True)
        return F.max_pool2d(ops.relu(h), 2)

    def step(x: np.ndarray, labels: np.ndarray) -> Tensor:
        opt.zero_grad()
        h = F.flatten(block(block(Tensor(x), "1"), "2"), 1)
        logits = ops.linear(ops.relu(ops.linear(h, p["f1w"], p["f1b"])), p["f2w"], p["f2b"])
        cost = costs.cross_entropy(logits, labels)
        cost.backward()
        opt.step()
        return cost

    return jit(step) if compiled else step


def torch_step():
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    w = initial_weights()
    with torch.no_grad():
        for conv, k in ((model[0], "1"), (model[4], "2")):
            conv.weight.copy_(torch.from_numpy(w[f"c{k}w"]))
            conv.bias.copy_(torch.from_numpy(w[f"c{k}b"]))
        for layer, k in ((model[9], "f1"), (model[11], "f2")):
            layer.weight.copy_(torch.from_numpy(w[f"{k}w"]))
            layer.bias.copy_(torch.from_numpy(w[f"{k}b"]))
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss = nn.CrossEntropyLoss()

    def step(x: np.ndarray, labels: np.ndarray):
        opt.zero_grad()
        cost = loss(model(torch.from_numpy(x)), torch.from_numpy(labels))
        cost.backward()
        opt.step()
        return cost

    return step


def timed(step, batches: list) -> float:
    """Seconds for one pass over `batches` (after one warm-up call, the jit's capture)."""
    step(*batches[0])
    start = time.perf_counter()
    for x, labels in batches:
        step(x, labels)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    x, labels, described = images(args.steps * BATCH)
    batches = [(x[k:k + BATCH], labels[k:k + BATCH].astype(np.int64))
               for k in range(0, len(x) - BATCH + 1, BATCH)]
    runs = [("tinygrad_nn eager", our_step(False)), ("tinygrad_nn jit", our_step(True))]
    if torch is not None:
        torch.set_num_threads(args.threads)
        runs.append(("PyTorch eager", torch_step()))
    best = {name: float("inf") for name, _ in runs}
    for _ in range(args.repeat):  # rounds taken in turn: a burst of other work hits one row
        for name, step in runs:
            best[name] = min(best[name], timed(step, batches))
    rows = [(name, 1e3 * t / len(batches)) for name, t in best.items()]
    print(f"recipe CNN, batch {BATCH}, float32, {len(batches)} steps, {described}; threads: "
          f"{torch.get_num_threads() if torch is not None else 'n/a (no torch)'}")
    print(table(rows, "PyTorch eager" if torch is not None else "tinygrad_nn eager", "ms/step"))
    steps_per_epoch = 50_000 // BATCH
    for name, ms in rows:
        print(f"  {name}: {ms * steps_per_epoch / 1e3:.1f} s for an epoch of 50,000 images")


if __name__ == "__main__":
    main()
