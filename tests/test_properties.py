"""The property suite: the autograd against BP1–BP4, finite differences and calculus.

Each property is a plain `check_*` function that raises AssertionError (and `Skip`
when a drawn example does not meet the property's precondition); the @given tests
call them on Hypothesis' draws and `test_mutants.py` calls them on planted bugs.

1. Autograd = BP1–BP4 for the quadratic cost (weights and biases, every layer).
2. The same for the cross-entropy cost.
3. Autograd's ∂C/∂z^l = BP's δ^l, every layer.
4. Every primitive, and random composite expressions, pass `gradcheck`.
5. Eq. 1.8: the error of the first-order prediction of Δo falls ~4x when Δ halves.
6. Linearity of the gradient, and accumulation of `.grad` over backward calls.
7. One small SGD step does not increase the mini-batch cost.
8. float32 agrees with float64 to float32 precision.
"""

from __future__ import annotations

import math

import mlp
import numpy as np
import pytest
from hypothesis import assume, event, example, given
from hypothesis import strategies as st
from strategies import (
    MODERATE_SCALES,
    Expression,
    Network,
    expression_pairs,
    expressions,
    make_network,
    networks,
    primitive_cases,
)

from tinygrad_nn import Tensor, grad, gradcheck, ops
from tinygrad_nn.backprop import (
    backprop_batch,
    backprop_deltas_batch,
    feedforward_batch,
    sigmoid_prime,
    total_cost,
)
from tinygrad_nn.gradcheck import GradcheckError
from tinygrad_nn.tensor import no_grad

pytestmark = pytest.mark.property

EPS64 = np.finfo(np.float64).eps
EPS32 = float(np.finfo(np.float32).eps)

# Autograd vs BP1–BP4, per layer: |autograd - BP| <= RTOL_BP · max|BP| + FLOOR_BP.
# Both sides evaluate the same formulas in float64 (identical z^l, a^l; the same
# matrix products for BP2/BP4), so they differ by rounding only: a few ulps per
# operation, ~1e-15 relative, amplified at most by the width (<= 16) and the depth
# (<= 5 weight layers) of the sums. Scaling by the layer's largest entry (not
# entry by entry) keeps entries that are tiny because their σ'(z) is tiny (saturated
# units) from demanding more than rounding can give, while a layer whose every unit
# is saturated is still held to 1e-10 relative: σ'(z) = σ(z)σ(-z) is representable
# to full relative precision for |z| ~ 40, so both sides must get it. 1e-10 leaves a
# margin of ~1e5 above rounding. The floor, tiny/eps ~ 1e-292, is the size below
# which float64 loses relative precision to gradual underflow; it only matters for a
# layer whose gradient is (or underflows to) zero on both sides, and changes nothing
# for any value the strategies can produce.
RTOL_BP = 1e-10
FLOOR_BP = np.finfo(np.float64).tiny / EPS64


class Skip(Exception):
    """The drawn example does not meet a property's precondition (the reason is the message)."""


def run(check, *args, **kwargs) -> None:
    """Call a check from a @given test; a `Skip` becomes a rejected example with a reason."""
    try:
        check(*args, **kwargs)
    except Skip as reason:
        event(f"skipped: {reason}")
        assume(False)


# --- comparing per layer -------------------------------------------------------------


def layer_problems(name: str, actual: list, expected: list, scales: list[float],
                   rtol: float, floor: float) -> list[str]:
    """Per layer l: |actual - expected| <= rtol·scale_l + floor, else a line naming the
    layer, the largest error, where it is and both values."""
    problems = []
    for layer, (a, b, scale) in enumerate(zip(actual, expected, scales, strict=True), start=2):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            problems.append(f"layer l={layer}: {name} has shape {a.shape}, expected {b.shape}")
            continue
        err = np.abs(a.astype(np.float64) - b)
        allowed = rtol * scale + floor
        if np.all(err <= allowed):  # False for NaN, as wanted
            continue
        i = np.unravel_index(np.argmax(np.where(np.isnan(err), np.inf, err)), err.shape)
        problems.append(
            f"layer l={layer}: {name}: largest error {err[i]:.3g} at index "
            f"{tuple(int(j) for j in i)} (got {a[i]:.17g}, expected {b[i]:.17g}); "
            f"allowed {allowed:.3g} = {rtol:g} x scale {scale:.3g} + {floor:.3g}"
        )
    return problems


