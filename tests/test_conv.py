"""Convolution, pooling, padding, batch norm and the GELU/SiLU/ELU activations.

Gradients are checked against central differences in float64 (`gradcheck`, Hypothesis over
shapes, strides, paddings and kernels from 1 to the whole input; the primitives' own cases
are in tests/strategies.py's table), values and gradients against PyTorch float64 when it
is installed, and the conventions PyTorch users rely on are tested by hand: max-pool ties
give the whole gradient to the FIRST maximum of each window, batch norm's running estimates
use the unbiased variance, eval mode uses them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import Geometry, distinct_arrays, float_arrays, geometries

from tinygrad_nn import Tensor, grad, gradcheck, ops
from tinygrad_nn import functional as F


def torch_or_skip():
    return pytest.importorskip("torch")


def weighted_sum(y: Tensor, seed: int = 0) -> Tensor:
    """Σ y·r with fixed random r: a scalar whose gradient reaches every output entry."""
    r = np.random.default_rng(seed).standard_normal(y.shape)
    return (y * Tensor(r)).sum()


# --- values and gradients against PyTorch float64 ---------------------------------------------


def against_torch(ours, theirs, *arrays: np.ndarray) -> None:
    """ours(*Tensors) and theirs(*torch tensors): the same values and input gradients."""
    torch = torch_or_skip()
    ts = [Tensor(a, requires_grad=True) for a in arrays]
    y = ours(*ts)
    r = np.random.default_rng(1).standard_normal(y.shape)
    (y * Tensor(r)).sum().backward()
    tt = [torch.tensor(a, requires_grad=True) for a in arrays]
    yt = theirs(*tt)
    yt.backward(torch.tensor(r))
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    for t, u in zip(ts, tt):
        np.testing.assert_allclose(t.grad.data, u.grad.numpy(), rtol=1e-11, atol=1e-11)


@pytest.mark.property
@settings(max_examples=25)
@given(geo=geometries(max_side=6, max_channels=3), c_out=st.integers(1, 3),
       bias=st.booleans(), data=st.data())
def test_conv2d_matches_torch(geo: Geometry, c_out: int, bias: bool, data):
    torch = torch_or_skip()
    x = data.draw(float_arrays(geo.shape))
    w = data.draw(float_arrays((c_out, geo.shape[1], *geo.kernel)))
    arrays = [x, w] + ([data.draw(float_arrays((c_out,)))] if bias else [])
    conv = {"stride": geo.stride, "padding": geo.padding}
    against_torch(lambda *t: F.conv2d(*t, **conv),
                  lambda *t: torch.nn.functional.conv2d(*t, **conv), *arrays)


@pytest.mark.property
@settings(max_examples=25)
@given(geo=geometries(max_side=6, pool=True), ties=st.booleans(), data=st.data())
def test_pools_match_torch_ties_included(geo: Geometry, ties: bool, data):
    """Integer-valued images tie often: the gradient still matches PyTorch's exactly."""
    torch = torch_or_skip()
    x = data.draw(float_arrays(geo.shape))
    if ties:
        x = np.round(x)
    k, s, p = geo.kernel, geo.stride, geo.padding
    against_torch(lambda t: F.max_pool2d(t, k, s, p),
                  lambda t: torch.nn.functional.max_pool2d(t, k, s, p), x)
    against_torch(lambda t: F.avg_pool2d(t, k, s, p),
                  lambda t: torch.nn.functional.avg_pool2d(t, k, s, p), x)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 2), (1, 2, 3, 3)])
def test_batch_norm_matches_torch(shape):
    """Training (output, gradients of x, weight and bias, running estimates) and eval."""
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 3 + 1
    w, b = rng.standard_normal(3 if shape[1] == 3 else 2), rng.standard_normal(shape[1])
    w = w[:shape[1]]
    for training in (True, False):
        ours = (np.full(shape[1], 0.5), np.full(shape[1], 2.0))
        theirs = (torch.tensor(ours[0]), torch.tensor(ours[1]))
        against_torch(
            lambda t, u, v, r=ours, k=training: F.batch_norm(t, *r, u, v, k, 0.3, 1e-3),
            lambda t, u, v, r=theirs, k=training: torch.nn.functional.batch_norm(
                t, *r, u, v, k, 0.3, 1e-3), x, w, b)
        for a, b_ in zip(ours, theirs):
            np.testing.assert_allclose(a, b_.numpy(), rtol=1e-13)


