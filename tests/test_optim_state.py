"""RMSprop against its formula (and torch.optim.RMSprop when installed), and the
`state_dict()` / `load_state_dict()` of every optimizer and schedule: training resumed from a
saved state gives the weights of training that never stopped, bit for bit."""

import copy

import numpy as np
import pytest

from tinygrad_nn import Tensor, costs, nn, optim
from tinygrad_nn.jit import jit

# --- RMSprop ---------------------------------------------------------------------------------


def rmsprop_reference(p, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                      momentum=0.0, centered=False):
    """torch.optim.RMSprop's documented algorithm, written out in numpy."""
    p = p.copy()
    v, g_avg, b = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        g = g + weight_decay * p if weight_decay else g
        v = alpha * v + (1 - alpha) * g * g
        if centered:
            g_avg = g_avg + (1 - alpha) * (g - g_avg)
            d = np.sqrt(v - g_avg * g_avg) + eps
        else:
            d = np.sqrt(v) + eps
        if momentum:
            b = momentum * b + g / d
            p = p - lr * b
        else:
            p = p - lr * g / d
    return p


RMSPROP_SETTINGS = [
    {}, {"lr": 0.003, "alpha": 0.9}, {"weight_decay": 0.1}, {"momentum": 0.9},
    {"centered": True}, {"centered": True, "momentum": 0.5, "weight_decay": 0.01, "alpha": 0.3},
]


def gradients(shape, steps, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(steps)]


def run_rmsprop(p0, grads, **settings):
    p = Tensor(p0, requires_grad=True)
    opt = optim.RMSprop([p], **settings)
    for g in grads:
        p.grad = Tensor(g)
        opt.step()
    return p.data, opt


@pytest.mark.parametrize("settings", RMSPROP_SETTINGS)
def test_rmsprop_follows_its_formula(settings):
    p0, grads = np.linspace(-1, 1, 12).reshape(3, 4), gradients((3, 4), 8)
    ours, opt = run_rmsprop(p0, grads, **settings)
    np.testing.assert_allclose(ours, rmsprop_reference(p0, grads, **settings), rtol=1e-13)
    state = opt.state_dict()["state"][0]
    assert state["step"] == 8
    wanted = {"step", "square_avg"} | ({"momentum_buffer"} if settings.get("momentum") else set())
    assert set(state) == wanted | ({"grad_avg"} if settings.get("centered") else set())


@pytest.mark.parametrize("settings", RMSPROP_SETTINGS)
def test_rmsprop_matches_torch(settings):
    torch = pytest.importorskip("torch")
    p0, grads = np.linspace(-1, 1, 12).reshape(3, 4), gradients((3, 4), 8, seed=1)
    ours, opt = run_rmsprop(p0, grads, **settings)
    p = torch.tensor(p0, requires_grad=True)
    ref = torch.optim.RMSprop([p], **settings)
    for g in grads:
        p.grad = torch.from_numpy(g)
        ref.step()
    np.testing.assert_allclose(ours, p.detach().numpy(), rtol=1e-13, atol=1e-15)
    theirs = ref.state_dict()["state"][0]
    ours_state = opt.state_dict()["state"][0]
    assert set(ours_state) == set(theirs)  # torch's names for the state
    for name in theirs:
        np.testing.assert_allclose(ours_state[name], theirs[name].numpy(), rtol=1e-13)


def test_rmsprop_first_step_is_ten_learning_rates():
    p, _ = run_rmsprop(np.zeros(3), [np.array([0.1, -2.0, 300.0])], lr=0.01)
    np.testing.assert_allclose(p, [-0.1, 0.1, -0.1], rtol=1e-6)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"lr": 0}, "learning rate"), ({"alpha": 1.5}, "alpha"), ({"alpha": -0.1}, "alpha"),
    ({"eps": 0}, "eps"), ({"momentum": -1}, "momentum"), ({"weight_decay": -1}, "weight_decay"),
    ({"centered": "yes"}, "centered"),
])
def test_rmsprop_refuses_bad_hyperparameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optim.RMSprop([Tensor([1.0], requires_grad=True)], **kwargs)