def largest(arrays) -> list[float]:
    return [float(np.max(np.abs(a), initial=0.0)) for a in arrays]


def saturation(net: Network) -> str:
    zs, _ = feedforward_batch(net.weights, net.biases, net.X)
    return "max |z^l| per layer l=2..L: [" + ", ".join(
        f"{np.max(np.abs(z)):.3g}" for z in zs) + "]"


def _fail(title: str, net: Network, problems: list[str]) -> None:
    if problems:
        raise AssertionError(
            f"{title}\n  {net.describe()}\n  {saturation(net)}\n  " + "\n  ".join(problems))


def _record_saturation(net: Network) -> None:
    zs, _ = feedforward_batch(net.weights, net.biases, net.X)
    top = max(float(np.max(np.abs(z))) for z in zs)
    bucket = "< 5" if top < 5 else "5-20" if top < 20 else "20-40" if top < 40 else ">= 40"
    event(f"largest |z^l| in the network: {bucket}")


# --- properties 1-3: the autograd against BP1–BP4 -------------------------------------


def check_matches_backprop(net: Network, cost: str = "quadratic") -> None:
    """Autograd's ∂C/∂w^l and ∂C/∂b^l (and C) equal BP1–BP4's for the mini-batch MEAN cost.

    `backprop_batch` returns the SUM over the mini-batch of per-example gradients;
    the autograd differentiates C = (1/m) Σ_x C_x, so BP's sums are divided by m.
    """
    got = mlp.autograd_run(net.weights, net.biases, net.X, net.Y, cost)
    nabla_b, nabla_w = backprop_batch(net.weights, net.biases, net.X, net.Y, cost)
    ref_w = [g / net.m for g in nabla_w]
    ref_b = [g / net.m for g in nabla_b]
    ref_cost = float(total_cost(net.weights, net.biases, net.X, net.Y, cost))
    problems = layer_problems("∂C/∂w^l", got.nabla_w, ref_w, largest(ref_w), RTOL_BP, FLOOR_BP)
    problems += layer_problems("∂C/∂b^l", got.nabla_b, ref_b, largest(ref_b), RTOL_BP, FLOOR_BP)
    if not abs(got.cost - ref_cost) <= RTOL_BP * abs(ref_cost) + FLOOR_BP:
        problems.append(f"cost C: autograd {got.cost!r}, BP {ref_cost!r}")
    _fail(f"autograd gradients differ from BP1-BP4 ({cost} cost)", net, problems)


def check_deltas(net: Network, cost: str = "quadratic") -> None:
    """Autograd's ∂C/∂z^l (z.retain_grad()) equals BP's δ^l / m at every layer l = 2..L.

    BP's δ^l is ∂C_x/∂z^l for each example's own cost C_x; the mean cost C = (1/m) Σ C_x
    gives each row 1/m of it.
    """
    got = mlp.autograd_run(net.weights, net.biases, net.X, net.Y, cost)
    ref = [d / net.m for d in backprop_deltas_batch(net.weights, net.biases, net.X, net.Y, cost)]
    problems = layer_problems("∂C/∂z^l vs δ^l/m", got.deltas, ref, largest(ref), RTOL_BP,
                              FLOOR_BP)
    _fail(f"autograd errors δ^l differ from BP1-BP2 ({cost} cost)", net, problems)


@given(networks())
def test_quadratic_cost_gradients_match_backprop(net):
    _record_saturation(net)
    check_matches_backprop(net, "quadratic")


# Cross-entropy, written as the tutorial writes it, -[y ln a + (1-y) ln(1-a)], takes
# ln(1 - a) of a rounded a: 1 - a carries an absolute error of up to eps/2, a relative
# error of eps/(2(1 - a)) = eps/(2σ(-z)), and autograd differentiates exactly that
# (BP1 uses the closed form a - y instead). Near z^L ~ 14 this alone reaches the 1e-10
# of RTOL_BP, so the output layer is kept moderately saturated, z^L <= 10 (1 - a >= 4.5e-5,
# relative error <= 3e-12); hidden layers may still saturate fully. (Very negative z^L is
# harmless: a = σ(z) keeps full relative precision and 1 - a ~ 1.)
MAX_OUTPUT_Z_CROSS_ENTROPY = 10.0


