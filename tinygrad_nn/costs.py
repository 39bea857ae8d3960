"""Cost functions, made of autograd primitives: the quadratic cost (eq. 2.1) and cross-entropy.

`COSTS` holds the tutorial's costs of *sigmoid outputs* a = σ(z), the contract `Network` uses.
Both take the network's outputs `a` and the desired outputs `y` with one example per *row*:
shape (n, outputs) for n examples, or (outputs,) for a single example. Both return a 0-d
Tensor averaged over the n examples, so with a mini-batch its gradient is the mean of the
per-example gradients (eqs. 2.4-2.6). `a` and `y` must have exactly the same shape: a (10,)
output against a (10, 1) column would broadcast silently to a (10, 10) table of wrong
differences, so that is an error.

`LOSSES` holds losses of *logits* z, the weighted inputs of the output layer before any
activation (or, for `nll_loss`, of log-probabilities): `cross_entropy` (softmax, then the
negative log-likelihood), `binary_cross_entropy_with_logits` (sigmoid, then cross-entropy) and
`nll_loss`. Folding the activation into the loss lets it be computed through `log_softmax` or
`softplus`, which stay finite and exact where σ(z) or softmax(z) would round to 0 or 1.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from . import functional as F
from . import ops
from .tensor import Tensor, TensorLike, to_array

__all__ = ["COSTS", "LOSSES", "binary_cross_entropy_with_logits", "clamp_epsilon", "cross_entropy",
           "cross_entropy_cost", "nll_loss", "quadratic_cost"]


def _prepare(name: str, a: Any, y: Any) -> tuple[Tensor, Tensor, int]:
    """`a` and `y` as Tensors, and n, the number of examples (rows).

    y becomes a Tensor (off the graph) so that every operation on it is a primitive, which
    `jit` records: `1 - y` made by numpy would be baked into a replay.
    """
    if not isinstance(a, Tensor):
        a = Tensor(a)
    if not isinstance(y, Tensor):  # shared, not copied: a copy would be baked into a replay
        y = ops.constant(y, a)
    if a.shape != y.shape:
        raise ValueError(
            f"{name}: the outputs a have shape {a.shape} but the desired outputs y have shape "
            f"{y.shape}; they must be equal (one example per row), not broadcast")
    n = a.shape[0] if a.ndim >= 2 else 1
    if a.size == 0:
        raise ValueError(f"{name}: no examples (a has shape {a.shape}); the cost of no "
                         f"examples is undefined")
    return a, y, n


def quadratic_cost(a: TensorLike, y: TensorLike) -> Tensor:
    """Eq. 2.1, C = 1/(2n) Σ_x ||y(x) - a(x)||², with n the number of rows of `a`.

    >>> quadratic_cost([[1.0, 0.0], [0.5, 0.5]], [[0.0, 0.0], [0.5, 1.5]]).item()  # (1 + 1)/4
    0.5
    """
    a, y, n = _prepare("quadratic_cost", a, y)
    # One fused primitive rather than sub, square, sum and scale: at the tutorial's
    # mini-batch of 10 each graph node costs more than its arithmetic.
    return ops.quadratic_cost(a, y, n=n)


def clamp_epsilon(dtype: Any) -> float:
    """The ε of `cross_entropy_cost`: the machine epsilon of the outputs' float type.

    In float64 that is 2.2e-16, and ln ε ≈ -36.0: the cost an output pays for being ε from
    the wrong end, as if the sigmoid had stopped at |z| ≈ 36 (where float64's σ(z) rounds to
    exactly 1 anyway). 1 - ε is still below 1, so ln(1 - a) stays finite too.
    """
    dtype = np.dtype(dtype)
    return float(np.finfo(dtype if dtype.kind == "f" else np.float64).eps)


def cross_entropy_cost(a: TensorLike, y: TensorLike) -> Tensor:
    """The cross-entropy cost of sigmoid outputs, C = -1/n Σ_x Σ_j [y ln a + (1-y) ln(1-a)].

    It is the sequel's cost: with sigmoid outputs its error δ^L = a - y loses the σ'(z) factor
    that makes saturated neurons learn slowly under eq. 2.1. `y` must lie in [0, 1] (a NaN or
    a value outside is refused, as in `cross_entropy`).

    When `a` is the output of the `sigmoid` primitive, a = σ(z) on the graph, the cost is
    computed from the weighted input z instead, with -ln σ(z) = softplus(-z) and
    -ln(1 - σ(z)) = softplus(z):  C = 1/n Σ [softplus(z) - y z]. That is exact at every z
    (e.g. 1e4 at z = -1e4, y = 1) and its gradient is BP1's δ^L = (σ(z) - y)/n everywhere,
    also where σ(z) has rounded to exactly 0 or 1 (z < -36 or z > 37 in float64), where the
    clamped form below gives δ^L = 0 and a saturated, wrong neuron would never learn.
    It is a composition of primitives rather than a fused primitive: five nodes (softplus,
    mul, sub, sum, scale), half the clamped form's, and the same form as
    `binary_cross_entropy_with_logits` (which averages over elements, not rows).

    Any other `a` (plain values, a tensor made otherwise, or one computed under `no_grad`,
    where the graph does not record z) is clamped into [ε, 1 - ε] with ε = `clamp_epsilon`,
    the machine epsilon (2.2e-16 in float64), so each term of the sum is at most -ln ε ≈ 36,
    never inf, and numpy never warns. The clamp is the `clip` primitive, which is exact for
    outputs inside [ε, 1 - ε] (bounds included); outside it the derivative with respect to
    `a` is 0.

    >>> round(cross_entropy_cost([0.5, 0.5], [1.0, 0.0]).item(), 6)  # -2 ln ½ = 2 ln 2
    1.386294
    """
    a, y, n = _prepare("cross_entropy_cost", a, y)
    y = _in_unit_interval("cross_entropy_cost", "desired outputs y", y, y.dtype)
    if a._op is ops.sigmoid:  # a = σ(z): the cost from z, so δ^L = a - y at every z
        z = a._parents[0]
        return (ops.softplus(z) - y * z).sum() * (1.0 / n)
    eps = clamp_epsilon(a.dtype)
    a = cast(Tensor, ops.clip(a, lo=eps, hi=1.0 - eps))
    total = (y * ops.log(a) + (1.0 - y) * ops.log(1.0 - a)).sum()
    return total * (-1.0 / n)


COSTS = {"quadratic": quadratic_cost, "cross-entropy": cross_entropy_cost}


# --- losses of logits ------------------------------------------------------------------------


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _scores(name: str, what: str, x: Any) -> Tensor:
    """Logits or log-probabilities: a float Tensor of shape (n, classes), n >= 1."""
    x = _as_tensor(x)
    if x.ndim != 2:
        raise ValueError(f"{name}: {what} must have shape (n, classes), one example per row; "
                         f"got {x.shape} (for one example, pass {what}[None])")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name}: no examples or no classes ({what} has shape {x.shape})")
    return x


def check_labels(name: str, labels: Any, n: int, classes: int) -> np.ndarray:
    """Integer class labels of shape (n,), each in 0..classes-1, as an int64 array.

    Floats are refused even when they hold whole numbers: a float target of shape (n,) is more
    often a mistake (a probability, a regression target) than a label.
    """
    labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if labels.shape != (n,):
        raise ValueError(f"{name}: labels have shape {labels.shape} but there are {n} examples; "
                         f"expected integer labels of shape ({n},)")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{name}: labels must be integers, got dtype {labels.dtype} "
                         f"(write labels.astype(int) if they are whole numbers)")
    # The range is checked by a primitive, so that a `jit` replay checks each batch too (a
    # label of -1 would silently pick the last class); it also converts them to int64.
    return ops.class_labels(labels, classes=classes, who=name)


def _in_unit_interval(name: str, what: str, target: Tensor, dtype: Any) -> Tensor:
    """`target`, refused if any value lies outside [0, 1] (NaN included).

    The check is the `unit_interval` primitive, so that a `jit` replay checks each batch too;
    data comes back as its checked copy in `dtype`. A target that requires grad is kept
    (checked all the same), since the gradient may flow into it.
    """
    checked = ops.unit_interval(target.data, dtype=np.dtype(dtype), who=name, what=what)
    return target if target.requires_grad else ops.constant(checked, target)


def _probabilities(name: str, target: Any, like: Tensor, what: str) -> Any:
    """Targets in [0, 1] of exactly the logits' shape.

    A Tensor stays a Tensor (it may require grad); data takes the logits' float dtype, so
    float64 one-hot rows do not turn a float32 loss and its gradients into float64.
    """
    shape = like.shape
    values = target.data if isinstance(target, Tensor) else to_array(target)
    if values.shape != shape:
        raise ValueError(f"{name}: {what} have shape {values.shape} but the logits have shape "
                         f"{shape}; they must be equal, not broadcast")
    if isinstance(target, Tensor):
        return _in_unit_interval(name, what, target, target.dtype)
    dtype = like.dtype if like.dtype.kind == "f" else np.dtype(np.float64)
    return _in_unit_interval(name, what, ops.constant(values, like), dtype)


def nll_loss(log_probs: TensorLike, labels: TensorLike) -> Tensor:
    """The negative log-likelihood, C = -1/n Σ_x log p_{y(x)}(x), for integer labels y(x).

    `log_probs` has shape (n, classes), one row of log-probabilities per example (e.g. from
    `log_softmax`); `labels` are integers of shape (n,). The entries picked are
    ``log_probs[range(n), labels]`` (indexing, so the gradient is -1/n at each picked entry
    and 0 elsewhere).

    >>> round(nll_loss(np.log([[0.5, 0.5], [0.25, 0.75]]), [0, 1]).item(), 6)  # -(ln ½ + ln ¾)/2
    0.490415
    """
    log_probs = _scores("nll_loss", "log_probs", log_probs)
    n, classes = log_probs.shape
    labels = check_labels("nll_loss", labels, n, classes)
    return log_probs[np.arange(n), labels].sum() * (-1.0 / n)


def cross_entropy(logits: TensorLike, target: TensorLike) -> Tensor:
    """Softmax cross-entropy of logits z, C = -1/n Σ_x Σ_j y_j(x) log softmax(z(x))_j.

    `logits` has shape (n, classes). `target` is either integer labels of shape (n,), so that
    C = -1/n Σ_x log softmax(z(x))_{y(x)} (`nll_loss` of `log_softmax`), or rows of
    probabilities of shape (n, classes) (one-hot rows, or any values in [0, 1]; rows are not
    checked to sum to 1). Computed through `log_softmax(z) = z - logsumexp(z)`, so it never
    takes log 0: finite for any finite logits. When each row of y sums to 1 (labels, one-hot
    rows, distributions) its gradient is (softmax(z) - y)/n, the softmax analogue of the
    sequel's δ^L = a - y.

    >>> round(cross_entropy([[0.0, 0.0]], [1]).item(), 6)  # -ln ½
    0.693147
    """
    logits = _scores("cross_entropy", "logits", logits)
    target_data = target.data if isinstance(target, Tensor) else np.asarray(target)
    log_p = F.log_softmax(logits, axis=1)
    if target_data.ndim == 1:
        return nll_loss(log_p, target_data)
    y = _probabilities("cross_entropy", target, logits, "target probabilities")
    return (y * log_p).sum() * (-1.0 / logits.shape[0])


def binary_cross_entropy_with_logits(logits: TensorLike, target: TensorLike) -> Tensor:
    """The sequel's cross-entropy of σ(z), from the logits z, averaged over *every* element.

    C = 1/N Σ [-y ln σ(z) - (1 - y) ln(1 - σ(z))] = 1/N Σ [softplus(z) - y z], since
    -ln σ(z) = softplus(-z) = softplus(z) - z and -ln(1 - σ(z)) = softplus(z). N is the
    number of elements (PyTorch's reduction="mean"), not of rows as in `cross_entropy_cost`.
    Finite for any finite z, with no clamp: its gradient is (σ(z) - y)/N everywhere. `target`
    must have the logits' shape and values in [0, 1].

    >>> round(binary_cross_entropy_with_logits([0.0, 0.0], [1.0, 0.0]).item(), 6)  # ln 2
    0.693147
    """
    name = "binary_cross_entropy_with_logits"
    logits = _as_tensor(logits)
    if logits.size == 0:
        raise ValueError(f"{name}: no examples (logits have shape {logits.shape})")
    y = _probabilities(name, target, logits, "targets")
    return (ops.softplus(logits) - y * logits).sum() * (1.0 / logits.size)


LOSSES = {"softmax-cross-entropy": cross_entropy,
          "sigmoid-cross-entropy": binary_cross_entropy_with_logits,
          "nll": nll_loss}
