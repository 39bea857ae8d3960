"""Proof that the property suite can fail: plant bugs and watch the properties catch them.

Each mutant is a plausible mistake planted with pytest's monkeypatch (so it is undone
after the test). Each property's check from `test_properties.py` runs on a fixed
example: first on the real package, where it must pass (so a "catch" is not the
example's own fault), then with the mutant, where it must raise AssertionError.
`CAUGHT` lists which properties catch which mutant; every mutant must be caught by
at least one. A short Hypothesis search per mutant shows that the random draws of
the suite find it too, not just the hand-picked examples.
"""

from __future__ import annotations

import mlp
import numpy as np
import pytest
import test_properties as props
from hypothesis import Phase, given, settings
from strategies import (
    MODERATE_SCALES,
    Expr,
    Expression,
    expression_pairs,
    expressions,
    make_network,
    networks,
    primitive_cases,
)

from tinygrad_nn import autograd, ops

# --- the mutants --------------------------------------------------------------------


def sigmoid_without_one_minus_sigma(monkeypatch):
    """σ' = σ instead of σ(1 - σ): the (1 - σ) factor dropped from sigmoid's VJP."""
    monkeypatch.setattr(ops.sigmoid, "vjps", (lambda g, out, x, saved=None: g * out,))


def sigmoid_vjp_cancelling(monkeypatch):
    """σ' as σ(1 - σ): right in exact arithmetic, but 1 - σ(z) cancels for large z (the
    package's VJP until c877d7d): relative error eps/σ(-z), 5e-8 at z = 20, 100% from 37."""
    monkeypatch.setattr(ops.sigmoid, "vjps",
                        (lambda g, out, x, saved=None: g * out * (1 - out),))


def sum_to_skipping_an_axis(monkeypatch):
    """Unbroadcasting that keeps the first slice of one stretched axis instead of summing it."""
    real = ops.sum_to

    def sum_to(g, shape):
        lead = g.ndim - len(shape)
        stretched = [lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1]
        if stretched:
            g = g.take([0], axis=stretched[-1])
        return real(g, shape)

    monkeypatch.setattr(autograd, "sum_to", sum_to)


def matmul_vjp_wrong_transpose(monkeypatch):
    """x @ y's gradient for x computed as g @ y, not g @ yᵀ (right only for symmetric y)."""
    monkeypatch.setattr(ops.matmul, "vjps", (lambda g, out, x, y: g @ y, ops.matmul.vjps[1]))


def linear_vjp_wrong_transpose(monkeypatch):
    """BP2 with w^{l+1} instead of (w^{l+1})ᵀ: linear's input gradient g @ wᵀ, not g @ w."""
    _, vjp_w, vjp_b = ops.linear.vjps
    monkeypatch.setattr(ops.linear, "vjps", (lambda g, out, x, w, b: g @ w.T, vjp_w, vjp_b))


def cost_without_one_over_m(monkeypatch):
    """The mini-batch cost 1/2 Σ ||y - a||² instead of 1/(2m) Σ ||y - a||²."""
    def quadratic_cost(a, Y):
        d = a - Y
        return (d * d).sum() * 0.5

    monkeypatch.setitem(mlp.COSTS, "quadratic", quadratic_cost)


def parameter_gradients_negated(monkeypatch):
    """A sign error in BP3 and BP4: linear's weight and bias gradients negated."""
    vjp_x, vjp_w, vjp_b = ops.linear.vjps
    monkeypatch.setattr(ops.linear, "vjps", (vjp_x, lambda *a: -vjp_w(*a),
                                             lambda *a: -vjp_b(*a)))


def backward_overwrites_grad(monkeypatch):
    """`.grad = g` instead of `.grad += g`: a second backward call forgets the first."""
    real = autograd._walk

    def walk(outputs, seeds, create_graph, receive, **options):
        def overwrite(t, g):
            t.grad = None
            receive(t, g)

        real(outputs, seeds, create_graph, overwrite, **options)

    monkeypatch.setattr(autograd, "_walk", walk)


