"""Draw the computation graph behind a tensor: Graphviz DOT text, and SVG or PNG.

The graph is the one the autograd walks: a node per tensor, a node per
primitive application, and edges input tensor → op → output tensor. Reading it
bottom-up is the forward pass (eq. 1.6 layer by layer); reading it top-down is
the order in which the backward pass applies BP1–BP4 and their generalisation,
one vector–Jacobian product per op node.

>>> from tinygrad_nn import Tensor
>>> x = Tensor([1.0, 2.0], requires_grad=True)
>>> print(to_dot((x * 2).sum(), names={x: "x"}).splitlines()[0])
digraph "graph" {
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .autograd import toposort
from .nn import write_atomically
from .tensor import Tensor

__all__ = ["GraphvizNotFound", "render", "to_dot", "training_step_graph"]

Names = Mapping[Any, str]  # keys: Tensors or their id()s

_SMALL = 4  # tensors with at most this many elements show their values
_FORMATS = {".svg": "svg", ".png": "png"}

# One style per kind of node, so a reader tells parameters from data at a glance.
_STYLE_OP = 'shape=ellipse, style=filled, fillcolor="#eeeeee"'
_STYLE_PARAM = 'shape=box, style=filled, fillcolor="#cfe2ff"'  # a leaf that requires grad
_STYLE_CONST = 'shape=box, style=dashed, fontcolor="#555555"'  # no grad flows into it
_STYLE_TENSOR = "shape=box, style=rounded"  # an intermediate result


class GraphvizNotFound(RuntimeError):
    """:func:`render` needs Graphviz's ``dot`` program, and it is not on the PATH."""


def _escape(text: str) -> str:
    """Text for inside a double-quoted DOT string; a newline starts a new centred line."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(v: Any) -> str:
    return f"{float(v):.4g}"


def _values(array: np.ndarray) -> str:
    if array.ndim == 0:
        return _number(array)
    text = np.array2string(array, separator=", ", max_line_width=10_000,
                           formatter={"all": _number})
    return " ".join(text.split())  # one line, even for a matrix


def _short(value: Any, limit: int = 24) -> str:
    """A parameter, compactly: arrays by shape, anything long cut with an ellipsis."""
    if isinstance(value, np.ndarray):
        text = f"array{value.shape}"
    elif isinstance(value, float):
        text = _number(value)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _op_label(tensor: Tensor) -> str:
    # None and False are every op's defaults here (axis=None, keepdims=False), so
    # leaving them out shows only the arguments that change what the op does.
    parts = [tensor._op.name]
    parts += [f"{k}={_short(v)}" for k, v in tensor._params.items()
              if v is not None and v is not False]
    return " ".join(parts)


def _tensor_label(tensor: Tensor, name: str | None) -> str:
    head = f"{name or 'tensor'} {tensor.shape}"
    if tensor.dtype != np.float64:
        head += f" {tensor.dtype}"
    lines = [head]
    if tensor.size <= _SMALL:
        lines.append(f"= {_values(tensor.data)}")
    if tensor.grad is not None:
        grad = tensor.grad.data
        lines.append(f"grad {_values(grad)}" if grad.size <= _SMALL else f"grad {grad.shape}")
    return "\n".join(lines)


def _const_label(value: Any) -> str:
    if value is None:
        return "const"
    array = np.asarray(value)
    if array.size <= _SMALL:
        return _values(array)
    return f"const {array.shape}"


def _name_table(names: Names | None) -> dict[int, str]:
    table: dict[int, str] = {}
    for key, label in (names or {}).items():
        if isinstance(key, Tensor):
            table[id(key)] = str(label)
        elif isinstance(key, int) and not isinstance(key, bool):
            table[key] = str(label)
        else:
            raise TypeError(
                f"to_dot: names must map Tensors (or their id()) to strings; "
                f"got a key of type {type(key).__name__}"
            )
    return table


def to_dot(tensor: Tensor, name: str = "graph", names: Names | None = None) -> str:
    """The graph that produced ``tensor``, as Graphviz DOT text.

    One box per tensor, labelled with its name from ``names`` (else ``tensor``),
    its shape, its dtype unless float64, its values if it has at most four
    elements and, once backward has filled it, its gradient (``grad (3, 2)``, or
    the values for a tiny tensor). One ellipse per op, labelled with the
    primitive's name and any non-default parameters (``sum axis=0``). Edges run
    input → op → output, inputs in argument order.

    Leaves that require grad (the parameters) are filled blue; constants, both
    tensors that need no gradient and plain numbers passed to an op, are dashed;
    the output has a double border. Node ids (``t0``, ``op3``, ``c1``) follow a
    fixed walk from the output, so the same graph always gives the same text.

    Args:
        tensor: the output whose graph is drawn.
        name: the graph's name in the DOT text.
        names: labels for tensors, keyed by the Tensor or by its ``id()``.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    table = _name_table(names)
    tensors = toposort([tensor], every_tensor=True)
    ids = {id(t): f"t{i}" for i, t in enumerate(tensors)}
    out = [f'digraph "{_escape(name)}" {{', "  node [fontsize=10];", "  edge [arrowsize=0.7];"]
    n_consts = 0
    for t in tensors:
        tid = ids[id(t)]
        if t._op is not None:
            style = _STYLE_TENSOR
        else:
            style = _STYLE_PARAM if t.requires_grad else _STYLE_CONST
        if t is tensor:
            style += ", peripheries=2"
        label = _escape(_tensor_label(t, table.get(id(t))))
        out.append(f'  {tid} [label="{label}", {style}];')
        if t._op is None:
            continue
        op_id = f"op{tid[1:]}"  # op5 made t5
        out.append(f'  {op_id} [label="{_escape(_op_label(t))}", {_STYLE_OP}];')
        # A constant's value lives only in _arrays; if those were ever freed, say "const".
        arrays = t._arrays if len(t._arrays) == len(t._parents) else (None,) * len(t._parents)
        for parent, value in zip(t._parents, arrays, strict=True):
            if parent is None:  # a plain number or array: no tensor, so a node of its own
                cid = f"c{n_consts}"
                n_consts += 1
                out.append(f'  {cid} [label="{_escape(_const_label(value))}", {_STYLE_CONST}];')
                out.append(f"  {cid} -> {op_id};")
            else:
                out.append(f"  {ids[id(parent)]} -> {op_id};")
        out.append(f"  {op_id} -> {tid};")
    out.append("}")
    return "\n".join(out) + "\n"


