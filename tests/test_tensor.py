"""Tests for tinygrad_nn.tensor: construction, dtypes, the Tensor API, comparisons, no_grad."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_nn import Tensor, is_grad_enabled, no_grad
from tinygrad_nn.tensor import to_array

# --- construction and dtype -------------------------------------------------------------


@pytest.mark.parametrize(("data", "values"), [
    (1.5, 1.5), (2, 2.0), (True, 1.0), ([1, 2, 3], [1.0, 2.0, 3.0]),
    ([[1, 2], [3.5, 4]], [[1.0, 2.0], [3.5, 4.0]]), ((0, 1), [0.0, 1.0]),
])
def test_python_numbers_and_lists_become_float64(data, values):
    t = Tensor(data)
    assert t.dtype == np.float64
    assert isinstance(t.data, np.ndarray)
    np.testing.assert_array_equal(t.data, np.array(values))


def test_ndarrays_keep_their_dtype():
    assert Tensor(np.array([1.0, 2.0], dtype=np.float32)).dtype == np.float32
    assert Tensor(np.array([1, 2], dtype=np.int64)).dtype == np.int64
    assert Tensor(np.float32(1.5)).dtype == np.float32


@pytest.mark.parametrize("data", [[1, 2], [1.5, 2.5], np.array([1.0, 2.0])])
def test_dtype_argument(data):
    t = Tensor(data, dtype=np.float32)
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.data, np.asarray(data, dtype=np.float32))


def test_to_array_is_the_one_conversion():
    assert to_array(3).dtype == np.float64
    x = Tensor([1.0, 2.0])
    assert to_array(x) is x.data


def test_string_is_refused_naming_the_type():
    with pytest.raises(TypeError, match="str"):
        Tensor("abc")


def test_objects_are_refused_naming_the_type():
    with pytest.raises(TypeError, match="object"):
        Tensor([object()])


def test_complex_numbers_are_refused():
    with pytest.raises(TypeError, match="complex"):
        Tensor([1 + 2j])


@pytest.mark.parametrize("ragged", [[[1, 2], [3]], [1, [2, 3]]])
def test_ragged_lists_are_refused(ragged):
    with pytest.raises(ValueError, match="ragged"):
        Tensor(ragged)


def test_requires_grad_on_integers_is_refused_naming_the_dtype():
    with pytest.raises(RuntimeError, match="int64"):
        Tensor(np.array([1, 2]), requires_grad=True)
    t = Tensor(np.array([1, 2], dtype=np.int32))
    with pytest.raises(RuntimeError, match="int32"):
        t.requires_grad_()
    assert t.requires_grad is False


# --- the Tensor API ---------------------------------------------------------------------


def test_attributes():
    a = np.arange(6.0).reshape(2, 3)
    t = Tensor(a)
    assert t.shape == (2, 3)
    assert t.ndim == 2
    assert t.size == 6
    assert t.dtype == np.float64
    assert t.grad is None
    assert t.requires_grad is False
    np.testing.assert_array_equal(t.data, a)
    assert Tensor(5.0).shape == ()  # scalars have shape (), as in numpy
    assert Tensor(5.0).ndim == 0


def test_numpy_shares_the_data():
    a = np.array([1.0, 2.0])
    t = Tensor(a)
    assert isinstance(t.numpy(), np.ndarray)
    assert np.shares_memory(t.numpy(), t.data)
    np.testing.assert_array_equal(t.numpy(), a)


@pytest.mark.parametrize("make", [lambda x: x * 2, lambda x: x.sum(), lambda x: x[0],
                                  lambda x: (x * x).mean()],
                         ids=["mul", "sum", "index", "mean"])
def test_numpy_of_an_op_output_is_an_ndarray(make):
    """`.numpy()` promises the underlying ndarray, also for a 0-d result of a reduction."""
    out = make(Tensor([1.0, 2.0, 3.0], requires_grad=True))
    assert isinstance(out.numpy(), np.ndarray)
    assert isinstance(out.data, np.ndarray)


def test_grad_of_a_0d_leaf_is_an_ordinary_array():
    x = Tensor(3.0, requires_grad=True)
    (x * x).backward()
    assert isinstance(x.grad.data, np.ndarray)
    assert x.grad.data.flags.writeable
    assert x.grad.item() == 6.0


def test_item():
    value = Tensor(3.5).item()
    assert value == 3.5 and type(value) is float
    assert Tensor([[2.0]]).item() == 2.0
    assert (Tensor([1.0, 2.0], requires_grad=True) * 3).sum().item() == 9.0


def test_item_of_several_elements_names_the_shape():
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        Tensor([[1.0, 2.0], [3.0, 4.0]]).item()


def test_detach_shares_data_and_cuts_the_graph():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert d.requires_grad is False and d.is_leaf and d.grad_fn is None
    assert np.shares_memory(d.data, y.data)
    # d is a constant: d(d * x)/dx = d = 2x, not the 4x it would be through the graph.
    (d * x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 4.0])


def test_requires_grad_():
    x = Tensor([1.0, 2.0])
    assert x.requires_grad_() is x
    assert x.requires_grad is True
    x.requires_grad_(False)
    assert x.requires_grad is False
    y = Tensor([1.0], requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad_(False)


def test_is_leaf_and_grad_fn():
    x = Tensor([1.0, 2.0], requires_grad=True)
    c = Tensor([3.0, 4.0])
    y = x * c
    assert x.is_leaf and c.is_leaf and not y.is_leaf
    assert x.grad_fn is None and y.grad_fn == "mul"
    assert (c * 2).is_leaf  # nothing requires grad, so nothing was recorded
    assert (c * 2).requires_grad is False


def test_retain_grad_keeps_grad_on_a_non_leaf():
    x = Tensor([1.0, -2.0, 3.0], requires_grad=True)
    h = x * 2
    h.retain_grad()
    h2 = x * 3  # not retained
    ((h * h).sum() + h2.sum()).backward()
    np.testing.assert_array_equal(h.grad.data, 2 * h.data)  # d(h·h)/dh = 2h
    assert h2.grad is None
    np.testing.assert_array_equal(x.grad.data, 8 * x.data + 3)  # 2h · 2 + 3


def test_retain_grad_on_a_tensor_without_grad_is_refused():
    with pytest.raises(RuntimeError):
        Tensor([1.0]).retain_grad()


def test_repr():
    leaf = Tensor([1.5, -2.0], requires_grad=True)
    r = repr(leaf)
    assert r.startswith("Tensor(") and "1.5" in r and "-2." in r
    assert "requires_grad=True" in r and "grad_fn" not in r and "dtype" not in r

    out = leaf * 2
    r = repr(out)
    assert "3." in r and "-4." in r
    assert "grad_fn=<mul>" in r and "requires_grad" not in r

    plain = repr(Tensor([7.0]))
    assert "7." in plain and "requires_grad" not in plain and "grad_fn" not in plain

    r32 = repr(Tensor([1.0], dtype=np.float32))
    assert "dtype=float32" in r32


# --- ndarrays on the left ---------------------------------------------------------------


def test_ndarray_on_the_left_defers_to_the_tensor():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 5.0]) * x
    assert isinstance(y, Tensor) and y.requires_grad
    z = np.array([1.0, 1.0]) - y
    assert isinstance(z, Tensor)
    z.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [-3.0, -5.0])


# --- comparisons ------------------------------------------------------------------------

COMPARISONS = [
    ("<", lambda a, b: a < b, np.less),
    ("<=", lambda a, b: a <= b, np.less_equal),
    (">", lambda a, b: a > b, np.greater),
    (">=", lambda a, b: a >= b, np.greater_equal),
    ("==", lambda a, b: a == b, np.equal),
    ("!=", lambda a, b: a != b, np.not_equal),
]


@pytest.mark.parametrize(("name", "op", "ref"), COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_comparisons_are_boolean_and_off_the_graph(name, op, ref):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])
    x = Tensor(a, requires_grad=True)
    y = Tensor(b, requires_grad=True)
    for got, expected in [
        (op(x, y), ref(a, b)),          # tensor, tensor (broadcast)
        (op(x, 2.0), ref(a, 2.0)),      # tensor, number
        (op(2.0, x), ref(2.0, a)),      # number, tensor (Python reflects the operator)
        (op(x, b), ref(a, b)),          # tensor, ndarray
    ]:
        assert isinstance(got, Tensor)
        assert got.dtype == np.bool_
        assert got.requires_grad is False and got.is_leaf
        np.testing.assert_array_equal(got.data, expected)


def test_comparison_result_can_mask_without_gradient_leaking():
    x = Tensor([-1.0, 2.0, -3.0, 4.0], requires_grad=True)
    x[x > 0].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 1.0, 0.0, 1.0])


# --- no_grad ----------------------------------------------------------------------------


def test_no_grad_context_manager_records_nothing():
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = (x * x).sum()
        z = x.sigmoid() @ x
    assert is_grad_enabled()
    for t in (y, z):
        assert t.requires_grad is False and t.is_leaf
    assert x.grad is None
    with pytest.raises(RuntimeError):
        y.backward()
    assert x.grad is None


def test_no_grad_leaves_existing_grad_untouched():
    x = Tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    before = x.grad.data.copy()
    with no_grad():
        (x * x).sum()
    np.testing.assert_array_equal(x.grad.data, before)


def test_no_grad_as_bare_decorator():
    @no_grad
    def double(t):
        assert not is_grad_enabled()
        return t * 2

    x = Tensor([1.0], requires_grad=True)
    y = double(x)
    assert y.requires_grad is False
    assert is_grad_enabled()
    assert double.__name__ == "double"


def test_no_grad_as_called_decorator():
    @no_grad()
    def double(t):
        assert not is_grad_enabled()
        return t * 2

    x = Tensor([1.0], requires_grad=True)
    assert double(x).requires_grad is False
    assert is_grad_enabled()
    assert (x * 2).requires_grad  # recording is back on


def test_no_grad_nested():
    x = Tensor([1.0], requires_grad=True)
    with no_grad():
        with no_grad():
            assert not is_grad_enabled()
        assert not is_grad_enabled()  # the inner exit must not switch recording on
        assert (x * 2).requires_grad is False
    assert is_grad_enabled()
    assert (x * 2).requires_grad


def test_no_grad_decorated_function_inside_no_grad():
    @no_grad
    def f(t):
        return t + 1

    with no_grad():
        f(Tensor([1.0]))
        assert not is_grad_enabled()
    assert is_grad_enabled()


def test_no_grad_recursive_decorated_function():
    @no_grad()
    def countdown(n):
        assert not is_grad_enabled()
        return 0 if n == 0 else countdown(n - 1)

    countdown(3)
    assert is_grad_enabled()


def test_no_grad_restores_mode_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            raise ZeroDivisionError
    assert is_grad_enabled()

    @no_grad
    def fails():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        fails()
    assert is_grad_enabled()

    with no_grad():
        with pytest.raises(ValueError):
            with no_grad():
                raise ValueError
        assert not is_grad_enabled()  # back to the enclosing no_grad, not to enabled
    assert is_grad_enabled()
