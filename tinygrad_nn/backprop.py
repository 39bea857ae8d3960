"""Backpropagation derived by hand: the BP1-BP4 reference for sigmoid networks.

This module is the *independent witness* for the autograd in the rest of the
package: it computes the gradient of the cost of a feed-forward sigmoid
network with the four backpropagation equations, written out for this network
alone, with nothing but numpy. It imports nothing from ``tinygrad_nn``, so when
the autograd and this module agree, neither is checking itself.

Notation (the tutorial's, as in ``docs/backprop.md``):

- Layers are ``l = 1..L``; layer 1 is the input, layer L the output, and
  layer l has ``n_l`` neurons.
- ``weights[l-2]`` is ``w^l``, of shape ``(n_l, n_{l-1})``: ``w^l_{jk}`` joins
  neuron k of layer l-1 to neuron j of layer l. ``biases[l-2]`` is ``b^l``, of
  shape ``(n_l,)``. So both lists have ``L - 1`` entries, for ``l = 2..L``.
- ``z^l = w^l a^{l-1} + b^l`` is the weighted input, ``a^l = σ(z^l)`` the
  activation, ``a^1 = x`` the input (eq. 1.6 for σ).
- ``δ^l = ∂C_x/∂z^l`` is the error of layer l for one example x.

The four equations, for one example x (``⊙`` is the element-wise product)::

    BP1   δ^L = ∇_a C_x ⊙ σ'(z^L)
    BP2   δ^l = ((w^{l+1})ᵀ δ^{l+1}) ⊙ σ'(z^l)          for l = L-1, ..., 2
    BP3   ∂C_x/∂b^l_j    = δ^l_j
    BP4   ∂C_x/∂w^l_{jk} = a^{l-1}_k δ^l_j               (δ^l (a^{l-1})ᵀ)

One example is a flat vector ``x`` of shape ``(n_1,)`` (not a column vector).
A mini-batch of m examples is a matrix ``X`` of shape ``(m, n_1)`` with one
example per *row*; its activations and errors are then ``(m, n_l)`` matrices
whose row i belongs to example i.

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> sizes = [2, 3, 1]
>>> weights = [rng.standard_normal((n, k)) for k, n in zip(sizes[:-1], sizes[1:])]
>>> biases = [rng.standard_normal(n) for n in sizes[1:]]
>>> nabla_b, nabla_w = backprop(weights, biases, np.array([0.5, -1.0]), np.array([1.0]))
>>> [g.shape for g in nabla_w]
[(3, 2), (1, 3)]
"""

from __future__ import annotations  # annotations stay as written: help() reads ArrayLike

from collections.abc import Sequence
from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "COSTS",
    "CrossEntropyCost",
    "QuadraticCost",
    "backprop",
    "backprop_batch",
    "backprop_deltas",
    "backprop_deltas_batch",
    "feedforward",
    "feedforward_batch",
    "sigmoid",
    "sigmoid_prime",
    "total_cost",
    "update_mini_batch",
    "update_mini_batch_per_example",
]


# --------------------------------------------------------------------------
# The neuron (eq. 1.6)
# --------------------------------------------------------------------------


def sigmoid(z: ArrayLike) -> np.ndarray | np.floating:
    """The sigmoid function σ(z) = 1 / (1 + e^{-z}) (eq. 1.6), element-wise.

    Numerically stable for any finite z (|z| = 1e4 included) and emits no
    numpy warnings. Floating inputs keep their dtype (float32 in, float32
    out); other inputs are computed in float64. A 0-d input gives a numpy
    scalar.
    """
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    # The textbook formula overflows in e^{-z} for very negative z. Using
    # e = e^{-|z|}, which lies in (0, 1], gives the same value without any
    # overflow: σ(z) = 1/(1+e) for z >= 0 and σ(z) = e/(1+e) for z < 0.
    # e^{-|z|} may underflow to 0 for large |z|; that is exactly the right
    # limit, so the underflow is silenced even under np.seterr(all="raise").
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(z))
        s = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return s[()]


