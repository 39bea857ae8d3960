"""The graph walk: reverse-mode differentiation over any graph of primitives.

BP1–BP4 walk a chain of layers from the output back to the input. Here the
same walk runs over any directed acyclic graph: visit nodes in reverse
topological order, apply each primitive's vector–Jacobian product to the
gradient that has arrived at its output, and *sum* the contributions where a
tensor is used more than once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .anomaly import check_backward
from .ops import cast, constant, copy, sum_to
from .tensor import Tensor, _GradMode, no_grad, to_array


def toposort(outputs: Sequence[Tensor], every_tensor: bool = False) -> list[Tensor]:
    """Every tensor that needs a gradient, each after all of its inputs.

    Depth-first with an explicit stack of (tensor, iterator over its inputs),
    not recursion, so a chain of 100,000 ops is fine. With every_tensor=True it
    also visits inputs that need no gradient (to draw the whole graph).
    """
    order: list[Tensor] = []
    seen: set[int] = set()
    for root in outputs:
        if not (root.requires_grad or every_tensor) or id(root) in seen:
            continue
        seen.add(id(root))
        stack = [(root, iter(root._parents))]
        while stack:
            node, parents = stack[-1]
            for parent in parents:
                if (parent is not None and (parent.requires_grad or every_tensor)
                        and id(parent) not in seen):
                    seen.add(id(parent))
                    if parent._op is None:  # a leaf has no inputs to visit first
                        order.append(parent)
                    else:
                        stack.append((parent, iter(parent._parents)))
                        break
            else:
                stack.pop()
                order.append(node)
    return order


def _walk(outputs: Sequence[Tensor], seeds: Sequence[Any], create_graph: bool,
          receive: Callable[[Tensor, Any], None]) -> None:
    """Send every tensor's total gradient dC/dt to `receive(t, grad)`.

    With create_graph=False gradients are plain arrays and nothing is
    recorded; with True they are Tensors and each VJP is itself recorded. While
    `jit` captures a step they are Tensors too, off the graph, so that every
    VJP's arithmetic goes through the primitives and onto the tape.
    """
    tape = _GradMode.tape
    as_tensors = create_graph or tape is not None
    grads: dict[int, Any] = {}
    for t, seed in zip(outputs, seeds):
        if as_tensors and not isinstance(seed, Tensor):
            seed = Tensor._make(seed)
        grads[id(t)] = seed if id(t) not in grads else grads[id(t)] + seed
    # In anomaly mode numpy stays quiet so that check_backward names the op.
    quiet = np.errstate(all="ignore") if _GradMode.anomaly else contextlib.nullcontext()
    if tape is not None:
        tape.phase = "backward"
    # A capture's VJPs run on Tensors, but must not build a graph of their own.
    with quiet, (no_grad() if tape is not None and not create_graph else contextlib.nullcontext()):
        for node in reversed(toposort(outputs)):
            g = grads.pop(id(node), None)  # freed as soon as it is used
            if g is None:
                continue
            receive(node, g)
            op = node._op
            if op is None:
                continue
            if as_tensors:
                out = node
                inputs = [p if p is not None else constant(a, node)
                          for p, a in zip(node._parents, node._arrays)]
            else:
                out, inputs = node.data, node._arrays
            params = node._params
            for i, (parent, vjp) in enumerate(zip(node._parents, op.vjps)):
                if parent is None or not parent.requires_grad:
                    continue
                g_in = vjp(g, out, *inputs, **params)
                if _GradMode.anomaly:
                    check_backward(node, i, g_in)
                data = parent.data
                if g_in.shape != data.shape:
                    g_in = sum_to(g_in, data.shape)
                if g_in.dtype != data.dtype:  # a float32 input mixed with float64
                    g_in = cast(g_in, dtype=data.dtype)
                key = id(parent)
                previous = grads.get(key)
                grads[key] = g_in if previous is None else previous + g_in
    if tape is not None:
        tape.phase = "update"


def _seed(output: Tensor, gradient: Any, create_graph: bool, who: str) -> Any:
    if gradient is None:
        if output.ndim != 0:
            raise RuntimeError(
                f"{who}: the output has shape {output.shape}; a gradient can be created "
                f"implicitly only for a scalar. Pass gradient= of shape {output.shape} "
                f"(or reduce the output first, e.g. with .sum())"
            )
        gradient = np.ones((), dtype=output.dtype)
    if isinstance(gradient, Tensor):
        if not create_graph:
            gradient = gradient.data
    else:
        gradient = np.array(to_array(gradient), dtype=output.dtype)  # a copy: never alias it
    if gradient.shape != output.shape:
        raise ValueError(
            f"{who}: gradient has shape {gradient.shape} but the output has shape {output.shape}"
        )
    if create_graph and not isinstance(gradient, Tensor):
        gradient = Tensor(gradient)
    return gradient


def _check_requires_grad(t: Tensor, who: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{who}: expected a Tensor, got {type(t).__name__}")
    if not t.requires_grad:
        raise RuntimeError(
            f"{who}: this tensor does not require grad, so there is nothing to "
            f"differentiate; create the inputs with Tensor(..., requires_grad=True) "
            f"and compute outside no_grad()"
        )


def backward(output: Tensor, gradient: Any = None, create_graph: bool = False) -> None:
    """Accumulate d(output)/d(leaf) into `.grad` of every leaf (and of retained tensors)."""
    _check_requires_grad(output, "backward")
    seed = _seed(output, gradient, create_graph, "backward")

    stored: set[int] = set()

    def accumulate(t: Tensor, g: Any) -> None:
        if t._op is not None and not t._retain:
            return
        if not create_graph:
            # Each .grad gets an array of its own: a pass-through VJP (add, reshape)
            # may hand the same array, or a view of one, to several tensors.
            if isinstance(g, Tensor):  # (only while jit captures a step)
                g = g.data
            if type(g) is not np.ndarray or not g.flags.owndata or id(g) in stored:
                g = copy(g)
            stored.add(id(g))
            g = Tensor._make(g)
        t.grad = g if t.grad is None else t.grad + g

    _walk([output], [seed], create_graph, accumulate)


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """The gradients of `outputs` with respect to `inputs`, returned, not stored.

    With create_graph=True the backward pass is recorded, so the result can be
    differentiated again:

    >>> x = Tensor(2.0, requires_grad=True)
    >>> (dy,) = grad(x ** 3, x, create_graph=True)   # 3x² = 12
    >>> (d2y,) = grad(dy, x)                         # 6x = 12
    >>> dy.item(), d2y.item()
    (12.0, 12.0)
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, (Tensor, np.ndarray)):
        grad_outputs = [grad_outputs] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(outputs)} outputs but {len(grad_outputs)} grad_outputs")
    for t in (*outputs, *inputs):
        _check_requires_grad(t, "grad")
    seeds = [_seed(o, g, create_graph, "grad") for o, g in zip(outputs, grad_outputs)]
    wanted = {id(t): None for t in inputs}

    def collect(t: Tensor, g: Any) -> None:
        if id(t) in wanted:
            wanted[id(t)] = g

    _walk(outputs, seeds, create_graph, collect)
    results = []
    for i, t in enumerate(inputs):
        g = wanted[id(t)]
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {t.shape}) was not used to compute the outputs; "
                f"pass allow_unused=True to get None for it"
            )
        results.append(g if g is None or isinstance(g, Tensor) else Tensor(g))
    return tuple(results)