def constants_promote_float32(monkeypatch):
    """Python numbers become float64 arrays, so float32 computations silently turn float64."""
    monkeypatch.setattr(ops, "_constant_array", lambda x, like: np.asarray(x, dtype=np.float64))


MUTANTS = {f.__name__: f for f in (
    sigmoid_without_one_minus_sigma, sigmoid_vjp_cancelling, sum_to_skipping_an_axis,
    matmul_vjp_wrong_transpose, linear_vjp_wrong_transpose, cost_without_one_over_m,
    parameter_gradients_negated, backward_overwrites_grad, constants_promote_float32)}


# --- fixed examples for every property ----------------------------------------------
# Square layers (3 -> 3 -> 3), so a wrongly transposed weight still has the right
# shape and gives a wrong value rather than a shape error; moderate weights (no
# saturation); a mini-batch of m = 4, so a missing 1/m shows.

NET = make_network([3, 3, 3], m=4, scales=[1.0, 1.0], seed=7)
NET32 = make_network([3, 3, 3], m=4, scales=[1.0, 1.0], seed=7, float32_exact=True)
# Saturated on purpose: every output unit at z ~ 25 (float64) or z ~ 10 (float32).
NET_SATURATED = make_network([3, 3, 3], m=2, scales=[1.0, 1.0], shifts=[0.0, 25.0], seed=7)
NET32_SATURATED = make_network([3, 3, 3], m=2, scales=[1.0, 1.0], shifts=[0.0, 10.0], seed=7,
                               float32_exact=True)
RNG = np.random.default_rng(11)
A, B = RNG.uniform(-1, 1, (3, 3)), RNG.uniform(-1, 1, (3, 3))
COLUMN, ROW = RNG.uniform(-1, 1, (3, 1)), RNG.uniform(-1, 1, (1, 4))
BIAS = RNG.uniform(-1, 1, 3)

GRADCHECK_CASES = [
    ("sigmoid(A)", lambda a: a.sigmoid(), [A]),
    ("column * row + column (broadcasting)", lambda c, r: c * r + c, [COLUMN, ROW]),
    ("A @ B", lambda a, b: a @ b, [A, B]),
    ("linear(A, B, bias)", lambda a, b, c: ops.linear(a, b, c), [A, B, BIAS]),
    ("sigmoid(A @ B + bias)", lambda a, b, c: (a @ b + c).sigmoid(), [A, B, BIAS]),
]


def _use(i: int) -> Expr:
    return Expr("input", leaf=i)


# f = sigmoid(A @ B), g = A * B + A (A used twice), over the shared inputs [A, B].
LINEARITY_PAIR = (
    Expression(Expr("sigmoid", (Expr("matmul", (_use(0), _use(1))),)), [A, B]),
    Expression(Expr("add", (Expr("mul", (_use(0), _use(1))), _use(0))), [A, B]),
)


def gradcheck_cases() -> None:
    for description, fn, inputs in GRADCHECK_CASES:
        props.check_gradcheck(description, fn, inputs)


P1, P2, P3, P4 = ("1 quadratic-cost gradients = BP1-BP4", "2 cross-entropy gradients = BP1-BP4",
                  "3 dC/dz^l = delta^l", "4 gradcheck")
P5, P6, P7, P8 = ("5 eq. 1.8 error ratio ~4", "6 linearity and accumulation",
                  "7 SGD step descends", "8 float32 = float64")
PROPERTIES = {
    P1: lambda: props.check_matches_backprop(NET),
    P2: lambda: props.check_cross_entropy(NET),
    P3: lambda: props.check_deltas(NET),
    P4: gradcheck_cases,
    P5: lambda: props.check_linear_approximation(NET, seed=3),
    P6: lambda: props.check_linearity(*LINEARITY_PAIR, 2.0, -0.5),
    P7: lambda: props.check_descent(NET),
    P8: lambda: props.check_float32(NET32),
    "1 (saturated output layer)": lambda: props.check_matches_backprop(NET_SATURATED),
    "3 (saturated output layer)": lambda: props.check_deltas(NET_SATURATED),
    "8 (saturated output layer)": lambda: props.check_float32(NET32_SATURATED),
}

