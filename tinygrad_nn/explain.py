"""BP1–BP4 beside autograd, layer by layer; and the reverse walk of a graph, step by step.

:func:`explain` builds a random sigmoid network, feeds one example x forward,
and records for every layer l = 2..L every term of the four equations:

- w^l, b^l, z^l = w^l a^{l-1} + b^l and a^l = σ(z^l) (eq. 1.6), from the reference;
- σ'(z^l), and the factor σ'(z^l) multiplies: ∇_a C_x for the output layer (BP1) or
  (w^{l+1})ᵀ δ^{l+1} for a hidden layer (BP2), beside ∂C/∂a^l as the autograd finds it;
- δ^l by BP1 or BP2, beside ∂C/∂z^l as the autograd finds it (``z.retain_grad()``);
- ∂C/∂b^l by BP3 and ∂C/∂w^l by BP4, beside the autograd's gradients;
- ``max_abs_diff``, the largest *absolute* difference |BP − autograd| over every
  entry of ∂C/∂a^l, δ^l, ∂C/∂b^l and ∂C/∂w^l (not a relative one: both sides are
  float64 sums of the same few products, so they agree to about 1e-16 times the
  entries, which are of order 1e-3 to 1 here).

The reference is :mod:`tinygrad_nn.backprop` (plain numpy, hand-derived); the
autograd side is the same network built from primitives (:func:`network_graph`).
Neither calls the other: this module only puts their answers side by side.

:func:`walk` shows the other half of the story on any small graph: the reverse walk
of ``backward()``, one tensor at a time, each tensor's gradient written as the sum of
the shares its consumers send it (``∂f/∂x = 3.297 + 2 = 5.297``). The totals are the
ones the core's own walk computes (:func:`tinygrad_nn.autograd.grad`); the shares are
the primitives' own VJPs applied to them, in the core's order
(:func:`tinygrad_nn.autograd.toposort`).

>>> trace = explain((2, 3, 1), seed=0)
>>> [layer.layer for layer in trace.layers]
[2, 3]
>>> trace.max_abs_diff < 1e-12
True
>>> print(walk_example().steps[-1].sum_text())
∂f/∂x = 3.297 + 2 = 5.297
"""

from __future__ import annotations

import dataclasses
import html
import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from . import _checks
from . import backprop as bp
from .autograd import grad, toposort
from .ops import Primitive, linear, sigmoid, sum_to
from .tensor import Tensor

__all__ = ["DIFFERENCE", "LayerTrace", "NetworkGraph", "Share", "Trace", "Walk", "WalkStep",
           "example_graph", "explain", "network_graph", "network_names", "random_network",
           "step_tape", "tensor_names", "walk", "walk_example", "walk_network"]

_COST_NAMES = tuple(bp.COSTS)  # the same names as the reference, so both sides agree


def random_network(
    sizes: Sequence[int], seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """A random network and one example, all float64, from ``np.random.default_rng(seed)``.

    Returns ``(weights, biases, x, y)``: ``weights = [w^2, ..., w^L]`` with ``w^l`` of
    shape ``(n_l, n_{l-1})`` and ``biases = [b^2, ..., b^L]``, entries N(0, 1); the
    input ``x`` of shape ``(n_1,)`` and the target ``y`` of shape ``(n_L,)``,
    uniform in [0, 1]. The draws come in that order, so a seed fixes everything.
    """
    sizes = tuple(_checks.widths("random_network", sizes))
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal((n, k)) for k, n in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [rng.standard_normal(n) for n in sizes[1:]]
    x = rng.uniform(0.0, 1.0, sizes[0])
    y = rng.uniform(0.0, 1.0, sizes[-1])
    return weights, biases, x, y


# --- the autograd side --------------------------------------------------------------------


def _quadratic(a: Tensor, y: Tensor, m: int) -> Tensor:
    # eq. 2.1, C = 1/(2m) Σ ||y - a||²; the difference is one node used twice, so the
    # walk must add two contributions there, exactly as it does for any shared value.
    diff = a - y
    return (diff * diff).sum() * (0.5 / m)


def _cross_entropy(a: Tensor, y: Tensor, m: int) -> Tensor:
    # C = -(1/m) Σ [y ln a + (1 - y) ln(1 - a)]; written out, not fused, so that the
    # cancellation of σ' that BP1 does by hand is left for the autograd to rediscover.
    return (y * a.log() + (1 - y) * (1 - a).log()).sum() * (-1.0 / m)


_AUTOGRAD_COSTS = {"quadratic": _quadratic, "cross-entropy": _cross_entropy}


@dataclass(frozen=True)
class NetworkGraph:
    """The recorded forward pass of :func:`network_graph`; every field is a Tensor.

    ``activations[0]`` is ``a^1 = x``; ``zs[i]`` and ``activations[i + 1]`` belong to
    layer ``l = i + 2``. Each z^l and a^l retains its gradient, so after
    ``cost.backward()`` ``zs[i].grad`` holds δ^l as the autograd finds it.
    """

    cost: Tensor
    x: Tensor
    y: Tensor
    weights: list[Tensor]
    biases: list[Tensor]
    zs: list[Tensor]
    activations: list[Tensor]


def network_graph(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    cost: str = "quadratic",
) -> NetworkGraph:
    """The sigmoid network's forward pass and mean cost, recorded from primitives.

    ``X`` has shape ``(m, n_1)`` and ``Y`` shape ``(m, n_L)``, one example per row;
    ``z^l = linear(a^{l-1}, w^l, b^l)`` and ``a^l = sigmoid(z^l)`` (eq. 1.6). The
    cost is the mean over the m rows (eq. 2.1 for ``"quadratic"``), so for a batch
    of one it is C_x, the cost whose gradient BP1–BP4 give. Backward is not called.
    """
    if cost not in _AUTOGRAD_COSTS:
        raise ValueError(f"network_graph: unknown cost {cost!r}; choose one of {_COST_NAMES}")
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0] or X.shape[0] == 0:
        raise ValueError(
            f"network_graph: X has shape {X.shape} and Y shape {Y.shape}; both need one "
            f"example per row, (m, n_1) and (m, n_L) with the same m >= 1"
        )
    x, y = Tensor(X), Tensor(Y)
    ws = [Tensor(w, requires_grad=True) for w in weights]
    bs = [Tensor(b, requires_grad=True) for b in biases]
    zs, activations = [], [x]
    for w, b in zip(ws, bs, strict=True):
        z = linear(activations[-1], w, b)
        z.retain_grad()  # its gradient is δ^l, which BP1/BP2 compute by hand
        a = sigmoid(z)
        a.retain_grad()
        zs.append(z)
        activations.append(a)
    c = _AUTOGRAD_COSTS[cost](activations[-1], y, X.shape[0])
    return NetworkGraph(c, x, y, ws, bs, zs, activations)


