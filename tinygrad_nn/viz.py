"""Draw the computation graph behind a tensor: Graphviz DOT text, SVG or PNG, inline in Jupyter.

The graph is the one the autograd walks: a node per tensor, a node per
primitive application, and edges input tensor → op → output tensor. Graphviz
lays the arrows out downwards, so the inputs and the weights are at the top and
the cost C at the bottom: reading the picture **top-down**, along the arrows, is
the forward pass (eq. 1.6 layer by layer); reading it **bottom-up**, against the
arrows, is the backward pass, which applies BP1–BP4 and their generalisation,
one vector–Jacobian product per op node.

With ``gradients=True`` every tensor shows its value and its gradient ∂C/∂t, the
output included (∂C/∂C = 1), and every edge into an op carries what the op's VJP
sends back along it: for single numbers the local derivative and the share, so a
tensor used twice shows its gradient as the sum of two shares.
:class:`Graph` wraps this for a notebook, where it draws itself.

>>> from tinygrad_nn import Tensor
>>> x = Tensor([1.0, 2.0], requires_grad=True)
>>> print(to_dot((x * 2).sum(), names={x: "x"}).splitlines()[0])
digraph "graph" {
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .autograd import toposort
from .explain import Names, Walk, network_graph, network_names, random_network, tensor_names, walk
from .nn import write_atomically
from .tensor import Tensor

__all__ = ["Graph", "GraphvizNotFound", "render", "svg", "to_dot", "training_step_graph"]

_SMALL = 12  # tensors with at most this many elements show their values (w² of [2, 3, 1]: 6)
_FORMATS = {".svg": "svg", ".png": "png"}

# One style per kind of node, so a reader tells parameters from data at a glance. Tensors
# are set in a monospace font, so that the columns of a matrix line up.
_STYLE_OP = 'shape=ellipse, style=filled, fillcolor="#eeeeee"'
_STYLE_PARAM = 'shape=box, style=filled, fillcolor="#cfe2ff", fontname="Courier"'  # needs grad
_STYLE_CONST = 'shape=box, style=dashed, fontcolor="#555555", fontname="Courier"'  # no grad
_STYLE_TENSOR = 'shape=box, style=rounded, fontname="Courier"'  # an intermediate result
_STYLE_SHARE = 'fontsize=9, fontcolor="#c0392b"'  # an edge's label: what flows back along it

_CAPTION = ("Forward: read down the arrows (inputs and weights at the top, {out} at the bottom).\n"
            "Backward: read up. Each tensor shows ∂{out}/∂(tensor), its gradient; each edge into "
            "an op shows, in red,\nwhat the op's VJP sends back along it (gradient × local "
            "derivative for single numbers); a tensor used twice adds its two shares.")


class GraphvizNotFound(RuntimeError):
    """:func:`render` needs Graphviz's ``dot`` program, and it is not on the PATH."""


def _escape(text: str) -> str:
    """Text for inside a double-quoted DOT string; a newline starts a new centred line."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(v: Any) -> str:
    return f"{float(np.asarray(v).reshape(())):.4g}"  # a number, or any array of one


def _values(array: np.ndarray) -> str:
    """An array's values on one line (``[[0.1257, -0.1321], [0.6404, 0.1049]]``)."""
    if array.ndim == 0:
        return _number(array)
    text = np.array2string(array, separator=", ", max_line_width=10_000,
                           formatter={"all": _number})
    return " ".join(text.split())


_PAD = "\u00a0"  # a no-break space: SVG would collapse ordinary ones


def _rows(array: np.ndarray) -> list[str]:
    """A small array as lines of text, a matrix one row per line, its columns aligned
    (in the monospace font of the tensor boxes)."""
    if array.ndim != 2:
        return [_values(array)]
    cells = [[_number(v) for v in row] for row in array]
    widths = [max(len(row[j]) for row in cells) for j in range(array.shape[1])]
    rows = [", ".join(c.rjust(w, _PAD) for c, w in zip(row, widths, strict=True))
            for row in cells]
    last = len(rows) - 1
    return [("[[" if i == 0 else _PAD + "[") + row + ("]]" if i == last else "],")
            for i, row in enumerate(rows)]


