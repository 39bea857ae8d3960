"""Tests for tinygrad_nn.ops: every primitive, driven by one table (minitorch's MathTest).

Each row of CASES names a tensor function, its numpy reference, the vector-Jacobian
products worked out by hand (one per input) and how to draw its inputs. The same rows
drive the forward-vs-numpy test, the backward-vs-hand-derivative test, gradcheck, the
float32 test and the second-order test. Inputs are drawn away from kinks (relu at 0,
ties in max); the conventions at the kinks have their own tests below.
"""

from __future__ import annotations

import re
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import tinygrad_nn as tg
from tinygrad_nn import Tensor, grad, gradcheck, ops

Domain = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def uniform(lo: float, hi: float) -> Domain:
    return lambda rng, shape: rng.uniform(lo, hi, shape)


def away_from_zero(lo: float, hi: float) -> Domain:
    """|x| in [lo, hi] with a random sign: keeps relu off its kink and divisors off 0."""
    return lambda rng, shape: rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values at least 0.3 apart, in random order: no ties for max, even after ±eps."""
    n = int(np.prod(shape, dtype=int))
    grid = rng.permutation(n) * 0.5 - 0.25 * n
    return (grid + rng.uniform(-0.1, 0.1, n)).reshape(shape)


STANDARD = uniform(-2.0, 2.0)
POSITIVE = uniform(0.5, 2.0)


@dataclass(frozen=True)
class Case:
    name: str
    fn: Callable[..., Tensor]
    ref: Callable[..., np.ndarray]
    vjp: Callable[..., tuple[np.ndarray, ...]] | None  # (g, *inputs) -> one grad per input
    shapes: tuple[tuple[int, ...], ...]
    domains: tuple[Domain, ...] | None = None  # default: STANDARD for every input

    def inputs(self, dtype: type = np.float64) -> list[np.ndarray]:
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        domains = self.domains or (STANDARD,) * len(self.shapes)
        return [d(rng, s).astype(dtype) for d, s in zip(domains, self.shapes, strict=True)]


def unary(name, fn, ref, derivative, shape=(3, 4), domain=STANDARD) -> Case:
    """An elementwise function: its VJP is g times the derivative f'(x)."""
    return Case(name, fn, ref, lambda g, x: (g * derivative(x),), (shape,), (domain,))


def number(name, fn, derivative, domain=STANDARD) -> Case:
    """A tensor combined with a Python number; the reference is the same expression on arrays."""
    return unary(name, fn, fn, derivative, (3, 4), domain)


def swap(a: np.ndarray) -> np.ndarray:
    return np.swapaxes(a, -1, -2)


def unreduce(g: np.ndarray, shape: tuple[int, ...], axis, keepdims: bool) -> np.ndarray:
    """Put a reduction's gradient back on the reduced axes: d(sum)/dx_i = 1."""
    if axis is None:
        axes = tuple(range(len(shape)))
    else:
        axes = tuple(a % len(shape) for a in (axis if isinstance(axis, tuple) else (axis,)))
    if not keepdims:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


def count(shape: tuple[int, ...], axis) -> int:
    """How many elements each output of a reduction over `axis` combines."""
    if axis is None:
        return int(np.prod(shape, dtype=int))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([shape[a] for a in axes], dtype=int))