def check_cross_entropy(net: Network) -> None:
    zs, _ = feedforward_batch(net.weights, net.biases, net.X)
    if np.max(zs[-1]) > MAX_OUTPUT_Z_CROSS_ENTROPY:
        raise Skip(f"z^L > {MAX_OUTPUT_Z_CROSS_ENTROPY:g}: ln(1 - a^L) loses precision to "
                   f"rounding of a^L")
    check_matches_backprop(net, "cross-entropy")


@given(networks(output_scales=MODERATE_SCALES, output_shifts=(0.0,)))
def test_cross_entropy_gradients_match_backprop(net):
    _record_saturation(net)
    run(check_cross_entropy, net)


@given(networks())
def test_layer_errors_match_backprop_deltas(net):
    _record_saturation(net)
    check_deltas(net, "quadratic")


# --- property 4: finite differences ---------------------------------------------------


def check_gradcheck(description: str, fn, inputs: list[np.ndarray]) -> None:
    """`gradcheck` (central differences, float64, its default tolerances) at `inputs`."""
    try:
        gradcheck(fn, *[Tensor(x, requires_grad=True) for x in inputs])
    except GradcheckError as err:
        raise GradcheckError(f"{description}\n{err}") from None


def check_expression(expr: Expression) -> None:
    check_gradcheck(expr.describe(), expr, expr.inputs)


def test_every_primitive_has_a_strategy():
    primitives = {name for name, value in vars(ops).items()
                  if isinstance(value, ops.Primitive) and value.vjps}
    missing = primitives - set(primitive_cases)
    assert not missing, f"primitives with no gradcheck strategy in tests/strategies.py: {missing}"


@pytest.mark.parametrize("name", sorted(primitive_cases))
@given(data=st.data())
def test_primitive_matches_finite_differences(name, data):
    case = data.draw(primitive_cases[name], label=name)
    check_gradcheck(case.description, case.fn, case.inputs)


@given(expressions())
def test_composite_expression_matches_finite_differences(expr):
    event(f"depth {expr.root.depth()}")
    event(f"inputs: {min(len(expr.inputs), 4)}{'+' if len(expr.inputs) >= 4 else ''}")
    for op in expr.root.ops() - {"input"}:
        event(f"uses {op}")
    check_expression(expr)


# --- property 5: eq. 1.8, the linear approximation -------------------------------------

#: The step: Δθ = h·u with u a random unit vector over all weights and biases.
STEP = 1e-3


def linear_approximation_errors(net: Network, seed: int, h: float = STEP) -> dict:
    """Errors of eq. 1.8, Δo ≈ Σ ∂o/∂θ Δθ, at steps h and h/2 along one random direction.

    The output o = Σ V ⊙ a^L is a fixed random projection of the mini-batch's outputs.
    Also returns the curvature uᵀHu estimated from output values alone (a second
    difference), which does not use the gradient under test.
    """
    rng = np.random.default_rng(seed)
    V = rng.uniform(-1, 1, net.Y.shape)
    ws, bs = mlp.parameters(net.weights, net.biases)
    params = ws + bs
    direction = [rng.standard_normal(p.shape) for p in params]
    norm = math.sqrt(sum(float(np.sum(d * d)) for d in direction))
    direction = [d / norm for d in direction]
    n = len(ws)

    def output(t: float) -> float:
        with no_grad():
            moved = [Tensor(p.data + t * d) for p, d in zip(params, direction)]
            _, activations = mlp.forward(Tensor(net.X), moved[:n], moved[n:])
            return float(np.sum(activations[-1].data * V))

    _, activations = mlp.forward(Tensor(net.X), ws, bs)
    (activations[-1] * V).sum().backward()
    slope = sum(float(np.sum(p.grad.data * d)) for p, d in zip(params, direction))
    o = output(0.0)
    errors = {t: abs(output(t) - o - t * slope) for t in (h, h / 2)}
    curvature = (output(h) - 2 * o + output(-h)) / h**2
    return {"h": h, "error_h": errors[h], "error_h2": errors[h / 2], "curvature": curvature,
            "slope": slope, "output": o, "scale": float(np.sum(np.abs(V)))}