def test_pad_and_activations_match_torch():
    torch = torch_or_skip()
    tf = torch.nn.functional
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5)) * 4
    against_torch(lambda t: F.pad(t, ((0, 0), (1, 0), (2, 1), (0, 3)), -2.5),
                  lambda t: tf.pad(t, (0, 3, 2, 1, 1, 0), value=-2.5), x)
    against_torch(lambda t: F.pad(t, 2), lambda t: tf.pad(t, (2, 2, 2, 2)), x)
    against_torch(F.gelu, tf.gelu, x)
    against_torch(F.silu, tf.silu, x)
    against_torch(lambda t: F.elu(t, 0.7), lambda t: tf.elu(t, 0.7), x)


# --- gradients against finite differences (beyond the primitive table) --------------------------


def check_second_order(fn, *arrays: np.ndarray, eps: float = 1e-6) -> None:
    """fn builds a scalar from first derivatives taken with create_graph=True; its gradient
    must match central differences of fn itself (gradcheck's finite differences run under
    no_grad, where a first derivative cannot be taken, so they are done here)."""
    ts = [Tensor(a, requires_grad=True) for a in arrays]
    analytic = grad(fn(*ts), ts)
    for t, g in zip(ts, analytic):
        numeric = np.zeros(t.shape)
        for i in np.ndindex(t.shape):
            original = t.data[i]
            t.data[i] = original + eps
            up = fn(*ts).item()
            t.data[i] = original - eps
            down = fn(*ts).item()
            t.data[i] = original
            numeric[i] = (up - down) / (2 * eps)
        # The differences' rounding error is about |fn|·1e-16/eps for every entry alike, so
        # the tolerance follows the largest entry: a fixed atol failed a small entry
        # (1.125 against 1.12504) beside entries of 140 (avg-pool of y³, x up to 15).
        scale = max(1.0, float(np.abs(numeric).max()))
        np.testing.assert_allclose(g.data, numeric, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.property
@settings(max_examples=15)
@given(geo=geometries(max_side=4), data=st.data())
def test_conv2d_second_derivatives(geo: Geometry, data):
    """conv2d's VJPs are conv2d_input_grad and conv2d_weight_grad, whose VJPs are each other
    and conv2d: a recorded backward differentiates again (grad-of-grad by finite differences)."""
    x = data.draw(float_arrays(geo.shape))
    w = data.draw(float_arrays((2, geo.shape[1], *geo.kernel)))
    conv = {"stride": geo.stride, "padding": geo.padding}

    def gradient_norm(a: Tensor, b: Tensor) -> Tensor:
        y = F.conv2d(a, b, **conv)
        gx, gw = grad((y * y).sum(), [a, b], create_graph=True)
        return (gx * gx).sum() + (gw * gw).sum()

    check_second_order(gradient_norm, x, w)


@pytest.mark.property
@settings(max_examples=15)
@given(geo=geometries(max_side=4, pool=True), data=st.data())
def test_pool_second_derivatives(geo: Geometry, data):
    x = data.draw(distinct_arrays(geo.shape))
    for pool in (F.max_pool2d, F.avg_pool2d):
        def gradient_norm(a: Tensor, pool=pool) -> Tensor:
            y = pool(a, geo.kernel, geo.stride, geo.padding)
            (gx,) = grad((y * y * y).sum(), [a], create_graph=True)
            return (gx * gx).sum()

        check_second_order(gradient_norm, x)


def test_batch_norm_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    for shape in [(5, 2), (3, 2, 3, 2)]:
        x = rng.standard_normal(shape)
        w, b = rng.standard_normal(2), rng.standard_normal(2)
        gradcheck(lambda t, u, v: weighted_sum(F.batch_norm(t, None, None, u, v, True)),
                  *(Tensor(a, requires_grad=True) for a in (x, w, b)))
        gradcheck(lambda t: weighted_sum(F.batch_norm(t, None, None, training=True)),
                  Tensor(x, requires_grad=True))


def test_batch_norm_second_derivatives_are_refused_not_wrong():
    x = Tensor(np.random.default_rng(4).standard_normal((4, 2)), requires_grad=True)
    y = F.batch_norm(x, None, None, training=True)
    with pytest.raises(NotImplementedError, match="batch_norm: second derivatives"):
        grad(weighted_sum(y), [x], create_graph=True)


# --- conventions -----------------------------------------------------------------------------


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    """A constant window (Fashion-MNIST's background) gives its whole gradient to its
    top-left entry, PyTorch's rule, not a share to each of the four."""
    x = Tensor(np.zeros((1, 1, 4, 4)), requires_grad=True)
    x.data[0, 0, 2:, 2:] = [[1.0, 3.0], [3.0, 2.0]]  # a tie of 3s in the last window
    y = F.max_pool2d(x, 2)
    (y * Tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))).sum().backward()
    expected = np.zeros((4, 4))
    expected[0, 0], expected[0, 2], expected[2, 0] = 1.0, 2.0, 3.0
    expected[2, 3] = 4.0  # the first 3 in scan order (row by row), not the one below it
    np.testing.assert_array_equal(x.grad.data[0, 0], expected)