def reduction_cases() -> list[Case]:
    shape = (2, 3, 4)
    cases = []
    for axis in (None, 0, 1, 2, -1, (0, 2), (-1, 0)):
        for keepdims in (False, True):
            tag = f"axis={axis},keepdims={keepdims}"
            cases.append(Case(
                f"sum[{tag}]",
                lambda x, a=axis, k=keepdims: x.sum(axis=a, keepdims=k),
                lambda x, a=axis, k=keepdims: np.sum(x, axis=a, keepdims=k),
                lambda g, x, a=axis, k=keepdims: (unreduce(g, x.shape, a, k),),
                (shape,)))
            cases.append(Case(
                f"mean[{tag}]",
                lambda x, a=axis, k=keepdims: x.mean(axis=a, keepdims=k),
                lambda x, a=axis, k=keepdims: np.mean(x, axis=a, keepdims=k),
                lambda g, x, a=axis, k=keepdims: (unreduce(g, x.shape, a, k) / count(x.shape, a),),
                (shape,)))
            # Without ties the gradient goes, whole, to the one largest element.
            cases.append(Case(
                f"max[{tag}]",
                lambda x, a=axis, k=keepdims: x.max(axis=a, keepdims=k),
                lambda x, a=axis, k=keepdims: np.max(x, axis=a, keepdims=k),
                lambda g, x, a=axis, k=keepdims: (
                    unreduce(g, x.shape, a, k) * (x == np.max(x, axis=a, keepdims=True)),),
                (shape,), (distinct,)))
    cases.append(Case("sum[0-d]", lambda x: x.sum(), np.sum, lambda g, x: (g,), ((),)))
    cases.append(Case("max[0-d]", lambda x: x.max(), np.max, lambda g, x: (g,), ((),)))
    return cases


def getitem_case(name, index, shape, hand=None) -> Case:
    """x[index]; the VJP puts g back where the elements came from (written per case)."""

    def put_back(g, x):
        out = np.zeros_like(x)
        out[index] = g
        return (out,)

    return Case(f"getitem[{name}]", lambda x: x[index], lambda x: x[index], hand or put_back,
                (shape,))


MASK = np.array([True, False, True, True, False])

