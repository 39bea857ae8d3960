"""The Tensor under Python's and numpy's protocols, and its dtypes (issue 15, items 4, 15,
17 and 21), each checked against Python's and numpy's own rules (values computed by Python,
numpy or `math`, gradients by hand).

PyTorch is never a dependency: each cross-check against it is a separate test, named
`..._as_in_pytorch`, which starts with `pytest.importorskip("torch")`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinygrad_nn import Tensor, grad, jit, ops
from tinygrad_nn.jit import JitWarning
from tinygrad_nn.tensor import as_tensor

# --- C: integer and bool casts are cut from the graph ----------------------------------


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, bool])
def test_a_cast_to_integers_or_bool_is_detached(dtype):
    x = Tensor([1.5, 2.5], requires_grad=True)
    y = x.astype(dtype)
    assert y.requires_grad is False and y.grad_fn is None and y.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", ["int64", "int32", "uint8", "bool"])
def test_a_cast_to_integers_or_bool_is_detached_as_in_pytorch(dtype):
    torch = pytest.importorskip("torch")
    x = Tensor([1.5, 2.5], requires_grad=True)
    xt = torch.tensor([1.5, 2.5], requires_grad=True)
    assert xt.long().requires_grad is False
    assert xt.to(getattr(torch, dtype)).requires_grad is False
    assert x.astype(np.dtype(dtype)).requires_grad is False


def test_no_gradient_passes_through_an_integer_cast():
    """d/dx sum(x * int(x)) = int(x) only ([1, 2]), not [1, 2] + x: the cast is a constant."""
    xs = [1.5, 2.5]
    x = Tensor(xs, requires_grad=True)
    (x * x.astype(np.int64)).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [1.0, 2.0])
    np.testing.assert_array_equal(x.grad.data, [float(int(v)) for v in xs])


def test_no_gradient_passes_through_an_integer_cast_as_in_pytorch():
    """x * x.long() in PyTorch: d/dx = x.long() only ([1, 2]), not [1, 2] + x."""
    torch = pytest.importorskip("torch")
    x = Tensor([1.5, 2.5], requires_grad=True)
    (x * x.astype(np.int64)).sum().backward()
    xt = torch.tensor([1.5, 2.5], requires_grad=True)
    (xt * xt.long()).sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(x.grad.data, xt.grad.numpy())


def test_a_float_cast_stays_differentiable():
    x = Tensor([1.5, 2.5], requires_grad=True)
    y = x.astype(np.float32)
    assert y.requires_grad and y.grad_fn == "cast"
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0])


# --- E: dtype= refuses what the data would be refused for -----------------------------

BAD_DTYPES = [("U3", "strings"), (object, "objects"), (complex, "complex numbers"),
              (np.complex64, "complex numbers"), ("S2", "bytes"), ("M8[s]", "dates")]


@pytest.mark.parametrize(("dtype", "kind"), BAD_DTYPES)
@pytest.mark.parametrize("data", [[1.0, 2.0], 3, np.ones(2)], ids=["list", "int", "array"])
def test_a_non_numeric_dtype_is_refused(data, dtype, kind):
    with pytest.raises(TypeError, match=f"cannot build a tensor from .*{kind}"):
        Tensor(data, dtype=dtype)
    with pytest.raises(TypeError, match=f"cannot build a tensor from .*{kind}"):
        as_tensor(data, dtype=dtype)


@pytest.mark.parametrize(("dtype", "kind"), BAD_DTYPES)
def test_astype_to_a_non_numeric_dtype_is_refused(dtype, kind):
    with pytest.raises(TypeError, match=f"cannot build a tensor from .*{kind}"):
        Tensor([1.0, 2.0]).astype(dtype)


def test_the_message_is_the_one_for_such_data():
    with pytest.raises(TypeError) as by_data:
        Tensor(np.array(["abc"]))
    with pytest.raises(TypeError) as by_dtype:
        Tensor([1.0], dtype="U3")
    for err in (by_data, by_dtype):
        assert "holding strings (dtype <U3); expected numbers" in str(err.value)


def test_a_name_that_is_no_dtype_is_refused():
    with pytest.raises(TypeError, match="'flot' is not a dtype"):
        Tensor([1.0], dtype="flot")


# --- F: iteration and comparison with None ---------------------------------------------


def test_iterating_a_0d_tensor_is_refused_as_in_numpy():
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        list(Tensor(1.0))
    with pytest.raises(TypeError, match="iteration over a 0-d array"):
        list(np.array(1.0))


def test_iterating_a_0d_tensor_is_refused_as_in_pytorch():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        list(Tensor(1.0))
    with pytest.raises(TypeError, match="iteration over a 0-d tensor"):
        list(torch.tensor(1.0))


def test_iterating_gives_differentiable_rows():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    rows = list(x)
    assert [r.shape for r in rows] == [(2,), (2,)]
    (rows[0] * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[3.0, 3.0], [0.0, 0.0]])


def test_comparison_with_none_is_a_bool():
    t = Tensor([1.0, 2.0])
    assert (t == None) is False  # noqa: E711  (the operator is what is tested)
    assert (t != None) is True  # noqa: E711
    assert t not in [None]


def test_comparison_with_none_is_a_bool_as_in_pytorch():
    torch = pytest.importorskip("torch")
    assert (torch.tensor([1.0]) == None) is False  # noqa: E711  (the operator is what is tested)
    assert (Tensor([1.0]) == None) is False  # noqa: E711


# --- G: numpy's and Python's protocols -------------------------------------------------


def test_numpy_gets_the_values():
    t = Tensor([[1.0, 2.0]], requires_grad=True)
    a = np.asarray(t)
    assert a.dtype == np.float64 and a.shape == (1, 2)
    np.testing.assert_array_equal(a, [[1.0, 2.0]])
    assert np.array(t, dtype=np.float32).dtype == np.float32
    b = np.array(t)  # numpy's array() copies by default
    b[0, 0] = 9.0
    assert t.data[0, 0] == 1.0
    assert np.asarray(Tensor(3.0)).shape == ()
    with pytest.raises(ValueError, match="needs a copy"):
        np.asarray(t, dtype=np.float32, copy=False)


def test_ndarray_plus_tensor_still_gives_a_tensor():
    out = np.ones(2) + Tensor([1.0, 2.0], requires_grad=True)
    assert isinstance(out, Tensor) and out.requires_grad


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
def test_float_int_and_format_of_one_element(shape):
    t = Tensor(np.full(shape, -2.75))
    assert float(t) == -2.75 and type(float(t)) is float
    assert int(t) == -2 == int(-2.75) == math.trunc(-2.75)  # toward zero, as Python's int
    assert format(t, ".3f") == "-2.750" and f"{t:+.1e}" == "-2.8e+00"
    assert f"{t}" == str(t)


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
def test_int_of_one_element_as_in_pytorch(shape):
    torch = pytest.importorskip("torch")
    t = Tensor(np.full(shape, -2.75))
    assert int(t) == -2 == int(torch.tensor(-2.75))  # toward zero
    assert int(t) == int(torch.full(shape, -2.75, dtype=torch.float64))


@pytest.mark.parametrize("convert", [float, int, lambda t: format(t, ".2f")],
                         ids=["float", "int", "format"])
def test_conversion_of_several_elements_names_the_shape(convert):
    with pytest.raises(ValueError, match=r"only a tensor with exactly one element.*\(2,\)"):
        convert(Tensor([1.0, 2.0]))


@pytest.mark.parametrize("read", [float, int, lambda t: f"{t:.3f}", lambda t: t.tolist(),
                                  np.asarray], ids=["float", "int", "format", "tolist",
                                                    "asarray"])
def test_reading_a_value_during_a_capture_warns(read):
    w = Tensor([1.0, -1.0], requires_grad=True)

    @jit
    def step(x):
        c = (ops.mul(x, w)).sum()
        read(c)
        return c

    with pytest.warns(JitWarning, match="read a value"):
        step(np.ones(2))


def test_abs():
    x = Tensor([-2.0, 3.0], requires_grad=True)
    abs(x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [-1.0, 1.0])


PAIRS = [([5.0, -3.5, 7.0, -7.0, 0.5], [-2.0, 1.5, 3.0, 3.0, -0.25])]


@pytest.mark.parametrize(("xs", "ys"), PAIRS)
def test_remainder_and_floor_divide_follow_python(xs, ys):
    """x % y = x - floor(x / y) y: d/dx = 1 and d/dy = -floor(x / y) (floor is flat)."""
    x, y = Tensor(xs, requires_grad=True), Tensor(ys, requires_grad=True)
    r = x % y
    np.testing.assert_array_equal(r.data, [a % b for a, b in zip(xs, ys)])
    np.testing.assert_array_equal((x // y).data, [a // b for a, b in zip(xs, ys)])
    r.sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.ones(len(xs)))  # 1
    np.testing.assert_array_equal(y.grad.data, [-math.floor(a / b) for a, b in zip(xs, ys)])
    np.testing.assert_array_equal(y.grad.data, [-(a // b) for a, b in zip(xs, ys)])


@pytest.mark.parametrize(("xs", "ys"), PAIRS)
def test_remainder_and_floor_divide_follow_pytorch(xs, ys):
    torch = pytest.importorskip("torch")
    x, y = Tensor(xs, requires_grad=True), Tensor(ys, requires_grad=True)
    xt = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    yt = torch.tensor(ys, dtype=torch.float64, requires_grad=True)
    r, rt = x % y, xt % yt
    np.testing.assert_array_equal(r.data, rt.detach().numpy())
    np.testing.assert_array_equal(r.data, [a % b for a, b in zip(xs, ys)])
    np.testing.assert_array_equal((x // y).data, [a // b for a, b in zip(xs, ys)])
    r.sum().backward()
    rt.sum().backward()
    np.testing.assert_array_equal(x.grad.data, xt.grad.numpy())  # 1
    np.testing.assert_array_equal(y.grad.data, yt.grad.numpy())  # -floor(x / y)


def test_floor_divide_has_zero_gradient():
    x = Tensor([5.0, -3.5], requires_grad=True)
    (x // 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0])


def test_reflected_remainder_and_floor_divide():
    y = Tensor([3.0, -3.0])
    np.testing.assert_array_equal((7.0 % y).data, [7.0 % 3.0, 7.0 % -3.0])
    np.testing.assert_array_equal((7.0 // y).data, [7.0 // 3.0, 7.0 // -3.0])
    np.testing.assert_array_equal((np.array([7.0, 7.0]) % y).data, [1.0, -2.0])


def test_integer_remainder_and_floor_divide_stay_integers():
    t = Tensor(np.array([7, -7]))
    q, r = t // 2, t % 3
    assert q.dtype == np.int64 and r.dtype == np.int64
    np.testing.assert_array_equal(q.data, [7 // 2, -7 // 2])  # [3, -4]: toward -inf
    np.testing.assert_array_equal(q.data, np.floor_divide(np.array([7, -7]), 2))
    np.testing.assert_array_equal(r.data, [7 % 3, -7 % 3])  # [1, 2]: the sign of 3
    np.testing.assert_array_equal(r.data, np.remainder(np.array([7, -7]), 3))
    with pytest.raises(ZeroDivisionError):
        t // 0


def test_integer_remainder_and_floor_divide_as_in_pytorch():
    torch = pytest.importorskip("torch")
    t = Tensor(np.array([7, -7]))
    np.testing.assert_array_equal((t // 2).data, (torch.tensor([7, -7]) // 2).numpy())
    np.testing.assert_array_equal((t % 3).data, (torch.tensor([7, -7]) % 3).numpy())


def test_ravel_and_tolist():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    assert x.ravel().shape == (4,)
    x.ravel().sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.ones((2, 2)))
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]] and Tensor(2.0).tolist() == 2.0


@pytest.mark.parametrize(("fn", "expected"), [(np.sum, 6.0), (np.mean, 2.0), (np.max, 3.0),
                                              (np.min, 1.0)])
def test_numpy_reductions_give_a_differentiable_tensor(fn, expected):
    x = Tensor([1.0, 3.0, 2.0], requires_grad=True)
    out = fn(x)
    assert isinstance(out, Tensor) and out.item() == expected
    out.backward()
    assert x.grad.data.sum() == pytest.approx(1.0 if fn is not np.sum else 3.0)


def test_numpy_reductions_with_dtype_and_out():
    x = Tensor([1.0, 2.0])
    assert np.sum(x, dtype=np.float32).dtype == np.float32
    assert x.mean(axis=0, dtype=np.float32).dtype == np.float32
    with pytest.raises(TypeError, match="out= is not supported"):
        np.sum(x, out=np.zeros(()))


def test_sign_and_log_sigmoid_methods():
    """log σ(x) = min(x, 0) - log1p(e^-|x|); d/dx log σ(x) = 1 - σ(x) = σ(-x) = 1 / (1 + e^x);
    sign is flat: its derivative is 0."""
    xs = [-2.0, 0.0, 3.0]
    x = Tensor(xs, requires_grad=True)
    np.testing.assert_array_equal(x.sign().data, [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(x.sign().data, np.sign(xs))
    ls = x.log_sigmoid()
    want = [min(v, 0.0) - math.log1p(math.exp(-abs(v))) for v in xs]
    np.testing.assert_allclose(ls.data, want, rtol=1e-15)
    (ls + x.sign()).sum().backward()
    np.testing.assert_allclose(x.grad.data, [1.0 / (1.0 + math.exp(v)) for v in xs], rtol=1e-15)


def test_sign_and_log_sigmoid_methods_as_in_pytorch():
    torch = pytest.importorskip("torch")
    x = Tensor([-2.0, 0.0, 3.0], requires_grad=True)
    xt = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64, requires_grad=True)
    ls, lst = x.log_sigmoid(), torch.nn.functional.logsigmoid(xt)
    np.testing.assert_allclose(ls.data, lst.detach().numpy(), rtol=1e-15)
    (ls + x.sign()).sum().backward()
    (lst + xt.sign()).sum().backward()
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), rtol=1e-15)


def test_grad_through_a_python_conversion_is_not_taken():
    """float() reads a value: what is computed from it is a constant, as in PyTorch."""
    x = Tensor(2.0, requires_grad=True)
    y = x * float(x)
    (g,) = grad(y, x)
    assert g.item() == 2.0


def test_remainder_where_the_quotient_rounds_onto_an_integer():
    """floor(x / y) would round onto 50.0 here, where Python's exact floor division gives
    49.0: the primitives are numpy's floor_divide and remainder, exact as Python's."""
    assert (Tensor(5.0) % 0.1).item() == 5.0 % 0.1
    assert (Tensor(5.0) // 0.1).item() == 5.0 // 0.1 == 49.0


def test_remainder_where_the_quotient_rounds_onto_an_integer_as_in_pytorch():
    torch = pytest.importorskip("torch")
    assert (Tensor(5.0) % 0.1).item() == torch.remainder(
        torch.tensor(5.0, dtype=torch.float64), 0.1).item()


def test_division_by_a_float_zero_is_silent_as_in_pytorch():
    q, r = Tensor([1.0, -1.0]) // 0.0, Tensor([1.0, -1.0]) % 0.0
    assert q.data.tolist() == [np.inf, -np.inf] and np.isnan(r.data).all()


def test_clone_is_a_differentiable_copy_and_numel_counts():
    x = Tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    y = x.clone()
    assert y.grad_fn == "copy" and not np.shares_memory(y.data, x.data)
    y.data[0, 0] = 10.0  # the copy's memory is its own
    assert x.data[0, 0] == 1.0
    (y * Tensor([[1.0, 2.0, 3.0]])).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[1.0, 2.0, 3.0]])  # d clone(x)/dx = 1
    assert x.numel() == 3 and Tensor(5.0).numel() == 1 and Tensor(np.ones((2, 0))).numel() == 0
    assert isinstance(x.numel(), int)


def test_clone_and_numel_as_in_pytorch():
    torch = pytest.importorskip("torch")
    t = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    (t.clone() * torch.tensor([[1.0, 2.0, 3.0]])).sum().backward()
    x = Tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    (x.clone() * Tensor([[1.0, 2.0, 3.0]])).sum().backward()
    np.testing.assert_array_equal(x.grad.data, t.grad.numpy())
    assert x.numel() == t.numel()


def test_a_tensor_shows_itself_in_a_notebook_with_its_gradient():
    w = Tensor([[1.0, -2.0]], requires_grad=True)
    assert w._repr_html_() == "<pre>Tensor([[ 1., -2.]], requires_grad=True)</pre>"
    (w * w).sum().backward()
    assert w._repr_html_().endswith("\ngrad [[ 2., -4.]]</pre>")
    assert "&lt;mul&gt;" in (w * 3.0)._repr_html_()  # escaped, so the browser shows <mul>