def sigmoid_prime(z: ArrayLike) -> np.ndarray | np.floating:
    """The derivative σ'(z) = σ(z) (1 - σ(z)) of eq. 1.6, element-wise.

    Computed as σ(z) σ(-z), which is the same thing because 1 - σ(z) = σ(-z),
    but avoids the cancellation in ``1 - σ(z)`` that would round σ'(z) to 0
    for z larger than about 37 (float64). Same dtype rules as :func:`sigmoid`.
    """
    z = np.asarray(z)
    return sigmoid(z) * sigmoid(-z)


# --------------------------------------------------------------------------
# Costs: C_x for one example, and BP1's δ^L
# --------------------------------------------------------------------------


class QuadraticCost:
    """The quadratic cost of eq. 2.1 for one example: C_x = ½ ||y - a^L||²."""

    @staticmethod
    def fn(a: ArrayLike, y: ArrayLike) -> np.ndarray:
        """C_x = ½ ||y - a||², summed over the last axis.

        For one example (``a`` and ``y`` of shape ``(n_L,)``) this is a scalar;
        for a batch of rows (shape ``(m, n_L)``) it is the ``(m,)`` vector of
        per-example costs.
        """
        a, y = np.asarray(a), np.asarray(y)
        return 0.5 * np.sum(np.square(a - y), axis=-1)

    @staticmethod
    def delta(z: ArrayLike, a: ArrayLike, y: ArrayLike) -> np.ndarray:
        """BP1 for the quadratic cost: δ^L = (a^L - y) ⊙ σ'(z^L).

        ``∇_a C_x = a^L - y`` because C_x = ½ Σ_j (y_j - a_j)². Works
        element-wise, so rows of a batch are fine too.
        """
        a, y = np.asarray(a), np.asarray(y)
        return (a - y) * sigmoid_prime(z)


class CrossEntropyCost:
    """The cross-entropy cost for one example:
    C_x = -Σ_j [y_j ln a^L_j + (1 - y_j) ln(1 - a^L_j)].
    """

    @staticmethod
    def fn(a: ArrayLike, y: ArrayLike) -> np.ndarray:
        """C_x = -Σ_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)], summed over the last axis.

        Shapes as in :meth:`QuadraticCost.fn`. Sigmoid outputs can round to
        exactly 0 or 1, where a log would be -inf. Each log's argument (``a``
        and ``1 - a``) is therefore clipped from below at the smallest normal
        number of the dtype, ``np.finfo(dtype).tiny``. Consequences:

        - the result is always finite and no numpy warning is emitted;
        - the wrong-side term of a saturated output costs at most
          ``-ln(tiny)`` (about 708 in float64, 87 in float32) instead of inf;
        - where ``y_j`` is exactly 0 or 1 the other term is multiplied by 0
          and vanishes, so ``a == y`` at 0 or 1 costs exactly 0 (the usual
          convention 0 ln 0 = 0);
        - for every ``a`` in [tiny, 1 - tiny] nothing is changed.
        """
        a, y = np.asarray(a), np.asarray(y)
        tiny = np.finfo(np.result_type(a, np.float32)).tiny
        log_a = np.log(np.maximum(a, tiny))
        log_1_minus_a = np.log(np.maximum(1 - a, tiny))
        return -np.sum(y * log_a + (1 - y) * log_1_minus_a, axis=-1)

    @staticmethod
    def delta(z: ArrayLike, a: ArrayLike, y: ArrayLike) -> np.ndarray:
        """BP1 for the cross-entropy cost with sigmoid outputs: δ^L = a^L - y.

        ``∂C_x/∂a_j = (a_j - y_j) / (a_j (1 - a_j))`` and ``σ'(z_j) = a_j (1 - a_j)``,
        so the σ' factor of BP1 cancels; ``z`` is accepted only so that both
        costs have the same signature.
        """
        a, y = np.asarray(a), np.asarray(y)
        return a - y


#: The costs by name; every ``cost=`` argument accepts a key or a value of this dict.
COSTS: dict[str, type[QuadraticCost | CrossEntropyCost]] = {
    "quadratic": QuadraticCost, "cross-entropy": CrossEntropyCost}

#: A cost: a name from :data:`COSTS`, or a class with static ``fn`` and ``delta``.
CostLike = str | type


