"""Why reverse mode, and what a mini-batch estimates (sec. 1.2's eqs. 1.3-1.4, eq. 2.4).

Counts the parameters of the tutorial's [64, 30, 10] network; times ∂C/∂θ by central finite
differences (two forward passes per parameter) against one forward and one backward pass; then
compares eq. 2.4's mini-batch gradient with the training set's for m = 1, 10, 100 digits.

Run: python examples/why_reverse_mode.py [--repeat R] [--draws D] [--seed S]
"""

import argparse
import timeit

import numpy as np

from tinygrad_nn import Network, Tensor, datasets, linear, numerical_grad, quadratic_cost, sigmoid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
for flag, default in (("--repeat", 3), ("--draws", 500), ("--seed", 0)):  # timings; m; all
    parser.add_argument(flag, type=int, default=default)
args = parser.parse_args()

train, sizes = datasets.load_digits().train, [64, 30, 10]
net = Network(sizes, seed=args.seed)  # N(0, 1) weights and biases, as in the tutorial
params = [Tensor(p, requires_grad=True) for p in [*net.weights, *net.biases]]
terms = " + ".join(f"{n_out}·{n_in} + {n_out}" for n_in, n_out in zip(sizes, sizes[1:]))
print(f"parameters of {sizes}: {terms} = {sum(p.data.size for p in params)}")


def cost(X, Y, w2, w3, b2, b3):  # eq. 2.1 over the rows of X: the mean of C_x
    return quadratic_cost(sigmoid(linear(sigmoid(linear(Tensor(X), w2, b2)), w3, b3)), Y)


def gradient(X, Y):  # one forward and one backward pass
    for p in params:
        p.grad = None
    cost(X, Y, *params).backward()
    return np.concatenate([p.grad.data.ravel() for p in params])


X, Y, Y_all = train.X[:10], train.one_hot()[:10], train.one_hot()  # a mini-batch of 10
fb, fd_seconds = [], []  # seconds per forward + backward, and for all the differences
for _ in range(args.repeat):
    fb.append(timeit.timeit(lambda: gradient(X, Y), number=100) / 100)
    fd_seconds.append(timeit.timeit(lambda: numerical_grad(lambda *p: cost(X, Y, *p), *params),
                                    number=1))
g, fd = gradient(X, Y), np.concatenate([d.ravel() for d in numerical_grad(
    lambda *p: cost(X, Y, *p), *params)])
print(f"forward + backward: {1e3 * min(fb):.3f} ms; finite differences: {min(fd_seconds):.3f} s, "
      f"{1e3 * min(fd_seconds) / (2 * g.size):.3f} ms per forward pass (best of {args.repeat})")
print(f"ratio {min(fd_seconds) / min(fb):.0f} (worst times: {max(fd_seconds) / max(fb):.0f}); "
      f"largest |difference| of the two gradients: {np.abs(fd - g).max():.1e}")

rng, full = np.random.default_rng(args.seed), gradient(train.X, Y_all)  # ∇C: all n digits
print(f"|g_m - ∇C| / |∇C| over {args.draws} random mini-batches of the n = {len(train)} digits:")
for m in (1, 10, 100):
    batches = (rng.choice(len(train), m, replace=False) for _ in range(args.draws))
    e = np.array([np.linalg.norm(gradient(train.X[i], Y_all[i]) - full) for i in batches])
    e, rms = e / np.linalg.norm(full), np.sqrt(np.mean(e ** 2)) / np.linalg.norm(full)
    print(f"  m = {m:<3}  rms {rms:.3f}  (10%-90% of draws: {np.quantile(e, 0.1):.3f}-"
          f"{np.quantile(e, 0.9):.3f})  rms · √m = {rms * np.sqrt(m):.2f}")