def test_overlapping_windows_each_send_to_their_own_first_maximum():
    x = Tensor(np.array([[[[5.0, 5.0, 5.0]]]]), requires_grad=True)
    F.max_pool2d(x, (1, 2), stride=1).sum().backward()  # windows [0, 1] and [1, 2]
    np.testing.assert_array_equal(x.grad.data, [[[[1.0, 1.0, 0.0]]]])


@pytest.mark.parametrize("kernel,size", [((2, 2), (6, 6)), ((2, 2), (7, 5)), ((3, 2), (7, 7)),
                                         ((1, 1), (3, 4))])
def test_tiling_windows_take_the_fast_path_with_the_same_gradient(kernel, size):
    """stride = kernel, no padding (the usual 2×2 pool) has its own backward: it must send
    each window's gradient to its first maximum, leave the rows and columns no window
    reaches (floor mode) at 0, and pass inf and nan through exactly where they win, +0
    elsewhere (as PyTorch: a product g·mask would turn 0·inf into nan)."""
    rng = np.random.default_rng(11)
    for dtype in (np.float32, np.float64):
        x = np.round(rng.standard_normal((2, 3, *size)) * 1.5).astype(dtype)  # many ties
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        y = ops.max_pool2d(x, kernel=kernel, stride=kernel, padding=(0, 0))
        g = rng.standard_normal(y.shape).astype(dtype)
        g[0, 0, 0, 0], g[1, 2, -1, -1], g[0, 1, 0, -1] = np.inf, np.nan, -np.inf
        dx = ops.max_pool2d_backward(g, x=x, y=y, kernel=kernel, stride=kernel, padding=(0, 0))
        expected = np.zeros_like(x)
        for n, c, i, j in np.ndindex(*y.shape):
            window = x[n, c, i * kernel[0]:(i + 1) * kernel[0], j * kernel[1]:(j + 1) * kernel[1]]
            a, b = np.unravel_index(np.argmax(window), kernel)  # argmax: the first maximum
            expected[n, c, i * kernel[0] + a, j * kernel[1] + b] = g[n, c, i, j]
        assert dx.dtype == dtype
        np.testing.assert_array_equal(dx, expected)
        assert not np.signbit(dx[expected == 0]).any()  # +0, not -0, off the maxima


