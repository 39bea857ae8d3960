"""The graph walk: reverse-mode differentiation over any graph of primitives.

BP1–BP4 walk a chain of layers from the output back to the input. Here the
same walk runs over any directed acyclic graph: visit nodes in reverse
topological order, apply each primitive's vector–Jacobian product to the
gradient that has arrived at its output, and *sum* the contributions where a
tensor is used more than once.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .anomaly import check_backward
from .ops import Primitive, cast, constant, copy, sum_to
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
          receive: Callable[[Tensor, Any], None], interior: bool = True) -> None:
    """Send every tensor's total gradient dC/dt to `receive(t, grad)`; with
    interior=False only the leaves' and the retained tensors' (what `.grad` keeps).

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
    if tape is None and not _GradMode.anomaly:  # the usual case, with no context to enter
        _visit(toposort(outputs), grads, as_tensors, receive, interior)
        return
    if tape is not None:
        tape.phase = "backward"
    # In anomaly mode numpy stays quiet so that check_backward names the op; a capture's
    # VJPs run on Tensors, but must not build a graph of their own.
    quiet = np.errstate(all="ignore") if _GradMode.anomaly else contextlib.nullcontext()
    with quiet, (no_grad() if tape is not None and not create_graph else contextlib.nullcontext()):
        _visit(toposort(outputs), grads, as_tensors, receive, interior)
    if tape is not None:
        tape.phase = "update"


def _visit(order: list[Tensor], grads: dict[int, Any], as_tensors: bool,
           receive: Callable[[Tensor, Any], None], interior: bool) -> None:
    """The walk itself: each tensor of `order`, last first, hands its gradient on."""
    for node in reversed(order):
        g = grads.pop(id(node), None)  # freed as soon as it is used
        if g is None:
            continue
        if node._op is None:
            receive(node, g)
            continue
        if interior or node._retain:
            receive(node, g)
        _propagate(node, g, as_tensors, grads)


def _propagate(node: Tensor, g: Any, as_tensors: bool, grads: dict[int, Any]) -> None:
    """Apply node's VJPs to g, the gradient at its output, adding each result to `grads`."""
    # (only called for a node made by an op; an annotation, not a cast() call per node)
    op: Primitive = node._op  # type: ignore[assignment]
    out: Tensor | np.ndarray
    inputs: Sequence[Any]
    if as_tensors:
        out = node
        inputs = [p if p is not None else constant(a, node)
                  for p, a in zip(node._parents, node._arrays)]
    else:
        out, inputs = node.data, node._arrays
    params, born, anomaly = node._params, node._born, _GradMode.anomaly
    for i, (parent, vjp) in enumerate(zip(node._parents, op.vjps)):
        if parent is None:
            continue
        if parent._written > born:  # changed in place after this op read it
            raise _modified_error(node, i, parent)
        if not parent.requires_grad:
            continue
        g_in = vjp(g, out, *inputs, **params)
        if anomaly:
            check_backward(node, i, g_in)
        data = parent.data
        if g_in.shape != data.shape:
            g_in = sum_to(g_in, data.shape)
        # (`is not` first: the same dtype is most often the same object, and comparing two
        # dtypes costs a numpy call)
        if g_in.dtype is not data.dtype and g_in.dtype != data.dtype:  # float32 with float64
            g_in = cast(g_in, dtype=data.dtype)
        key = id(parent)
        previous = grads.get(key)
        grads[key] = g_in if previous is None else previous + g_in


def _modified_error(node: Tensor, i: int, parent: Tensor) -> RuntimeError:
    kind = "a parameter" if parent.is_leaf and parent.requires_grad else (
        "a leaf" if parent.is_leaf else f"the output of {parent.grad_fn}")
    return RuntimeError(
        f"backward pass: one of the tensors needed for gradient computation has been "
        f"modified by an in-place operation after it was used: input {i} of "
        f"{typing.cast(Primitive, node._op).name}, {kind} of shape {parent.shape} (now at version "
        f"{parent._version}), changed after the forward pass read it (an optimizer step?), "
        f"so the gradients would use values it no longer has. Call backward() before "
        f"optimizer.step(), or run the forward pass again after the step"
    )