# --- state_dict round trips --------------------------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda params: optim.SGD(params, lr=0.1),
    "sgd-momentum-decay": lambda params: optim.SGD(params, lr=0.05, momentum=0.9,
                                                   weight_decay=1e-3),
    "nesterov": lambda params: optim.SGD(params, lr=0.05, momentum=0.8, nesterov=True),
    "adam": lambda params: optim.Adam(params, lr=1e-2, weight_decay=1e-3),
    "adamw": lambda params: optim.AdamW(params, lr=1e-2),
    "adamw-groups": lambda params: optim.AdamW(optim.decay_groups(params, 0.05), lr=1e-2),
    "rmsprop": lambda params: optim.RMSprop(params, lr=1e-3),
    "rmsprop-centered": lambda params: optim.RMSprop(params, lr=1e-3, momentum=0.9,
                                                     centered=True, weight_decay=1e-3),
}
SCHEDULES = {
    None: lambda opt: None,
    "step": lambda opt: optim.StepLR(opt, step_size=2, gamma=0.5),
    "exponential": lambda opt: optim.ExponentialLR(opt, gamma=0.9),
    "cosine": lambda opt: optim.CosineAnnealingLR(opt, T_max=5, eta_min=1e-4),
}
CASES = [(name, schedule) for name in OPTIMIZERS for schedule in SCHEDULES
         if schedule is None or name in ("sgd-momentum-decay", "adamw-groups", "rmsprop")]


def model_of(seed):
    return nn.Sequential(nn.Linear(6, 8, rng=seed), nn.BatchNorm1d(8), nn.Tanh(),
                         nn.Linear(8, 3, rng=seed + 1))


def batches(epoch, n=3):
    rng = np.random.default_rng(epoch)  # the data of each epoch, whoever trains it
    return [(rng.standard_normal((10, 6)), rng.integers(0, 3, 10)) for _ in range(n)]


def train(model, opt, schedule, epochs, step=None):
    def eager(x, y):
        opt.zero_grad()
        costs.cross_entropy(model(x), y).backward()
        opt.step()

    step = step or eager
    for epoch in epochs:
        for x, y in batches(epoch):
            step(x, y)
        if schedule is not None:
            schedule.step()