CASES: list[Case] = [
    # --- unary elementwise --------------------------------------------------------------
    unary("neg", lambda x: -x, np.negative, lambda x: -np.ones_like(x)),
    unary("exp", lambda x: x.exp(), np.exp, np.exp),
    unary("exp[function,0-d]", tg.exp, np.exp, np.exp, shape=()),
    unary("log", lambda x: x.log(), np.log, lambda x: 1 / x, domain=uniform(0.5, 3.0)),
    unary("log[function]", tg.log, np.log, lambda x: 1 / x, domain=uniform(0.5, 3.0)),
    unary("sigmoid", lambda x: x.sigmoid(), lambda x: 1 / (1 + np.exp(-x)),
          lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2, domain=uniform(-4.0, 4.0)),
    unary("sigmoid[function,0-d]", tg.sigmoid, lambda x: 1 / (1 + np.exp(-x)),
          lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2, shape=()),
    unary("tanh", lambda x: x.tanh(), np.tanh, lambda x: 1 / np.cosh(x) ** 2),
    unary("tanh[function]", tg.tanh, np.tanh, lambda x: 1 / np.cosh(x) ** 2),
    unary("relu", lambda x: x.relu(), lambda x: np.where(x > 0, x, 0.0),
          lambda x: (x > 0).astype(x.dtype), domain=away_from_zero(0.1, 2.0)),
    unary("relu[function]", tg.relu, lambda x: np.where(x > 0, x, 0.0),
          lambda x: (x > 0).astype(x.dtype), domain=away_from_zero(0.1, 2.0)),
    # --- binary, same shapes ------------------------------------------------------------
    Case("add", lambda x, y: x + y, np.add, lambda g, x, y: (g, g), ((3, 4), (3, 4))),
    Case("sub", lambda x, y: x - y, np.subtract, lambda g, x, y: (g, -g), ((3, 4), (3, 4))),
    Case("mul", lambda x, y: x * y, np.multiply, lambda g, x, y: (g * y, g * x),
         ((3, 4), (3, 4))),
    Case("div", lambda x, y: x / y, np.divide, lambda g, x, y: (g / y, -g * x / y**2),
         ((3, 4), (3, 4)), (STANDARD, away_from_zero(0.5, 2.0))),
    Case("pow[tensor exponent]", lambda x, y: x**y, np.power,
         lambda g, x, y: (g * y * x ** (y - 1), g * x**y * np.log(x)),
         ((3, 4), (3, 4)), (POSITIVE, STANDARD)),
    # --- binary, broadcasting: the gradient has each input's own shape -----------------
    Case("add[(3,1)+(1,4)]", lambda x, y: x + y, np.add,
         lambda g, x, y: (g.sum(axis=1, keepdims=True), g.sum(axis=0, keepdims=True)),
         ((3, 1), (1, 4))),
    Case("sub[(2,3,4)-(4,)]", lambda x, y: x - y, np.subtract,
         lambda g, x, y: (g, -g.sum(axis=(0, 1))), ((2, 3, 4), (4,))),
    Case("sub[(4,)-(2,3,4)]", lambda x, y: x - y, np.subtract,
         lambda g, x, y: (g.sum(axis=(0, 1)), -g), ((4,), (2, 3, 4))),
    Case("mul[(5,4)*(4,)]", lambda x, y: x * y, np.multiply,
         lambda g, x, y: (g * y, (g * x).sum(axis=0)), ((5, 4), (4,))),
    Case("mul[scalar*tensor]", lambda x, y: x * y, np.multiply,
         lambda g, x, y: ((g * y).sum(), g * x), ((), (2, 3))),
    Case("mul[tensor*scalar]", lambda x, y: x * y, np.multiply,
         lambda g, x, y: (g * y, (g * x).sum()), ((2, 3), ())),
    Case("div[(3,1)/(1,4)]", lambda x, y: x / y, np.divide,
         lambda g, x, y: ((g / y).sum(axis=1, keepdims=True),
                          (-g * x / y**2).sum(axis=0, keepdims=True)),
         ((3, 1), (1, 4)), (STANDARD, away_from_zero(0.5, 2.0))),
    Case("pow[(3,4)**(4,)]", lambda x, y: x**y, np.power,
         lambda g, x, y: (g * y * x ** (y - 1), (g * x**y * np.log(x)).sum(axis=0)),
         ((3, 4), (4,)), (POSITIVE, STANDARD)),
    # --- a tensor and a Python number, on either side ------------------------------------
    number("x+2", lambda x: x + 2, lambda x: np.ones_like(x)),
    number("2+x", lambda x: 2 + x, lambda x: np.ones_like(x)),
    number("x-2.5", lambda x: x - 2.5, lambda x: np.ones_like(x)),
    number("2-x", lambda x: 2 - x, lambda x: -np.ones_like(x)),
    number("2.0-x", lambda x: 2.0 - x, lambda x: -np.ones_like(x)),
    number("x*2.0", lambda x: x * 2.0, lambda x: np.full_like(x, 2.0)),
    number("3*x", lambda x: 3 * x, lambda x: np.full_like(x, 3.0)),
    number("x/4", lambda x: x / 4, lambda x: np.full_like(x, 0.25)),
    number("2/x", lambda x: 2 / x, lambda x: -2 / x**2, away_from_zero(0.5, 2.0)),
    number("x**3", lambda x: x**3, lambda x: 3 * x**2),
    number("x**2.5", lambda x: x**2.5, lambda x: 2.5 * x**1.5, POSITIVE),
    number("x**-1", lambda x: x**-1, lambda x: -1 / x**2, away_from_zero(0.5, 2.0)),
    number("2**x", lambda x: 2**x, lambda x: 2**x * np.log(2)),
    # --- matmul: every combination of ranks numpy's @ allows ------------------------------
    Case("matmul[1-D@1-D]", lambda a, b: a @ b, np.matmul,
         lambda g, a, b: (g * b, g * a), ((4,), (4,))),
    Case("matmul[1-D@2-D]", lambda a, b: a @ b, np.matmul,
         lambda g, a, b: (b @ g, np.outer(a, g)), ((4,), (4, 3))),
    Case("matmul[2-D@1-D]", lambda a, b: a @ b, np.matmul,
         lambda g, a, b: (np.outer(g, b), a.T @ g), ((3, 4), (4,))),
    Case("matmul[2-D@2-D]", lambda a, b: a @ b, np.matmul,
         lambda g, a, b: (g @ b.T, a.T @ g), ((3, 4), (4, 2))),
    Case("matmul[function]", tg.matmul, np.matmul,
         lambda g, a, b: (g @ b.T, a.T @ g), ((2, 3), (3, 5))),
    Case("matmul[3-D@3-D]", lambda a, b: a @ b, np.matmul,
         lambda g, a, b: (g @ swap(b), swap(a) @ g), ((2, 3, 4), (2, 4, 5))),
    Case("matmul[3-D@2-D]", lambda a, b: a @ b, np.matmul,
         lambda g, a, b: (g @ b.T, (swap(a) @ g).sum(axis=0)), ((2, 3, 4), (4, 5))),
    Case("matmul[2-D@3-D]", lambda a, b: a @ b, np.matmul,
         lambda g, a, b: ((g @ swap(b)).sum(axis=0), a.T @ g), ((3, 4), (2, 4, 5))),
    Case("matmul[(2,1,3,4)@(5,4,2)]", lambda a, b: a @ b, np.matmul,
         lambda g, a, b: ((g @ swap(b)).sum(axis=1, keepdims=True), (swap(a) @ g).sum(axis=0)),
         ((2, 1, 3, 4), (5, 4, 2))),
    Case("matmul[1-D@3-D]", lambda a, b: a @ b, np.matmul,
         lambda g, a, b: (np.einsum("bj,bij->i", g, b), np.einsum("i,bj->bij", a, g)),
         ((4,), (2, 4, 3))),
    Case("matmul[3-D@1-D]", lambda a, b: a @ b, np.matmul,
         lambda g, a, b: (np.einsum("bi,j->bij", g, b), np.einsum("bij,bi->j", a, g)),
         ((2, 3, 4), (4,))),
    # --- linear(x, w, b) = x wᵀ + b: BP2, BP4 and BP3 summed over the rows -----------------
    Case("linear[batch]", ops.linear, lambda x, w, b: x @ w.T + b,
         lambda g, x, w, b: (g @ w, g.T @ x, g.sum(axis=0)), ((4, 3), (2, 3), (2,))),
    Case("linear[package]", tg.linear, lambda x, w, b: x @ w.T + b,
         lambda g, x, w, b: (g @ w, g.T @ x, g.sum(axis=0)), ((5, 2), (3, 2), (3,))),
    Case("linear[one example]", ops.linear, lambda x, w, b: x @ w.T + b,
         lambda g, x, w, b: (g @ w, np.outer(g, x), g), ((3,), (2, 3), (2,))),
    Case("linear[3-D input]", ops.linear, lambda x, w, b: x @ w.T + b,
         lambda g, x, w, b: (g @ w, np.einsum("bni,bnj->ij", g, x), g.sum(axis=(0, 1))),
         ((2, 4, 3), (2, 3), (2,))),
    # --- reductions ----------------------------------------------------------------------
    *reduction_cases(),
    # --- shapes --------------------------------------------------------------------------
    Case("reshape[(2,3)->(3,2)]", lambda x: x.reshape(3, 2), lambda x: x.reshape(3, 2),
         lambda g, x: (g.reshape(2, 3),), ((2, 3),)),
    Case("reshape[tuple,-1]", lambda x: x.reshape((-1,)), lambda x: x.reshape(-1),
         lambda g, x: (g.reshape(2, 3, 2),), ((2, 3, 2),)),
    Case("reshape[0-d->(1,1)]", lambda x: x.reshape(1, 1), lambda x: x.reshape(1, 1),
         lambda g, x: (g.reshape(()),), ((),)),
    Case("T[2-D]", lambda x: x.T, lambda x: x.T, lambda g, x: (g.T,), ((2, 3),)),
    Case("T[3-D]", lambda x: x.T, lambda x: x.T, lambda g, x: (g.transpose(2, 1, 0),),
         ((2, 3, 4),)),
    Case("transpose[]", lambda x: x.transpose(), lambda x: x.transpose(),
         lambda g, x: (g.T,), ((2, 3),)),
    Case("transpose[1,0,2]", lambda x: x.transpose(1, 0, 2), lambda x: x.transpose(1, 0, 2),
         lambda g, x: (g.transpose(1, 0, 2),), ((2, 3, 4),)),
    Case("transpose[(2,0,1)]", lambda x: x.transpose((2, 0, 1)),
         lambda x: x.transpose(2, 0, 1), lambda g, x: (g.transpose(1, 2, 0),), ((2, 3, 4),)),
    Case("transpose[-1,0]", lambda x: x.transpose(-1, 0), lambda x: x.transpose(-1, 0),
         lambda g, x: (g.T,), ((2, 3),)),
    Case("transpose[1,-1,0]", lambda x: x.transpose(1, -1, 0),
         lambda x: x.transpose(1, -1, 0), lambda g, x: (g.transpose(2, 0, 1),), ((2, 3, 4),)),
    Case("swapaxes[0,2]", lambda x: x.swapaxes(0, 2), lambda x: x.swapaxes(0, 2),
         lambda g, x: (g.swapaxes(0, 2),), ((2, 3, 4),)),
    Case("broadcast_to[(3,1)->(2,3,4)]", lambda x: ops.broadcast_to(x, shape=(2, 3, 4)),
         lambda x: np.broadcast_to(x, (2, 3, 4)),
         lambda g, x: (g.sum(axis=0).sum(axis=1, keepdims=True),), ((3, 1),)),
    Case("broadcast_to[()->(2,3)]", lambda x: ops.broadcast_to(x, shape=(2, 3)),
         lambda x: np.broadcast_to(x, (2, 3)), lambda g, x: (g.sum(),), ((),)),
    # --- indexing ------------------------------------------------------------------------
    getitem_case("slices", (slice(1, None), slice(None, None, 2)), (3, 4)),
    getitem_case("ellipsis", (Ellipsis, 1), (2, 3, 4)),
    getitem_case("negative int", -1, (3, 4)),
    getitem_case("int array", np.array([2, 0]), (3, 4)),
    getitem_case("bool mask", MASK, (5,)),
    getitem_case("bool mask 2-D", np.array([[True, False, True], [False, True, True]]), (2, 3)),
    # Repeated indices accumulate: x[[0, 0, 1]] sends g0 + g1 to x0 and g2 to x1.
    Case("getitem[repeated list]", lambda x: x[[0, 0, 1]], lambda x: x[[0, 0, 1]],
         lambda g, x: (np.array([g[0] + g[1], g[2], 0.0]),), ((3,),)),
    Case("getitem[repeated pairs]", lambda x: x[[0, 0, 1], [1, 1, 0]],
         lambda x: x[[0, 0, 1], [1, 1, 0]],
         lambda g, x: (np.array([[0.0, g[0] + g[1]], [g[2], 0.0]]),), ((2, 2),)),
    Case("getitem[mask tensor]", lambda x: x[Tensor(MASK)], lambda x: x[MASK],
         lambda g, x: (np.array([g[0], 0.0, g[1], g[2], 0.0]),), ((5,),)),
    # scatter_add: zeros of `shape` with x added at `index`, repeated indices accumulating.
    Case("scatter_add[repeated]", lambda x: ops.scatter_add(x, index=np.array([0, 0, 2]),
                                                          shape=(4,)),
         lambda x: np.array([x[0] + x[1], 0.0, x[2], 0.0]),
         lambda g, x: (g[[0, 0, 2]],), ((3,),)),
    Case("scatter_add[rows]", lambda x: ops.scatter_add(x, index=np.array([1, 1]),
                                                      shape=(3, 2)),
         lambda x: np.array([[0.0, 0.0], x[0] + x[1], [0.0, 0.0]]),
         lambda g, x: (g[[1, 1]],), ((2, 2),)),
]