def _seed(output: Tensor, gradient: Any, create_graph: bool, who: str) -> Any:
    """The gradient the walk starts from at `output`, in an array (or Tensor) of its own.

    None means 1 for a one-element output (shape (), (1,), (1, 1): any one element, as
    PyTorch). A given seed is copied (with the primitives, so `jit` records it) so that
    no `.grad` shares the caller's array; with create_graph a Tensor seed is kept, so the
    gradients can be differentiated with respect to it.
    """
    if gradient is None:
        if output.size != 1:
            raise RuntimeError(
                f"{who}: the output has shape {output.shape}; a gradient can be created "
                f"implicitly only for an output of one element. Pass gradient= of shape "
                f"{output.shape} (or reduce the output first, e.g. with .sum())"
            )
        # (np.array of a number for the usual 0-d cost: np.ones is Python, ~0.5 µs slower)
        one = (np.array(1, dtype=output.dtype) if output.ndim == 0
               else np.ones(output.shape, dtype=output.dtype))
        return _seed_array(one, create_graph)
    if isinstance(gradient, Tensor) and create_graph:
        if gradient.shape != output.shape:
            raise _seed_shape_error(gradient, output, who)
        return gradient
    array = to_array(gradient)
    if array.shape != output.shape:
        raise _seed_shape_error(array, output, who)
    array = copy(array) if array.dtype == output.dtype else cast(array, dtype=output.dtype)
    return _seed_array(array, create_graph)


def _seed_array(array: np.ndarray, create_graph: bool) -> Any:
    return Tensor._make(array) if create_graph else array


def _seed_shape_error(gradient: Any, output: Tensor, who: str) -> ValueError:
    return ValueError(
        f"{who}: gradient has shape {gradient.shape} but the output has shape {output.shape}"
    )


def _check_requires_grad(t: Tensor, who: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{who}: expected a Tensor, got {type(t).__name__}")
    if not t.requires_grad:
        raise RuntimeError(
            f"{who}: this tensor does not require grad, so there is nothing to "
            f"differentiate; create the inputs with Tensor(..., requires_grad=True) "
            f"and compute outside no_grad()"
        )


def _owns_memory(data: Any) -> bool:
    """Whether `data` is an array with memory of its own (not a view of another array).

    While `jit` captures a step, its arrays are a subclass viewing the fresh result of each
    primitive (see jit._Traced): such a view over a whole fresh array counts as owning it.
    """
    if type(data) is np.ndarray:
        return data.flags.owndata
    base = getattr(data, "base", None)
    return (getattr(data, "_traced", False) and type(base) is np.ndarray
            and base.flags.owndata and base.shape == data.shape
            and base.strides == data.strides)


def backward(output: Tensor, gradient: Any = None, create_graph: bool = False) -> None:
    """Accumulate d(output)/d(leaf) into `.grad` of every leaf (and of retained tensors).

    Every `.grad` gets an array of its own (never the seed's, never another's), also with
    create_graph=True. Nothing is stored until the whole walk has succeeded, so an error
    (a tensor modified in place, an anomaly) leaves every `.grad` as it was.
    """
    _check_requires_grad(output, "backward")
    seed = _seed(output, gradient, create_graph, "backward")
    # Arrays already given to a .grad, and the caller's own seed: a second use is copied.
    stored: set[int] = {id(seed.data)} if isinstance(seed, Tensor) and seed is gradient else set()
    arrived: list[tuple[Tensor, Any]] = []

    def accumulate(t: Tensor, g: Any) -> None:  # (a leaf's or a retained tensor's)
        if isinstance(g, Tensor) and not create_graph:  # (only while jit captures a step)
            g = g.data
        # A pass-through VJP (add, reshape) may hand the same array, or a view of one,
        # to several tensors: each .grad gets an array of its own (copied by a primitive,
        # so a recorded backward records the copy too).
        data = g.data if isinstance(g, Tensor) else g
        # (an ndarray owns its memory when it has no base: cheaper than its flags object)
        owns = data.base is None if type(data) is np.ndarray else _owns_memory(data)
        if not owns or id(data) in stored:
            g = copy(g)
            data = g.data if isinstance(g, Tensor) else g
        stored.add(id(data))
        arrived.append((t, g if create_graph else Tensor._make(g)))

    _walk([output], [seed], create_graph, accumulate, interior=False)
    for t, g in arrived:
        t.grad = g if t.grad is None else t.grad + g


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
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif not isinstance(grad_outputs, (list, tuple)):
        if len(outputs) != 1:
            raise TypeError(f"grad: {len(outputs)} outputs need a list of {len(outputs)} "
                            f"grad_outputs, got one {type(grad_outputs).__name__}")
        grad_outputs = [grad_outputs]  # one number, array or Tensor: the one output's seed
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
    results: list[Tensor | None] = []
    for i, t in enumerate(inputs):
        g = wanted[id(t)]
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad: input {i} (shape {t.shape}) was not used to compute the outputs; "
                f"pass allow_unused=True to get None for it"
            )
        results.append(g if g is None or isinstance(g, Tensor) else Tensor._make(g))
    return tuple(results)
