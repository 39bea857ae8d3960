"""Gradient checking: the autograd against central finite differences.

    ∂f/∂θ_i ≈ (f(θ + ε e_i) - f(θ - ε e_i)) / (2ε)

Two errors pull ε in opposite directions. Truncation, about |f'''|·ε²/6, shrinks with ε;
rounding, about eps_machine·|f|/ε (f is known to about 1e-16·|f| in float64, and the
difference of two such values is divided by 2ε), grows as ε shrinks. They balance where
ε³ ≈ 3·eps_machine·|f|/|f'''|, near 1e-5 when |f| and |f'''| are of the same size. At the
default ε = 1e-6, rounding dominates: on docs/index.md's example (the mean of σ(X Wᵀ + b)
over 5 rows), `python examples/finite_difference_step.py` measures a largest error of
7.0e-11, all of it rounding, against a truncation of 3.3e-15 (2×10⁴ times smaller). The
two balance between 1e-5 and 1e-4 (near 3e-5 for this f); at ε = 1e-5 the error is 7.8e-12.

1e-6 is nevertheless a fine default. Its error, under 1e-10 there, is four orders of
magnitude inside the tolerances below (atol 1e-6, rtol 1e-5), while a wrong derivative is
off by a fraction of the gradient itself; and a small ε keeps truncation small where |f'''|
is large (a sharply curved function, a sigmoid with large weights) and rarely steps across
a kink (relu at 0). In float32 the rounding error would be about 5×10⁸ times larger: checks run in
float64 only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .autograd import grad
from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """The analytic and the numerical gradients disagree."""


def _float64_copies(inputs: tuple) -> list[Tensor]:
    """Fresh, writable, C-ordered float64 copies: the caller's arrays are never perturbed.

    Whatever the input's layout (a transpose, Fortran order, a broadcast view with zero
    strides, a read-only array, a strided slice), the copy owns its memory, so writing one
    element changes exactly that element of what `fn` sees.
    """
    return [
        Tensor(np.array(x.data, dtype=np.float64, order="C", copy=True),
               requires_grad=x.requires_grad)
        if isinstance(x, Tensor) else Tensor(np.array(x, dtype=np.float64, order="C", copy=True))
        for x in inputs
    ]


def _scalar(fn: Callable[..., Tensor], inputs: list[Tensor], projection: np.ndarray | None,
            ) -> Tensor:
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    return out if projection is None else (out * projection).sum()


def _projection(fn: Callable[..., Tensor], inputs: list[Tensor]) -> np.ndarray | None:
    """For a non-scalar output, check the VJP with one fixed random vector v."""
    with no_grad():
        shape = fn(*inputs).shape
    if shape == ():
        return None
    rng = np.random.default_rng(0)
    return rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def numerical_grad(fn: Callable[..., Tensor], *inputs: Any, eps: float = 1e-6,
                   projection: np.ndarray | None = None) -> list[np.ndarray | None]:
    """Central finite differences of a scalar `fn` for every input that requires grad.

    Inputs are copied to float64 first; None stands for inputs that do not require grad.
    A non-scalar output is reduced to sum(projection * fn(...)) first.
    """
    inputs64 = _float64_copies(inputs)
    result: list[np.ndarray | None] = []
    with no_grad():
        for x in inputs64:
            if not x.requires_grad:
                result.append(None)
                continue
            data = x.data
            g = np.zeros(data.shape, dtype=np.float64)
            # Perturb through a multi-index, never through `reshape(-1)`: on an array that is
            # not C-contiguous, reshape returns a copy, the writes miss what `fn` reads, and
            # every difference comes out 0.
            for i in np.ndindex(data.shape):
                original = data[i]
                data[i] = original + eps
                f_plus = _scalar(fn, inputs64, projection).item()
                data[i] = original - eps
                f_minus = _scalar(fn, inputs64, projection).item()
                data[i] = original
                g[i] = (f_plus - f_minus) / (2 * eps)
            result.append(g)
    return result


def gradcheck(fn: Callable[..., Tensor], *inputs: Any, eps: float = 1e-6,
              atol: float = 1e-6, rtol: float = 1e-5) -> bool:
    """Check the autograd gradient of `fn` at `inputs` against finite differences.

    Every element of every input that requires grad is perturbed, in float64.
    Passes when |analytic - numeric| <= atol + rtol·|numeric| everywhere and returns
    True; otherwise raises GradcheckError naming, per failing input (numbered by
    its position among `inputs`), the largest absolute and relative errors and
    where they are.
    """
    inputs64 = _float64_copies(inputs)
    positions = [i for i, x in enumerate(inputs64) if x.requires_grad]
    wrt = [inputs64[i] for i in positions]
    if not wrt:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    projection = _projection(fn, inputs64)
    out = _scalar(fn, inputs64, projection)
    analytic = grad(out, wrt, allow_unused=True) if out.requires_grad else [None] * len(wrt)
    numeric = [g for g in numerical_grad(fn, *inputs64, eps=eps, projection=projection)
               if g is not None]
    problems = []
    a: Tensor | np.ndarray | None
    for i, x, a, n in zip(positions, wrt, analytic, numeric):
        a = np.zeros_like(n) if a is None else a.data
        err = np.abs(a - n)
        if np.all(err <= atol + rtol * np.abs(n)):
            continue
        # Where the numerical gradient is 0 the relative error is infinite (or 0 if the
        # analytic one is 0 too); dividing by a tiny number instead would overflow and warn.
        rel = np.divide(err, np.abs(n), out=np.where(err > 0, np.inf, 0.0), where=n != 0)
        worst = np.unravel_index(np.argmax(err), err.shape)
        worst_rel = np.unravel_index(np.argmax(rel), rel.shape)
        problems.append(
            f"input {i} (shape {x.shape}): largest absolute error {err[worst]:.3g} at index "
            f"{tuple(int(j) for j in worst)} (analytic {a[worst]:.10g}, numeric "
            f"{n[worst]:.10g}); largest relative error {rel[worst_rel]:.3g} at index "
            f"{tuple(int(j) for j in worst_rel)}"
        )
    if problems:
        raise GradcheckError("gradcheck failed (atol={}, rtol={}, eps={}):\n  {}".format(
            atol, rtol, eps, "\n  ".join(problems)))
    return True