IDS = [c.name for c in CASES]
assert len(set(IDS)) == len(IDS), "case names must be unique"
WITH_VJP = [c for c in CASES if c.vjp is not None]


def cotangent(shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
    """A fixed random g = dC/d(out), signs mixed so no error can cancel by symmetry."""
    rng = np.random.default_rng(12345)
    return (rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)).astype(dtype)


# --- the table-driven tests -------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_matches_numpy(case: Case):
    arrays = case.inputs()
    out = case.fn(*[Tensor(a) for a in arrays])
    expected = np.asarray(case.ref(*arrays))
    assert isinstance(out, Tensor)
    assert out.shape == expected.shape
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("case", WITH_VJP, ids=[c.name for c in WITH_VJP])
def test_backward_matches_hand_derivative(case: Case):
    arrays = case.inputs()
    xs = [Tensor(a, requires_grad=True) for a in arrays]
    out = case.fn(*xs)
    g = cotangent(out.shape)
    out.backward(g)
    expected = case.vjp(g, *arrays)
    assert len(expected) == len(xs)
    for i, (x, e) in enumerate(zip(xs, expected, strict=True)):
        assert x.grad is not None, f"input {i} got no gradient"
        assert x.grad.shape == x.shape, f"input {i}: gradient shape differs from input's"
        np.testing.assert_allclose(x.grad.data, e, rtol=1e-12, atol=1e-14,
                                   err_msg=f"input {i}")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck(case: Case):
    assert gradcheck(case.fn, *[Tensor(a, requires_grad=True) for a in case.inputs()])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_float32_stays_float32_forward_and_backward(case: Case):
    xs = [Tensor(a, requires_grad=True) for a in case.inputs(np.float32)]
    assert all(x.dtype == np.float32 for x in xs)
    out = case.fn(*xs)
    assert out.dtype == np.float32
    out.backward(cotangent(out.shape, np.float32))
    for i, x in enumerate(xs):
        assert x.grad.dtype == np.float32, f"input {i}: grad dtype {x.grad.dtype}"
        assert x.grad.shape == x.shape


