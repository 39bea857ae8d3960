"""A sigmoid MLP written directly with autograd primitives, for tests to reuse.

Deliberately built from `tinygrad_nn.ops.linear`, `Tensor.sigmoid` and Tensor
arithmetic only (not from `tinygrad_nn.nn`, `network` or `costs`), so that it
tests the autograd itself against the hand-derived BP1–BP4 of
`tinygrad_nn.backprop`. Rows are examples, as in `backprop.feedforward_batch`:

    z^l = a^{l-1} (w^l)ᵀ + b^l,   a^l = σ(z^l),   a^1 = X.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinygrad_nn import Tensor
from tinygrad_nn.ops import linear


def forward(X: Tensor, weights: list[Tensor], biases: list[Tensor]):
    """Feed a mini-batch forward; returns ([z^2, ..., z^L], [a^1, ..., a^L])."""
    zs, activations = [], [X]
    for w, b in zip(weights, biases):
        z = linear(activations[-1], w, b)
        zs.append(z)
        activations.append(z.sigmoid())
    return zs, activations


def quadratic_cost(a: Tensor, Y: Tensor) -> Tensor:
    """The mini-batch MEAN quadratic cost, eq. 2.1: C = 1/(2m) Σ_x ||y(x) - a^L(x)||²."""
    m = a.shape[0]
    d = a - Y
    return (d * d).sum() * (0.5 / m)


def cross_entropy_cost(a: Tensor, Y: Tensor) -> Tensor:
    """The mini-batch MEAN cross-entropy: C = -1/m Σ_x Σ_j [y_j ln a_j + (1-y_j) ln(1-a_j)]."""
    m = a.shape[0]
    return -(Y * a.log() + (1 - Y) * (1 - a).log()).sum() / m


#: Looked up at call time, so a test can plant a wrong cost (e.g. one missing 1/m).
COSTS = {"quadratic": quadratic_cost, "cross-entropy": cross_entropy_cost}


@dataclass
class MLPRun:
    """One forward and backward pass: the cost and its autograd gradients."""

    cost: float
    nabla_w: list[np.ndarray]  # ∂C/∂w^l, l = 2..L
    nabla_b: list[np.ndarray]  # ∂C/∂b^l
    deltas: list[np.ndarray]   # ∂C/∂z^l (the errors δ^l of the whole mini-batch), l = 2..L
    output: np.ndarray         # a^L
    cost_dtype: np.dtype = np.dtype(np.float64)


def parameters(weights, biases, dtype=np.float64) -> tuple[list[Tensor], list[Tensor]]:
    """Leaf tensors for the weights and biases (copies, in `dtype`)."""
    ws = [Tensor(np.array(w, dtype=dtype), requires_grad=True) for w in weights]
    bs = [Tensor(np.array(b, dtype=dtype), requires_grad=True) for b in biases]
    return ws, bs


def cost_of(weights, biases, X, Y, cost: str = "quadratic") -> Tensor:
    """The mini-batch cost as a Tensor (weights, biases may be Tensors or arrays)."""
    dtype = weights[0].dtype
    _, activations = forward(Tensor(X, dtype=dtype), weights, biases)
    return COSTS[cost](activations[-1], Tensor(Y, dtype=dtype))


def autograd_run(weights, biases, X, Y, cost: str = "quadratic",
                 dtype=np.float64) -> MLPRun:
    """The cost of the mini-batch (X, Y) and its gradients by `backward()`, in `dtype`."""
    ws, bs = parameters(weights, biases, dtype)
    zs, activations = forward(Tensor(X, dtype=dtype), ws, bs)
    for z in zs:
        z.retain_grad()
    c = COSTS[cost](activations[-1], Tensor(Y, dtype=dtype))
    c.backward()
    return MLPRun(
        cost=c.item(),
        nabla_w=[w.grad.data for w in ws],
        nabla_b=[b.grad.data for b in bs],
        deltas=[z.grad.data for z in zs],
        output=activations[-1].data,
        cost_dtype=c.dtype,
    )