def _resolve_cost(where: str, cost: CostLike) -> Any:  # a cost class (duck-typed)
    if isinstance(cost, str):
        if cost not in COSTS:
            raise ValueError(f"{where}: unknown cost {cost!r}; choose one of {sorted(COSTS)}")
        return COSTS[cost]
    # Duck typing lets a learner plug in their own cost class.
    if not (callable(getattr(cost, "fn", None)) and callable(getattr(cost, "delta", None))):
        raise TypeError(
            f"{where}: cost must be one of {sorted(COSTS)} or a class with static methods "
            f"fn(a, y) and delta(z, a, y), got {cost!r}"
        )
    return cost


# --------------------------------------------------------------------------
# Input validation: one helper, called once by every public function
# --------------------------------------------------------------------------


@overload
def _check_network(
    where: str, weights: Sequence[ArrayLike], biases: Sequence[ArrayLike], x: ArrayLike,
    y: None = None, *, batch: bool,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, None]: ...
@overload
def _check_network(
    where: str, weights: Sequence[ArrayLike], biases: Sequence[ArrayLike], x: ArrayLike,
    y: ArrayLike, *, batch: bool,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]: ...
def _check_network(
    where: str,
    weights: Sequence[ArrayLike],
    biases: Sequence[ArrayLike],
    x: ArrayLike,
    y: ArrayLike | None = None,
    *,
    batch: bool,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray | None]:
    """Convert to arrays and check that the shapes chain; raise ValueError naming them."""
    ws = [np.asarray(w) for w in weights]
    bs = [np.asarray(b) for b in biases]
    if not ws or len(ws) != len(bs):
        raise ValueError(
            f"{where}: got {len(ws)} weight matrices and {len(bs)} bias vectors; "
            "need one of each for every layer l = 2..L (at least one)"
        )
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        layer = i + 2  # weights[i] is w^{i+2}
        if w.ndim != 2:
            raise ValueError(
                f"{where}: weights[{i}] has shape {w.shape}; w^{layer} must be a matrix "
                f"of shape (n_{layer}, n_{layer - 1})"
            )
        if i > 0 and w.shape[1] != ws[i - 1].shape[0]:
            raise ValueError(
                f"{where}: weights[{i}] has shape {w.shape} but layer {layer - 1} has "
                f"{ws[i - 1].shape[0]} neurons"
            )
        if b.shape != (w.shape[0],):
            raise ValueError(
                f"{where}: biases[{i}] has shape {b.shape} but weights[{i}] has shape "
                f"{w.shape}, so b^{layer} needs shape ({w.shape[0]},)"
            )

    n_in, n_out, n_layers = ws[0].shape[1], ws[-1].shape[0], len(ws) + 1
    x = np.asarray(x)
    if batch:
        if x.ndim != 2 or x.shape[1] != n_in or x.shape[0] == 0:
            raise ValueError(
                f"{where}: X has shape {x.shape} but needs shape (m, {n_in}) with m >= 1: "
                f"one example per row, layer 1 has {n_in} neurons"
            )
    elif x.shape != (n_in,):
        hint = "; use a flat vector, not a column vector" if x.shape == (n_in, 1) else ""
        raise ValueError(
            f"{where}: x has shape {x.shape} but layer 1 has {n_in} neurons, "
            f"so x needs shape ({n_in},){hint}"
        )

    if y is not None:
        y = np.asarray(y)
        want = (x.shape[0], n_out) if batch else (n_out,)
        if y.shape != want:
            name = "Y" if batch else "y"
            raise ValueError(
                f"{where}: {name} has shape {y.shape} but layer L = {n_layers} has "
                f"{n_out} neurons, so {name} needs shape {want}"
            )
    return ws, bs, x, y


# --------------------------------------------------------------------------
# One example: the algorithm exactly as the equations state it
# --------------------------------------------------------------------------