# --- the trace ----------------------------------------------------------------------------

#: What ``max_abs_diff`` measures, word for word in the text, the JSON and the picture.
DIFFERENCE = ("max |BP - autograd|, an absolute difference (not a relative one), over every "
              "entry of ∂C/∂a, δ, ∂C/∂b and ∂C/∂w")


@dataclass
class LayerTrace:
    """One layer l of a :class:`Trace`: every term of BP1–BP4; vectors are lists of floats,
    matrices lists of rows.

    ``w`` (n_l × n_{l-1}) and ``b`` are the layer's parameters, ``z`` and ``a`` its weighted
    input and activation (eq. 1.6) and ``sigma_prime`` is σ'(z^l). ``nabla_a`` is ∂C/∂a^l
    by hand: ∇_a C_x for the output layer (BP1's first factor), (w^{l+1})ᵀ δ^{l+1} for a
    hidden layer (BP2's). ``delta`` is δ^l = ``nabla_a`` ⊙ ``sigma_prime``, from the
    reference's BP1 (l = L) or BP2 (l < L); ``nabla_b`` is ∂C/∂b^l by BP3 and ``nabla_w``
    is ∂C/∂w^l by BP4. The ``*_autograd`` fields are the same quantities from the
    autograd. ``max_abs_diff`` is the largest absolute difference ``|BP - autograd|`` over
    every entry of the four pairs (see :data:`DIFFERENCE`).
    """

    layer: int
    w: list[list[float]]
    b: list[float]
    z: list[float]
    a: list[float]
    sigma_prime: list[float]
    nabla_a: list[float]
    nabla_a_autograd: list[float]
    delta: list[float]
    delta_autograd: list[float]
    nabla_b: list[float]
    nabla_b_autograd: list[float]
    nabla_w: list[list[float]]
    nabla_w_autograd: list[list[float]]
    max_abs_diff: float

    @property
    def neurons(self) -> int:
        """The number of neurons in this layer, n_l."""
        return len(self.z)

    @property
    def max_diff(self) -> float:
        """The name `max_abs_diff` had before (kept for code written against it)."""
        return self.max_abs_diff


@dataclass
class Trace:
    """What :func:`explain` found: the example, both costs and one record per layer."""

    sizes: tuple[int, ...]
    seed: int
    cost: str
    x: list[float]
    y: list[float]
    cost_value: float  # C_x from the reference's feedforward
    cost_value_autograd: float  # the same C_x from the recorded graph
    layers: list[LayerTrace]

    @property
    def max_abs_diff(self) -> float:
        """The largest absolute difference ``|BP - autograd|`` over every layer."""
        return max(layer.max_abs_diff for layer in self.layers)

    @property
    def max_diff(self) -> float:
        """The name `max_abs_diff` had before (kept for code written against it; the JSON
        keeps the key too)."""
        return self.max_abs_diff

    def to_json(self) -> str:
        """The trace as JSON: sizes, seed, cost, x, y, the costs, one record per layer with
        every field of :class:`LayerTrace` and its ``neurons``, ``max_abs_diff`` over all
        layers, and ``difference``, the sentence saying what ``max_abs_diff`` measures."""
        record = dataclasses.asdict(self)
        record["sizes"] = list(self.sizes)
        record["max_abs_diff"] = record["max_diff"] = self.max_abs_diff
        record["difference"] = DIFFERENCE
        for out, layer in zip(record["layers"], self.layers, strict=True):
            out["neurons"], out["max_diff"] = layer.neurons, layer.max_abs_diff
        return json.dumps(record, ensure_ascii=False)

    def to_text(self) -> str:
        """A terminal-width report: one block per layer, each row naming its equation, and
        each block ending with neuron 1's numbers multiplied out, to redo by hand."""
        entries: list[tuple[str | None, str]] = [
            (None, f"BP1-BP4 beside autograd: sizes {self.sizes}, seed {self.seed}, "
                   f"{self.cost} cost, one example (C = C_x)"),
            *((None, line) for line in textwrap.wrap(f"difference: {DIFFERENCE}", 100)),
            ("x = a^1", _cells(self.x)),
            ("y (target)", _cells(self.y)),
            ("C_x  BP feedforward", _cells([self.cost_value])),
            ("C_x  autograd", _cells([self.cost_value_autograd])),
        ]
        for i in range(len(self.layers)):
            entries += [(None, ""), *_layer_entries(self, i)]
        entries += [(None, ""), (None, f"max |BP - autograd| over all layers: "
                                       f"{self.max_abs_diff:.1e}")]
        width = max(len(label) for label, _ in entries if label is not None) + 2
        lines = [text if label is None else f"  {label:<{width}}{text}"
                 for label, text in entries]
        return "\n".join(lines) + "\n"

    def to_dot(self) -> str:
        """The trace as a picture, in Graphviz DOT: one table per layer, every term of BP1–BP4
        in a row beside the equation it comes from; blue arrows carry a^{l-1} forward into
        z^l, red ones carry ∇_a C (BP1) and (w^{l+1})ᵀδ^{l+1} (BP2) back.

        Numbers are shown to 4 significant digits and the agreement with the autograd as a
        bound (``< 1e-15``), so the picture is the same on every machine.
        """
        return _trace_dot(self)


