"""Which ε for central finite differences? The two errors of gradcheck (sec. 2.2's ∂C/∂w).

(f(w + ε) - f(w - ε)) / 2ε misses ∂f/∂w by a truncation error ≈ f'''ε²/6, which shrinks with
ε, and by rounding: f is rounded to about 1e-16·|f|, and dividing by 2ε magnifies that. Here
f is the mean of σ(X Wᵀ + b) over 5 examples (the gradcheck example of docs/index.md); the
exact gradient is the autograd's. The rounding part is the float64 difference minus the same
difference in numpy's extended precision (np.longdouble, where it is wider than float64); the
truncation part is c·ε², with c measured at ε = 1e-3, where rounding is negligible.

Run: python examples/finite_difference_step.py
"""

import numpy as np

from tinygrad_nn import Tensor

rng = np.random.default_rng(0)
X = rng.uniform(0, 1, (5, 3))
W, b = rng.standard_normal((2, 3)), rng.standard_normal(2)


def f(W, dtype):  # the same function in float64 or in extended precision
    z = X.astype(dtype) @ W.T + b.astype(dtype)
    return (1 / (1 + np.exp(-z))).mean()


w = Tensor(W, requires_grad=True)
(Tensor(X) @ w.T + Tensor(b)).sigmoid().mean().backward()
exact = w.grad.data


def central(eps, dtype):
    out = np.zeros(W.shape)
    for i in np.ndindex(W.shape):
        step = np.zeros(W.shape, dtype=dtype)
        step[i] = dtype(eps)
        w_ = W.astype(dtype)
        out[i] = (f(w_ + step, dtype) - f(w_ - step, dtype)) / (2 * dtype(eps))
    return out


extended = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps
c = np.abs(central(1e-3, np.longdouble if extended else np.float64) - exact).max() / 1e-6
print(f"f = {f(W, np.float64):.4f}; extended precision available: {extended}")
print("  eps     largest error   rounding part   truncation c·ε²   rounding / truncation")
for eps in (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8):
    fd = central(eps, np.float64)
    error = np.abs(fd - exact).max()
    rounding = np.abs(fd - central(eps, np.longdouble)).max() if extended else float("nan")
    print(f"  {eps:.0e}   {error:.1e}         {rounding:.1e}         {c * eps ** 2:.1e}"
          f"           {rounding / (c * eps ** 2):.2g}")
