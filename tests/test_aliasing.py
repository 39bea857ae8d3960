"""Arrays shared without anyone knowing (issue 15, items 6 and 7).

- `Tensor(array)` copies, as `torch.tensor`; `Tensor.from_numpy` and `as_tensor` share, as
  `torch.from_numpy` / `torch.as_tensor`.
- A tensor modified in place after the forward pass read it (an optimizer step between
  forward and backward, GAN-style) makes `backward()` raise, not give wrong gradients.
- Every `.grad` owns its array: never the caller's seed, never another `.grad`'s.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import changes_after_forward

from tinygrad_nn import Tensor, grad, jit, optim
from tinygrad_nn.tensor import as_tensor

MODIFIED = "modified by an in-place operation"


def sgd_step(params: list[Tensor], lr: float = 0.5) -> None:
    """An optimizer step on `params` (their .grad set to ones first), counting as an
    in-place modification of each."""
    before = [p._version for p in params]
    for p in params:
        p.grad = Tensor(np.ones_like(p.data))
    optim.SGD(params, lr=lr).step()
    for p, version in zip(params, before):
        if p._version == version:  # (until optim.py bumps the version itself)
            p._bump_version()


# --- A: the constructor copies; from_numpy and as_tensor share ---------------------------


def test_changing_the_array_after_construction_changes_nothing():
    a = np.array([1.0, 2.0])
    t = Tensor(a)
    a[0] = 100.0
    np.testing.assert_array_equal(t.data, [1.0, 2.0])
    assert not np.shares_memory(t.data, a)


def test_changing_the_input_array_after_forward_leaves_the_gradient():
    a = np.array([1.0, -2.0, 3.0])
    w = Tensor([0.5, 0.5, 0.5], requires_grad=True)
    y = (w * Tensor(a)).sum()
    a[:] = -7.0  # e.g. the loader reusing its buffer for the next mini-batch
    y.backward()
    np.testing.assert_array_equal(w.grad.data, [1.0, -2.0, 3.0])


def test_two_parameters_from_one_array_move_apart():
    zeros = np.zeros(3)
    p, q = Tensor(zeros, requires_grad=True), Tensor(zeros, requires_grad=True)
    (p * 2.0).sum().backward()
    optim.SGD([p], lr=1.0).step()
    np.testing.assert_array_equal(p.data, [-2.0, -2.0, -2.0])
    np.testing.assert_array_equal(q.data, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(zeros, [0.0, 0.0, 0.0])


@pytest.mark.parametrize("make", [
    lambda a: a, lambda a: a[::2], lambda a: a.reshape(2, 2), lambda a: Tensor.from_numpy(a),
    lambda a: np.asarray(a).view(np.ndarray)], ids=["array", "strided view", "reshaped view",
                                                    "tensor", "ndarray view"])
def test_the_copy_is_of_its_own_memory(make):
    a = np.arange(4.0)
    t = Tensor(make(a))
    assert not np.shares_memory(t.data, a)
    assert t.data.flags.owndata


def test_a_dtype_conversion_is_one_copy():
    a = np.arange(3.0)
    t = Tensor(a, dtype=np.float32)
    assert t.dtype == np.float32 and not np.shares_memory(t.data, a)


def test_from_numpy_shares_the_array():
    a = np.array([1.0, 2.0], dtype=np.float32)
    t = Tensor.from_numpy(a)
    a[0] = 5.0
    assert t.dtype == np.float32 and t.data[0] == 5.0 and t.data is a


@pytest.mark.parametrize("data", [[1.0, 2.0], 3.0, np.float64(1.0)])
def test_from_numpy_takes_only_arrays(data):
    with pytest.raises(TypeError, match="from_numpy: expected an np.ndarray"):
        Tensor.from_numpy(data)


def test_as_tensor_shares_converts_or_returns_as_is():
    a = np.array([1.0, 2.0])
    assert as_tensor(a).data is a
    t = Tensor([1.0], requires_grad=True)
    assert as_tensor(t) is t and as_tensor(t, dtype=np.float64) is t
    assert as_tensor(t, dtype=np.float32).dtype == np.float32
    converted = as_tensor(a, dtype=np.float32)
    assert converted.dtype == np.float32 and not np.shares_memory(converted.data, a)
    assert as_tensor([1, 2]).dtype == np.float64
    assert as_tensor(a).requires_grad is False
    with pytest.raises(TypeError, match="strings"):
        as_tensor(np.array(["a"]))


def test_a_conversion_inside_a_jitted_step_is_replayed_with_new_data():
    """Tensor(x, dtype=float32) inside a step goes through ops.cast: a replay casts each
    new mini-batch instead of keeping the first one's values."""
    w = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    opt = optim.SGD([w], lr=1e-30)  # (w stays 1 to float32's precision)

    @jit
    def step(x):
        opt.zero_grad()
        c = (Tensor(x, dtype=np.float32) * w).sum()
        c.backward()
        opt.step()
        return Tensor(x) * 1.0

    for k in range(4):
        x = np.full(2, float(k))
        np.testing.assert_array_equal(step(x).data, x)
        np.testing.assert_array_equal(w.grad.data, x.astype(np.float32))