def check_linear_approximation(net: Network, seed: int) -> None:
    """Halving every Δ cuts the error of the first-order prediction by ~4: ratio in [3, 5]."""
    r = linear_approximation_errors(net, seed)
    h = r["h"]
    # The error at h/2 is ~|uᵀHu| (h/2)²/2. Each output evaluation is exact to about
    # eps·Σ|V| (|a^L| <= 1), times a small factor for the depth; the ratio is only
    # meaningful when the second-order term is well above that, so draws where it is
    # ~0 (flat or saturated networks) are skipped.
    rounding = 64 * EPS64 * (1 + r["scale"])
    if abs(r["curvature"]) * (h / 2) ** 2 / 2 < 1e3 * rounding:
        raise Skip("second-order term ~0 (|uᵀHu| too small to measure the ratio)")
    ratio = r["error_h"] / r["error_h2"] if r["error_h2"] > 0 else math.inf
    if not 3 <= ratio <= 5:
        raise AssertionError(
            f"eq. 1.8: error of the first-order prediction at h={h:g} is {r['error_h']:.3g}, "
            f"at h/2 {r['error_h2']:.3g}: ratio {ratio:.3g}, expected ~4 (in [3, 5]); "
            f"curvature uᵀHu ~ {r['curvature']:.3g}, slope ∂o/∂θ·u = {r['slope']:.6g}\n"
            f"  {net.describe()}\n  {saturation(net)}")


@given(networks(scales=MODERATE_SCALES, shifts=(0.0,)), st.integers(0, 2**32 - 1))
def test_linear_approximation_error_is_second_order(net, seed):
    run(check_linear_approximation, net, seed)


# --- property 6: linearity and accumulation --------------------------------------------

#: Linearity is checked with a, b in {0, ±2^k}: scaling by a power of two is exact in
#: floating point, so every contribution to ∇(a·f + b·g) is exactly a (or b) times the
#: matching contribution to ∇f (or ∇g). What differs is only the order in which the
#: contributions of the uses of an input are added: a few roundings relative to their
#: sizes Σ|contribution| (not to the sum, which may cancel: ∇(x - x) = 1 - 1 = 0).
#: 1e-10 of those sizes leaves a wide margin.
RTOL_LINEAR = 1e-10
POWERS_OF_TWO = st.sampled_from([0.0]) | st.builds(
    lambda sign, k: sign * 2.0**k, st.sampled_from([1.0, -1.0]), st.integers(-8, 8))


def _grads(out: Tensor, inputs: list[Tensor]) -> list[np.ndarray]:
    result = grad(out, inputs, allow_unused=True)
    return [np.zeros(x.shape) if g is None else g.data for x, g in zip(inputs, result)]


