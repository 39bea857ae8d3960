"""Tests for tinygrad_nn.optim: SGD (eqs. 2.2/2.3, and 2.5/2.6 with a mini-batch mean cost),
momentum, Nesterov, Adam, AdamW, weight decay, parameter groups and learning-rate schedules."""

import math

import numpy as np
import pytest

from tinygrad_nn import Tensor
from tinygrad_nn.costs import quadratic_cost
from tinygrad_nn.optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    ExponentialLR,
    StepLR,
    decay_groups,
)


def test_one_step_by_hand():
    w = Tensor([1.0, -2.0], requires_grad=True)
    b = Tensor(0.5, requires_grad=True)
    # C = w0² + 3 w1² + b w0: dC/dw = [2 w0 + b, 6 w1] = [2.5, -12], dC/db = w0 = 1.
    (w[0] * w[0] + 3 * w[1] * w[1] + b * w[0]).backward()
    SGD([w, b], lr=0.1).step()
    np.testing.assert_allclose(w.data, [1.0 - 0.25, -2.0 + 1.2], rtol=1e-15)
    assert b.item() == pytest.approx(0.5 - 0.1)


def test_step_with_a_mean_cost_is_eqs_2_5_and_2_6():
    # For z = w·x + b and C = 1/(2m) Σ_j (z_j - y_j)², the step is w - (η/m) Σ_j (z_j - y_j) x_j.
    X = np.array([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]])
    y = np.array([1.0, 0.0, 2.0])
    w0, b0, eta = np.array([0.5, -0.5]), 0.25, 0.2
    w, b = Tensor(w0.copy(), requires_grad=True), Tensor(b0, requires_grad=True)
    quadratic_cost((X @ w + b).reshape(3, 1), y.reshape(3, 1)).backward()
    SGD([w, b], eta).step()
    residual = X @ w0 + b0 - y
    np.testing.assert_allclose(w.data, w0 - eta / 3 * (residual @ X), rtol=1e-14)
    assert b.item() == pytest.approx(b0 - eta / 3 * residual.sum(), rel=1e-14)


def test_step_updates_the_array_in_place():
    w = Tensor([1.0, 2.0], requires_grad=True)
    array = w.data
    view = array[:1]
    (w * w).sum().backward()
    SGD([w], lr=0.25).step()
    assert w.data is array  # the same array: layers holding it see the new values
    assert view[0] == 0.5


def test_parameters_without_a_gradient_are_left_alone_and_zero_grad_clears():
    used, unused = Tensor([1.0], requires_grad=True), Tensor([5.0], requires_grad=True)
    opt = SGD([used, unused], lr=1.0)
    (used * 3).sum().backward()
    opt.step()
    assert used.item() == -2.0 and unused.item() == 5.0
    opt.zero_grad()
    assert used.grad is None and unused.grad is None


def test_gradients_accumulate_until_zero_grad():
    w = Tensor([0.0], requires_grad=True)
    opt = SGD([w], lr=1.0)
    (w * 2).sum().backward()
    (w * 2).sum().backward()
    opt.step()
    assert w.item() == -4.0  # the two backward passes added up, as in PyTorch


@pytest.mark.parametrize("lr", [0, -0.1, math.nan, math.inf, True, "0.1", None])
def test_learning_rate_must_be_a_positive_number(lr):
    with pytest.raises(ValueError, match="learning rate"):
        SGD([Tensor([1.0], requires_grad=True)], lr)


def test_parameters_must_be_trainable_tensors():
    with pytest.raises(TypeError, match="parameter 0"):
        SGD([np.zeros(3)], 0.1)
    with pytest.raises(ValueError, match="parameter 1"):
        SGD([Tensor([1.0], requires_grad=True), Tensor([1.0])], 0.1)
    w = Tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="leaf"):
        SGD([w * 2], 0.1)


# --- momentum, Nesterov, weight decay, Adam, AdamW: three steps against the formulas ---------

GRADS = [np.array([0.5, -1.0, 2.0]), np.array([-0.25, 0.75, 1.0]), np.array([1.5, 0.5, -2.0])]
P0 = np.array([1.0, -2.0, 0.5])


