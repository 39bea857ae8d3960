"""BP1–BP4 beside autograd, layer by layer, for one small network and one example.

:func:`explain` builds a random sigmoid network, feeds one example x forward,
and records for every layer l = 2..L:

- z^l = w^l a^{l-1} + b^l and a^l = σ(z^l) (eq. 1.6), from the reference;
- δ^l by BP1 (output layer) and BP2 (hidden layers), from the reference, beside
  ∂C/∂z^l as the autograd finds it (``z.retain_grad()``);
- ∂C/∂b^l by BP3 and ∂C/∂w^l by BP4, beside the autograd's gradients;
- the largest absolute difference between the two sides.

The reference is :mod:`tinygrad_nn.backprop` (plain numpy, hand-derived); the
autograd side is the same network built from primitives (:func:`network_graph`).
Neither calls the other: this module only puts their answers side by side.

>>> trace = explain((2, 3, 1), seed=0)
>>> [layer.layer for layer in trace.layers]
[2, 3]
>>> trace.max_diff < 1e-12
True
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import backprop as bp
from .ops import linear, sigmoid
from .tensor import Tensor

__all__ = ["LayerTrace", "NetworkGraph", "Trace", "explain", "network_graph", "random_network",
           "step_tape"]

_COST_NAMES = tuple(bp.COSTS)  # the same names as the reference, so both sides agree


def _check_sizes(where: str, sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(sizes)
    if len(sizes) < 2 or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 for n in sizes
    ):
        raise ValueError(
            f"{where}: sizes must list the neurons of at least two layers (input and output), "
            f"each a positive integer, e.g. (2, 3, 1); got {sizes!r}"
        )
    return tuple(int(n) for n in sizes)


def random_network(
    sizes: Sequence[int], seed: int = 0
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """A random network and one example, all float64, from ``np.random.default_rng(seed)``.

    Returns ``(weights, biases, x, y)``: ``weights = [w^2, ..., w^L]`` with ``w^l`` of
    shape ``(n_l, n_{l-1})`` and ``biases = [b^2, ..., b^L]``, entries N(0, 1); the
    input ``x`` of shape ``(n_1,)`` and the target ``y`` of shape ``(n_L,)``,
    uniform in [0, 1]. The draws come in that order, so a seed fixes everything.
    """
    sizes = _check_sizes("random_network", sizes)
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


@dataclass
class LayerTrace:
    """One layer l of a :class:`Trace`; vectors are lists of floats, matrices lists of rows.

    ``delta`` is δ^l by BP1 (l = L) or BP2 (l < L); ``nabla_b`` is ∂C/∂b^l by BP3 and
    ``nabla_w`` is ∂C/∂w^l by BP4, of shape (n_l, n_{l-1}). The ``*_autograd`` fields
    are the same quantities from the autograd. ``max_diff`` is the largest
    ``|BP - autograd|`` over all three.
    """

    layer: int
    z: list[float]
    a: list[float]
    delta: list[float]
    delta_autograd: list[float]
    nabla_b: list[float]
    nabla_b_autograd: list[float]
    nabla_w: list[list[float]]
    nabla_w_autograd: list[list[float]]
    max_diff: float

    @property
    def neurons(self) -> int:
        """The number of neurons in this layer, n_l."""
        return len(self.z)


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
    def max_diff(self) -> float:
        """The largest ``|BP - autograd|`` over every layer."""
        return max(layer.max_diff for layer in self.layers)

    def to_json(self) -> str:
        """The trace as JSON: sizes, seed, cost, x, y, the costs and a list of layers."""
        record = dataclasses.asdict(self)
        record["sizes"] = list(self.sizes)
        record["max_diff"] = self.max_diff
        for out, layer in zip(record["layers"], self.layers, strict=True):
            out["neurons"] = layer.neurons
        return json.dumps(record)

    def to_text(self) -> str:
        """A terminal-width report: one block per layer, each row naming its equation."""
        lines = [
            f"BP1-BP4 beside autograd: sizes {self.sizes}, seed {self.seed}, {self.cost} cost, "
            f"one example (C = C_x)",
            _row("x = a^1", self.x),
            _row("y (target)", self.y),
            _row("C_x  BP feedforward", [self.cost_value]),
            _row("C_x  autograd", [self.cost_value_autograd]),
        ]
        last = len(self.sizes)
        for t in self.layers:
            n, prev = t.layer, t.layer - 1
            plural = "" if t.neurons == 1 else "s"
            lines += [
                "",
                f"layer {n} ({t.neurons} neuron{plural})",
                _row(f"z^{n} = w^{n} a^{prev} + b^{n}", t.z),
                _row(f"a^{n} = σ(z^{n})  eq. 1.6", t.a),
                _row(f"δ^{n}  {'BP1' if n == last else 'BP2'}", t.delta),
                _row(f"∂C/∂z^{n}  autograd", t.delta_autograd),
                _row(f"∂C/∂b^{n}  BP3", t.nabla_b),
                _row(f"∂C/∂b^{n}  autograd", t.nabla_b_autograd),
                *_matrix(f"∂C/∂w^{n}  BP4", t.nabla_w),
                *_matrix(f"∂C/∂w^{n}  autograd", t.nabla_w_autograd),
                f"  {'max |BP - autograd|':<{_LABEL}}{t.max_diff:>{_CELL}.1e}",
            ]
        lines += ["", f"max |BP - autograd| over all layers: {self.max_diff:.1e}"]
        return "\n".join(lines) + "\n"


_LABEL = 24  # width of the row names
_CELL = 11  # width of one number: "-1.234e-05" plus a space
_MAX_CELLS = 8  # wider vectors are cut, so a row fits a terminal


def _cells(values: Sequence[float]) -> str:
    shown = values if len(values) <= _MAX_CELLS else values[: _MAX_CELLS - 2]
    text = "".join(f"{v:>{_CELL}.4g}" for v in shown)
    if len(shown) < len(values):
        text += f"   ... ({len(values)} values)"
    return text


def _row(label: str, values: Sequence[float]) -> str:
    return f"  {label:<{_LABEL}}{_cells(values)}"


def _matrix(label: str, rows: Sequence[Sequence[float]]) -> list[str]:
    # A matrix too big to read is summarised; the max difference row still covers it all.
    if len(rows) > _MAX_CELLS or len(rows[0]) > _MAX_CELLS:
        norm = float(np.linalg.norm(np.asarray(rows)))
        return [f"  {label:<{_LABEL}}  ||.|| = {norm:.4g}  ({len(rows)} x {len(rows[0])})"]
    return [f"  {(label if i == 0 else ''):<{_LABEL}}{_cells(r)}" for i, r in enumerate(rows)]


def _max_abs_diff(*pairs: tuple[np.ndarray, np.ndarray]) -> float:
    return max(float(np.max(np.abs(p - q))) for p, q in pairs)


def explain(sizes: Sequence[int] = (2, 3, 1), seed: int = 0, cost: str = "quadratic") -> Trace:
    """Trace BP1–BP4 and the autograd, layer by layer, on one random network and example.

    The network and example come from :func:`random_network`. The reference side
    uses :func:`tinygrad_nn.backprop.feedforward` (z^l, a^l; eq. 1.6),
    :func:`~tinygrad_nn.backprop.backprop_deltas` (δ^l; BP1, BP2) and
    :func:`~tinygrad_nn.backprop.backprop` (BP3, BP4). The autograd side is
    :func:`network_graph` on a batch of one, whose mean cost is C_x itself, so no
    1/m factor separates the two. For float64 they agree to rounding (about 1e-16).

    Args:
        sizes: neurons per layer, input first (layer 1 is the input).
        seed: seeds ``np.random.default_rng`` for the weights and the example.
        cost: ``"quadratic"`` (eq. 2.1) or ``"cross-entropy"``.
    """
    sizes = _check_sizes("explain", sizes)
    if cost not in bp.COSTS:
        raise ValueError(f"explain: unknown cost {cost!r}; choose one of {_COST_NAMES}")
    weights, biases, x, y = random_network(sizes, seed)

    zs, activations = bp.feedforward(weights, biases, x)
    deltas = bp.backprop_deltas(weights, biases, x, y, cost)
    nabla_b, nabla_w = bp.backprop(weights, biases, x, y, cost)
    cost_value = float(bp.COSTS[cost].fn(activations[-1], y))

    graph = network_graph(weights, biases, x[None, :], y[None, :], cost)
    graph.cost.backward()

    layers = []
    for i in range(len(weights)):
        # Row 0 of each autograd gradient: the batch holds the one example.
        delta_ag = graph.zs[i].grad.data[0]
        nb_ag, nw_ag = graph.biases[i].grad.data, graph.weights[i].grad.data
        layers.append(LayerTrace(
            layer=i + 2,
            z=zs[i].tolist(),
            a=activations[i + 1].tolist(),
            delta=deltas[i].tolist(),
            delta_autograd=delta_ag.tolist(),
            nabla_b=nabla_b[i].tolist(),
            nabla_b_autograd=nb_ag.tolist(),
            nabla_w=nabla_w[i].tolist(),
            nabla_w_autograd=nw_ag.tolist(),
            max_diff=_max_abs_diff(
                (deltas[i], delta_ag), (nabla_b[i], nb_ag), (nabla_w[i], nw_ag)
            ),
        ))
    return Trace(
        sizes=sizes, seed=seed, cost=cost, x=x.tolist(), y=y.tolist(),
        cost_value=cost_value, cost_value_autograd=graph.cost.item(), layers=layers,
    )


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

    sizes = _check_sizes("step_tape", sizes)
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
        names[id(layer.bias.data)] = f"b{layer_number}"
    listing = step.tape(x, y, names=names, input_names=["x", "y"])
    return (f"One SGD step of Network({list(sizes)}), {cost} cost, mini-batch of {batch_size}, "
            f"eta {eta}, as jit replays it:\n{listing}")