# --- A: versions ----------------------------------------------------------------------


def test_an_optimizer_step_between_forward_and_backward_raises():
    """GAN-style: the generator's step changes w after the discriminator's forward read it.
    Without the check x.grad would come from the new w (here, the wrong sign)."""
    x = Tensor([1.0, 2.0], requires_grad=True)
    w = Tensor([0.25, 0.25], requires_grad=True)
    y = (w * x).sum()
    sgd_step([w], lr=0.5)  # w becomes -0.25
    with pytest.raises(RuntimeError, match=MODIFIED) as err:
        y.backward()
    text = str(err.value)
    assert "(2,)" in text and "mul" in text and "before optimizer.step()" in text
    assert x.grad is None  # nothing was stored


def test_the_real_optimizer_bumps_the_version():
    w = Tensor([1.0], requires_grad=True)
    (w * 2.0).sum().backward()
    optim.SGD([w], lr=0.1).step()
    assert w._version == 1


def test_version_counts_and_setting_it_counts_as_a_modification():
    w = Tensor([1.0], requires_grad=True)
    assert w._version == 0
    w._bump_version()
    assert w._version == 1
    y = (w * 3.0).sum()
    w._version += 1  # what an optimizer may write instead of _bump_version()
    assert w._version == 2
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.backward()


def test_a_modification_before_the_forward_is_fine():
    w = Tensor([1.0, 2.0], requires_grad=True)
    sgd_step([w])
    w.grad = None
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad.data, 2 * w.data)


def test_grad_checks_versions_too():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x.exp().sum()
    x._bump_version()
    with pytest.raises(RuntimeError, match=MODIFIED):
        grad(y, x)


def test_a_modified_input_that_needs_no_grad_is_caught_too():
    x = Tensor([1.0, 2.0])
    w = Tensor([3.0, 4.0], requires_grad=True)
    y = (w * x).sum()
    x.data[...] = 0.0
    x._bump_version()
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.backward()


def test_an_error_in_the_walk_leaves_every_grad_as_it_was():
    """The leaf b gets its gradient before the walk reaches the stale mul: not stored."""
    x = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([1.0, 1.0], requires_grad=True)
    b.grad = Tensor([5.0, 5.0])
    y = (x * x).sum() + b.sum()
    x._bump_version()
    with pytest.raises(RuntimeError, match=MODIFIED):
        y.backward()
    np.testing.assert_array_equal(b.grad.data, [5.0, 5.0])
    assert x.grad is None


# --- B: every .grad owns its array ------------------------------------------------------


@pytest.mark.parametrize("seed", [lambda: Tensor([1.0, 2.0]), lambda: np.array([1.0, 2.0])],
                         ids=["Tensor", "ndarray"])
@pytest.mark.parametrize("make", [lambda x: x, lambda x: x + 0.0, lambda x: x.reshape(2)],
                         ids=["leaf", "add", "reshape"])
def test_the_seed_is_not_the_grad(seed, make):
    x = Tensor([3.0, 4.0], requires_grad=True)
    s = seed()
    make(x).backward(gradient=s)
    (s.data if isinstance(s, Tensor) else s)[0] = 100.0
    np.testing.assert_array_equal(x.grad.data, [1.0, 2.0])


