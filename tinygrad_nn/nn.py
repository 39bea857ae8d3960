"""Layers of neurons made of autograd primitives: `Module`, `Linear`, activations, `Sequential`.

A layer of sigmoid neurons computes a^l = σ(z^l) with z^l = w^l a^{l-1} + b^l (eq. 1.7 for
every neuron of the layer at once). Here that is `Sequential(Linear(n_in, n_out), Sigmoid())`.
The tutorial's convention holds throughout: the weight of a layer has shape (n_out, n_in), so
w_jk joins input k to neuron j, and examples are *rows*: a mini-batch x of shape (m, n_in)
gives z = x wᵀ + b of shape (m, n_out), one fused `ops.linear` call.

Nothing here computes a derivative by hand: `backward()` on a cost differentiates these
layers through the primitives' VJPs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from . import ops
from .tensor import Tensor

__all__ = ["INITS", "Linear", "Module", "ReLU", "Sequential", "Sigmoid", "Tanh"]

INITS = ("standard", "scaled")


class Module:
    """A piece of a network: `forward` computes, `parameters` lists what learning adjusts.

    `parameters()` walks the attributes in the order they were assigned and collects, without
    duplicates, every Tensor that requires grad, the parameters of every sub-`Module`, and those
    of the Modules (or Tensors) held in a list or tuple attribute. The order is therefore
    deterministic: the same class builds the same list every time.
    """

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def _own_parameters(self) -> Iterator[Tensor]:
        for value in vars(self).values():
            items = value if isinstance(value, (list, tuple)) else (value,)
            for item in items:
                if isinstance(item, Module):
                    yield from item._own_parameters()
                elif isinstance(item, Tensor) and item.requires_grad:
                    yield item

    def parameters(self) -> list[Tensor]:
        """Every trainable tensor of this module and its sub-modules, each once, in order."""
        seen: set[int] = set()
        params = []
        for p in self._own_parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        return params

    def zero_grad(self) -> None:
        """Forget the gradients of every parameter (set `.grad` to None, as PyTorch does)."""
        for p in self.parameters():
            p.grad = None


def _positive_int(value: Any, name: str, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer, got {value!r}")
    return int(value)


class Linear(Module):
    """z = x wᵀ + b: the weighted inputs of a layer of n_out neurons with n_in inputs each.

    `weight` has shape (n_out, n_in) (w_jk joins input k to neuron j) and `bias` shape (n_out,),
    both Tensors that require grad. Initialisation, from `rng` (a `np.random.Generator`, a seed,
    or None for a fresh generator):

    - ``"standard"``: weights and biases drawn from N(0, 1), as in the tutorial's network.
    - ``"scaled"``: weights from N(0, 1/n_in), biases from N(0, 1), so that z starts with a
      variance of about 1 whatever n_in is and sigmoid neurons do not start saturated.

    `forward` accepts one example of shape (n_in,) or a mini-batch of rows (m, n_in).

    >>> layer = Linear(3, 2, rng=0)
    >>> layer.weight.shape, layer.bias.shape, layer(np.ones((5, 3))).shape
    ((2, 3), (2,), (5, 2))
    """

    def __init__(self, n_in: int, n_out: int, init: str = "standard",
                 rng: np.random.Generator | int | None = None) -> None:
        n_in = _positive_int(n_in, "n_in", "Linear")
        n_out = _positive_int(n_out, "n_out", "Linear")
        if init not in INITS:
            raise ValueError(f"Linear: init must be one of {', '.join(INITS)}, got {init!r}")
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        weight = rng.standard_normal((n_out, n_in))
        if init == "scaled":
            weight /= np.sqrt(n_in)
        self.weight = Tensor(weight, requires_grad=True)
        self.bias = Tensor(rng.standard_normal(n_out), requires_grad=True)
        self.n_in, self.n_out, self.init = n_in, n_out, init

    def forward(self, x: Any) -> Tensor:
        return ops.linear(x, self.weight, self.bias)

    def __repr__(self) -> str:
        return f"Linear(n_in={self.n_in}, n_out={self.n_out}, init={self.init!r})"


class Sigmoid(Module):
    """σ(z) = 1/(1 + e^{-z}), eq. 1.6, element-wise: the tutorial's neuron."""

    def forward(self, z: Any) -> Tensor:
        return ops.sigmoid(z)

    def __repr__(self) -> str:
        return "Sigmoid()"


class Tanh(Module):
    """tanh(z) = 2σ(2z) - 1, element-wise: a sigmoid stretched to (-1, 1)."""

    def forward(self, z: Any) -> Tensor:
        return ops.tanh(z)

    def __repr__(self) -> str:
        return "Tanh()"


class ReLU(Module):
    """max(z, 0), element-wise; its derivative at 0 is taken as 0."""

    def forward(self, z: Any) -> Tensor:
        return ops.relu(z)

    def __repr__(self) -> str:
        return "ReLU()"


class Sequential(Module):
    """Modules applied one after another: the output of each is the input of the next.

    >>> net = Sequential(Linear(2, 3, rng=0), Sigmoid(), Linear(3, 1, rng=1), Sigmoid())
    >>> [tuple(p.shape) for p in net.parameters()]
    [(3, 2), (3,), (1, 3), (1,)]
    """

    def __init__(self, *layers: Module) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} is a {type(layer).__name__}, "
                                f"not a Module")
        self.layers = list(layers)

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential({inner})"
