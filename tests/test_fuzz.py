"""Fuzzing the public Tensor API against numpy.

Hypothesis drives random calls (binary arithmetic, matmul, reductions over random axes,
reshape, transpose and swapaxes with random axes, indexing with random ints, slices and
lists, sigmoid/exp/log/tanh/relu) on random shapes (0-d, empty, broadcast-incompatible
pairs), dtypes (float64, float32, int64) and values. Every call must either

- succeed with exactly what numpy gives for the same expression (shape, dtype and values;
  NaN equals NaN), or
- raise one of the documented exceptions (ValueError, TypeError, IndexError, RuntimeError;
  numpy's AxisError is both a ValueError and an IndexError), and then only where numpy
  raises for the same expression too,

and never an internal error (AttributeError, KeyError, UnboundLocalError, ...) or a numpy
warning. Draws for which numpy itself warns (log of a negative number, 0 ** -1, overflow,
the mean of an empty slice) are skipped with `assume`: there the library is expected to warn
exactly as numpy does, which this suite turns into an error, so they say nothing here.

A second property runs the backward pass of every call that succeeded: each input that
requires grad gets a gradient of its own shape and dtype, and nothing raises.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from strategies import (
    fuzz_arrays,
    fuzz_axes,
    fuzz_dtypes,
    fuzz_indices,
    fuzz_new_shapes,
    fuzz_shapes,
)

from tinygrad_nn import Tensor

DOCUMENTED = (ValueError, TypeError, IndexError, RuntimeError)

# Twice the profile's examples: a call takes a few milliseconds, most of it drawing it.
FUZZ = settings(max_examples=2 * settings().max_examples)


@dataclass
class Call:
    """One call of the API: `lib(*operands)` on Tensors, `ref(*operands)` on arrays."""

    text: str
    lib: Callable[..., Any]
    ref: Callable[..., Any]
    operands: list[Any]  # ndarrays (become Tensors) or Python numbers (stay as they are)
    requires_grad: list[bool] = field(default_factory=list)
    exact: bool = True  # same numpy function on both sides: bit-identical results expected

    def tensors(self) -> list[Any]:
        return [Tensor(x, requires_grad=g) if isinstance(x, np.ndarray) else x
                for x, g in zip(self.operands, self.requires_grad)]

    def __repr__(self) -> str:
        shown = ", ".join(f"{x.dtype}{x.shape}={x.tolist()!r}" if isinstance(x, np.ndarray)
                          else repr(x) for x in self.operands)
        return f"{self.text} with {shown}"


def _naive_logsumexp(x, axis, keepdims):
    # numpy has no logsumexp. Like max, it has no value over an empty axis: numpy's max
    # refuses, and so does the library, so the reference asks max first.
    np.max(x, axis=axis)
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))


def _naive_sigmoid(x):
    return 1 / (1 + np.exp(-x))


# --- the calls: one builder per kind, used by the strategies and by the pinned cases ---------

BINARY = {
    "+": (operator.add, np.add),
    "-": (operator.sub, np.subtract),
    "*": (operator.mul, np.multiply),
    "/": (operator.truediv, np.true_divide),
    "**": (operator.pow, np.power),
    "@": (operator.matmul, np.matmul),
    "maximum": (lambda a, b: a.maximum(b), np.maximum),
    "minimum": (lambda a, b: a.minimum(b), np.minimum),
}

REDUCTIONS = {
    "sum": (np.sum, True),
    "mean": (np.mean, False),
    "max": (np.max, True),
    "min": (np.min, True),
    "var": (np.var, False),
    "std": (np.std, False),
    "logsumexp": (_naive_logsumexp, False),
}

UNARY = {
    "sigmoid": (_naive_sigmoid, False),
    "exp": (np.exp, True),
    "log": (np.log, True),
    "tanh": (np.tanh, True),
    "relu": (lambda x: np.maximum(x, 0), True),
}


def binary(name: str, left: Any, right: Any, grads=(False, False)) -> Call:
    lib, ref = BINARY[name]
    return Call(f"a {name} b", lib, ref, [left, right], list(grads))


def reduction(name: str, x: np.ndarray, axis: Any, keepdims: bool, grad: bool = False) -> Call:
    ref, exact = REDUCTIONS[name]
    return Call(f"a.{name}(axis={axis!r}, keepdims={keepdims})",
                lambda a: getattr(a, name)(axis=axis, keepdims=keepdims),
                lambda a: ref(a, axis=axis, keepdims=keepdims), [x], [grad], exact)


def reshape(x: np.ndarray, new: Any, star: bool = False, grad: bool = False) -> Call:
    if star:  # x.reshape(2, 3) as well as x.reshape((2, 3))
        return Call(f"a.reshape(*{new!r})", lambda a: a.reshape(*new),
                    lambda a: a.reshape(*new), [x], [grad])
    return Call(f"a.reshape({new!r})", lambda a: a.reshape(new), lambda a: a.reshape(new),
                [x], [grad])


def transpose(x: np.ndarray, axes: Any = None, grad: bool = False) -> Call:
    """x.transpose() for axes=None, else x.transpose(axes); the reference is ndarray's."""
    if axes is None:
        return Call("a.transpose()", lambda a: a.transpose(), lambda a: a.transpose(), [x],
                    [grad])
    return Call(f"a.transpose({axes!r})", lambda a: a.transpose(axes),
                lambda a: a.transpose(axes), [x], [grad])