_CELL = 11  # width of one number: "-1.234e-05" plus a space
_MAX_CELLS = 7  # wider vectors are cut, so a row fits a terminal (under 120 columns)


def _cells(values: Sequence[float]) -> str:
    shown = values if len(values) <= _MAX_CELLS else values[: _MAX_CELLS - 2]
    text = "".join(f"{v:>{_CELL}.4g}" for v in shown)
    if len(shown) < len(values):
        text += f"   ... ({len(values)} values)"
    return text


def _too_big(rows: Sequence[Sequence[float]]) -> tuple[float, int, int] | None:
    """(norm, rows, columns) of a matrix too big to read, which the text and the picture
    summarise by its norm; None if it is shown whole."""
    if len(rows) > _MAX_CELLS or len(rows[0]) > _MAX_CELLS:
        return float(np.linalg.norm(np.asarray(rows))), len(rows), len(rows[0])
    return None


def _matrix(label: str, rows: Sequence[Sequence[float]]) -> list[tuple[str | None, str]]:
    # A matrix too big to read is summarised; the max difference row still covers it all.
    big = _too_big(rows)
    if big is not None:
        return [(label, f"  ||.|| = {big[0]:.4g}  ({big[1]} x {big[2]})")]
    return [(label if i == 0 else "", _cells(r)) for i, r in enumerate(rows)]


def _bp_rule(trace: Trace, i: int) -> tuple[str, str, str]:
    """Layer i's first factor of δ, its rule (BP1 for the output layer, BP2 for a hidden
    one) and the formula of δ, as the text and the picture both label them."""
    n = trace.layers[i].layer
    if i == len(trace.layers) - 1:
        return (f"∇_a C = {_NABLA_A[trace.cost][0].format(L=n)}", "BP1",
                f"δ^{n} = ∇_a C ⊙ σ'(z^{n})")
    return f"(w^{n + 1})ᵀδ^{n + 1}", "BP2", f"δ^{n} = (w^{n + 1})ᵀδ^{n + 1} ⊙ σ'(z^{n})"


def _g(v: float) -> str:
    return f"{v:.4g}"


def _factor(v: float) -> str:
    """A number as the second factor of a product: negative ones in parentheses."""
    return f"({v:.4g})" if v < 0 else f"{v:.4g}"


# ∇_a C_x, the first factor of BP1, by cost: its formula (for layer L) and its value.
_NABLA_A = {
    "quadratic": ("a^{L} - y", lambda a, y: a - y),
    "cross-entropy": ("(a^{L} - y) / (a^{L} (1 - a^{L}))", lambda a, y: (a - y) / (a * (1 - a))),
}


def _layer_entries(trace: Trace, i: int) -> list[tuple[str | None, str]]:
    t, n = trace.layers[i], trace.layers[i].layer
    output = i == len(trace.layers) - 1
    plural = "" if t.neurons == 1 else "s"
    first, bp, delta = _bp_rule(trace, i)
    return [
        (None, f"layer {n} ({t.neurons} neuron{plural}, {'output' if output else 'hidden'})"),
        *_matrix(f"w^{n}", t.w),
        (f"b^{n}", _cells(t.b)),
        (f"z^{n} = w^{n} a^{n - 1} + b^{n}", _cells(t.z)),
        (f"a^{n} = σ(z^{n})  eq. 1.6", _cells(t.a)),
        (f"σ'(z^{n}) = a^{n}(1 - a^{n})", _cells(t.sigma_prime)),
        (f"{first}  {bp}", _cells(t.nabla_a)),
        (f"∂C/∂a^{n}  autograd", _cells(t.nabla_a_autograd)),
        (f"{delta}  {bp}", _cells(t.delta)),
        (f"∂C/∂z^{n}  autograd", _cells(t.delta_autograd)),
        (f"∂C/∂b^{n} = δ^{n}  BP3", _cells(t.nabla_b)),
        (f"∂C/∂b^{n}  autograd", _cells(t.nabla_b_autograd)),
        *_matrix(f"∂C/∂w^{n} = δ^{n} (a^{n - 1})ᵀ  BP4", t.nabla_w),
        *_matrix(f"∂C/∂w^{n}  autograd", t.nabla_w_autograd),
        ("max |BP - autograd|", f"{t.max_abs_diff:>{_CELL}.1e}"),
        *[(None, f"  by hand: {line}") for line in _by_hand(trace, i)],
    ]