def assert_same_state(a, b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(x, y, err_msg=name)
        assert x.dtype == y.dtype


@pytest.mark.parametrize(("name", "schedule"), CASES)
def test_resuming_from_state_dicts_equals_training_without_a_stop(name, schedule):
    model = model_of(0)
    opt = OPTIMIZERS[name](model.parameters())
    sched = SCHEDULES[schedule](opt)
    train(model, opt, sched, range(5))

    first = model_of(0)
    opt1 = OPTIMIZERS[name](first.parameters())
    sched1 = SCHEDULES[schedule](opt1)
    train(first, opt1, sched1, range(2))
    saved = (first.state_dict(), opt1.state_dict(), sched1 and sched1.state_dict())
    train(first, opt1, sched1, range(2, 3))  # training on changes nothing saved: copies

    resumed = model_of(7)  # other initial weights: all of them come from the state
    opt2 = OPTIMIZERS[name](resumed.parameters())
    sched2 = SCHEDULES[schedule](opt2)
    resumed.load_state_dict(saved[0])
    opt2.load_state_dict(saved[1])
    if sched2 is not None:
        sched2.load_state_dict(saved[2])
    train(resumed, opt2, sched2, range(2, 5))
    assert_same_state(model, resumed)
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    if sched is not None:
        assert sched2.state_dict() == sched.state_dict()


def test_a_state_dict_is_keyed_by_parameter_index_as_pytorchs():
    model = model_of(0)
    opt = optim.Adam(optim.decay_groups(model.parameters(), 0.1), lr=0.01)
    train(model, opt, None, range(1))
    state = opt.state_dict()
    assert set(state) == {"state", "param_groups"}
    assert [g["params"] for g in state["param_groups"]] == [[0, 1], [2, 3, 4, 5]]
    assert [g["weight_decay"] for g in state["param_groups"]] == [0.1, 0.0]
    assert sorted(state["state"]) == [0, 1, 2, 3, 4, 5]
    assert set(state["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}  # no workspace
    assert state["state"][0]["exp_avg"].shape == model.parameters()[0].shape


def test_state_dict_compares_with_torch_for_adam():
    torch = pytest.importorskip("torch")
    w0, grads = np.linspace(-1, 1, 6).reshape(2, 3), gradients((2, 3), 3)
    w = Tensor(w0, requires_grad=True)
    tw = torch.tensor(w0, requires_grad=True)
    ours, theirs = optim.Adam([w], lr=0.01), torch.optim.Adam([tw], lr=0.01)
    for g in grads:
        w.grad, tw.grad = Tensor(g), torch.from_numpy(g)
        ours.step()
        theirs.step()
    a, b = ours.state_dict(), theirs.state_dict()
    assert set(a["state"][0]) == set(b["state"][0])
    assert a["param_groups"][0]["params"] == b["param_groups"][0]["params"] == [0]
    for name, value in b["state"][0].items():
        np.testing.assert_allclose(a["state"][0][name], value.numpy(), rtol=1e-12)


def test_a_schedule_made_after_the_optimizer_was_loaded_resumes_exactly():
    model = model_of(0)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = optim.CosineAnnealingLR(opt, T_max=4)
    train(model, opt, sched, range(2))
    saved_opt, saved_sched = opt.state_dict(), sched.state_dict()
    other = optim.SGD(model_of(1).parameters(), lr=0.1, momentum=0.9)
    other.load_state_dict(saved_opt)  # lr is the scheduled one now ...
    later = optim.CosineAnnealingLR(other, T_max=4)  # ... which this takes as its base
    later.load_state_dict(saved_sched)
    assert later.get_last_lr() == sched.get_last_lr() and later.base_lrs == [0.1]
    later.step(), sched.step()
    assert later.get_last_lr() == sched.get_last_lr()


def test_a_state_that_does_not_fit_is_refused_and_changes_nothing():
    model = model_of(0)
    opt = optim.Adam(model.parameters(), lr=0.01)
    train(model, opt, None, range(1))
    good = opt.state_dict()
    target = optim.Adam(model_of(1).parameters(), lr=0.5)
    before = target.state_dict()

    def broken(change):
        state = copy.deepcopy(good)
        change(state)
        return state

    cases = [
        (broken(lambda s: s["state"][0].update(exp_avg=np.zeros((2, 2)))), "shape"),
        (broken(lambda s: s["state"][1].update(momentum=np.zeros(8))), "unknown state"),
        (broken(lambda s: s["param_groups"][0].update(momentum=0.9)), "options"),
        (broken(lambda s: s["param_groups"][0].update(lr=-1.0)), "learning rate"),
        (broken(lambda s: s["param_groups"][0]["params"].pop()), "holds 5 parameters"),
        (broken(lambda s: s["param_groups"].append(s["param_groups"][0])), "2 parameter groups"),
        (broken(lambda s: s["state"].update({9: {}})), "no group holds"),
        ({"state": {}}, "param_groups"),
        (optim.SGD(model.parameters(), lr=0.1).state_dict(), "options"),
    ]
    for state, match in cases:
        with pytest.raises(ValueError, match=match):
            target.load_state_dict(state)
        after = target.state_dict()
        assert after["param_groups"] == before["param_groups"] and after["state"] == {}


def test_a_schedule_state_that_does_not_fit_is_refused():
    opt = optim.SGD([Tensor([1.0], requires_grad=True)], lr=0.1)
    sched = optim.StepLR(opt, step_size=2)
    with pytest.raises(ValueError, match="expected the keys"):
        sched.load_state_dict(optim.ExponentialLR(opt, gamma=0.5).state_dict())
    with pytest.raises(ValueError, match="last_epoch"):
        sched.load_state_dict({**sched.state_dict(), "last_epoch": -1})
    assert sched.last_epoch == 0 and sched.state_dict()["gamma"] == 0.1


def test_resuming_a_jitted_run_equals_an_eager_run_without_a_stop():
    """The jit sees the loaded state (new arrays) and captures again; its replays then
    follow the eager run that never stopped, bit for bit."""
    model = model_of(0)
    opt = optim.RMSprop(model.parameters(), lr=1e-3, momentum=0.9, centered=True)
    train(model, opt, None, range(4))

    first = model_of(0)
    opt1 = optim.RMSprop(first.parameters(), lr=1e-3, momentum=0.9, centered=True)
    resumed = model_of(3)
    opt2 = optim.RMSprop(resumed.parameters(), lr=1e-3, momentum=0.9, centered=True)

    def step(x, y):
        opt2.zero_grad()
        costs.cross_entropy(resumed(x), y).backward()
        opt2.step()

    compiled = jit(step)
    train(first, opt1, None, range(2))
    resumed.load_state_dict(first.state_dict())
    opt2.load_state_dict(opt1.state_dict())
    train(resumed, opt2, None, range(2, 4), step=compiled)
    assert compiled.captures == 1
    assert_same_state(model, resumed)