def _block(head: str, array: np.ndarray) -> list[str]:
    """``head`` and the array's values after it, or its shape if it is too big to read."""
    if array.size > _SMALL:
        return [f"{head} {array.shape}"]
    rows = _rows(array)
    indent = _PAD * (len(head) + 1)
    return [f"{head} {rows[0]}", *[indent + row for row in rows[1:]]]


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
    parts = [tensor._op.name]  # type: ignore[union-attr]  # (an op's node)
    # (`saved` is the forward's intermediate kept for the VJP, not an argument of the op)
    parts += [f"{k}={_short(v)}" for k, v in tensor._params.items()
              if v is not None and v is not False and k != "saved"]
    return " ".join(parts)


def _tensor_label(tensor: Tensor, name: str, gradient: str | None) -> str:
    head = f"{name} {tensor.shape}"
    if tensor.dtype != np.float64:
        head += f" {tensor.dtype}"
    lines = [head]
    if tensor.size <= _SMALL:
        lines += _block("=", tensor.data)
    if gradient is not None:
        lines.append(gradient)
    elif tensor.grad is not None:
        lines += _block("grad", tensor.grad.data)
    return "\n".join(lines)


def _const_label(value: Any) -> str:
    if value is None:
        return "const"
    array = np.asarray(value)
    if array.size <= _SMALL:
        return _values(array)
    return f"const {array.shape}"


def _edge_label(flow: Walk | None, node: Tensor, i: int, receivers: dict[int, int]) -> str:
    """What input i of node's op gets back: the share, as a number, small array or name."""
    if flow is None:
        return ""
    step = next((s for s in flow.steps if s.tensor is node), None)
    share = None if step is None else next((s for s in step.sent if s.input == i), None)
    if share is None:  # no gradient flows to this input (a constant)
        return ""
    if share.local is not None:
        local = _number(share.local)
        factor = f"({local})" if share.local < 0 else local
        return (f"∂{share.sender}/∂{share.receiver} = {local}\n"
                f"sends {_number(step.grad)} × {factor} = {_number(share.value)}")  # type: ignore[union-attr]  # (a share: a step)
    parent = node._parents[i]
    if receivers.get(id(parent), 0) < 2:  # the whole gradient of the input: see its box
        return f"sends ∂{flow.output}/∂{share.receiver}"
    return "\n".join(_block("sends", share.value))