def _by_hand(trace: Trace, i: int) -> list[str]:
    """Neuron 1's δ and ∂C/∂w_11 multiplied out from the rows above, 4 digits each."""
    t, n = trace.layers[i], trace.layers[i].layer
    d, sp = t.delta[0], t.sigma_prime[0]
    if i == len(trace.layers) - 1:  # BP1
        a, y = t.a[0], trace.y[0]
        if trace.cost == "quadratic":
            delta = (f"δ^{n}_1 = (a^{n}_1 - y_1) σ'(z^{n}_1) = ({_g(a)} - {_g(y)}) × {_g(sp)} "
                     f"= {_g(d)}")
        else:
            delta = (f"δ^{n}_1 = a^{n}_1 - y_1 = {_g(a)} - {_g(y)} = {_g(d)}  (σ'(z^{n}_1) "
                     f"cancels the denominator of ∇_a C)")
    else:  # BP2: δ^n_1 = Σ_k w^{n+1}_k1 δ^{n+1}_k × σ'(z^n_1)
        above = trace.layers[i + 1]
        terms = [(row[0], dk) for row, dk in zip(above.w, above.delta, strict=True)]
        if len(terms) == 1:
            (w, dk), = terms
            delta = (f"δ^{n}_1 = w^{n + 1}_11 δ^{n + 1}_1 σ'(z^{n}_1) = {_g(w)} × {_factor(dk)} "
                     f"× {_g(sp)} = {_g(d)}")
        elif len(terms) <= 3:
            total = " + ".join(f"{_g(w)} × {_factor(dk)}" for w, dk in terms)
            delta = (f"δ^{n}_1 = (Σ_k w^{n + 1}_k1 δ^{n + 1}_k) σ'(z^{n}_1) = ({total}) × "
                     f"{_g(sp)} = {_g(d)}")
        else:
            delta = (f"δ^{n}_1 = ((w^{n + 1})ᵀδ^{n + 1})_1 σ'(z^{n}_1) = {_g(t.nabla_a[0])} × "
                     f"{_g(sp)} = {_g(d)}")
    previous = trace.x[0] if i == 0 else trace.layers[i - 1].a[0]
    weight = (f"∂C/∂w^{n}_11 = a^{n - 1}_1 δ^{n}_1 = {_g(previous)} × {_factor(d)} "
              f"= {_g(t.nabla_w[0][0])}  BP4")
    return [delta, weight]


def _max_abs_diff(*pairs: tuple[np.ndarray, np.ndarray]) -> float:
    return max(float(np.max(np.abs(p - q))) for p, q in pairs)


def explain(sizes: Sequence[int] = (2, 3, 1), seed: int = 0, cost: str = "quadratic") -> Trace:
    """Trace BP1–BP4 and the autograd, layer by layer, on one random network and example.

    The network and example come from :func:`random_network`. The reference side
    uses :func:`tinygrad_nn.backprop.feedforward` (z^l, a^l; eq. 1.6),
    :func:`~tinygrad_nn.backprop.sigmoid_prime` (σ'(z^l)),
    :func:`~tinygrad_nn.backprop.backprop_deltas` (δ^l; BP1, BP2) and
    :func:`~tinygrad_nn.backprop.backprop` (BP3, BP4); the factor σ'(z^l) multiplies,
    ∇_a C_x or (w^{l+1})ᵀδ^{l+1}, is written out here from those. The autograd side is
    :func:`network_graph` on a batch of one, whose mean cost is C_x itself, so no 1/m
    factor separates the two. Each layer's ``max_abs_diff`` is the largest absolute
    difference |BP − autograd| (see :data:`DIFFERENCE`); for float64 it is about 1e-16
    times the size of the entries (about 1e-17 on the documented [2, 3, 1] network, 2e-19 for
    its hidden layer).

    Args:
        sizes: neurons per layer, input first (layer 1 is the input).
        seed: seeds ``np.random.default_rng`` for the weights and the example.
        cost: ``"quadratic"`` (eq. 2.1) or ``"cross-entropy"``.
    """
    sizes = tuple(_checks.widths("explain", sizes))
    if cost not in bp.COSTS:
        raise ValueError(f"explain: unknown cost {cost!r}; choose one of {_COST_NAMES}")
    weights, biases, x, y = random_network(sizes, seed)

    zs, activations = bp.feedforward(weights, biases, x)
    deltas = bp.backprop_deltas(weights, biases, x, y, cost)
    nabla_b, nabla_w = bp.backprop(weights, biases, x, y, cost)
    cost_value = float(bp.COSTS[cost].fn(activations[-1], y))
    # The first factor of BP1 (∇_a C_x) and of BP2 ((w^{l+1})ᵀ δ^{l+1}), layer by layer.
    nabla_a = [weights[i + 1].T @ deltas[i + 1] for i in range(len(weights) - 1)]
    nabla_a.append(_NABLA_A[cost][1](activations[-1], y))

    graph = network_graph(weights, biases, x[None, :], y[None, :], cost)
    graph.cost.backward()

    layers = []
    for i in range(len(weights)):
        # Row 0 of each autograd gradient: the batch holds the one example. (Every .grad
        # was set by the backward above, hence the ignores.)
        na_ag, delta_ag = graph.activations[i + 1].grad.data[0], graph.zs[i].grad.data[0]  # type: ignore[union-attr]
        nb_ag, nw_ag = graph.biases[i].grad.data, graph.weights[i].grad.data  # type: ignore[union-attr]
        layers.append(LayerTrace(
            layer=i + 2, w=weights[i].tolist(), b=biases[i].tolist(),
            z=zs[i].tolist(), a=activations[i + 1].tolist(),
            sigma_prime=np.asarray(bp.sigmoid_prime(zs[i])).tolist(),
            nabla_a=nabla_a[i].tolist(), nabla_a_autograd=na_ag.tolist(),
            delta=deltas[i].tolist(), delta_autograd=delta_ag.tolist(),
            nabla_b=nabla_b[i].tolist(), nabla_b_autograd=nb_ag.tolist(),
            nabla_w=nabla_w[i].tolist(), nabla_w_autograd=nw_ag.tolist(),
            max_abs_diff=_max_abs_diff((nabla_a[i], na_ag), (deltas[i], delta_ag),
                                       (nabla_b[i], nb_ag), (nabla_w[i], nw_ag)),
        ))
    return Trace(
        sizes=sizes, seed=seed, cost=cost, x=x.tolist(), y=y.tolist(),
        cost_value=cost_value, cost_value_autograd=graph.cost.item(), layers=layers,
    )


