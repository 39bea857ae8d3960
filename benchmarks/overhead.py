"""Overhead: microseconds per forward+backward of one small op.

Compares, for shapes like the tutorial's mini-batch of 10 (10 x 30):
  - tinygrad_nn: build the op on tensors that require grad, reduce with sum, backward;
  - raw numpy: the same forward and VJP arithmetic written by hand, no graph;
  - PyTorch eager (when importable): the same as tinygrad_nn.

Run: python benchmarks/overhead.py
"""

from __future__ import annotations

import timeit

import numpy as np
from common import torch

from tinygrad_nn import Tensor, linear

rng = np.random.default_rng(0)
A, B = rng.standard_normal((10, 30)), rng.standard_normal((10, 30))
W, V, bias = rng.standard_normal((30, 30)), rng.standard_normal((30, 10)), rng.standard_normal(30)
ONES = np.ones((10, 30))


def ours(op):
    a, b = Tensor(A, requires_grad=True), Tensor(B, requires_grad=True)
    w, v = Tensor(W, requires_grad=True), Tensor(V, requires_grad=True)
    c = Tensor(bias, requires_grad=True)
    table = {
        "add": lambda: a + b, "mul": lambda: a * b, "matmul (10,30)@(30,10)": lambda: a @ v,
        "sigmoid": lambda: a.sigmoid(), "sum": lambda: a.sum(axis=0),
        "linear (10,30)->(10,30)": lambda: linear(a, w, c),
    }

    def run():
        table[op]().sum().backward()
        a.grad = b.grad = w.grad = v.grad = c.grad = None
    return run


def raw(op):
    def sig(z):
        return 1 / (1 + np.exp(-z))
    table = {
        "add": lambda: (A + B, ONES, ONES),
        "mul": lambda: (A * B, ONES * B, ONES * A),
        "matmul (10,30)@(30,10)": lambda: (A @ V, np.ones((10, 10)) @ V.T, A.T @ np.ones((10, 10))),
        "sigmoid": lambda: (lambda s: (s, ONES * s * (1 - s)))(sig(A)),
        "sum": lambda: (A.sum(axis=0), np.broadcast_to(np.ones(30), A.shape).copy()),
        "linear (10,30)->(10,30)": lambda: (A @ W.T + bias, ONES @ W, ONES.T @ A, ONES.sum(0)),
    }
    return table[op]


def torch_run(op):
    a = torch.tensor(A, requires_grad=True)
    b = torch.tensor(B, requires_grad=True)
    w = torch.tensor(W, requires_grad=True)
    v = torch.tensor(V, requires_grad=True)
    c = torch.tensor(bias, requires_grad=True)
    table = {
        "add": lambda: a + b, "mul": lambda: a * b, "matmul (10,30)@(30,10)": lambda: a @ v,
        "sigmoid": lambda: a.sigmoid(), "sum": lambda: a.sum(dim=0),
        "linear (10,30)->(10,30)": lambda: torch.nn.functional.linear(a, w, c),
    }

    def run():
        table[op]().sum().backward()
        a.grad = b.grad = w.grad = v.grad = c.grad = None
    return run


def best_us(fn, number=3000, repeat=5) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    ops = ["add", "mul", "matmul (10,30)@(30,10)", "sigmoid", "sum", "linear (10,30)->(10,30)"]
    print("forward+backward of one op (float64, best of 5), microseconds")
    header = f"{'op':<26}{'tinygrad_nn':>12}{'numpy':>9}{'ours/numpy':>12}"
    if torch is not None:
        header += f"{'torch':>9}{'ours/torch':>12}"
    print(header)
    for op in ops:
        t_ours, t_raw = best_us(ours(op)), best_us(raw(op))
        line = f"{op:<26}{t_ours:>12.1f}{t_raw:>9.1f}{t_ours / t_raw:>12.2f}"
        if torch is not None:
            t_torch = best_us(torch_run(op))
            line += f"{t_torch:>9.1f}{t_ours / t_torch:>12.2f}"
        print(line)
    if torch is None:
        print("(PyTorch not importable: pip install torch==2.13.0 to add its columns)")


if __name__ == "__main__":
    main()