def _feedforward(ws: list[np.ndarray], bs: list[np.ndarray], x: np.ndarray,
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    zs: list[np.ndarray] = []
    activations: list[Any] = [x]  # (Any: sigmoid's type allows a scalar; z is an array)
    for w, b in zip(ws, bs, strict=True):
        z = w @ activations[-1] + b
        zs.append(z)
        activations.append(sigmoid(z))
    return zs, activations


def _errors(ws: list[np.ndarray], bs: list[np.ndarray], x: np.ndarray, y: np.ndarray,
            cost: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Feed forward, then BP1 and BP2; return (activations, [δ^2, ..., δ^L])."""
    zs, activations = _feedforward(ws, bs, x)
    delta = cost.delta(zs[-1], activations[-1], y)  # BP1
    deltas = [delta]
    # BP2, walking back from l = L-1 to l = 2: ws[l - 1] is w^{l+1}, zs[l - 2] is z^l.
    for layer in range(len(ws), 1, -1):
        delta = (ws[layer - 1].T @ delta) * sigmoid_prime(zs[layer - 2])
        deltas.append(delta)
    deltas.reverse()
    return activations, deltas


def feedforward(
    weights: Sequence[ArrayLike], biases: Sequence[ArrayLike], x: ArrayLike
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Feed one example forward: z^l = w^l a^{l-1} + b^l, a^l = σ(z^l) (eq. 1.6).

    Args:
        weights: ``[w^2, ..., w^L]``, ``w^l`` of shape ``(n_l, n_{l-1})``.
        biases: ``[b^2, ..., b^L]``, ``b^l`` of shape ``(n_l,)``.
        x: one input, shape ``(n_1,)``.

    Returns:
        ``(zs, activations)``: ``zs = [z^2, ..., z^L]`` and
        ``activations = [a^1, ..., a^L]`` with ``activations[0] = x``;
        ``z^l`` and ``a^l`` have shape ``(n_l,)``. Backprop needs all of them,
        which is why they are kept.
    """
    ws, bs, x, _ = _check_network("feedforward", weights, biases, x, batch=False)
    return _feedforward(ws, bs, x)


def backprop_deltas(
    weights: Sequence[ArrayLike],
    biases: Sequence[ArrayLike],
    x: ArrayLike,
    y: ArrayLike,
    cost: CostLike = "quadratic",
) -> list[np.ndarray]:
    """The errors δ^l = ∂C_x/∂z^l of one example, by BP1 and BP2.

    Args:
        weights, biases: as in :func:`feedforward`.
        x: one input, shape ``(n_1,)``.
        y: its desired output, shape ``(n_L,)``.
        cost: ``"quadratic"`` (eq. 2.1), ``"cross-entropy"``, or a cost class.

    Returns:
        ``[δ^2, ..., δ^L]``, ``δ^l`` of shape ``(n_l,)``.
    """
    ws, bs, x, y = _check_network("backprop_deltas", weights, biases, x, y, batch=False)
    return _errors(ws, bs, x, y, _resolve_cost("backprop_deltas", cost))[1]


def backprop(
    weights: Sequence[ArrayLike],
    biases: Sequence[ArrayLike],
    x: ArrayLike,
    y: ArrayLike,
    cost: CostLike = "quadratic",
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The gradient of C_x for one example, by BP1-BP4.

    Args:
        weights, biases: as in :func:`feedforward`.
        x: one input, shape ``(n_1,)``.
        y: its desired output, shape ``(n_L,)``.
        cost: ``"quadratic"`` (C_x = ½||y - a^L||², eq. 2.1), ``"cross-entropy"``,
            or a cost class.

    Returns:
        ``(nabla_b, nabla_w)``, shaped like ``biases`` and ``weights``:
        ``nabla_b[l-2] = ∂C_x/∂b^l = δ^l`` (BP3) and
        ``nabla_w[l-2] = ∂C_x/∂w^l = δ^l (a^{l-1})ᵀ`` (BP4).
    """
    ws, bs, x, y = _check_network("backprop", weights, biases, x, y, batch=False)
    activations, deltas = _errors(ws, bs, x, y, _resolve_cost("backprop", cost))
    nabla_b = list(deltas)  # BP3
    # BP4: activations[l - 2] is a^{l-1}, the input that w^l multiplies.
    nabla_w = [np.outer(d, a) for d, a in zip(deltas, activations[:-1], strict=True)]
    return nabla_b, nabla_w


# --------------------------------------------------------------------------
# A mini-batch: the same equations, one example per row, no loop over examples
# --------------------------------------------------------------------------


def _feedforward_batch(ws: list[np.ndarray], bs: list[np.ndarray], X: np.ndarray,
                       ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    zs: list[np.ndarray] = []
    activations: list[Any] = [X]  # (as in `_feedforward`)
    for w, b in zip(ws, bs, strict=True):
        # Row i is (w a_i + b)ᵀ = a_iᵀ wᵀ + bᵀ: the z^l of example i.
        Z = activations[-1] @ w.T + b
        zs.append(Z)
        activations.append(sigmoid(Z))
    return zs, activations


def _errors_batch(ws: list[np.ndarray], bs: list[np.ndarray], X: np.ndarray, Y: np.ndarray,
                  cost: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    zs, activations = _feedforward_batch(ws, bs, X)
    delta = cost.delta(zs[-1], activations[-1], Y)  # BP1, element-wise, so row by row
    deltas = [delta]
    for layer in range(len(ws), 1, -1):
        # BP2 for every row at once: row i of (δ^{l+1} @ w^{l+1}) is ((w^{l+1})ᵀ δ_i)ᵀ.
        delta = (delta @ ws[layer - 1]) * sigmoid_prime(zs[layer - 2])
        deltas.append(delta)
    deltas.reverse()
    return activations, deltas


def _backprop_batch(ws: list[np.ndarray], bs: list[np.ndarray], X: np.ndarray, Y: np.ndarray,
                    cost: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
    activations, deltas = _errors_batch(ws, bs, X, Y, cost)
    # BP3 summed over the rows.
    nabla_b = [d.sum(axis=0) for d in deltas]
    # BP4 summed over the rows: Σ_i δ_i a_iᵀ is one matrix product, Δᵀ A.
    nabla_w = [d.T @ a for d, a in zip(deltas, activations[:-1], strict=True)]
    return nabla_b, nabla_w


def feedforward_batch(
    weights: Sequence[ArrayLike], biases: Sequence[ArrayLike], X: ArrayLike
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """:func:`feedforward` for a mini-batch, one example per row.

    Args:
        weights, biases: as in :func:`feedforward`.
        X: inputs, shape ``(m, n_1)``.

    Returns:
        ``(zs, activations)`` as in :func:`feedforward`, but each ``z^l`` and
        ``a^l`` has shape ``(m, n_l)``; row i belongs to example ``X[i]``.
    """
    ws, bs, X, _ = _check_network("feedforward_batch", weights, biases, X, batch=True)
    return _feedforward_batch(ws, bs, X)


def backprop_deltas_batch(
    weights: Sequence[ArrayLike],
    biases: Sequence[ArrayLike],
    X: ArrayLike,
    Y: ArrayLike,
    cost: CostLike = "quadratic",
) -> list[np.ndarray]:
    """:func:`backprop_deltas` for a mini-batch: ``[δ^2, ..., δ^L]``, each ``(m, n_l)``.

    Row i of ``δ^l`` is the error of layer l for example ``X[i]`` with target
    ``Y[i]`` (``X`` of shape ``(m, n_1)``, ``Y`` of shape ``(m, n_L)``).
    """
    ws, bs, X, Y = _check_network("backprop_deltas_batch", weights, biases, X, Y, batch=True)
    return _errors_batch(ws, bs, X, Y, _resolve_cost("backprop_deltas_batch", cost))[1]


def backprop_batch(
    weights: Sequence[ArrayLike],
    biases: Sequence[ArrayLike],
    X: ArrayLike,
    Y: ArrayLike,
    cost: CostLike = "quadratic",
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The SUM over a mini-batch of the per-example gradients, by BP1-BP4.

    Returns ``Σ_j ∂C_{X_j}/∂b^l`` and ``Σ_j ∂C_{X_j}/∂w^l``, the sums that
    appear in eqs. 2.5/2.6, so one gradient-descent step is
    ``w^l -= (eta / m) * nabla_w[l-2]``. Note the normalisation: the gradient
    of the mini-batch MEAN cost (``1/(2m) Σ_j ||y_j - a^L_j||²`` for the
    quadratic cost) is this result divided by m.

    Args:
        weights, biases: as in :func:`feedforward`.
        X: inputs, shape ``(m, n_1)``, one example per row.
        Y: desired outputs, shape ``(m, n_L)``.
        cost: as in :func:`backprop`.

    Returns:
        ``(nabla_b, nabla_w)``, shaped like ``biases`` and ``weights``; equal to
        the sum of :func:`backprop` over the rows, computed without a Python
        loop over examples.
    """
    ws, bs, X, Y = _check_network("backprop_batch", weights, biases, X, Y, batch=True)
    return _backprop_batch(ws, bs, X, Y, _resolve_cost("backprop_batch", cost))


def total_cost(
    weights: Sequence[ArrayLike],
    biases: Sequence[ArrayLike],
    X: ArrayLike,
    Y: ArrayLike,
    cost: CostLike = "quadratic",
) -> np.floating:
    """The mean cost over n examples, ``C = (1/n) Σ_x C_x``.

    For the quadratic cost this is eq. 2.1, ``C = 1/(2n) Σ_x ||y(x) - a^L(x)||²``.
    ``X`` has shape ``(n, n_1)`` and ``Y`` shape ``(n, n_L)``, one example per
    row. Its gradient is :func:`backprop_batch` divided by n.
    """
    ws, bs, X, Y = _check_network("total_cost", weights, biases, X, Y, batch=True)
    output = _feedforward_batch(ws, bs, X)[1][-1]
    return np.mean(_resolve_cost("total_cost", cost).fn(output, Y))


def _gradient_step(ws: list[np.ndarray], bs: list[np.ndarray], nabla_w: list[np.ndarray],
                   nabla_b: list[np.ndarray], eta: float, m: int,
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    # New arrays, so the caller's weights and biases are left untouched.
    new_w = [w - (eta / m) * nw for w, nw in zip(ws, nabla_w, strict=True)]  # eq. 2.5
    new_b = [b - (eta / m) * nb for b, nb in zip(bs, nabla_b, strict=True)]  # eq. 2.6
    return new_w, new_b


def update_mini_batch(
    weights: Sequence[ArrayLike],
    biases: Sequence[ArrayLike],
    X: ArrayLike,
    Y: ArrayLike,
    eta: float,
    cost: CostLike = "quadratic",
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """One step of stochastic gradient descent on a mini-batch (eqs. 2.5, 2.6).

    ``w^l ← w^l - (η/m) Σ_j ∂C_{X_j}/∂w^l`` and likewise for ``b^l``, with the
    sums from :func:`backprop_batch`. ``X`` is ``(m, n_1)``, ``Y`` is
    ``(m, n_L)``, ``eta`` is the learning rate η.

    Returns:
        ``(new_weights, new_biases)``; the inputs are not modified.
    """
    ws, bs, X, Y = _check_network("update_mini_batch", weights, biases, X, Y, batch=True)
    nabla_b, nabla_w = _backprop_batch(ws, bs, X, Y, _resolve_cost("update_mini_batch", cost))
    return _gradient_step(ws, bs, nabla_w, nabla_b, eta, X.shape[0])


def update_mini_batch_per_example(
    weights: Sequence[ArrayLike],
    biases: Sequence[ArrayLike],
    X: ArrayLike,
    Y: ArrayLike,
    eta: float,
    cost: CostLike = "quadratic",
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """:func:`update_mini_batch` computed the book's way, one example at a time.

    Calls :func:`backprop` on each row of ``X`` and adds up the gradients,
    then takes the same step of eqs. 2.5/2.6. The result equals
    :func:`update_mini_batch` up to rounding; this slow form is kept as the
    reference that the vectorized one is measured and tested against.
    """
    where = "update_mini_batch_per_example"
    ws, bs, X, Y = _check_network(where, weights, biases, X, Y, batch=True)
    cost = _resolve_cost(where, cost)
    nabla_b = [np.zeros(b.shape, np.result_type(b, X)) for b in bs]
    nabla_w = [np.zeros(w.shape, np.result_type(w, X)) for w in ws]
    for x, y in zip(X, Y, strict=True):
        delta_nabla_b, delta_nabla_w = backprop(ws, bs, x, y, cost)
        nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b, strict=True)]
        nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w, strict=True)]
    return _gradient_step(ws, bs, nabla_w, nabla_b, eta, X.shape[0])