# --- the trace as a picture ---------------------------------------------------------------

_SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
_FILL = {"param": "#cfe2ff", "forward": "#eef4ff", "backward": "#fde7e7", "grad": "#fff1d6"}
_FORWARD, _BACKWARD = "#3465a4", "#c0392b"
_IN = ("forward", "a")  # the input row's colour and port


def _sup(text: str) -> str:
    """``w^12`` as ``w¹²``: the picture writes layer numbers as the tutorial does."""
    head, *parts = text.split("^")
    out = [head]
    for part in parts:
        k = len(part) - len(part.lstrip("0123456789"))
        out.append(part[:k].translate(_SUPERSCRIPTS) + part[k:])
    return "".join(out)


def _html(text: str) -> str:
    return html.escape(_sup(text), quote=True)


def _html_rows(label: str, rule: str, values: Sequence, fill: str, port: str,
               width: int) -> list[str]:
    """Table rows of one quantity: a vector in one row, a matrix in one row per row."""
    rows = values if isinstance(values[0], list) else [values]
    big = _too_big(rows)
    if big is not None:
        texts = [[f"‖·‖ = {big[0]:.4g} ({big[1]} × {big[2]})"]]
    else:
        texts = [[_g(v) for v in row] for row in rows]
    out = []
    for r, row in enumerate(texts):
        head = ""
        if r == 0:
            span = f' rowspan="{len(texts)}"' if len(texts) > 1 else ""
            tag = f'<font point-size="9">{_html(rule)}</font>' if rule else ""
            head = (f'<td align="left" bgcolor="{_FILL[fill]}" port="{port}"{span}>'
                    f"{_html(label)}</td><td{span}>{tag}</td>")
        cells = [f'<td align="right">{html.escape(v)}</td>' for v in row]
        cells += ['<td border="0"></td>'] * (width - len(row))
        if r == 0:  # a second port at the table's right edge, where arrows leave or arrive
            cells[-1] = cells[-1].replace("<td", f'<td port="{port}_e"', 1)
        out.append(f"<tr>{head}{''.join(cells)}</tr>")
    return out


def _html_table(title: str, quantities: Sequence[tuple[str, str, Sequence, str, str]]) -> str:
    def columns(values: Sequence) -> int:
        n = len(values[0]) if isinstance(values[0], list) else len(values)
        return n if n <= _MAX_CELLS else 1
    width = max(columns(values) for _, _, values, _, _ in quantities)
    rows = [f'<tr><td colspan="{width + 2}" bgcolor="#e8e8e8"><b>{_html(title)}</b></td></tr>']
    for label, rule, values, fill, port in quantities:
        rows += _html_rows(label, rule, values, fill, port, width)
    return ('<<table border="0" cellborder="1" cellspacing="0" cellpadding="3">'
            + "".join(rows) + "</table>>")


def _layer_quantities(trace: Trace, i: int) -> list[tuple[str, str, Sequence, str, str]]:
    t, n = trace.layers[i], trace.layers[i].layer
    first, rule, delta = _bp_rule(trace, i)
    return [
        (f"w^{n}", "", t.w, "param", "w"),
        (f"b^{n}", "", t.b, "param", "b"),
        (f"z^{n} = w^{n}a^{n - 1} + b^{n}", "eq. 1.6", t.z, "forward", "z"),
        (f"a^{n} = σ(z^{n})", "eq. 1.6", t.a, "forward", "a"),
        (f"σ'(z^{n}) = a^{n}(1 - a^{n})", "", t.sigma_prime, "forward", "sp"),
        (first, rule, t.nabla_a, "backward", "na"),
        (delta, rule, t.delta, "backward", "delta"),
        (f"∂C/∂b^{n} = δ^{n}", "BP3", t.nabla_b, "grad", "nb"),
        (f"∂C/∂w^{n} = δ^{n}(a^{n - 1})ᵀ", "BP4", t.nabla_w, "grad", "nw"),
    ]


