"""Perceptrons (eqs. 1.1 and 1.5), the NAND gate (fig. 1.3) and logic built from NANDs.

A perceptron outputs 1 if w·x + b > 0 and 0 if w·x + b <= 0 (eq. 1.5; eq. 1.1 with the
threshold t moved to the bias b = -t). Its weights and bias are set by hand: the step
function has derivative zero almost everywhere (and none at w·x + b = 0), so a gradient
through a perceptron is zero and tells learning nothing. That is why the tutorial moves to
sigmoid neurons (eq. 1.6). This module says so instead of returning a misleading gradient:
a perceptron refuses inputs that require grad, its output never requires grad, and asking that
output for a gradient raises `NotDifferentiableError`.

>>> nand = nand_gate()
>>> truth_table(nand)
[((0, 0), 1), ((0, 1), 1), ((1, 0), 1), ((1, 1), 0)]
>>> truth_table(half_adder)
[((0, 0), (0, 0)), ((0, 1), (1, 0)), ((1, 0), (1, 0)), ((1, 1), (0, 1))]
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from .nn import Module
from .tensor import Tensor, to_array

__all__ = [
    "NotDifferentiableError",
    "Perceptron",
    "half_adder",
    "nand",
    "nand_gate",
    "truth_table",
    "xor",
]

WHY = ("the step function of eq. 1.5 has derivative 0 almost everywhere (and none at "
       "w·x + b = 0), so a gradient through a perceptron is zero and cannot guide learning; "
       "that is why the tutorial moves to sigmoid neurons (eq. 1.6, nn.Sigmoid)")


class NotDifferentiableError(RuntimeError):
    """Raised when a gradient is asked of a perceptron's step output."""


class StepOutput(Tensor):
    """A perceptron's 0/1 output: a Tensor that does not require grad and refuses `backward`."""

    __slots__ = ()

    def backward(self, gradient: Any = None, create_graph: bool = False) -> None:
        raise NotDifferentiableError(f"Perceptron output has no useful gradient: {WHY}")

    @property
    def grad(self) -> None:
        raise NotDifferentiableError(f"Perceptron output has no gradient: {WHY}")

    @grad.setter
    def grad(self, value: Any) -> None:
        if value is not None:
            raise NotDifferentiableError(f"Perceptron output cannot hold a gradient: {WHY}")


class Perceptron(Module):
    """A layer of perceptrons with hand-set weights (n_out, n_in) and biases (n_out,), eq. 1.5.

    A single perceptron may be given with 1-D weights (n_in,) and a scalar bias; its output
    then has one value per example instead of a column. Inputs are one example (n_in,) or rows
    of examples (m, n_in); the output is a `StepOutput` tensor of 0.0/1.0 values.

    >>> Perceptron([-2, -2], 3)([[0, 0], [1, 1]])
    Tensor([1., 0.])
    """

    def __init__(self, weight: Any, bias: Any) -> None:
        for name, value in (("weight", weight), ("bias", bias)):
            if isinstance(value, Tensor) and value.requires_grad:
                raise NotDifferentiableError(
                    f"Perceptron: the {name} requires grad, but perceptrons are set by hand: "
                    f"{WHY}")
        w = to_array(weight, np.float64)
        b = to_array(bias, np.float64)
        if w.ndim not in (1, 2) or w.size == 0:
            raise ValueError(f"Perceptron: weight must have shape (n_in,) or (n_out, n_in), "
                             f"got {w.shape}")
        expected = () if w.ndim == 1 else (w.shape[0],)
        if b.shape != expected:
            raise ValueError(f"Perceptron: weight of shape {w.shape} needs a bias of shape "
                             f"{expected}, got {b.shape}")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ValueError("Perceptron: weights and bias must be finite")
        # Plain arrays, not Tensors: there is nothing here for an optimizer to learn.
        self.weight, self.bias = w, b

    @property
    def n_in(self) -> int:
        """The number of inputs each perceptron weighs."""
        return self.weight.shape[-1]

    def forward(self, x: Any) -> StepOutput:
        if isinstance(x, Tensor) and x.requires_grad:
            raise NotDifferentiableError(
                f"Perceptron: the input requires grad, but {WHY}. Evaluate perceptrons under "
                f"no_grad() or on x.detach()")
        x = to_array(x)
        if x.ndim not in (1, 2) or x.shape[-1] != self.n_in:
            raise ValueError(f"Perceptron: input of shape {x.shape}, expected ({self.n_in},) "
                             f"or (m, {self.n_in})")
        z = x @ self.weight.T + self.bias
        return StepOutput._make((z > 0).astype(np.float64))

    def scaled(self, c: float) -> Perceptron:
        """The same perceptrons with every weight and bias multiplied by c (sec. 1.4.1)."""
        return Perceptron(c * self.weight, c * self.bias)

    def __repr__(self) -> str:
        return f"Perceptron(weight={self.weight.tolist()}, bias={self.bias.tolist()})"


def nand_gate() -> Perceptron:
    """Fig. 1.3: two inputs with weights -2 and -2 and bias 3 compute NOT(x1 AND x2)."""
    return Perceptron([-2.0, -2.0], 3.0)


_NAND = nand_gate()


def _bits(value: Any) -> np.ndarray | int:
    out = np.asarray(value).astype(np.int64)
    return int(out) if out.ndim == 0 else out


def nand(a: Any, b: Any, gate: Perceptron | None = None) -> np.ndarray | int:
    """NOT(a AND b) of 0/1 values (scalars or arrays), computed by the NAND perceptron.

    `gate` replaces fig. 1.3's perceptron, e.g. by `nand_gate().scaled(c)`.
    """
    gate = _NAND if gate is None else gate
    pairs = np.stack(np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float)), axis=-1)
    return _bits(gate(pairs.reshape(-1, 2)).data.reshape(pairs.shape[:-1]))


def xor(a: Any, b: Any, gate: Perceptron | None = None) -> np.ndarray | int:
    """a XOR b from four NAND perceptrons: n = nand(a, b); nand(nand(a, n), nand(b, n))."""
    n = nand(a, b, gate)
    return nand(nand(a, n, gate), nand(b, n, gate), gate)


def half_adder(a: Any, b: Any, gate: Perceptron | None = None) -> tuple[Any, Any]:
    """(sum, carry) of two bits from five NAND perceptrons: sum = a XOR b, carry = a AND b.

    The carry is nand(n, n) with n = nand(a, b), the NAND the XOR already computed.
    """
    n = nand(a, b, gate)
    total = nand(nand(a, n, gate), nand(b, n, gate), gate)
    carry = nand(n, n, gate)
    return total, carry


def truth_table(function: Callable[..., Any], n_inputs: int = 2) -> list[tuple[tuple, Any]]:
    """Every 0/1 input combination and the function's output, as ((inputs...), output) rows.

    `function` is a `Perceptron` (called on all rows at once, with as many inputs as it has;
    one output, or a tuple of outputs per row) or a logic function of `n_inputs` bits such as
    `xor` or `half_adder`.
    """
    if isinstance(function, Perceptron):
        n_inputs = function.n_in
    rows = list(itertools.product((0, 1), repeat=n_inputs))
    if isinstance(function, Perceptron):
        out = function(np.array(rows, dtype=float)).data.astype(np.int64)
        outputs = [int(o) if np.ndim(o) == 0 else tuple(int(v) for v in o) for o in out]
    else:
        outputs = []
        for row in rows:
            o = function(*row)
            outputs.append(tuple(int(v) for v in o) if isinstance(o, tuple) else int(o))
    return list(zip(rows, outputs))