def _first_grads(case: Case, arrays: list[np.ndarray], v: np.ndarray,
                 create_graph: bool) -> tuple[list[Tensor], tuple]:
    xs = [Tensor(a, requires_grad=True) for a in arrays]
    gs = grad(case.fn(*xs), xs, grad_outputs=v, create_graph=create_graph, allow_unused=True)
    return xs, gs


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_second_order_matches_finite_differences_of_the_gradient(case: Case):
    """d/dε [vᵀ J(x + εu)] by grad-of-grad (create_graph=True) and by central differences."""
    arrays = case.inputs()
    rng = np.random.default_rng(7)
    with tg.no_grad():
        out_shape = case.fn(*[Tensor(a) for a in arrays]).shape
    v = rng.uniform(-1.0, 1.0, out_shape)
    us = [rng.uniform(-1.0, 1.0, a.shape) for a in arrays]

    xs, gs = _first_grads(case, arrays, v, create_graph=True)
    along_u = sum((g * u).sum() for g, u in zip(gs, us, strict=True) if g is not None)
    if isinstance(along_u, Tensor) and along_u.requires_grad:
        analytic = [np.zeros(x.shape) if h is None else h.data
                    for x, h in zip(xs, grad(along_u, xs, allow_unused=True), strict=True)]
    else:  # the gradient does not depend on the inputs: the second derivative is 0
        analytic = [np.zeros(x.shape) for x in xs]

    eps = 1e-6
    _, plus = _first_grads(case, [a + eps * u for a, u in zip(arrays, us, strict=True)], v, False)
    _, minus = _first_grads(case, [a - eps * u for a, u in zip(arrays, us, strict=True)], v,
                            False)
    for i, (a, p, m) in enumerate(zip(analytic, plus, minus, strict=True)):
        numeric = (p.data - m.data) / (2 * eps)
        np.testing.assert_allclose(a, numeric, rtol=1e-5, atol=1e-6, err_msg=f"input {i}")