def _trace_dot(trace: Trace) -> str:
    last = trace.layers[-1].layer
    agree = ("< 1e-15" if trace.max_abs_diff < 1e-15 else f"= {trace.max_abs_diff:.1e}")
    caption = (f"BP1–BP4 on the {list(trace.sizes)} network (seed {trace.seed}, {trace.cost} "
               f"cost, one example x).<br/>Blue arrows: forward, eq. 1.6. Red arrows: backward, "
               f"BP1 then BP2.<br/>The autograd finds the same numbers: max |BP − autograd| "
               f"{html.escape(agree)} (an absolute difference).")
    cost_rule = "eq. 2.1" if trace.cost == "quadratic" else "cross-entropy"
    out = ['digraph "trace" {', "  rankdir=LR;", "  nodesep=0.4;", "  ranksep=0.6;",
           '  fontname="Helvetica";', "  fontsize=11;", "  labelloc=t;",
           f"  label=<{caption}>;",
           '  node [shape=plain, fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=9];',
           f"  l1 [label={_html_table('layer 1 (input)', [('x = a^1', '', trace.x, *_IN)])}];"]
    for i, t in enumerate(trace.layers):
        kind = "output" if t.layer == last else "hidden"
        plural = "" if t.neurons == 1 else "s"
        title = f"layer {t.layer} ({t.neurons} neuron{plural}, {kind})"
        out.append(f"  l{t.layer} [label={_html_table(title, _layer_quantities(trace, i))}];")
    cost_rows = [("y (target)", "", trace.y, "forward", "y"),
                 ("C = C_x", cost_rule, [trace.cost_value], "forward", "c")]
    out.append(f"  cost [label={_html_table('cost', cost_rows)}];")
    for n in range(2, last + 1):
        out.append(f'  l{n - 1}:a_e:e -> l{n}:z:w [color="{_FORWARD}", '
                   f'label=<{_html(f"a^{n - 1}")}>];')
    out.append(f'  l{last}:a_e:e -> cost:c:w [color="{_FORWARD}", '
               f'label=<{_html(f"a^{last}")}>];')
    out.append(f'  cost:c:w -> l{last}:na_e:e [color="{_BACKWARD}", style=dashed, '
               f'constraint=false, label="BP1"];')
    for n in range(last - 1, 1, -1):
        out.append(f'  l{n + 1}:delta:w -> l{n}:na_e:e [color="{_BACKWARD}", style=dashed, '
                   f'constraint=false, label=<BP2: {_html(f"(w^{n + 1})ᵀδ^{n + 1}")}>];')
    out.append("}")
    return "\n".join(out) + "\n"


# --- the reverse walk, step by step -------------------------------------------------------

Names = Mapping[Any, str]  # keys: Tensors or their id()s


def tensor_names(output: Tensor, names: Names | None = None,
                 who: str = "tensor_names") -> dict[int, str]:
    """A name for every tensor of the graph behind ``output``, keyed by ``id()``.

    A tensor named in ``names`` (keyed by the Tensor or by its ``id()``) keeps its name;
    every other one is called ``t<i>``, ``i`` its place in the core's topological order
    (:func:`~tinygrad_nn.autograd.toposort` with ``every_tensor=True``), the ids
    :func:`tinygrad_nn.viz.to_dot` gives its nodes, so the text and the picture agree.
    """
    given: dict[int, str] = {}
    for key, label in (names or {}).items():
        if isinstance(key, Tensor):
            given[id(key)] = str(label)
        elif isinstance(key, int) and not isinstance(key, bool):
            given[key] = str(label)
        else:
            raise TypeError(f"{who}: names must map Tensors (or their id()) to strings; "
                            f"got a key of type {type(key).__name__}")
    return {id(t): given.get(id(t), f"t{i}")
            for i, t in enumerate(toposort([output], every_tensor=True))}


@dataclass
class Share:
    """What one VJP sends back along one edge: ``sender``'s op, applied to ∂out/∂sender,
    gives ``value``, ``receiver``'s share of the gradient (``receiver`` is input number
    ``input`` of the op). ``local`` is the local derivative ∂sender/∂receiver when both are
    single numbers (the share is then gradient × local), else None."""

    sender: str
    receiver: str
    input: int
    value: np.ndarray
    local: float | None


@dataclass
class WalkStep:
    """One tensor of the walk: the shares that arrived at it and what its op sends on.

    ``grad`` is ∂out/∂(this tensor) as the core's walk computes it; it is the sum of
    ``received`` (in the order they arrived), or the seed 1 for the output itself.
    ``sent`` lists the shares its op's VJPs send to its inputs (none for a leaf).
    """

    name: str
    output: str
    value: np.ndarray
    grad: np.ndarray
    received: list[Share]
    sent: list[Share]
    op: str | None = None
    tensor: Tensor | None = dataclasses.field(default=None, repr=False, compare=False)

    def sum_text(self) -> str:
        """``∂f/∂x = 3.297 + 2 = 5.297``: the gradient as the sum of what arrived."""
        head = f"∂{self.output}/∂{self.name} = "
        if not self.received:
            return head + f"{_show(self.grad)} (the seed)"
        if len(self.received) == 1:
            return head + _show(self.grad)
        parts = [_show(s.value) for s in self.received]
        plus = " + ".join(p if i == 0 or not p.startswith("-") else f"({p})"
                          for i, p in enumerate(parts))
        return head + f"{plus} = {_show(self.grad)}"