def run_steps(make, grads=GRADS, p0=P0):
    """Three steps of an optimizer made by `make([p])`, with the gradients set by hand."""
    p = Tensor(p0.copy(), requires_grad=True)
    opt = make([p])
    values = []
    for g in grads:
        p.grad = Tensor(g.copy())
        opt.step()
        values.append(p.data.copy())
    return values


def sgd_reference(lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    # PyTorch's torch.optim.SGD (dampening 0), written out in numpy.
    p, b, out = P0.copy(), None, []
    for g in GRADS:
        d = g + weight_decay * p
        if momentum:
            b = d.copy() if b is None else momentum * b + d  # first step: b = g
            d = d + momentum * b if nesterov else b
        p = p - lr * d
        out.append(p)
    return out


def adam_reference(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    # Kingma & Ba's algorithm 1 with PyTorch's L2 (Adam) or decoupled (AdamW) weight decay.
    (b1, b2), p, m, v, out = betas, P0.copy(), 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=1):
        if decoupled:
            p = p - lr * weight_decay * p
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


STEP_CASES = {
    "sgd": (lambda ps: SGD(ps, 0.1), sgd_reference(0.1)),
    "sgd-decay": (lambda ps: SGD(ps, 0.1, weight_decay=0.3), sgd_reference(0.1, weight_decay=0.3)),
    "momentum": (lambda ps: SGD(ps, 0.1, momentum=0.9), sgd_reference(0.1, 0.9)),
    "nesterov": (lambda ps: SGD(ps, 0.1, momentum=0.9, nesterov=True),
                 sgd_reference(0.1, 0.9, nesterov=True)),
    "nesterov-decay": (lambda ps: SGD(ps, 0.1, momentum=0.5, nesterov=True, weight_decay=0.2),
                       sgd_reference(0.1, 0.5, nesterov=True, weight_decay=0.2)),
    "momentum-decay": (lambda ps: SGD(ps, 0.1, momentum=0.5, weight_decay=0.2),
                       sgd_reference(0.1, 0.5, weight_decay=0.2)),
    "adam": (lambda ps: Adam(ps, lr=0.01), adam_reference(0.01)),
    "adam-options": (lambda ps: Adam(ps, lr=0.1, betas=(0.5, 0.75), eps=1e-3),
                     adam_reference(0.1, (0.5, 0.75), 1e-3)),
    "adam-l2": (lambda ps: Adam(ps, lr=0.01, weight_decay=0.5),
                adam_reference(0.01, weight_decay=0.5)),
    "adamw": (lambda ps: AdamW(ps, lr=0.01), adam_reference(0.01, weight_decay=1e-2,
                                                           decoupled=True)),
    "adamw-strong": (lambda ps: AdamW(ps, lr=0.1, weight_decay=0.5),
                     adam_reference(0.1, weight_decay=0.5, decoupled=True)),
}


@pytest.mark.parametrize("name", STEP_CASES)
def test_first_three_steps_follow_the_update_formula(name):
    make, expected = STEP_CASES[name]
    for ours, ref in zip(run_steps(make), expected):
        np.testing.assert_allclose(ours, ref, rtol=1e-13, atol=1e-15)


def test_momentum_buffer_starts_as_the_first_gradient():
    p = Tensor(P0.copy(), requires_grad=True)
    opt = SGD([p], 0.1, momentum=0.9)
    p.grad = Tensor(GRADS[0])
    opt.step()
    np.testing.assert_array_equal(opt.state[id(p)]["momentum_buffer"], GRADS[0])  # b = g


def test_defaults_are_pytorchs():
    p = [Tensor([1.0], requires_grad=True)]
    assert {k: v for k, v in Adam(p).param_groups[0].items() if k != "params"} == {
        "lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}
    assert AdamW(p).param_groups[0]["weight_decay"] == 1e-2
    assert SGD(p, 0.1).param_groups[0] == {"params": p, "lr": 0.1, "momentum": 0.0,
                                            "nesterov": False, "weight_decay": 0.0}


@pytest.mark.parametrize("scale", [1e-2, 1.0, 1e4])
def test_adam_bias_correction_makes_steps_of_size_lr_for_a_constant_gradient(scale):
    # m̂ = g and v̂ = g² at every step, so each step is lr · g / (|g| + ε) ≈ ±lr, whatever the
    # gradient's scale; without the correction the first step would be lr · 0.1 / √0.001.
    g = np.array([scale, -scale, 3 * scale])
    values = run_steps(lambda ps: Adam(ps, lr=0.01), grads=[g] * 3, p0=np.zeros(3))
    steps = np.diff(np.vstack([np.zeros(3)] + values), axis=0)
    np.testing.assert_allclose(np.abs(steps), 0.01, rtol=2e-6)  # ε/|g| <= 1e-6
    np.testing.assert_array_equal(np.sign(steps), -np.sign(np.vstack([g] * 3)))


# --- parameter groups: biases exempt from weight decay ---------------------------------------


@pytest.mark.parametrize("make", [
    lambda groups: SGD(groups, lr=0.5, weight_decay=0.1),
    lambda groups: SGD(groups, lr=0.5, momentum=0.9, weight_decay=0.1),
    lambda groups: Adam(groups, lr=0.5, weight_decay=0.1),
    lambda groups: AdamW(groups, lr=0.5, weight_decay=0.1),
], ids=["sgd", "momentum", "adam", "adamw"])
def test_decay_groups_leave_biases_undecayed(make):
    w = Tensor(np.full((2, 3), 2.0), requires_grad=True)
    b = Tensor(np.full(2, 2.0), requires_grad=True)
    opt = make(decay_groups([w, b], weight_decay=0.1))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    for _ in range(3):
        w.grad, b.grad = Tensor(np.zeros((2, 3))), Tensor(np.zeros(2))  # only decay can act
        opt.step()
    assert (w.data < 2.0).all()  # decayed towards 0
    np.testing.assert_array_equal(b.data, 2.0)  # biases untouched


def test_groups_override_the_defaults_per_group():
    a, b = Tensor([1.0], requires_grad=True), Tensor([1.0], requires_grad=True)
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = Tensor([1.0]), Tensor([1.0])
    opt.step()
    assert (a.item(), b.item()) == (pytest.approx(0.9), pytest.approx(0.5))
    assert opt.params == [a, b]


def test_decay_groups_splits_matrices_from_vectors():
    w, b, s = (Tensor(np.ones(shape), requires_grad=True) for shape in [(2, 2), (2,), ()])
    groups = decay_groups([w, b, s], 0.01)
    assert [len(g["params"]) for g in groups] == [1, 2]
    assert decay_groups([b], 0.01) == [{"params": [b], "weight_decay": 0.0}]


# --- in place, no allocation, gradients untouched --------------------------------------------


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, 0.1),
    lambda ps: SGD(ps, 0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    lambda ps: Adam(ps, weight_decay=0.1),
    lambda ps: AdamW(ps),
], ids=["sgd", "nesterov-decay", "adam-l2", "adamw"])
def test_steps_are_in_place_reuse_their_state_and_leave_grad_alone(make):
    import tracemalloc

    n = 250_000  # 2 MB of float64: a per-step temporary would show up clearly
    p = Tensor(np.ones(n), requires_grad=True)
    array = p.data
    grad = np.linspace(-1, 1, n)
    p.grad = Tensor(grad.copy())
    opt = make([p])
    opt.step()  # the first step allocates the state arrays
    state_ids = {k: id(v) for k, v in opt.state[id(p)].items() if isinstance(v, np.ndarray)}
    tracemalloc.start()
    opt.step()
    opt.step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * n / 10  # far less than one temporary array
    assert p.data is array
    np.testing.assert_array_equal(p.grad.data, grad)  # weight decay never written into .grad
    assert {k: id(v) for k, v in opt.state[id(p)].items()
            if isinstance(v, np.ndarray)} == state_ids


