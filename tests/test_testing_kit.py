"""tinygrad_nn.testing: the public kit to check your own operation.

`check_primitive` must pass on the package's own primitives and must fail, with a
counterexample that is really one, on primitives planted with the mistakes a user makes:
a sign (sin's VJP with -cos), a factor (x²'s VJP missing its 2), the other input's value
(mul's d/dy), a forward that writes into its input, a wrong convention at a kink, a VJP of
the wrong shape. The strategies it draws from are the suite's own (tests/strategies.py
re-exports them), and `import tinygrad_nn` still needs numpy alone.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
import strategies
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_nn import ops, testing
from tinygrad_nn.testing import (
    arrays_at_kinks,
    arrays_away_from_kinks,
    axes,
    check_primitive,
    distinct_arrays,
    float_arrays,
)

# --- the package's own primitives pass ------------------------------------------------------


@pytest.mark.parametrize(("op", "shapes", "params"), [
    (ops.sigmoid, [(2, 3)], {}),
    (ops.tanh, [(3,)], {}),
    (ops.log, [(3,)], {"bounds": (0.5, 3.0)}),  # a domain of its own for every input
    (ops.mul, [(2, 3), (3,)], {}),            # broadcasting: VJP 1 is summed back to (3,)
    (ops.div, [(2, 2), float_arrays((2, 2), 0.5, 2.0)], {}),
    (ops.matmul, [(2, 3), (3, 4)], {}),
    (ops.matmul, [(3,), (3, 2)], {}),         # a 1-D operand
    (ops.linear, [(4, 3), (2, 3), (2,)], {}),
    (ops.sum, [(2, 3)], {"axis": axes(2), "keepdims": st.booleans()}),
    (ops.logsumexp, [(2, 3)], {"axis": 1, "keepdims": False}),
    (ops.max, [distinct_arrays((2, 3))], {"axis": axes(2), "keepdims": st.booleans()}),
], ids=lambda v: v.name if isinstance(v, ops.Primitive) else None)
def test_real_primitives_pass(op, shapes, params):
    check_primitive(op, *shapes, **params)


def test_kinks_avoided_by_default_and_met_on_request():
    # relu'(0) = 0 and ties in max sharing the gradient lie between the one-sided
    # derivatives, so the package's conventions pass at the kinks too.
    check_primitive(ops.relu, (2, 3), kinks=(0.0,))
    check_primitive(ops.relu, (2, 3), kinks=(0.0,), at_kinks=True)
    check_primitive(ops.abs, (4,), kinks=(0.0,), at_kinks=True)
    check_primitive(ops.clip, (4,), kinks=(-1.0, 1.0), at_kinks=True, lo=-1.0, hi=1.0)
    check_primitive(ops.max, (2, 3), kinks=(0.0, 1.0), at_kinks=True, axis=1, keepdims=False)


# --- planted mistakes fail, with a true counterexample -------------------------------------


def counterexample(message: str) -> dict[str, np.ndarray]:
    """The arrays an AssertionError of check_primitive shows, read back from its text."""
    found = {}
    for line in message.splitlines()[1:]:
        key, _, value = line.strip().partition(":")
        shown = re.match(r"\s*(array\(.*?\))", value)  # (no parentheses inside: one array)
        if shown:
            found[key] = np.asarray(eval(shown[1], {"array": np.array}))  # noqa: S307
    match = re.search(r"analytical (\S+), numerical (\S+) \(allowed", message)
    if match:
        found["worst"] = np.array([float(match[1]), float(match[2])])
    return found


def wrong_sin() -> ops.Primitive:
    return ops.Primitive("wrong_sin", np.sin, lambda g, out, x: g * -np.cos(x))


def test_a_wrong_sign_is_caught_with_its_counterexample():
    with pytest.raises(AssertionError) as caught:
        check_primitive(wrong_sin(), (3,))
    message = str(caught.value)
    assert "<primitive wrong_sin>" in message and "the VJP of input 0" in message
    shown = counterexample(message)
    x, g = shown["input 0"], shown["cotangent g"]
    # The numbers shown are the truth at the inputs shown: d/dx sin = cos.
    np.testing.assert_allclose(shown["numerical (central differences, eps=1e-06)"],
                               g * np.cos(x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(shown["analytical (VJP 0)"], -g * np.cos(x), rtol=1e-12)
    analytical, numerical = shown["worst"]
    assert abs(analytical - numerical) > 1e-3
    assert "largest difference" in message


def test_a_missing_factor_of_two_is_caught():
    half = ops.Primitive("square_missing_2", np.square, lambda g, out, x: g * x)
    with pytest.raises(AssertionError, match="square_missing_2.*VJP of input 0") as caught:
        check_primitive(half, (2, 2))
    analytical, numerical = counterexample(str(caught.value))["worst"]
    assert numerical == pytest.approx(2 * analytical, rel=1e-6)


def test_the_wrong_input_of_a_binary_op_is_named():
    # d(xy)/dy is x; the planted VJP returns y, so input 1 (not 0) is blamed.
    bad_mul = ops.Primitive("bad_mul", np.multiply, lambda g, out, x, y: g * y,
                            lambda g, out, x, y: g * y)
    with pytest.raises(AssertionError, match="VJP of input 1") as caught:
        check_primitive(bad_mul, (3,), (3,))
    shown = counterexample(str(caught.value))
    x, g = shown["input 0"], shown["cotangent g"]
    np.testing.assert_allclose(shown["numerical (central differences, eps=1e-06)"], g * x,
                               rtol=1e-6, atol=1e-8)


def test_a_forward_that_writes_into_its_input_is_caught():
    def exp_in_place(x):
        return np.exp(x, out=x)

    mutating = ops.Primitive("exp_in_place", exp_in_place, lambda g, out, x: g * out)
    with pytest.raises(AssertionError, match="forward on arrays changed input 0 in place") \
            as caught:
        check_primitive(mutating, (2,))
    shown = counterexample(str(caught.value))
    np.testing.assert_array_equal(shown["input 0 after"], np.exp(shown["input 0 before"]))


def test_a_vjp_that_writes_into_an_input_is_caught():
    def vjp(g, out, x):
        x *= 0  # a scratch buffer taken from the caller's array
        return g * np.cos(x)

    with pytest.raises(AssertionError, match="VJP of input 0 changed input 0 in place"):
        check_primitive(ops.Primitive("sin_scribbles", np.sin, vjp), (2,))


def test_a_forward_that_is_not_a_function_of_its_inputs_is_caught():
    rng = np.random.default_rng(0)
    noisy = ops.Primitive("noisy", lambda x: x + rng.normal(size=np.shape(x)),
                          lambda g, out, x: g)
    with pytest.raises(AssertionError, match="forward on arrays and the forward on Tensors"):
        check_primitive(noisy, (2,))


def test_a_wrong_convention_at_a_kink_is_caught_only_at_the_kink():
    # relu with a derivative of 2 at 0: outside [0, 1], the one-sided derivatives there.
    relu_2 = ops.Primitive("relu_2", lambda x: np.maximum(x, 0),
                           lambda g, out, x: g * np.where(x > 0, 1.0, np.where(x == 0, 2.0, 0.0)))
    relu_2.kinks = (0.0,)  # declared by the primitive: check_primitive reads it
    check_primitive(relu_2, (3,))  # away from 0 it is relu's derivative
    with pytest.raises(AssertionError, match="outside the one-sided ones") as caught:
        check_primitive(relu_2, (3,), at_kinks=True)
    shown = counterexample(str(caught.value))
    assert (shown["input 0"] == 0).any()


def test_a_vjp_of_a_shape_that_cannot_sum_back_is_caught():
    bad = ops.Primitive("bad_shape", np.negative, lambda g, out, x: np.zeros((5,)))
    with pytest.raises(AssertionError, match=r"returned shape \(5,\), which does not sum back"):
        check_primitive(bad, (2,))


# --- the knobs ---------------------------------------------------------------------------------


def test_the_search_is_deterministic_and_max_examples_is_honoured():
    calls = []

    def vjp(g, out, x):
        calls.append(x.copy())
        return g * np.cos(x)

    sin = ops.Primitive("sin", np.sin, vjp)
    check_primitive(sin, (2,), max_examples=7)
    first, calls[:] = list(calls), []
    check_primitive(sin, (2,), max_examples=7)
    assert len(first) == 7
    assert all(np.array_equal(a, b) for a, b in zip(first, calls, strict=True))
    calls.clear()
    check_primitive(sin, (2,), max_examples=7, seed=1)
    assert len(calls) == 7


def test_a_failure_is_the_same_on_every_run_and_under_a_seed_still_found():
    messages = []
    for _ in range(2):
        with pytest.raises(AssertionError) as caught:
            check_primitive(wrong_sin(), (3,))
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    with pytest.raises(AssertionError, match="wrong_sin"):
        check_primitive(wrong_sin(), (3,), seed=12345)


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), [
    ((np.sin, (2,)), {}, TypeError, "must be an ops.Primitive"),
    ((ops.greater, (2,), (2,)), {}, ValueError, "has no VJPs"),
    ((ops.sigmoid, (2,), (2,)), {}, ValueError, "one shape"),
    ((ops.sigmoid,), {}, ValueError, "one shape"),
    ((ops.sigmoid, (2,)), {"at_kinks": True}, ValueError, "needs kinks"),
    ((ops.relu, (2,)), {"kinks": (0.0,), "margin": 1e-7}, ValueError, "must exceed eps"),
])
def test_misuse_is_refused_with_a_message(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_primitive(*args, **kwargs)


# --- the strategies ------------------------------------------------------------------------


def test_the_suite_draws_from_the_kit():
    for name in testing.__all__:
        if name != "check_primitive":
            assert getattr(strategies, name) is getattr(testing, name), name


@given(arrays_away_from_kinks((3, 2), kinks=(0.0, 1.0), margin=1e-3, low=-1.5, high=1.5))
def test_arrays_away_from_kinks_keep_their_margin(x):
    assert x.dtype == np.float64 and x.shape == (3, 2)
    assert np.all((x >= -1.5) & (x <= 1.5))
    assert np.all(np.abs(x - 0.0) >= 1e-3) and np.all(np.abs(x - 1.0) >= 1e-3)


@given(st.data())
def test_arrays_at_kinks_reach_the_kinks(data):
    x = data.draw(arrays_at_kinks((4,), kinks=(0.5,), low=-1.0, high=1.0))
    assert np.all((x >= -1.0) & (x <= 1.0))


def test_arrays_at_kinks_do_draw_the_kink_itself():
    seen = []

    @given(arrays_at_kinks((4,), kinks=(0.5,)))
    def record(x):
        seen.append(bool((x == 0.5).any()))

    record()
    assert any(seen)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_arrays_of_each_dtype_stay_in_bounds(dtype):
    @given(float_arrays((2, 3), -0.1, 0.3, dtype=dtype))
    def check(x):
        assert x.dtype == dtype and x.shape == (2, 3)
        assert np.all((x >= -0.1) & (x <= 0.3)) and np.all(np.isfinite(x))

    check()


def test_import_tinygrad_nn_needs_numpy_alone():
    code = ("import sys, tinygrad_nn; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'hypothesis'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]", result.stdout