@dataclass
class Walk:
    """The reverse walk of :func:`walk`: the forward listing and one step per tensor."""

    output: str
    forward: list[str]
    steps: list[WalkStep]
    title: str = ""

    def to_text(self) -> str:
        """The forward pass in order, then the backward pass one tensor at a time."""
        lines = [self.title or f"The reverse walk of {self.output}, as backward() takes it",
                 "Each step takes the next tensor in reverse topological order; its gradient is",
                 "the sum of the shares its consumers sent it, and its op's VJPs send a share to",
                 "each input (for single numbers: gradient × local derivative).", "",
                 "forward (topological order):", *[f"  {line}" for line in self.forward], "",
                 "backward (reverse order):"]
        for k, step in enumerate(self.steps, start=1):
            senders = ", ".join(s.sender for s in step.received)
            lines.append(f"  {k}. {step.sum_text()}" + (f"   (from {senders})" if senders
                                                         else ""))
            if step.sent:
                shares = ",  ".join(f"{s.receiver}: {_share_text(step, s)}" for s in step.sent)
                lines.append(f"       {step.op}'s VJP sends  {shares}")
        leaves = [s for s in self.steps if s.op is None]
        if leaves:
            lines += ["", "backward() stores the leaves' totals in .grad:",
                      *[f"  {s.name}.grad = {_show(s.grad)}" for s in leaves]]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        """The walk as JSON: output, forward lines, and per step its name, op, value, grad,
        and the shares received and sent (sender, receiver, input, value, local)."""
        def share(s: Share) -> dict:
            return {"sender": s.sender, "receiver": s.receiver, "input": s.input,
                    "value": s.value.tolist(), "local": s.local}
        steps = [{"name": s.name, "op": s.op, "value": s.value.tolist(), "grad": s.grad.tolist(),
                  "received": [share(r) for r in s.received], "sent": [share(r) for r in s.sent]}
                 for s in self.steps]
        return json.dumps({"output": self.output, "title": self.title, "forward": self.forward,
                           "steps": steps}, ensure_ascii=False)


_SHOWN = 12  # arrays with at most this many entries are written out


def _show(value: Any) -> str:
    """A value compactly: one number as 4 digits, a small array on one line, else its shape."""
    array = np.asarray(value)
    if array.size == 1:
        return _g(float(array.reshape(())))
    if array.size > _SHOWN:
        return f"array{array.shape}"
    text = np.array2string(array, separator=", ", max_line_width=10_000,
                           formatter=cast(Any, {"all": lambda v: _g(float(v))}))
    return " ".join(text.split())


def _share_text(step: WalkStep, share: Share) -> str:
    if share.local is None:
        return _show(share.value)
    return f"{_show(step.grad)} × {_factor(share.local)} = {_show(share.value)}"


def _vjp(node: Tensor, i: int, g: np.ndarray) -> np.ndarray:
    """Input i's share of g, ∂out/∂node: the primitive's own VJP, summed back to the input's
    shape where it broadcast, as the core's walk does."""
    parent = cast(Tensor, node._parents[i])  # (called for the tensor inputs of an op's node)
    op = cast(Primitive, node._op)
    share = np.asarray(op.vjps[i](g, node.data, *node._arrays, **node._params))
    if share.shape != parent.shape:
        share = np.asarray(sum_to(share, parent.shape))
    return share.astype(parent.dtype, copy=False)


def _sent(node: Tensor, g: np.ndarray, label: dict[int, str]) -> list[tuple[Tensor, Share]]:
    if node._op is None:
        return []
    out = []
    for i, parent in enumerate(node._parents):
        if parent is None or not parent.requires_grad:
            continue  # no gradient flows to a constant
        local = None
        if node.size == 1 and parent.size == 1:  # the VJP of 1 is the local derivative
            local = float(_vjp(node, i, np.ones_like(g)).reshape(()))
        share = Share(label[id(node)], label[id(parent)], i, _vjp(node, i, g), local)
        out.append((parent, share))
    return out


def _forward_line(t: Tensor, label: dict[int, str]) -> str:
    if t._op is None:
        kind = "leaf" if t.requires_grad else "constant"
        return f"{label[id(t)]} = {_show(t.data)}   ({kind})"
    args = [label[id(p)] if p is not None else _show(a)
            for p, a in zip(t._parents, t._arrays, strict=False)]
    return f"{label[id(t)]} = {t._op.name}({', '.join(args)}) = {_show(t.data)}"