def swapaxes(x: np.ndarray, i: int, j: int, grad: bool = False) -> Call:
    return Call(f"a.swapaxes({i}, {j})", lambda a: a.swapaxes(i, j),
                lambda a: a.swapaxes(i, j), [x], [grad])


def index(x: np.ndarray, key: Any, grad: bool = False) -> Call:
    return Call(f"a[{key!r}]", lambda a: a[key], lambda a: a[key], [x], [grad])


def unary(name: str, x: np.ndarray, grad: bool = False) -> Call:
    ref, exact = UNARY[name]
    return Call(f"a.{name}()", lambda a: getattr(a, name)(), ref, [x], [grad], exact)


@st.composite
def operands(draw, shape):
    """An ndarray operand of `shape` and a drawn dtype, and whether it requires grad."""
    dtype = draw(fuzz_dtypes())
    array = draw(fuzz_arrays(dtype, shape))
    return array, dtype.kind == "f" and draw(st.booleans())


def python_numbers():
    return st.integers(-5, 5) | st.floats(-5, 5, allow_subnormal=False)


@st.composite
def binary_calls(draw):
    name = draw(st.sampled_from(sorted(BINARY)))
    if draw(st.booleans()):  # shapes that broadcast (numpy's rule), or two independent ones
        left_shape, right_shape = draw(fuzz_shapes(pairs=True))
    else:
        left_shape, right_shape = draw(fuzz_shapes()), draw(fuzz_shapes())
    (left, left_grad), (right, right_grad) = draw(operands(left_shape)), draw(operands(right_shape))
    # One side may be a Python number (a constant), but not the tensor of a method call.
    kind = draw(st.sampled_from(["tensors", "tensors", "number-right", "number-left"]))
    if kind == "number-right" or (kind == "number-left" and name in ("maximum", "minimum")):
        right, right_grad = draw(python_numbers()), False
    elif kind == "number-left":
        left, left_grad = draw(python_numbers()), False
    return binary(name, left, right, (left_grad, right_grad))


@st.composite
def reduction_calls(draw):
    x, grad = draw(operands(draw(fuzz_shapes())))
    return reduction(draw(st.sampled_from(sorted(REDUCTIONS))), x, draw(fuzz_axes(x.ndim)),
                     draw(st.booleans()), grad)


