"""Stochastic gradient descent, eqs. 2.2-2.6.

Eqs. 2.5/2.6 update w ← w - (η/m) Σ_j ∂C_{X_j}/∂w over a mini-batch of m examples. The costs
in `costs.py` already average over the mini-batch, so the gradient that `backward()` leaves
in `.grad` is (1/m) Σ_j ∂C_{X_j}/∂w, and one step is simply p ← p - η · p.grad (eqs. 2.2/2.3).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Real

from .tensor import Tensor

__all__ = ["SGD"]


class SGD:
    """Plain stochastic gradient descent with learning rate `lr` (the tutorial's η).

    `step()` updates every parameter's data *in place*, p.data -= lr * p.grad.data, so layers
    and anyone else holding the arrays see the new values; parameters without a gradient are
    left alone. `zero_grad()` sets every `.grad` to None before the next backward.

    >>> w = Tensor([1.0, 2.0], requires_grad=True)
    >>> (w * w).sum().backward()          # grad = 2w = [2, 4]
    >>> SGD([w], lr=0.5).step()
    >>> w
    Tensor([0., 0.], requires_grad=True)
    """

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = list(params)
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor):
                raise TypeError(f"SGD: parameter {i} is a {type(p).__name__}, not a Tensor")
            if not p.requires_grad or not p.is_leaf:
                raise ValueError(f"SGD: parameter {i} (shape {p.shape}) must be a leaf tensor "
                                 f"that requires grad")
        if isinstance(lr, bool) or not isinstance(lr, Real) or not (
                math.isfinite(lr) and lr > 0):
            raise ValueError(f"SGD: the learning rate lr must be a finite number > 0, "
                             f"got {lr!r}")
        self.lr = float(lr)

    def step(self) -> None:
        """p ← p - lr · ∂C/∂p for every parameter that has a gradient (eqs. 2.5/2.6)."""
        lr = self.lr
        for p in self.params:
            g = p.grad
            if g is not None:
                p.data -= lr * g.data

    def zero_grad(self) -> None:
        """Set every parameter's `.grad` to None."""
        for p in self.params:
            p.grad = None

    def __repr__(self) -> str:
        return f"SGD({len(self.params)} parameters, lr={self.lr})"