def walk(output: Tensor, names: Names | None = None, title: str = "") -> Walk:
    """The reverse walk of ``output.backward()``, step by step, each gradient as a sum.

    The tensors are taken in the core's reverse topological order
    (:func:`~tinygrad_nn.autograd.toposort`); each one's gradient ∂output/∂t is the one
    the core's walk computes (:func:`~tinygrad_nn.autograd.grad`, which stores nothing),
    shown as the sum of the shares its consumers sent it; each share is the consumer's
    primitive VJP (:mod:`tinygrad_nn.ops`) applied to the consumer's gradient. Nothing is
    differentiated twice and no ``.grad`` is changed.

    Args:
        output: a one-element tensor that requires grad (a cost).
        names: labels for tensors, keyed by the Tensor or its ``id()`` (the rest are
            ``t<i>``, as in :func:`tinygrad_nn.viz.to_dot`).
        title: the first line of :meth:`Walk.to_text`.
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"walk: expected a Tensor, got {type(output).__name__}")
    if output.size != 1 or not output.requires_grad:
        raise ValueError(f"walk: the output has shape {output.shape} and requires_grad="
                         f"{output.requires_grad}; walk a one-element tensor computed from "
                         f"tensors that require grad (a cost)")
    label = tensor_names(output, names, "walk")
    order = toposort([output])
    totals = {id(t): g.data for t, g in zip(order, grad(output, order, allow_unused=True),
                                             strict=True) if g is not None}
    arrived: dict[int, list[Share]] = {}
    steps = []
    for node in reversed(order):
        g = totals[id(node)]
        sent = _sent(node, g, label)
        for parent, share in sent:
            arrived.setdefault(id(parent), []).append(share)
        steps.append(WalkStep(label[id(node)], label[id(output)], node.data, g,
                              arrived.pop(id(node), []), [s for _, s in sent],
                              node._op.name if node._op is not None else None, node))
    forward = [_forward_line(t, label) for t in toposort([output], every_tensor=True)]
    return Walk(label[id(output)], forward, steps, title)


def example_graph() -> tuple[Tensor, dict[Tensor, str]]:
    """f = x·y + eˣ·y at x = 0.5, y = 2, recorded (backward not called), with the names
    ``{x: "x", y: "y", f: "f"}``: the small graph of :func:`walk_example`."""
    x = Tensor(0.5, requires_grad=True)
    y = Tensor(2.0, requires_grad=True)
    f = x * y + x.exp() * y
    return f, {x: "x", y: "y", f: "f"}


def walk_example() -> Walk:
    """The walk of :func:`example_graph`'s f = x·y + eˣ·y at x = 0.5, y = 2: x feeds two
    ops, so its gradient is a sum, ∂f/∂x = eˣ·y + y = 3.297 + 2 = 5.297 (and
    ∂f/∂y = eˣ + x = 1.649 + 0.5 = 2.149)."""
    f, names = example_graph()
    return walk(f, names, title="The reverse walk of f = x*y + exp(x)*y at x = 0.5, y = 2")


def walk_network(sizes: Sequence[int] = (2, 3, 1), seed: int = 0,
                 cost: str = "quadratic") -> Walk:
    """The walk of one example's cost through the network of :func:`explain` (the same
    sizes, seed and cost), its tensors named as in the tutorial: x, y, w2, b2, z2, a2, ..., C.
    """
    sizes = tuple(_checks.widths("walk_network", sizes))
    weights, biases, x, y = random_network(sizes, seed)
    graph = network_graph(weights, biases, x[None, :], y[None, :], cost)
    return walk(graph.cost, network_names(graph),
                title=f"The reverse walk of C for one example through {list(sizes)} "
                      f"(seed {seed}, {cost} cost)")


def network_names(graph: NetworkGraph) -> dict[Tensor, str]:
    """The tutorial's names for the tensors of a :class:`NetworkGraph`: x, y, w2, b2, z2, a2,
    ..., C (layer 1 is the input)."""
    names = {graph.x: "x", graph.y: "y"}
    for layer, (w, b, z, a) in enumerate(
        zip(graph.weights, graph.biases, graph.zs, graph.activations[1:], strict=True), start=2
    ):
        names.update({w: f"w{layer}", b: f"b{layer}", z: f"z{layer}", a: f"a{layer}"})
    names[graph.cost] = "C"
    return names


def step_tape(sizes: Sequence[int] = (2, 3, 1), batch_size: int = 10, cost: str = "quadratic",
              seed: int = 0, eta: float = 3.0) -> str:
    """One training step of ``Network(sizes)`` as `jit` captures it: the numpy calls, in order.

    The step is the one `Network.SGD` takes (forward, cost, backward, the update of eqs.
    2.5/2.6) on a random mini-batch of `batch_size` examples. Each line is one call a
    replay makes, ``t7 = np.multiply(t5, t6)`` with the shapes it reads and writes; the
    forward, backward and update parts are marked. ``x`` and ``y`` are the mini-batch,
    ``w2, b2, ...`` the parameters (w^l, b^l), ``s1, ...`` the optimizer's buffers.

    >>> print(step_tape((2, 3, 1), batch_size=4).splitlines()[1])
    forward:
    """
    from . import optim
    from .jit import jit
    from .network import Network

    sizes = tuple(_checks.widths("step_tape", sizes))
    net = Network(sizes, cost=cost, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.random((batch_size, sizes[0]))
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch_size)]
    opt = optim.SGD(net.parameters(), eta)

    @jit
    def step(x: np.ndarray, y: np.ndarray) -> None:
        net._step(x, y, opt)

    names = {}
    for layer_number, layer in enumerate(net.layers, start=2):
        names[id(layer.weight.data)] = f"w{layer_number}"
        names[id(layer.bias.data)] = f"b{layer_number}"  # type: ignore[union-attr]  # (biased)
    listing = step.tape(x, y, names=names, input_names=["x", "y"])
    return (f"One SGD step of Network({list(sizes)}), {cost} cost, mini-batch of {batch_size}, "
            f"eta {eta}, as jit replays it:\n{listing}")