# --- dtype, Python numbers and plain arrays ---------------------------------------------


@pytest.mark.parametrize("fn", [lambda x: x * 2.0, lambda x: 2.0 - x, lambda x: x / 3,
                                lambda x: 2 ** x, lambda x: x.mean()],
                         ids=["x*2.0", "2.0-x", "x/3", "2**x", "mean"])
def test_python_numbers_do_not_upcast_float32(fn):
    x = Tensor(np.array([0.5, 1.5, -2.0], dtype=np.float32), requires_grad=True)
    y = fn(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_float64_tensor_and_python_number_stays_float64():
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert (x * 2).dtype == np.float64
    assert (1 - x).dtype == np.float64


def test_primitive_on_plain_arrays_returns_a_plain_array():
    """The first-order backward runs the VJP table on ndarrays: no Tensor may appear."""
    out = ops.mul(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert isinstance(out, np.ndarray) and not isinstance(out, Tensor)
    np.testing.assert_array_equal(out, [3.0, 8.0])


# --- the unbroadcast helper -------------------------------------------------------------


@pytest.mark.parametrize(("g_shape", "shape", "by_hand"), [
    ((2, 3, 4), (3, 1), lambda g: g.sum(axis=(0, 2)).reshape(3, 1)),
    ((2, 3, 4), (4,), lambda g: g.sum(axis=(0, 1))),
    ((2, 3, 4), (), lambda g: g.sum()),
    ((2, 3, 4), (1, 3, 4), lambda g: g.sum(axis=0).reshape(1, 3, 4)),
    ((5, 4), (5, 1), lambda g: g.sum(axis=1).reshape(5, 1)),
    ((3,), (3,), lambda g: g),
])
def test_sum_to_sums_over_broadcast_axes(g_shape, shape, by_hand):
    g = np.random.default_rng(0).uniform(-1, 1, g_shape)
    out = ops.sum_to(g, shape)
    assert out.shape == shape
    np.testing.assert_allclose(out, by_hand(g), rtol=1e-14)


# --- conventions at the kinks -----------------------------------------------------------


def test_relu_derivative_at_zero_is_zero():
    x = Tensor([-1.0, 0.0, 2.0], requires_grad=True)
    x.relu().backward(np.array([5.0, 7.0, 11.0]))
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 11.0])