def to_dot(tensor: Tensor, name: str = "graph", names: Names | None = None,
           gradients: bool = False) -> str:
    """The graph that produced ``tensor``, as Graphviz DOT text.

    One box per tensor, labelled with its name from ``names`` (else ``t<i>``, its node
    id), its shape, its dtype unless float64, its values if it has at most twelve
    elements (a matrix one row per line) and, once backward has filled it, its
    ``grad``. One ellipse per op, labelled with the primitive's name and any
    non-default parameters (``sum axis=0``). Edges run input → op → output (drawn
    downwards), inputs in argument order.

    With ``gradients=True`` (``tensor`` must have one element and require grad) every
    tensor shows ``∂out/∂t``, the gradient the backward pass gives it, ``out`` being
    ``tensor``'s name, whether or not ``.grad`` holds it; each edge into an op carries,
    in red, what the op's VJP sends back to that input; and a caption says how to read
    the picture. The gradients come from :func:`tinygrad_nn.explain.walk`, which uses
    the core's own walk and VJPs and stores nothing.

    Leaves that require grad (the parameters) are filled blue; constants, both
    tensors that need no gradient and plain numbers passed to an op, are dashed;
    the output has a double border. Node ids (``t0``, ``op3``, ``c1``) follow a
    fixed walk from the output, so the same graph always gives the same text.

    Args:
        tensor: the output whose graph is drawn.
        name: the graph's name in the DOT text.
        names: labels for tensors, keyed by the Tensor or by its ``id()``.
        gradients: show ∂out/∂t on every tensor and the shares on the edges.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot: expected a Tensor, got {type(tensor).__name__}")
    labels = tensor_names(tensor, names, "to_dot")
    flow = walk(tensor, names) if gradients else None
    totals = {} if flow is None else {id(s.tensor): s for s in flow.steps}
    receivers = {} if flow is None else {id(s.tensor): len(s.received) for s in flow.steps}
    tensors = toposort([tensor], every_tensor=True)
    ids = {id(t): f"t{i}" for i, t in enumerate(tensors)}
    out = [f'digraph "{_escape(name)}" {{', "  node [fontsize=10];", "  edge [arrowsize=0.7];"]
    if flow is not None:
        caption = _CAPTION.format(out=flow.output)
        out.append(f'  labelloc=b; fontsize=10; label="{_escape(caption)}";')
    n_consts = 0
    for t in tensors:
        tid = ids[id(t)]
        if t._op is not None:
            style = _STYLE_TENSOR
        else:
            style = _STYLE_PARAM if t.requires_grad else _STYLE_CONST
        if t is tensor:
            style += ", peripheries=2"
        step = totals.get(id(t))
        gradient = None
        if step is not None:
            gradient = "\n".join(_block(f"∂{flow.output}/∂{labels[id(t)]} =", step.grad))  # type: ignore[union-attr]  # (a step: a flow)
        # Left-justified lines (DOT's \l), so the rows of a matrix line up under each other.
        label = "".join(_escape(line) + "\\l" for line in
                        _tensor_label(t, labels[id(t)], gradient).split("\n"))
        out.append(f'  {tid} [label="{label}", {style}];')
        if t._op is None:
            continue
        op_id = f"op{tid[1:]}"  # op5 made t5
        out.append(f'  {op_id} [label="{_escape(_op_label(t))}", {_STYLE_OP}];')
        # A constant's value lives only in _arrays; if those were ever freed, say "const".
        arrays = t._arrays if len(t._arrays) == len(t._parents) else (None,) * len(t._parents)
        for i, (parent, value) in enumerate(zip(t._parents, arrays, strict=True)):
            if parent is None:  # a plain number or array: no tensor, so a node of its own
                cid = f"c{n_consts}"
                n_consts += 1
                out.append(f'  {cid} [label="{_escape(_const_label(value))}", {_STYLE_CONST}];')
                out.append(f"  {cid} -> {op_id};")
                continue
            share = _edge_label(flow, t, i, receivers)
            attrs = f' [label="{_escape(share)}", {_STYLE_SHARE}]' if share else ""
            out.append(f"  {ids[id(parent)]} -> {op_id}{attrs};")
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


def _run_dot(text: str, fmt: str) -> bytes:
    dot = shutil.which("dot")
    if dot is None:
        raise _graphviz_missing()
    done = subprocess.run([dot, f"-T{fmt}"], input=text.encode(), capture_output=True,
                          check=False)
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or "no message"
        raise RuntimeError(f"render: {dot} exited with status {done.returncode}: {message}")
    return done.stdout


# Graphviz writes its version into a comment; nothing else in its SVG varies between runs.
_GENERATOR = re.compile(r"<!-- Generated by graphviz[^>]*-->\n?")


def svg(dot_text: str) -> str:
    """The SVG Graphviz's ``dot`` draws for ``dot_text``, the same text on every run.

    The comment naming Graphviz's version is removed; the rest of ``dot``'s SVG (node
    ids, coordinates) depends only on the text and the Graphviz release.

    Raises:
        GraphvizNotFound: the ``dot`` program is not installed.
        RuntimeError: ``dot`` failed (its message is included).
    """
    return _GENERATOR.sub("", _run_dot(dot_text, "svg").decode())


def render(tensor: Tensor, path: str | os.PathLike, names: Names | None = None,
           gradients: bool = False) -> Path:
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
    suffix = path.suffix.lower()
    fmt = _FORMATS.get(suffix)
    if fmt is None and suffix != ".dot":
        shown = repr(path.suffix) if path.suffix else "no suffix"
        raise ValueError(
            f"render: cannot tell the format of {str(path)!r} from its suffix "
            f"({shown}); use .svg or .png for an image, or .dot for the DOT text"
        )
    if fmt is not None and shutil.which("dot") is None:
        raise _graphviz_missing()
    if not path.parent.is_dir():
        raise FileNotFoundError(f"render: the directory {str(path.parent)!r} does not exist")
    text = to_dot(tensor, name=path.stem, names=names, gradients=gradients)
    if fmt is None:  # .dot: the text itself
        data = text.encode()
    elif fmt == "svg":
        data = svg(text).encode()
    else:
        data = _run_dot(text, fmt)
    write_atomically(path, lambda f: f.write(data))
    return path


class Graph:
    """The graph behind a tensor as an object that draws itself: in Jupyter as SVG when
    Graphviz is installed, else as text (never an error); ``repr`` gives the text.

    >>> from tinygrad_nn import Tensor
    >>> x = Tensor(0.5, requires_grad=True)
    >>> print(Graph(x * x + x, names={x: "x"}, gradients=True).to_text())
    x () = 0.5   ∂t2/∂x = 2   (leaf)
    t1 () = 0.25   ∂t2/∂t1 = 1   = mul(x, x)
    t2 () = 0.75   ∂t2/∂t2 = 1   = add(t1, x)

    Args:
        tensor, names, gradients: as in :func:`to_dot`.
        name: the graph's name in the DOT text.
    """

    def __init__(self, tensor: Tensor, names: Names | None = None, gradients: bool = False,
                 name: str = "graph") -> None:
        self.tensor, self.names, self.gradients, self.name = tensor, names, gradients, name
        self._svg: str | None = None
        self._svg_failed = False

    def to_dot(self) -> str:
        """The DOT text (:func:`to_dot`)."""
        return to_dot(self.tensor, self.name, self.names, self.gradients)

    def to_svg(self) -> str:
        """The picture as SVG text (:func:`svg`); needs Graphviz's ``dot``."""
        if self._svg is None:
            self._svg = svg(self.to_dot())
        return self._svg

    def render(self, path: str | os.PathLike) -> Path:
        """Write the picture to ``path`` (.svg, .png or .dot), as :func:`render`."""
        return render(self.tensor, path, self.names, self.gradients)

    def to_text(self) -> str:
        """One line per tensor in topological order: value, gradient (if shown), how made."""
        labels = tensor_names(self.tensor, self.names, "Graph")
        flow = walk(self.tensor, self.names) if self.gradients else None
        grads = {} if flow is None else {id(s.tensor): s.grad for s in flow.steps}
        lines = []
        for t in toposort([self.tensor], every_tensor=True):
            name = labels[id(t)]
            line = f"{name} {t.shape} = {_values(t.data) if t.size <= _SMALL else '...'}"
            if id(t) in grads:
                g = grads[id(t)]
                shown = _values(g) if g.size <= _SMALL else str(g.shape)
                line += f"   ∂{flow.output}/∂{name} = {shown}"  # type: ignore[union-attr]  # (a grad: a flow)
            if t._op is None:
                line += "   (leaf)" if t.requires_grad else "   (constant)"
            else:
                args = [labels[id(p)] if p is not None else "const" for p in t._parents]
                line += f"   = {t._op.name}({', '.join(args)})"
            lines.append(line)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()

    def _picture(self) -> str | None:
        if self._svg is None and not self._svg_failed:
            try:
                self.to_svg()
            except (GraphvizNotFound, RuntimeError, OSError):
                self._svg_failed = True
        return self._svg

    def _repr_svg_(self) -> str | None:
        """Jupyter's picture: the SVG, or None (no Graphviz) so the notebook uses text."""
        return self._picture()

    def _repr_html_(self) -> str | None:
        """Jupyter's fallback when there is no picture: the text, in a <pre> block."""
        if self._picture() is not None:
            return None  # the SVG shows instead (a notebook prefers HTML when both exist)
        note = ("(Graphviz's dot is not installed, so this is the graph as text; "
                "apt-get install graphviz or brew install graphviz draws it.)")
        return f"<pre>{html.escape(self.to_text())}\n{html.escape(note)}</pre>"


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
        input), ready for :func:`to_dot`, :func:`render` or :class:`Graph`.
    """
    weights, biases, x, y = random_network(sizes, seed)
    net = network_graph(weights, biases, x[None, :], y[None, :], "quadratic")
    net.cost.backward()
    return net.cost, network_names(net)