def _graphviz_missing() -> GraphvizNotFound:
    return GraphvizNotFound(
        "render: Graphviz's `dot` program is not installed (not found on PATH), so the graph "
        "cannot be drawn as SVG or PNG. Install Graphviz: `apt-get install graphviz` "
        "(Debian/Ubuntu) or `brew install graphviz` (macOS); or call "
        "tinygrad_nn.viz.to_dot(tensor) and paste the text into any Graphviz viewer."
    )


def render(tensor: Tensor, path: str | os.PathLike, names: Names | None = None) -> Path:
    """Draw the graph of ``tensor`` (see :func:`to_dot`) to an SVG or PNG file, or write
    its DOT text to a ``.dot`` file.

    The format follows the suffix of ``path`` (``.svg``, ``.png`` or ``.dot``; a ``.dot``
    file needs no Graphviz). The file is written to a temporary file beside ``path`` and
    moved over it only when complete, so an existing file is never left half-written.

    Raises:
        ValueError: the suffix is none of ``.svg``, ``.png``, ``.dot``.
        GraphvizNotFound: the ``dot`` program is not installed (for .svg and .png).
        FileNotFoundError: the directory of ``path`` does not exist.
        RuntimeError: ``dot`` failed (its message is included).

    Returns:
        ``path``, as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None and path.suffix.lower() != ".dot":
        suffix = repr(path.suffix) if path.suffix else "no suffix"
        raise ValueError(
            f"render: cannot tell the format of {str(path)!r} from its suffix "
            f"({suffix}); use .svg or .png for an image, or .dot for the DOT text"
        )
    if fmt is None:  # .dot: the text itself
        if not path.parent.is_dir():
            raise FileNotFoundError(f"render: the directory {str(path.parent)!r} does not exist")
        text = to_dot(tensor, name=path.stem, names=names)
        write_atomically(path, lambda f: f.write(text.encode()))
        return path
    dot = shutil.which("dot")
    if dot is None:
        raise _graphviz_missing()
    directory = path.parent
    if not directory.is_dir():
        raise FileNotFoundError(f"render: the directory {str(directory)!r} does not exist")
    text = to_dot(tensor, name=path.stem, names=names)
    # Named by hand rather than by mkstemp, whose 0600 mode would pass on to the image.
    tmp = directory / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        done = subprocess.run([dot, f"-T{fmt}", "-o", str(tmp)], input=text.encode(),
                              capture_output=True, check=False)
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace").strip() or "no message"
            raise RuntimeError(f"render: {dot} exited with status {done.returncode}: {message}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def training_step_graph(
    sizes: Sequence[int] = (2, 3, 1), seed: int = 0
) -> tuple[Tensor, dict[Tensor, str]]:
    """One training step of a small sigmoid network, recorded and differentiated.

    The network and the one example come from
    :func:`tinygrad_nn.explain.random_network`; the forward pass is built from
    primitives, ``z^l = linear(a^{l-1}, w^l, b^l)`` and ``a^l = sigmoid(z^l)``
    (eq. 1.6), with the quadratic cost C = 1/(2m) Σ ||a^L - y||² (eq. 2.1) over a
    batch of m = 1. ``backward`` has been called, so the parameters carry
    ∂C/∂w^l and ∂C/∂b^l (BP4, BP3) and each z^l carries δ^l (BP1, BP2).

    Returns:
        ``(C, names)``: the cost tensor and labels in the tutorial's notation
        (``x``, ``y``, ``w2``, ``b2``, ``z2``, ``a2``, ..., ``C``; layer 1 is the
        input), ready for :func:`to_dot` or :func:`render`.
    """
    from .explain import network_graph, random_network

    weights, biases, x, y = random_network(sizes, seed)
    net = network_graph(weights, biases, x[None, :], y[None, :], "quadratic")
    net.cost.backward()
    names = {net.x: "x", net.y: "y"}
    for layer, (w, b, z, a) in enumerate(
        zip(net.weights, net.biases, net.zs, net.activations[1:], strict=True), start=2
    ):
        names.update({w: f"w{layer}", b: f"b{layer}", z: f"z{layer}", a: f"a{layer}"})
    names[net.cost] = "C"
    return net.cost, names