@st.composite
def reshape_calls(draw):
    x, grad = draw(operands(draw(fuzz_shapes())))
    new = draw(fuzz_new_shapes(x.size))
    return reshape(x, new, isinstance(new, tuple) and draw(st.booleans()), grad)


@st.composite
def transpose_calls(draw):
    x, grad = draw(operands(draw(fuzz_shapes())))
    n = x.ndim
    kind = draw(st.sampled_from(["reverse", "permutation", "random", "swapaxes"]))
    if kind == "reverse":
        return transpose(x, None, grad)
    if kind == "swapaxes":
        return swapaxes(x, draw(st.integers(-n - 1, n)), draw(st.integers(-n - 1, n)), grad)
    if kind == "permutation":
        axes = tuple(draw(st.permutations(range(n))))
        axes = tuple(a - n if draw(st.booleans()) else a for a in axes)  # some negative
    else:  # wrong length, repeats, out of range
        axes = tuple(draw(st.lists(st.integers(-n - 1, n), max_size=n + 1)))
    return transpose(x, axes, grad)


@st.composite
def index_calls(draw):
    x, grad = draw(operands(draw(fuzz_shapes())))
    return index(x, draw(fuzz_indices(x.shape)), grad)


@st.composite
def unary_calls(draw):
    x, grad = draw(operands(draw(fuzz_shapes())))
    return unary(draw(st.sampled_from(sorted(UNARY))), x, grad)


def api_calls():
    return st.one_of(binary_calls(), reduction_calls(), reshape_calls(), transpose_calls(),
                     index_calls(), unary_calls())


# --- the checks ----------------------------------------------------------------------------


def pinned(condition: bool) -> None:
    """`assume` for the pinned cases, which run outside Hypothesis and must never be skipped."""
    assert condition, "a pinned case must not be one that the property tests skip"