def test_batch_norm_sums_agree_across_memory_layouts():
    """Channel sums take a BLAS product for channels-last memory, add.reduce otherwise."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 3, 5, 2)) * 3 + 1
    laid = [x, np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)]
    grads = []
    for a in laid:
        t, w, b = (Tensor(a, requires_grad=True), Tensor(np.full(3, 1.5), requires_grad=True),
                   Tensor(np.zeros(3), requires_grad=True))
        y = F.batch_norm(t, None, None, w, b, training=True)
        weighted_sum(y).backward()
        grads.append([y.data, t.grad.data, w.grad.data, b.grad.data])
    for ours, other in zip(*grads):
        np.testing.assert_allclose(ours, other, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grads[0][3], weighted_sum_weights(x.shape).sum(axis=(0, 2, 3)),
                               rtol=1e-12)


def weighted_sum_weights(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def test_max_pool_padding_is_minus_infinity_and_avg_pool_counts_it():
    x = -np.ones((1, 1, 2, 2))
    np.testing.assert_array_equal(F.max_pool2d(Tensor(x), 2, 1, 1).data, -np.ones((1, 1, 3, 3)))
    np.testing.assert_array_equal(F.avg_pool2d(Tensor(x), 2, 1, 1).data[0, 0, 0], [-0.25, -0.5,
                                                                                  -0.25])


def test_pad_with_minus_infinity_and_its_gradient():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    y = F.pad(x, ((1, 0), (0, 2)), value=-np.inf)
    assert y.shape == (3, 5) and np.isneginf(y.data[0]).all() and np.isneginf(y.data[:, 3:]).all()
    F.pad(x, ((1, 0), (0, 2))).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.ones((2, 3)))


def test_batch_norm_running_estimates_and_eval():
    """Training normalises with the biased variance and moves the running estimates by
    `momentum` towards the mean and the UNBIASED variance; eval uses the estimates."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 3, 2, 2)) * 2 + 3
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    rm, rv = np.zeros(3), np.ones(3)
    y = F.batch_norm(Tensor(x), rm, rv, training=True, momentum=0.25, eps=1e-5).data
    expected = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm, 0.25 * mean, rtol=1e-14)
    np.testing.assert_allclose(rv, 0.75 + 0.25 * var * 32 / 31, rtol=1e-14)
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    y = F.batch_norm(Tensor(x), rm, rv, Tensor(w), Tensor(b)).data
    expected = (x - rm[:, None, None]) / np.sqrt(rv[:, None, None] + 1e-5) * w[:, None, None]
    np.testing.assert_allclose(y, expected + b[:, None, None], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm, 0.25 * mean, rtol=1e-14)  # eval leaves them alone


def test_batch_norm_running_estimates_may_be_tensors():
    rm, rv = Tensor(np.zeros(2)), Tensor(np.ones(2))
    F.batch_norm(Tensor(np.array([[1.0, 2.0], [3.0, 6.0]])), rm, rv, training=True)
    np.testing.assert_allclose(rm.data, [0.2, 0.4])
    np.testing.assert_allclose(rv.data, [0.9 + 0.1 * 2.0, 0.9 + 0.1 * 8.0])