def check_linearity(f: Expression, g: Expression, a: float, b: float) -> None:
    """∇(a·f + b·g) = a·∇f + b·∇g; f.backward() then g.backward() leaves ∇f + ∇g in .grad,
    and calling f.backward() twice leaves 2∇f. `f` and `g` share their inputs; each is
    summed to a scalar.
    """
    inputs = f.inputs
    xs = [Tensor(x, requires_grad=True) for x in inputs]
    df, dg = _grads(f(*xs).sum(), xs), _grads(g(*xs).sum(), xs)
    combined = _grads(a * f(*xs).sum() + b * g(*xs).sum(), xs)
    sizes = [u + v for u, v in zip(f.contribution_sizes(a), g.contribution_sizes(b))]
    problems = []
    for i, (h, x, y, size) in enumerate(zip(combined, df, dg, sizes)):
        err = np.abs(h - (a * x + b * y))
        allowed = RTOL_LINEAR * size + FLOOR_BP
        if not np.all(err <= allowed):
            j = np.unravel_index(np.argmax(err - allowed), err.shape)
            problems.append(f"linearity, input x{i}: error {err[j]:.3g} at {j}, allowed "
                            f"{allowed[j]:.3g} = {RTOL_LINEAR:g} x Σ|contributions| {size[j]:.3g}")
    f(*xs).sum().backward()
    g(*xs).sum().backward()
    twice = [Tensor(x, requires_grad=True) for x in inputs]
    out = f(*twice).sum()
    out.backward()
    out.backward()  # the same graph again: the graph walk keeps it
    for i, (t, u, x, y) in enumerate(zip(xs, twice, df, dg)):
        # Accumulation adds the gradients once, exactly as x + y does: no rounding slack.
        for what, tensor, want in (("f then g", t, x + y), ("f twice", u, x + x)):
            got = np.zeros(tensor.shape) if tensor.grad is None else tensor.grad.data
            if not np.array_equal(got, want):
                problems.append(f"accumulation ({what}), input x{i}: .grad after two backward "
                                f"calls is off by up to {np.max(np.abs(got - want)):.3g}")
    if problems:
        shapes = ", ".join(f"x{i}: {x.shape}" for i, x in enumerate(inputs))
        raise AssertionError(f"f = sum({f.root}), g = sum({g.root}), a = {a!r}, b = {b!r}; "
                             f"inputs {shapes}\n  " + "\n  ".join(problems))


@given(expression_pairs(), POWERS_OF_TWO, POWERS_OF_TWO)
def test_gradient_is_linear_and_accumulates(pair, a, b):
    f, g = pair
    check_linearity(f, g, a, b)


# --- property 7: descent ----------------------------------------------------------------

#: The learning rate. C(θ - ηg) = C - η||g||² + (η²/2) gᵀHg + ..., so a step decreases C
#: when η < 2/λ_max(H); with moderate weights (scale <= 3) the curvature of these
#: networks stays far below 2/η = 2000.
ETA = 1e-3


def check_descent(net: Network, cost: str = "quadratic", eta: float = ETA) -> None:
    """One SGD step p -= η ∇C on the mini-batch does not increase that mini-batch's cost."""
    ws, bs = mlp.parameters(net.weights, net.biases)
    before = mlp.cost_of(ws, bs, net.X, net.Y, cost)
    before.backward()
    squared_norm = sum(float(np.sum(p.grad.data ** 2)) for p in ws + bs)
    # The predicted decrease η||g||² must stand well above the rounding of C itself.
    if eta * squared_norm <= 1e3 * EPS64 * abs(before.item()):
        raise Skip("gradient ~0: the predicted decrease is below the rounding of C")
    for p in ws + bs:
        p.data -= eta * p.grad.data
    with no_grad():
        after = mlp.cost_of(ws, bs, net.X, net.Y, cost)
    if not after.item() <= before.item():
        raise AssertionError(
            f"one SGD step (η={eta:g}) increased the {cost} cost from {before.item()!r} to "
            f"{after.item()!r} (||∇C||² = {squared_norm:.3g})\n  {net.describe()}")


@given(networks(scales=MODERATE_SCALES, shifts=(0.0,)))
def test_sgd_step_does_not_increase_cost(net):
    run(check_descent, net)


# --- property 8: float32 against float64 ------------------------------------------------


def float32_tolerance(net: Network) -> tuple[float, list]:
    """A relative tolerance from float32's unit roundoff u and the size of the network.

    Forward, z_j = Σ_k w_jk a_k + b_j in float32 is off by up to (n+1)·u·Z with
    Z = max(Σ_k |w_jk a_k| + |b_j|) (a sum of n+1 terms), and an error Δz changes
    σ and σ' by a relative |Δz| at most (|d ln σ'/dz| = |1 - 2σ| <= 1); this happens
    in each of the L layers. Backward, BP2 sums n terms per layer and BP4 sums m
    examples. So the relative error is at most ~u·(L·(n+1)·(2 + Z) + m), times a
    small constant (8) for the few roundings per operation. Errors are measured
    against magnitudes (|a| + |y| for a - y, |w| for w), which is what rounding errors
    scale with: it keeps the test honest when a - y or a sum cancels.
    """
    zs, activations = feedforward_batch(net.weights, net.biases, net.X)
    Z = max(float(np.max(np.abs(a) @ np.abs(w).T + np.abs(b)))
            for w, b, a in zip(net.weights, net.biases, activations[:-1]))
    L, width = len(net.sizes), max(net.sizes)
    u = EPS32 / 2
    return 8 * u * (L * (width + 1) * (2 + Z) + net.m), (zs, activations)