def numpy_outcome(call: Call, skip=assume) -> tuple[np.ndarray | None, Exception | None]:
    """What numpy gives for the call: (result, None) or (None, the exception it raises).

    Draws for which numpy warns are skipped. Detecting the warning with errstate "raise" (and
    Python warnings as errors) rather than computing under errstate "ignore" changes nothing
    for the draws kept: without a warning, the values are the same.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            with np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
                return np.asarray(call.ref(*call.operands)), None
        except (FloatingPointError, Warning):
            skip(False)  # numpy itself warns (or its error mode raises) for this draw
        except DOCUMENTED as err:
            return None, err
    raise AssertionError("unreachable")


def library_outcome(call: Call, tensors: list[Any]) -> tuple[Any, Exception | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return call.lib(*tensors), None
        except DOCUMENTED as err:
            return None, err
        except Warning as w:
            pytest.fail(f"{call!r}: numpy warned inside the library: {w!r}")
        except Exception as err:  # AttributeError, KeyError, UnboundLocalError, ...
            pytest.fail(f"{call!r}: internal error {type(err).__name__}: {err}")
    raise AssertionError("unreachable")


def magnitude(call: Call) -> float:
    values = [np.abs(np.asarray(x, dtype=np.float64)).max(initial=0.0) for x in call.operands]
    return max(values, default=0.0)


def assert_same(call: Call, got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape, f"{call!r}: shape {got.shape}, numpy {expected.shape}"
    assert got.dtype == expected.dtype, f"{call!r}: dtype {got.dtype}, numpy {expected.dtype}"
    if call.exact or expected.dtype.kind != "f":
        np.testing.assert_array_equal(got, expected, err_msg=repr(call))
        return
    rtol = 2e-5 if expected.dtype == np.float32 else 1e-9
    atol = rtol * (1.0 + magnitude(call)) ** 2  # var and std are quadratic in the inputs
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True,
                               err_msg=repr(call))


def check_forward(call: Call, skip=assume) -> None:
    expected, numpy_error = numpy_outcome(call, skip)
    if skip is assume:  # --hypothesis-show-statistics: how many draws were bad inputs
        event("numpy raises" if numpy_error is not None else "numpy succeeds")
    out, error = library_outcome(call, call.tensors())
    if error is not None:
        assert numpy_error is not None, (
            f"{call!r}: the library raised {type(error).__name__}: {error}, but numpy gives "
            f"{expected!r}")
        assert str(error), f"{call!r}: {type(error).__name__} without a message"
        return
    assert numpy_error is None, (
        f"{call!r}: numpy raises {type(numpy_error).__name__}: {numpy_error}, but the library "
        f"returned {out!r}")
    assert isinstance(out, Tensor), f"{call!r}: returned a {type(out).__name__}"
    assert type(out.data) is np.ndarray
    assert_same(call, out.data, expected)


def check_backward(call: Call, skip=assume) -> None:
    """Every float input requires grad; the backward of a call that succeeded runs and gives
    each of them a gradient of its shape and dtype."""
    call.requires_grad = [isinstance(x, np.ndarray) and x.dtype.kind == "f"
                          for x in call.operands]
    skip(any(call.requires_grad))
    _, numpy_error = numpy_outcome(call, skip)
    skip(numpy_error is None)
    tensors = call.tensors()
    out, error = library_outcome(call, tensors)
    skip(error is None)
    assert out.requires_grad
    # Values are checked by the gradient properties (test_properties.py); here only the
    # structure. A gradient may be inf or NaN where the function has none (pow's exponent
    # at a negative base), so numpy's warnings about those are not the subject.
    with np.errstate(all="ignore"):
        try:
            out.sum().backward()
        except Exception as err:
            pytest.fail(f"{call!r}: backward raised {type(err).__name__}: {err}")
    for i, t in enumerate(tensors):
        if not call.requires_grad[i]:
            continue
        assert t.grad is not None, f"{call!r}: input {i} got no gradient"
        assert t.grad.shape == t.shape, (
            f"{call!r}: input {i} of shape {t.shape} got a gradient of shape {t.grad.shape}")
        assert t.grad.dtype == t.dtype, (
            f"{call!r}: input {i} of dtype {t.dtype} got a gradient of dtype {t.grad.dtype}")


@pytest.mark.property
@FUZZ
@given(call=api_calls())
def test_every_call_matches_numpy_or_raises_a_documented_error(call):
    check_forward(call)


@pytest.mark.property
@FUZZ
@given(call=api_calls())
def test_the_backward_of_every_call_gives_each_input_a_gradient_of_its_shape_and_dtype(call):
    check_backward(call)


# --- what the fuzzer found, pinned so that each runs every time (and some edges that hold) --

F64, F32, I64 = np.float64, np.float32, np.int64
M23 = np.arange(6.0).reshape(2, 3)

PINNED = {
    # numpy reduces an empty tensor over an axis whose slices are not empty: (0, 3) -> (0,)
    "mean of (0, 3) over axis 1": reduction("mean", np.zeros((0, 3)), 1, False),
    "var of (3, 0) over axis 0, keepdims": reduction("var", np.zeros((3, 0)), 0, True),
    "std of (0, 2) over axis ()": reduction("std", np.zeros((0, 2)), (), False),
    # numpy's mean, var and std refuse axis 0 of a 0-d array (its sum and max accept it)
    "mean of a 0-d tensor over axis 0": reduction("mean", np.array(2.0), 0, False),
    "var of a 0-d tensor over axis -1": reduction("var", np.array(2.0), -1, True),
    # ndarray.transpose(()) of a 2-d array raises; the library reverses the axes
    "transpose(()) of a 2-d tensor": transpose(M23, ()),
    # x[[]] is an empty integer index in numpy
    "x[[]]": index(M23, []),
    "x[[], 0]": index(M23, ([], 0)),
    # edges that hold
    "matmul with a 0-d operand": binary("@", M23, np.array(2.0)),
    "matmul of empty operands": binary("@", np.zeros((2, 0)), np.zeros((0, 3))),
    "matmul with a Python number": binary("@", M23, 2.0),
    "int ** negative int": binary("**", np.array([2, 3]), -1),
    "float32 + Python float stays float32": binary("+", M23.astype(F32), 0.1),
    "int / int is float64": binary("/", np.array([1, 2]), np.array([2, 4])),
    "(5,) + (0,)": binary("+", np.ones(5), np.zeros(0)),
    "reshape to -2": reshape(M23, (-2, 3)),
    "reshape empty to (-1, 0)": reshape(np.zeros((0, 3)), (-1, 0)),
    "reshape(*(3, 2))": reshape(M23, (3, 2), star=True),
    "sum over a repeated axis": reduction("sum", M23, (1, -1), False),
    "max of an empty tensor": reduction("max", np.zeros((0, 3)), None, False),
    "logsumexp over an empty axis": reduction("logsumexp", np.zeros((2, 0)), 1, False),
    "transpose with a repeated axis": transpose(M23, (1, 1)),
    "transpose(-1, 0)": transpose(M23, (-1, 0)),
    "swapaxes(0, 5)": swapaxes(M23, 0, 5),
    "swapaxes of a 0-d tensor": swapaxes(np.array(1.0), 0, 0),
    "x[None, ..., None]": index(M23, (None, Ellipsis, None)),
    "x[..., ...]": index(M23, (Ellipsis, Ellipsis)),
    "x[::0]": index(M23, slice(None, None, 0)),
    "x[0, 0, 0]": index(M23, (0, 0, 0)),
    "x[[1, 1, -2]]": index(M23, [1, 1, -2]),
    "0-d x[()]": index(np.array(3.0), ()),
    "relu of int64": unary("relu", np.array([-2, 0, 3])),
    "sigmoid of float32": unary("sigmoid", np.array([-50.0, 0.0, 50.0], F32)),
}

PINNED_BACKWARD = {
    # numpy (and so the forward) accepts axis 0 or -1 of a 0-d array for sum and max
    "sum of a 0-d tensor over axis 0": reduction("sum", np.array(2.0), 0, False),
    "max of a 0-d tensor over axis -1, keepdims": reduction("max", np.array(2.0), -1, True),
    "min of a 0-d tensor over axis 0": reduction("min", np.array(2.0), 0, False),
    "logsumexp of a 0-d tensor over axis 0": reduction("logsumexp", np.array(2.0), 0, False),
    # a float32 input's gradient stays float32 whatever it is combined with
    "float32 * int64": binary("*", np.ones(3, F32), np.arange(3)),
    "float32 + float64": binary("+", np.ones(3, F32), np.ones(3)),
    "float32 @ float64": binary("@", np.ones((2, 3), F32), np.ones(3)),
    # edges that hold
    "x[None, ..., None]": index(M23, (None, Ellipsis, None)),
    "x[[1, 1, -2]]": index(M23, [1, 1, -2]),
    "x[::-2]": index(M23, slice(None, None, -2)),
    "mean over ()": reduction("mean", M23, (), True),
    "max over a tuple with ties": reduction("max", np.ones((2, 2)), (0, 1), False),
    "empty matmul": binary("@", np.zeros((2, 0)), np.zeros((0, 3))),
    "float ** float at a negative base": binary("**", np.array([-2.0]), np.array([2.0])),
}


@pytest.mark.parametrize("name", list(PINNED))
def test_pinned_call_matches_numpy_or_raises_a_documented_error(name):
    check_forward(PINNED[name], pinned)


@pytest.mark.parametrize("name", list(PINNED_BACKWARD))
def test_pinned_call_backward_gives_gradients_of_the_inputs_shape_and_dtype(name):
    check_backward(PINNED_BACKWARD[name], pinned)