def test_float32_parameters_stay_float32():
    p = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    for opt in (SGD([p], 0.1, momentum=0.9, weight_decay=0.1), Adam([p]), AdamW([p])):
        p.grad = Tensor(np.ones(3, dtype=np.float32))
        opt.step()
        assert p.data.dtype == np.float32


def test_adam_skips_parameters_without_gradient_and_counts_steps_per_parameter():
    a, b = Tensor([1.0], requires_grad=True), Tensor([1.0], requires_grad=True)
    opt = AdamW([a, b], lr=0.1)
    a.grad = Tensor([1.0])
    opt.step()
    opt.step()
    assert b.item() == 1.0 and id(b) not in opt.state  # not even decayed
    assert opt.state[id(a)]["step"] == 2


# --- schedules ------------------------------------------------------------------------------


def lrs(schedule, epochs=10):
    out = [schedule.get_last_lr()]
    for _ in range(epochs):
        schedule.step()
        out.append(schedule.get_last_lr())
    return out


def two_group_sgd():
    a, b = Tensor([1.0], requires_grad=True), Tensor([1.0], requires_grad=True)
    return SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)


def test_step_lr_sequence():
    opt = two_group_sgd()
    expected = [[base * 0.5 ** (epoch // 3) for base in (0.1, 0.5)] for epoch in range(11)]
    np.testing.assert_allclose(lrs(StepLR(opt, step_size=3, gamma=0.5)), expected, rtol=1e-15)
    assert opt.param_groups[1]["lr"] == pytest.approx(0.5 * 0.5 ** 3)


def test_step_lr_default_gamma_is_a_tenth():
    opt = two_group_sgd()
    assert lrs(StepLR(opt, 2), 2)[-1] == pytest.approx([0.01, 0.05])


def test_exponential_lr_sequence():
    expected = [[base * 0.9 ** epoch for base in (0.1, 0.5)] for epoch in range(11)]
    np.testing.assert_allclose(lrs(ExponentialLR(two_group_sgd(), 0.9)), expected, rtol=1e-14)


@pytest.mark.parametrize("eta_min", [0.0, 0.01])
def test_cosine_annealing_sequence(eta_min):
    T = 8
    expected = [[eta_min + (base - eta_min) * (1 + math.cos(math.pi * e / T)) / 2
                 for base in (0.1, 0.5)] for e in range(11)]
    got = lrs(CosineAnnealingLR(two_group_sgd(), T_max=T, eta_min=eta_min))
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-17)
    assert got[T] == pytest.approx([eta_min, eta_min])  # the minimum at T_max


def test_the_optimizer_steps_with_the_scheduled_lr():
    p = Tensor([0.0], requires_grad=True)
    opt = SGD([p], 1.0)
    schedule = StepLR(opt, 1, gamma=0.5)
    for _ in range(3):
        p.grad = Tensor([1.0])
        opt.step()
        schedule.step()
    assert p.item() == -(1 + 0.5 + 0.25)


# --- bad hyperparameters ----------------------------------------------------------------------


def one_param():
    return [Tensor([1.0], requires_grad=True)]


@pytest.mark.parametrize("make, match", [
    (lambda: SGD(one_param(), 0.1, momentum=-0.1), "momentum must be a finite number >= 0"),
    (lambda: SGD(one_param(), 0.1, momentum=math.nan), "momentum must be a finite number"),
    (lambda: SGD(one_param(), 0.1, weight_decay=-1), "weight_decay must be a finite number >= 0"),
    (lambda: SGD(one_param(), 0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (lambda: SGD(one_param(), 0.1, momentum=0.9, nesterov="yes"), "nesterov must be True"),
    (lambda: Adam(one_param(), lr=0), "learning rate lr must be a finite number > 0"),
    (lambda: Adam(one_param(), lr=-1e-3), "learning rate"),
    (lambda: Adam(one_param(), betas=(1.0, 0.999)), r"betas\[0\] must be a number in \[0, 1\)"),
    (lambda: Adam(one_param(), betas=(0.9, -0.1)), r"betas\[1\] must be a number in \[0, 1\)"),
    (lambda: Adam(one_param(), betas=0.9), "betas must be a pair"),
    (lambda: Adam(one_param(), eps=0), "eps must be a finite number > 0"),
    (lambda: Adam(one_param(), weight_decay=-0.1), "weight_decay must be a finite number >= 0"),
    (lambda: AdamW(one_param(), weight_decay=math.inf), "weight_decay must be a finite"),
    (lambda: AdamW(one_param(), lr=math.nan), "AdamW: the learning rate"),
    (lambda: SGD([{"params": one_param(), "lr": -1}], 0.1), "learning rate"),
    (lambda: SGD([{"params": one_param(), "betas": (0.9, 0.9)}], 0.1), "unknown option"),
    (lambda: SGD([{"lr": 0.1}], 0.1), "has no 'params'"),
    (lambda: SGD([], 0.1), "empty list of parameters"),
    (lambda: StepLR(SGD(one_param(), 0.1), 0), "step_size must be an integer >= 1"),
    (lambda: StepLR(SGD(one_param(), 0.1), 2, gamma=0), "gamma must be a finite number > 0"),
    (lambda: ExponentialLR(SGD(one_param(), 0.1), -0.5), "gamma must be a finite number > 0"),
    (lambda: CosineAnnealingLR(SGD(one_param(), 0.1), 2.5), "T_max must be an integer"),
    (lambda: CosineAnnealingLR(SGD(one_param(), 0.1), 5, eta_min=-1),
     "eta_min must be a finite number >= 0"),
])
def test_bad_hyperparameters_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_parameter_in_two_groups_is_an_error():
    w = Tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="appears more than once"):
        Adam([{"params": [w]}, {"params": [w], "lr": 0.1}])


def test_wrong_kinds_of_argument_are_type_errors():
    w = Tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="wrap it in a list"):
        SGD(w, 0.1)
    with pytest.raises(TypeError, match="not both"):
        SGD([w, {"params": [Tensor([2.0], requires_grad=True)]}], 0.1)
    with pytest.raises(TypeError, match="expected an optimizer"):
        StepLR("sgd", 1)


# --- the same numbers as PyTorch --------------------------------------------------------------


def test_five_steps_agree_with_torch_optim():
    torch = pytest.importorskip("torch", reason="torch is not installed; it is not a "
                                                "dependency, only a cross-check")
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,)]
    start = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(5)]
    cases = [(SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
             (SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True,
                                     "weight_decay": 0.1}),
             (Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1}),
             (AdamW, torch.optim.AdamW, {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-3})]
    for ours_cls, torch_cls, kwargs in cases:
        ours = [Tensor(a.copy(), requires_grad=True) for a in start]
        theirs = [torch.tensor(a.copy(), requires_grad=True) for a in start]
        opt_ours, opt_theirs = ours_cls(ours, **kwargs), torch_cls(theirs, **kwargs)
        for step_grads in grads:
            for p, q, g in zip(ours, theirs, step_grads):
                p.grad, q.grad = Tensor(g), torch.tensor(g)
            opt_ours.step()
            opt_theirs.step()
        for p, q in zip(ours, theirs):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-14,
                                       err_msg=f"{ours_cls.__name__} {kwargs}")


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1), lambda ps: SGD(ps, lr=0.1,
                                  momentum=0.9), lambda ps: Adam(ps), lambda ps: AdamW(ps)])
@pytest.mark.parametrize("bad_grad", [np.ones(1), np.ones((2, 1)), np.ones(3),
                                      np.array([1, 2])])
def test_a_misshapen_gradient_is_refused_before_anything_changes(make, bad_grad):
    """Issue 15: a wrongly shaped .grad failed half-way with numpy's broadcast message,
    naming no parameter, after earlier parameters and Adam's step count were updated; a (1,)
    grad for a (2,) parameter was silently broadcast. Every gradient is checked first."""
    first = Tensor([1.0, 2.0], requires_grad=True)
    second = Tensor([3.0, 4.0], requires_grad=True)
    first.grad, second.grad = Tensor([0.5, 0.5]), Tensor(bad_grad)
    opt = make([first, second])
    with pytest.raises(ValueError, match=r"parameter 1 of group 0 has shape \(2,\) but its "
                                         r"\.grad has shape .*Nothing was updated"):
        opt.step()
    assert first.data.tolist() == [1.0, 2.0] and second.data.tolist() == [3.0, 4.0]
    assert all(int(entry["step"]) == 0 for entry in opt.state.values())