def test_max_ties_share_the_gradient_equally():
    x = Tensor([1.0, 3.0, 3.0, 2.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.5, 0.5, 0.0])


def test_max_three_way_tie_along_an_axis():
    x = Tensor([[2.0, 2.0, 2.0], [1.0, 4.0, 4.0], [0.0, 5.0, -1.0]], requires_grad=True)
    x.max(axis=1).backward(np.array([3.0, 2.0, 1.0]))
    np.testing.assert_allclose(x.grad.data,
                               [[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 1.0, 0.0]],
                               rtol=1e-15)


def test_max_tie_keepdims_and_negative_axis():
    x = Tensor([[1.0, 7.0], [7.0, 7.0]], requires_grad=True)
    x.max(axis=-2, keepdims=True).backward(np.array([[4.0, 6.0]]))
    np.testing.assert_allclose(x.grad.data, [[0.0, 3.0], [4.0, 3.0]], rtol=1e-15)


# --- numerically stable sigmoid ---------------------------------------------------------

LARGE_Z = np.array([-1e4, -1e3, -750.0, -710.0, -40.0, -1.0, 0.0, 1.0, 40.0, 710.0, 750.0,
                    1e3, 1e4])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_large_inputs_no_warning_finite_values_and_gradients(dtype):
    z = Tensor(LARGE_Z.astype(dtype), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = z.sigmoid()
        s.sum().backward()
    assert np.all(np.isfinite(s.data)) and np.all(np.isfinite(z.grad.data))
    assert np.all((s.data >= 0) & (s.data <= 1))
    assert np.all(z.grad.data >= 0) and np.all(z.grad.data <= 0.25)
    assert np.all(np.diff(s.data) >= 0), "sigmoid must be monotone"


def test_sigmoid_limits():
    z = Tensor([-1e4, 0.0, 1e4], requires_grad=True)
    s = z.sigmoid()
    tiny = np.finfo(np.float64).tiny  # σ(-1e4) = e^-10000 is below every normal float64
    assert s.data[2] == 1.0
    assert s.data[1] == 0.5
    assert 0.0 <= s.data[0] < tiny
    s.backward(np.ones(3))
    assert z.grad.data[1] == 0.25
    # σ'(±1e4) = e^-10000: anything in [0, tiny) is that number to within rounding
    # (the documented clamp of z at -709 changes σ by less than 1e-307).
    assert 0.0 <= z.grad.data[0] < tiny and 0.0 <= z.grad.data[2] < tiny


def test_sigmoid_keeps_relative_precision_for_negative_inputs():
    z = np.array([-40.0, -100.0, -700.0])
    expected = np.exp(z) / (1 + np.exp(z))  # no cancellation: e^z is tiny, 1 + e^z is 1
    np.testing.assert_allclose(Tensor(z).sigmoid().data, expected, rtol=1e-15)


def test_sigmoid_symmetry():
    z = np.linspace(-30, 30, 61)
    s = Tensor(z).sigmoid().data
    s_neg = Tensor(-z).sigmoid().data
    np.testing.assert_allclose(s + s_neg, 1.0, rtol=1e-15)


# --- clear errors -----------------------------------------------------------------------


def test_matmul_inner_dimension_mismatch_message():
    with pytest.raises(ValueError) as info:
        Tensor(np.ones((2, 3))) @ Tensor(np.ones((4, 5)))
    assert str(info.value) == "matmul: (2, 3) @ (4, 5): inner dimensions 3 and 4 differ"


@pytest.mark.parametrize(("a", "b"), [((3,), (4,)), ((2, 3), (4,)), ((3,), (4, 2))])
def test_matmul_mismatch_names_the_shapes(a, b):
    with pytest.raises(ValueError, match=re.escape(f"matmul: {a} @ {b}")):
        Tensor(np.ones(a)) @ Tensor(np.ones(b))


def test_matmul_batch_mismatch_names_the_shapes():
    with pytest.raises(ValueError, match=re.escape("(2, 3, 4) @ (3, 4, 5)")):
        Tensor(np.ones((2, 3, 4))) @ Tensor(np.ones((3, 4, 5)))


@pytest.mark.parametrize(("name", "op"), [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", lambda a, b: a**b),
])
def test_binary_shape_mismatch_names_op_and_both_shapes(name, op):
    with pytest.raises(ValueError) as info:
        op(Tensor(np.ones((2, 3))), Tensor(np.ones((4,))))
    message = str(info.value)
    assert name in message
    assert "(2, 3)" in message and "(4,)" in message


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_reduction_over_missing_axis_names_shape(reduce):
    x = Tensor(np.ones((2, 3)))
    with pytest.raises((ValueError, IndexError)) as info:
        getattr(x, reduce)(axis=2)
    assert "(2, 3)" in str(info.value)


def test_reshape_to_incompatible_size_names_shapes():
    with pytest.raises(ValueError) as info:
        Tensor(np.ones((2, 3))).reshape(4)
    assert "(2, 3)" in str(info.value) and "(4,)" in str(info.value)


@pytest.mark.parametrize("index", [5, (0, 3), [0, 2]])
def test_index_out_of_range_names_shape(index):
    with pytest.raises(IndexError) as info:
        Tensor(np.ones((2, 3)))[index]
    assert "(2, 3)" in str(info.value)
