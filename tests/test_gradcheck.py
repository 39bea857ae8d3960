"""Tests for tinygrad_nn.gradcheck: finite differences, and gradcheck catching wrong VJPs."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from strategies import (
    axes,
    distinct_arrays,
    float_arrays,
    laid_out_arrays,
    relu_inputs,
)

from tinygrad_nn import GradcheckError, Tensor, gradcheck, numerical_grad
from tinygrad_nn.ops import Primitive

# Deliberately wrong primitives: the VJPs a careless table might hold.
bad_square = Primitive("bad_square", np.square, lambda g, out, x: g * x)  # d(x²) is 2x
bad_cube = Primitive("bad_cube", lambda x: x**3,
                     lambda g, out, x: g * (3 * x**2 + x))  # off by x: abs error |x|
bad_mul = Primitive("bad_mul", np.multiply,
                    lambda g, out, x, y: g * y,
                    lambda g, out, x, y: g * y)  # the second VJP should be g * x


def test_gradcheck_returns_true_for_correct_ops():
    rng = np.random.default_rng(0)
    x = Tensor(rng.uniform(-1, 1, (3, 2)), requires_grad=True)
    w = Tensor(rng.uniform(-1, 1, (2, 4)), requires_grad=True)
    assert gradcheck(lambda a, b: (a @ b).sigmoid().sum(), x, w) is True


def test_gradcheck_of_a_wrong_vjp_names_input_error_and_index():
    x = Tensor([1.0, -4.0, 2.0], requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a: bad_square(a).sum(), x)
    message = str(info.value)
    # analytic x, numeric 2x: absolute error |x|, worst at x = -4; relative error 1/2.
    assert "input 0" in message
    assert "largest absolute error 4 " in message
    assert "at index (1,)" in message
    assert "largest relative error 0.5 " in message


def test_gradcheck_reports_the_worst_relative_error_where_it_is():
    x = Tensor([0.5, -4.0, 2.0], requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a: bad_cube(a).sum(), x)
    message = str(info.value)
    # Absolute error |x| is worst at x = -4; relative error |x| / 3x² = 1/(3|x|) at x = 0.5.
    assert re.search(r"largest absolute error 4 at index \(1,\)", message), message
    assert re.search(r"largest relative error 0\.667 at index \(0,\)", message), message


def test_gradcheck_index_of_a_2d_input():
    x = Tensor([[1.0, 2.0], [-6.0, 3.0]], requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a: bad_square(a).sum(), x)
    assert "(2, 2)" in str(info.value)  # the input's shape
    assert re.search(r"largest absolute error 6 at index \(1, 0\)", str(info.value))


def test_gradcheck_names_the_input_that_is_wrong():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = Tensor([3.0, -5.0], requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: bad_mul(a, b).sum(), x, y)
    message = str(info.value)
    assert "input 1" in message and "input 0" not in message
    # d/dy is x = [1, 2] but the VJP says y = [3, -5]: errors 2 and 7, the worst at index 1.
    assert re.search(r"largest absolute error 7 at index \(1,\)", message), message


def test_gradcheck_handles_non_scalar_outputs():
    x = Tensor(np.random.default_rng(1).uniform(-1, 1, (2, 3)), requires_grad=True)
    assert gradcheck(lambda a: a * a.exp(), x) is True
    with pytest.raises(GradcheckError, match="input 0"):
        gradcheck(lambda a: bad_square(a), x)


def test_gradcheck_honours_atol_and_rtol():
    x = Tensor([0.5, 1.0, 1.5], requires_grad=True)
    off_by_constant = Primitive("off", np.square, lambda g, out, x: g * (2 * x + 1e-4))
    off_by_ratio = Primitive("off", np.square, lambda g, out, x: g * 2 * x * (1 + 1e-4))
    with pytest.raises(GradcheckError):
        gradcheck(lambda a: off_by_constant(a).sum(), x)
    assert gradcheck(lambda a: off_by_constant(a).sum(), x, atol=1e-3)
    with pytest.raises(GradcheckError):
        gradcheck(lambda a: off_by_ratio(a).sum(), x)
    assert gradcheck(lambda a: off_by_ratio(a).sum(), x, rtol=1e-3)


def test_gradcheck_without_inputs_that_require_grad_is_refused():
    with pytest.raises(ValueError):
        gradcheck(lambda a: (a * a).sum(), Tensor([1.0, 2.0]))


def test_gradcheck_with_a_constant_input():
    c = Tensor([2.0, -1.0])
    x = Tensor([0.5, 1.5], requires_grad=True)
    assert gradcheck(lambda a, b: (a * b.tanh()).sum(), c, x)


def test_gradcheck_leaves_its_inputs_alone():
    a = np.array([0.25, -1.0, 2.0])
    x = Tensor(a.copy(), requires_grad=True)
    gradcheck(lambda t: (t * t * t).sum(), x)
    np.testing.assert_array_equal(x.data, a)
    assert x.grad is None


def test_numerical_grad_of_sum_of_cubes_is_3x_squared():
    a = np.array([[0.5, -1.0, 2.0], [1.5, -0.25, 0.75]])
    (g,) = numerical_grad(lambda x: (x**3).sum(), Tensor(a, requires_grad=True))
    # Central differences: truncation ε² f'''/6 = 1e-12, rounding ~ 1e-16·|f|/ε ~ 1e-9.
    np.testing.assert_allclose(g, 3 * a**2, rtol=1e-7, atol=1e-8)


def test_numerical_grad_gives_none_for_inputs_without_grad():
    c = Tensor([2.0, 3.0])
    x = Tensor([1.0, -1.0], requires_grad=True)
    gc, gx = numerical_grad(lambda a, b: (a * b).sum(), c, x)
    assert gc is None
    np.testing.assert_allclose(gx, [2.0, 3.0], rtol=1e-8)


def test_numerical_grad_with_a_projection_for_non_scalar_outputs():
    a = np.array([1.0, -2.0, 0.5])
    v = np.array([2.0, 0.5, -1.0])
    (g,) = numerical_grad(lambda x: x * x, Tensor(a, requires_grad=True), projection=v)
    np.testing.assert_allclose(g, 2 * a * v, rtol=1e-7, atol=1e-8)


def test_float32_inputs_are_checked_in_float64():
    """In float32, a step of 1e-6 is a few ulps: the check is only meaningful in float64."""
    a = np.array([0.3, -1.7, 2.2], dtype=np.float32)
    x = Tensor(a.copy(), requires_grad=True)
    (g,) = numerical_grad(lambda t: (t**3).sum(), x)
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, 3 * a.astype(np.float64) ** 2, rtol=1e-7, atol=1e-8)
    assert gradcheck(lambda t: (t**3).sum(), x) is True
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x.data, a)


def test_float32_wrong_vjp_is_still_caught():
    x = Tensor(np.array([1.0, 3.0], dtype=np.float32), requires_grad=True)
    with pytest.raises(GradcheckError):
        gradcheck(lambda t: bad_square(t).sum(), x)


# --- a first property test: gradcheck passes on random shapes and values -------------------

ELEMENTWISE = {
    "exp": (lambda x: x.exp(), lambda shape: float_arrays(shape, -3.0, 3.0)),
    "log": (lambda x: x.log(), lambda shape: float_arrays(shape, 0.1, 10.0)),
    "sigmoid": (lambda x: x.sigmoid(), lambda shape: float_arrays(shape, -6.0, 6.0)),
    "tanh": (lambda x: x.tanh(), lambda shape: float_arrays(shape, -3.0, 3.0)),
    "relu": (lambda x: x.relu(), relu_inputs),
    "square": (lambda x: x * x, float_arrays),
    "reciprocal": (lambda x: 1 / (x * x + 1), float_arrays),
}
REDUCTIONS = {
    "sum": (lambda x, axis, keepdims: x.sum(axis=axis, keepdims=keepdims), float_arrays),
    "mean": (lambda x, axis, keepdims: x.mean(axis=axis, keepdims=keepdims), float_arrays),
    "max": (lambda x, axis, keepdims: x.max(axis=axis, keepdims=keepdims), distinct_arrays),
}
#: 0 to 3 dimensions of 1 to 4 elements each.
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


@pytest.mark.property
@settings(deadline=None)
@given(name=st.sampled_from(sorted(ELEMENTWISE)), data=st.data())
def test_gradcheck_passes_for_elementwise_ops(name, data):
    fn, values = ELEMENTWISE[name]
    shape = data.draw(SHAPES, label="shape")
    x = data.draw(values(shape), label="x")
    assert gradcheck(fn, Tensor(x, requires_grad=True))


@pytest.mark.property
@settings(deadline=None)
@given(name=st.sampled_from(sorted(REDUCTIONS)), data=st.data())
def test_gradcheck_passes_for_reductions(name, data):
    reduce, values = REDUCTIONS[name]
    shape = data.draw(SHAPES, label="shape")
    x = data.draw(values(shape), label="x")
    axis = data.draw(axes(len(shape)), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    assert gradcheck(lambda t: reduce(t, axis, keepdims), Tensor(x, requires_grad=True))


# --- any memory layout (issue 15, item 5) ---------------------------------------------------


def test_numerical_grad_of_a_transposed_input_is_not_zero():
    """Perturbing a non-C-contiguous input through reshape(-1) wrote to a copy: all zeros."""
    x = np.arange(1.0, 7.0).reshape(2, 3).T
    (g,) = numerical_grad(lambda a: (a * a).sum(), Tensor(x, requires_grad=True))
    np.testing.assert_allclose(g, 2 * x, rtol=1e-8)
    assert gradcheck(lambda a: (a * a).sum(), Tensor(np.asfortranarray(x), requires_grad=True))


# d(x²) is 2x; this VJP is off by 1 everywhere, so every element of any input must fail.
bad_square_plus_one = Primitive("bad_square_plus_one", np.square,
                                lambda g, out, x: g * (2 * x + 1))


@pytest.mark.property
@given(case=laid_out_arrays(), other=laid_out_arrays())
def test_gradcheck_on_every_layout_passes_right_and_fails_wrong_gradients(case, other):
    (layout, x), (_, y) = case, other
    before, y_before = x.copy(), y.copy()
    flags = (x.flags.writeable, x.strides)
    tx, ty = Tensor(x, requires_grad=True), Tensor(y, requires_grad=True)
    # A correct gradient passes, whatever the layout of either input ...
    assert gradcheck(lambda a, b: (a * a).sum() + (b * b * b).sum(), tx, ty)
    (g,) = numerical_grad(lambda a: (a * a).sum(), tx)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-6, atol=1e-6)
    # ... and a planted wrong one fails, at every element.
    with pytest.raises(GradcheckError, match=r"input 0 .*largest absolute error 1 "):
        gradcheck(lambda a: bad_square_plus_one(a).sum(), tx)
    # The caller's arrays are untouched: values, writability and layout.
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(y, y_before)
    assert (x.flags.writeable, x.strides) == flags, layout