@pytest.mark.parametrize("layout", ["C", "channels-last", "Fortran"])
def test_any_memory_layout_gives_the_same_values(layout):
    """Channels-last memory is only the fast path: other layouts give the same numbers."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((2, 3, 3, 3))
    laid = {"C": x, "Fortran": np.asfortranarray(x),
            "channels-last": np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)}
    for f in (lambda a: F.conv2d(a, Tensor(w), padding=1), lambda a: F.max_pool2d(a, 2),
              lambda a: F.avg_pool2d(a, 3, 1, 1)):
        t = Tensor(laid[layout], requires_grad=True)
        y = f(t)
        weighted_sum(y).backward()
        t0 = Tensor(x, requires_grad=True)
        y0 = f(t0)
        weighted_sum(y0).backward()
        np.testing.assert_array_equal(y.data, y0.data)
        np.testing.assert_array_equal(t.grad.data, t0.grad.data)


def test_conv2d_output_memory_is_channels_last_and_float32_stays_float32():
    x = Tensor(np.ones((2, 3, 6, 6), np.float32))
    y = F.conv2d(x, Tensor(np.ones((4, 3, 3, 3), np.float32)), Tensor(np.zeros(4, np.float32)),
                 stride=2, padding=1)
    assert y.shape == (2, 4, 3, 3) and y.dtype == np.float32
    assert y.data.transpose(0, 2, 3, 1).flags.c_contiguous
    np.testing.assert_array_equal(y.data[0, 0], [[12, 18, 18], [18, 27, 27], [18, 27, 27]])


# --- activations: exact GELU, stable at |x| = 1e4 ----------------------------------------------


def test_erfc_is_accurate_to_float64_rounding():
    x = np.concatenate([np.linspace(-6, 27, 4001), [-0.0, 0.46875, 4.0, 26.5, 40.0, np.inf,
                                                    -np.inf]])
    ours = ops._erfc(x)
    exact = np.array([math.erfc(v) for v in x])
    close = np.isclose(ours, exact, rtol=1e-15, atol=0)  # a few units in the last place
    assert close.all(), x[~close]
    assert np.isnan(ops._erfc(np.array([np.nan]))).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("name", ["gelu", "silu", "elu"])
def test_activations_are_quiet_and_finite_at_large_inputs(dtype, name):
    """|x| = 1e4 in every float dtype: the limits (0 or x, -1 for ELU), finite gradients,
    no numpy warning (warnings are errors in this suite)."""
    x = Tensor(np.array([-1e4, -40.0, -1.0, 0.0, 1.0, 40.0, 1e4], dtype), requires_grad=True)
    y = getattr(F, name)(x)
    y.sum().backward()
    assert y.dtype == dtype and x.grad.dtype == dtype
    assert np.isfinite(y.data).all() and np.isfinite(x.grad.data).all()
    low = -1.0 if name == "elu" else 0.0
    # (SiLU at -1e4 is -1e4·σ(-88), about -6e-35: sigmoid's clamp, harmless)
    assert y.data[0] == pytest.approx(low, abs=1e-30) and y.data[-1] == 1e4
    np.testing.assert_allclose(x.grad.data[[0, -1]], [0.0, 1.0], atol=1e-30)


def test_gelu_is_the_exact_one():
    x = np.array([-3.0, -1.0, 0.5, 2.0])
    expected = [v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x]
    np.testing.assert_allclose(F.gelu(Tensor(x)).data, expected, rtol=4e-15)


# --- errors that name the problem ----------------------------------------------------------


@pytest.mark.parametrize("call, message", [
    (lambda: F.conv2d(Tensor(np.ones((1, 2, 4, 4))), Tensor(np.ones((3, 1, 3, 3)))),
     "2 channels but weight"),
    (lambda: F.conv2d(Tensor(np.ones((2, 4, 4))), Tensor(np.ones((3, 1, 3, 3)))), "4-D"),
    (lambda: F.conv2d(Tensor(np.ones((1, 1, 2, 2))), Tensor(np.ones((1, 1, 3, 3)))),
     "larger than the padded input"),
    (lambda: F.conv2d(Tensor(np.ones((1, 1, 4, 4))), Tensor(np.ones((1, 1, 3, 3))),
                      Tensor(np.ones(2))), "bias must have shape"),
    (lambda: F.conv2d(Tensor(np.ones((1, 1, 4, 4))), Tensor(np.ones((1, 1, 3, 3))), stride=0),
     "stride must be"),
    (lambda: F.max_pool2d(Tensor(np.ones((1, 1, 4, 4))), 2, padding=2), "at most half"),
    (lambda: F.pad(Tensor(np.ones((2, 2))), ((1, 1),)), "one \\(before, after\\) pair"),
    (lambda: F.batch_norm(Tensor(np.ones((1, 3))), None, None, training=True),
     "more than one value"),
    (lambda: F.batch_norm(Tensor(np.ones((2, 3))), np.zeros(2), np.ones(3)), "running_mean"),
])
def test_errors_name_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()