def check_float32(net: Network) -> None:
    """A float32 run (the same network, exactly representable in float32) agrees with float64."""
    tol, (zs, activations) = float32_tolerance(net)
    r64 = mlp.autograd_run(net.weights, net.biases, net.X, net.Y, "quadratic", np.float64)
    r32 = mlp.autograd_run(net.weights, net.biases, net.X, net.Y, "quadratic", np.float32)
    # float32 end to end: the forward values (a^L, the z^l whose gradients are the δ^l)
    # as well as the gradients, not only gradients cast back at the leaves.
    problems = [f"{name} of layer l={i + 2} has dtype {g.dtype}, not float32"
                for name, grads in (("∂C/∂w", r32.nabla_w), ("∂C/∂b", r32.nabla_b),
                                    ("δ = ∂C/∂z", r32.deltas))
                for i, g in enumerate(grads) if g.dtype != np.float32]
    for name, dtype in (("the output a^L", r32.output.dtype), ("the cost", r32.cost_dtype)):
        if dtype != np.float32:
            problems.append(f"{name} has dtype {dtype}, not float32")
    # Magnitude scales: BP1–BP4 run on |.|, with |a| + |y| in place of a - y.
    a_out = activations[-1]
    mag = (np.abs(a_out) + np.abs(net.Y)) * sigmoid_prime(zs[-1])
    mags = [mag]
    for w, z in zip(reversed(net.weights[1:]), reversed(zs[:-1])):
        mag = (mag @ np.abs(w)) * sigmoid_prime(z)
        mags.append(mag)
    mags.reverse()
    scale_w = [largest([d.T @ np.abs(a)])[0] / net.m for d, a in zip(mags, activations[:-1])]
    scale_b = [float(np.max(d.sum(axis=0))) / net.m for d in mags]
    floor = float(np.finfo(np.float32).tiny) / EPS32
    problems += layer_problems("float32 ∂C/∂w^l", r32.nabla_w, r64.nabla_w, scale_w, tol, floor)
    problems += layer_problems("float32 ∂C/∂b^l", r32.nabla_b, r64.nabla_b, scale_b, tol, floor)
    cost_scale = float(np.sum((np.abs(a_out) + np.abs(net.Y)) ** 2)) / (2 * net.m)
    cost_tol = tol + 8 * EPS32 * net.Y.size  # plus the final sum over m·n_L terms
    if not abs(r32.cost - r64.cost) <= cost_tol * cost_scale:
        problems.append(f"cost: float32 {r32.cost!r}, float64 {r64.cost!r}, allowed "
                        f"{cost_tol:.3g} x {cost_scale:.3g}")
    _fail(f"float32 differs from float64 by more than float32 rounding (tolerance {tol:.3g})",
          net, problems)


#: float32 saturates much earlier than float64: at z = 6.5, 1 - σ(z) = 1.5e-3 keeps only
#: ~4 of float32's 7 digits if computed by cancellation. Shifts of ±6.5 put whole layers
#: there (in float64 that is harmless, so properties 1-3 would not notice).
FLOAT32_SHIFTS = (0.0, 0.0, 6.5, -6.5)


@given(networks(scales=MODERATE_SCALES, shifts=FLOAT32_SHIFTS, float32_exact=True))
# Found by this property: one float32 unit at z = 6.43, where σ'(z) as σ(1 - σ) keeps only
# ~4 digits (relative error 3.7e-5, ~600 ulps; σ(z)σ(-z) gives 1e-7).
@example(make_network([1, 1], m=1, scales=[0.1], shifts=[6.5], seed=0, float32_exact=True))
def test_float32_agrees_with_float64(net):
    check_float32(net)