@pytest.mark.parametrize("create_graph", [False, True])
def test_grads_of_a_sum_are_separate_arrays(create_graph):
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0], requires_grad=True)
    c = Tensor([[5.0, 6.0]], requires_grad=True)
    (a + b + c.reshape(2)).sum().backward(create_graph=create_graph)
    assert a.grad is not b.grad
    grads = [a.grad.data, b.grad.data, c.grad.data]
    for i, g in enumerate(grads):
        assert g.flags.owndata
        assert not any(np.shares_memory(g, h) for h in grads[i + 1:])
    a.grad.data[0] = 100.0
    np.testing.assert_array_equal(b.grad.data, [1.0, 1.0])


def test_a_seed_tensor_with_create_graph_is_not_the_grad():
    x = Tensor([3.0, 4.0], requires_grad=True)
    s = Tensor([1.0, 2.0], requires_grad=True)
    (x + 0.0).backward(gradient=s, create_graph=True)  # add's VJP passes the seed on
    assert x.grad is not s and not np.shares_memory(x.grad.data, s.data)
    # the gradient stays differentiable with respect to the seed
    (gs,) = grad(x.grad.sum(), s)
    np.testing.assert_array_equal(gs.data, [1.0, 1.0])


def test_create_graph_grads_stay_differentiable():
    a = Tensor(2.0, requires_grad=True)
    b = Tensor(3.0, requires_grad=True)
    (a * a + b).backward(create_graph=True)
    (d2,) = grad(a.grad, a)
    assert d2.item() == 2.0 and b.grad.item() == 1.0


# --- properties ----------------------------------------------------------------------------


def _gradients(expression, arrays):
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    out = expression(*tensors).sum()
    return tensors, out


@pytest.mark.property
@given(changes_after_forward())
def test_arrays_changed_after_the_forward_change_no_gradient(case):
    """Every array handed to Tensor() is overwritten between forward and backward: the
    cost and every gradient are those of the arrays as they were."""
    expression, fill, _ = case
    reference, ref_out = _gradients(expression, [a.copy() for a in expression.inputs])
    if not ref_out.requires_grad:
        return
    ref_out.backward()
    arrays = [a.copy() for a in expression.inputs]
    tensors, out = _gradients(expression, arrays)
    for a in arrays:
        a[...] = fill
    out.backward()
    np.testing.assert_array_equal(out.data, ref_out.data)
    for t, r in zip(tensors, reference):
        assert (t.grad is None) == (r.grad is None)
        if r.grad is not None:
            np.testing.assert_array_equal(t.grad.data, r.grad.data)


@pytest.mark.property
@given(changes_after_forward())
def test_an_optimizer_step_between_forward_and_backward_is_refused(case):
    """Parameters stepped between forward and backward: backward raises if the walk needs
    one of them (exactly those that get a gradient) and stores nothing; else it runs."""
    expression, _, changed = case
    reference, ref_out = _gradients(expression, expression.inputs)
    if not ref_out.requires_grad:
        return
    ref_out.backward()
    tensors, out = _gradients(expression, expression.inputs)
    stepped = [t for t, c in zip(tensors, changed) if c]
    sgd_step(stepped)
    before = [None if t.grad is None else t.grad.data.copy() for t in tensors]
    if any(r.grad is not None for r, c in zip(reference, changed) if c):
        with pytest.raises(RuntimeError, match=MODIFIED):
            out.backward()
        after = [None if t.grad is None else t.grad.data for t in tensors]
        for b, a in zip(before, after):
            assert (a is None and b is None) or np.array_equal(a, b)
    else:
        out.backward()


@pytest.mark.property
@given(changes_after_forward(), st.booleans())
def test_no_grad_shares_memory_with_another_or_the_seed(case, create_graph):
    """The output itself (not its sum) is seeded, so a leaf or a pass-through VJP (add,
    reshape) hands the seed on as it is."""
    expression = case[0]
    tensors = [Tensor(a, requires_grad=True) for a in expression.inputs]
    out = expression(*tensors)
    seed = Tensor(np.ones(out.shape))
    out.backward(gradient=seed, create_graph=create_graph)
    grads = [t.grad.data for t in tensors if t.grad is not None]
    for i, g in enumerate(grads):
        assert not np.shares_memory(g, seed.data)
        assert not any(np.shares_memory(g, h) for h in grads[i + 1:])