#: Which properties catch which mutant on the fixed examples (found by running every
#: pair; `test_no_other_property_catches` keeps this table exact).
CAUGHT = {
    "sigmoid_without_one_minus_sigma": [
        P1, P2, P3, P4, P5, "1 (saturated output layer)", "3 (saturated output layer)",
        "8 (saturated output layer)"],
    "sigmoid_vjp_cancelling": [
        "1 (saturated output layer)", "3 (saturated output layer)",
        "8 (saturated output layer)"],
    "sum_to_skipping_an_axis": [P4],
    "matmul_vjp_wrong_transpose": [P4],
    "linear_vjp_wrong_transpose": [
        P1, P2, P3, P4, P5, "1 (saturated output layer)", "3 (saturated output layer)"],
    "cost_without_one_over_m": [
        P1, P3, "1 (saturated output layer)", "3 (saturated output layer)"],
    "parameter_gradients_negated": [P1, P2, P4, P5, P7, "1 (saturated output layer)"],
    "backward_overwrites_grad": [P6],
    "constants_promote_float32": [P8, "8 (saturated output layer)"],
}

PAIRS = [(mutant, prop) for mutant, caught in CAUGHT.items() for prop in caught]


@pytest.mark.parametrize("prop", sorted(PROPERTIES))
def test_fixed_example_passes_without_mutants(prop):
    PROPERTIES[prop]()


@pytest.mark.parametrize(("mutant", "prop"), PAIRS)
def test_mutant_is_caught(monkeypatch, mutant, prop):
    MUTANTS[mutant](monkeypatch)
    with pytest.raises(AssertionError):
        PROPERTIES[prop]()


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_no_other_property_catches(monkeypatch, mutant):
    """Keeps CAUGHT honest: the properties not listed for a mutant do pass with it."""
    MUTANTS[mutant](monkeypatch)
    for prop in sorted(set(PROPERTIES) - set(CAUGHT[mutant])):
        PROPERTIES[prop]()


def test_every_mutant_is_caught():
    assert set(CAUGHT) == set(MUTANTS)
    assert all(CAUGHT[m] for m in MUTANTS)


# --- the random search finds each mutant too ----------------------------------------

#: A short search: generation only (no shrinking), no example database, deterministic.
SHORT = settings(max_examples=40, phases=[Phase.generate], database=None, derandomize=True)

SEARCHES = {
    "sigmoid_without_one_minus_sigma": (networks(), props.check_matches_backprop),
    "sigmoid_vjp_cancelling": (networks(), props.check_deltas),
    "sum_to_skipping_an_axis": (expressions(), props.check_expression),
    "matmul_vjp_wrong_transpose": (primitive_cases["matmul"],
                                   lambda case: props.check_gradcheck(
                                       case.description, case.fn, case.inputs)),
    "linear_vjp_wrong_transpose": (networks(), props.check_deltas),
    "cost_without_one_over_m": (networks(), props.check_matches_backprop),
    "parameter_gradients_negated": (networks(scales=MODERATE_SCALES, shifts=(0.0,)),
                                    props.check_descent),
    "backward_overwrites_grad": (expression_pairs(),
                                 lambda pair: props.check_linearity(*pair, 2.0, -0.5)),
    "constants_promote_float32": (networks(scales=MODERATE_SCALES, shifts=(0.0,),
                                           float32_exact=True), props.check_float32),
}


@pytest.mark.parametrize("mutant", sorted(SEARCHES))
def test_short_hypothesis_search_finds_mutant(monkeypatch, mutant):
    strategy, check = SEARCHES[mutant]

    @SHORT
    @given(strategy)
    def search(example):
        props.run(check, example)  # a draw that misses a precondition is skipped

    MUTANTS[mutant](monkeypatch)
    # A wrongly transposed operand of a non-square matrix breaks the shapes instead:
    # the walk then fails with numpy's ValueError, which fails a property just as well.
    with pytest.raises((AssertionError, ValueError)):
        search()
