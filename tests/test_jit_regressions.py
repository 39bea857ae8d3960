"""Regression tests for what outside probing found in `jit` (issue 14), one test per defect.

Each test states the defect as it was found and checks the documented behaviour now: a
replay agrees with eager bit for bit on every call, or the step is refused with a JitError
that names the step and the cause and leaves parameters, `.grad`s and optimizer state
exactly as they were before the call. Batches differ on every call, and flip the sign of
the inputs, so every mask changes between calls.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_jit import make_step  # the usual training step, written once

from tinygrad_nn import Tensor, costs, datasets, nn, ops, optim, training
from tinygrad_nn import functional as F
from tinygrad_nn.jit import JitError, JitWarning, jit


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def state_of(model, opt) -> list[np.ndarray]:
    """Every array a step may change: parameters, their .grad, the optimizer's buffers."""
    arrays = []
    for p in model.parameters():
        arrays.append(p.data.copy())
        arrays.append(None if p.grad is None else p.grad.data.copy())
    for p in model.parameters():  # (in the model's order: opt.state is keyed by id)
        entry = opt.state.get(id(p), {})
        for name in sorted(entry):
            arrays.append(np.asarray(entry[name]).copy())
    return arrays


def same_state(a, b) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and same_bits(x, y))
        for x, y in zip(a, b))


def twins(hidden_activation, seed=3, lr=0.2, momentum=0.9):
    """Two identical models and optimizers, built from one seed."""
    def build():
        model = nn.Sequential(nn.Linear(3, 4, rng=seed), hidden_activation(),
                              nn.Linear(4, 2, rng=seed + 1))
        return model, optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    return build(), build()


def batches(n=8, rows=5, seed=0):
    """Mini-batches of different values on every call; every other one negated, so every
    pre-activation changes sign and every mask flips."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        x = rng.uniform(0.2, 1.5, (rows, 3)) * (-1 if k % 2 else 1)
        yield x, rng.uniform(0, 1, (rows, 2))


class LeakyWhere(nn.Module):
    """A leaky ReLU written with `where`, as a user would."""

    def forward(self, h):
        return F.where(h > 0, h, 0.1 * h)


def huber(a, y):
    d = a - y
    return F.where(d.abs() < 1, 0.5 * d * d, d.abs() - 0.5).mean()


@pytest.mark.parametrize("activation, cost", [(LeakyWhere, costs.quadratic_cost),
                                              (nn.Tanh, huber)])
def test_where_masks_are_fresh_on_every_replay(activation, cost):
    """Defect 1: where's VJP made `~condition` with numpy, so replays trained with the
    capture's mask (gradients [-0, -0, 1.1, 1.1] where eager gives [-0.1, -0.1, 1, 1])."""
    (m1, o1), (m2, o2) = twins(activation)
    eager, compiled = make_step(m1, cost, o1), jit(make_step(m2, cost, o2))
    for x, y in batches():
        eager_cost = eager(x, y)
        jit_cost = compiled(x, y)
        assert same_bits(eager_cost.data, jit_cost.data)
        assert same_state(state_of(m1, o1), state_of(m2, o2))


def test_a_cost_kept_outside_the_result_holds_each_calls_value():
    """Defect 3: `log["cost"] = cost` showed the capture's value forever (0.688 on calls
    2-5 while the true costs were 0.688, 1.636, 2.204, 2.761)."""
    (m1, o1), (m2, o2) = twins(nn.Sigmoid)
    logs = [{}, {}]

    def stepper(model, opt, log):
        def step(x, y):
            opt.zero_grad()
            c = costs.quadratic_cost(model(x), y)
            log["cost"] = c
            c.backward()
            opt.step()
        return step

    eager, compiled = stepper(m1, o1, logs[0]), jit(stepper(m2, o2, logs[1]))
    for x, y in batches():
        eager(x, y)
        compiled(x, y)
        assert same_bits(logs[0]["cost"].data, logs[1]["cost"].data)
    assert compiled.captures == 1


def test_a_forgotten_zero_grad_is_refused_naming_it_and_changes_nothing():
    """Defect 4: without zero_grad(), calls alternated between success and a JitError that
    blamed 'a value made outside'; the weights differed from eager. Eager accumulates
    .grad over calls; a replay cannot, so every call after the first is refused, naming
    zero_grad, with the state as before that call."""
    (model, opt), _ = twins(nn.Sigmoid)

    @jit
    def step(x, y):
        c = costs.quadratic_cost(model(x), y)
        c.backward()
        opt.step()
        return c

    calls = batches()
    step(*next(calls))
    for x, y in calls:
        before = state_of(model, opt)
        with pytest.raises(JitError, match=r"jit\(.*step\).*zero_grad\(\)"):
            step(x, y)
        assert same_state(before, state_of(model, opt))


def test_a_step_returning_item_is_refused_before_changing_anything():
    """Defect 5: a step returning loss.item() raised JitError after updating the weights
    (max change 0.02, then 0.013, 0.010 on later calls)."""
    (model, opt), _ = twins(nn.Sigmoid)
    usual = make_step(model, costs.quadratic_cost, opt)

    @jit
    def step(x, y):
        return usual(x, y).item()

    for x, y in batches(n=4):
        before = state_of(model, opt)
        with pytest.raises(JitError, match=r"returned a float.*\.item\(\)"):
            step(x, y)
        assert same_state(before, state_of(model, opt))
        assert len(opt.state) == 0


def test_an_input_marked_requires_grad_inside_the_step_replays():
    """Defect 6: FGSM-style adversarial training (the input's gradient, taken inside the
    step) was refused on call 2 with 'the step changes it outside'."""
    (m1, o1), (m2, o2) = twins(nn.Tanh)

    def step(model, opt, x, y):
        x = Tensor(x, requires_grad=True)
        costs.quadratic_cost(model(x), y).backward()
        x_adv = (x + 0.05 * ops.sign(x.grad)).detach()
        opt.zero_grad()
        c = costs.quadratic_cost(model(x_adv), y)
        c.backward()
        opt.step()
        return c

    compiled = jit(step)
    for x, y in batches():
        assert same_bits(step(m1, o1, x, y).data, compiled(m2, o2, x, y).data)
        assert same_state(state_of(m1, o1), state_of(m2, o2))


@pytest.mark.parametrize("change", ["clear", "drop one entry", "remove a parameter"])
def test_changes_to_the_optimizers_contents_are_seen(change):
    """Defect 7: dropping momentum buffers or removing a parameter from a group changed
    eager training, but replays ignored it (eager w = [-0.122, -1.244], jit w = [-0.783,
    -2.566])."""
    (m1, o1), (m2, o2) = twins(nn.Sigmoid)

    def apply(model, opt):
        if change == "clear":
            opt.state.clear()
        elif change == "drop one entry":
            del opt.state[id(model.parameters()[0])]
        else:
            params = opt.param_groups[0]["params"]  # (by identity: == compares values)
            del params[[id(q) for q in params].index(id(model.parameters()[2]))]

    eager = make_step(m1, costs.quadratic_cost, o1)
    compiled = jit(make_step(m2, costs.quadratic_cost, o2))
    for k, (x, y) in enumerate(batches()):
        if k == 4:
            apply(m1, o1)
            apply(m2, o2)
        eager(x, y)
        compiled(x, y)
        assert same_state(state_of(m1, o1), state_of(m2, o2))


def test_fit_checks_labels_before_the_first_step():
    """Defect 2: fit(jit=True) trained on a label of -1 (numpy wrapped it to the last
    class) and died with a raw IndexError on a label equal to the number of classes."""
    train, _, _ = datasets.load_digits()
    for bad in (-1, 10):
        labels = train.labels.copy()
        labels[7] = bad
        model = nn.Sequential(nn.Linear(64, 10, rng=0))
        opt = optim.SGD(model.parameters(), lr=0.1)
        before = [p.data.copy() for p in model.parameters()]
        for use_jit in (False, True):
            with pytest.raises(ValueError, match=rf"fit: .*row 7 .*label {bad}"):
                training.fit(model, costs.cross_entropy, opt, (train.X, labels), 1, 10,
                             verbose=False, jit=use_jit)
            assert all(same_bits(a, p.data) for a, p in zip(before, model.parameters()))


def test_fit_with_validation_keeps_one_capture_per_batch_shape():
    """Defect 8: fit(jit=True) with validation data captured again after every
    evaluation: 8 captures in 4 epochs where 2 suffice (one per mini-batch shape)."""
    train, validation, _ = datasets.load_digits()
    model = nn.Sequential(nn.Linear(64, 16, "he", rng=0), nn.ReLU(), nn.Dropout(0.1, rng=2),
                          nn.Linear(16, 10, "he", rng=1))
    opt = optim.SGD(model.parameters(), lr=0.05)
    captured = []
    original = training.capture_and_replay

    def spy(fn):
        compiled = original(fn)
        captured.append(compiled)
        return compiled

    training.capture_and_replay = spy
    try:
        training.fit(model, costs.cross_entropy, opt, train, 4, 32, validation, seed=0,
                     verbose=False, jit=True)
    finally:
        training.capture_and_replay = original
    assert len(train.X) % 32 != 0  # so there are two batch shapes
    assert captured[0].captures == 2


def test_a_bad_cache_size_is_refused_clearly():
    """Defect 9: jit(f, cache_size=-1) ended in KeyError: 'dictionary is empty'."""
    for size in (-1, 0, 1.5, True):
        with pytest.raises(ValueError, match="cache_size"):
            jit(lambda x: x, cache_size=size)


def test_an_array_computed_with_numpy_from_the_data_is_refused_at_capture():
    """The structural guard: a mask made with numpy from the step's data (not through the
    primitives) is refused on the first call, naming numpy's function and the user's line,
    before the check; the state is as before the call."""
    (model, opt), _ = twins(nn.Sigmoid)

    @jit
    def step(x, y):
        opt.zero_grad()
        h = model(x)
        mask = h.data > 0.5  # numpy on the step's data
        c = costs.quadratic_cost(h * mask, y)
        c.backward()
        opt.step()
        return c

    x, y = next(batches())
    before = state_of(model, opt)
    with pytest.raises(JitError, match=r"jit\(.*step\).*np\.greater at .*test_jit_regressions"):
        step(x, y)
    assert same_state(before, state_of(model, opt)) and not step.plans


def test_a_replayed_loss_checks_its_labels_on_every_call():
    """Defect 2, for a step called directly: the labels' range is checked by a primitive,
    so a replay refuses a label of -1 (which numpy would wrap to the last class) or one
    equal to the number of classes, as eager does, with the parameters unchanged."""
    model = nn.Sequential(nn.Linear(3, 4, rng=0))
    step = jit(make_step(model, costs.cross_entropy, optim.SGD(model.parameters(), lr=0.1)))
    rng = np.random.default_rng(0)
    for _ in range(3):  # capture, check, replay
        step(rng.uniform(-1, 1, (5, 3)), rng.integers(0, 4, 5))
    for bad in (-1, 4):
        labels = np.array([0, 1, bad, 3, 2])
        before = [p.data.copy() for p in model.parameters()]
        with pytest.raises(ValueError, match=rf"row 2 has label {bad}, outside 0\.\.3"):
            step(rng.uniform(-1, 1, (5, 3)), labels)
        assert all(same_bits(a, p.data) for a, p in zip(before, model.parameters()))
    assert step.captures == 1


# --- what a red-team pass found after the fixes above -------------------------------------


RUNNING = np.zeros(4)  # a running statistic kept outside the step


def clamp_in_place(h):
    np.clip(h.data, -1, 1, out=h.data)
    return h


def track_the_mean(h):
    RUNNING[...] += 0.1 * h.data.mean(axis=0)
    return h


@pytest.mark.parametrize("hook, name", [(clamp_in_place, "clip"), (track_the_mean, "add")])
def test_numpy_writes_into_the_steps_arrays_are_refused_at_capture(hook, name):
    """A clamp in place (`np.clip(h.data, -1, 1, out=h.data)`) and a running statistic
    updated with the step's values (`running += 0.1 * h.data.mean(0)`) are numpy writes a
    replay would not repeat (the red team saw costs of 101.97 eager against 4413.4 replayed
    by call 5): the first call refuses each, naming numpy's function and the line."""
    (model, opt), _ = twins(nn.Tanh)

    @jit
    def step(x, y):
        opt.zero_grad()
        c = costs.quadratic_cost(model.layers[2](hook(model.layers[0](x))), y)
        c.backward()
        opt.step()
        return c

    before = state_of(model, opt)
    with pytest.raises(JitError, match=rf"np\.{name}\(\.\.\., out=\) at .*writes in place"):
        step(*next(batches()))
    assert same_state(before, state_of(model, opt)) and not RUNNING.any()


def test_train_or_eval_inside_the_step_is_followed_on_every_call():
    """`model.train(k % 3 != 0)` inside the step ran only at capture: replays kept dropout
    on where eager had it off. Now a step that calls train()/eval() warns and is captured
    again on every call, so it agrees with eager."""
    def build():
        model = nn.Sequential(nn.Linear(3, 6, rng=3), nn.ReLU(), nn.Dropout(0.3, rng=7),
                              nn.Linear(6, 2, rng=4))
        return model, optim.SGD(model.parameters(), lr=0.05), [0]

    def stepper(model, opt, count):
        usual = make_step(model, costs.quadratic_cost, opt)

        def step(x, y):
            count[0] += 1
            model.train(count[0] % 3 != 0)
            return usual(x, y)
        return step

    (m1, o1, n1), (m2, o2, n2) = build(), build()
    eager, compiled = stepper(m1, o1, n1), jit(stepper(m2, o2, n2))
    for x, y in batches():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "jit.*switches modules", JitWarning)
            got = compiled(x, y)
        assert same_bits(eager(x, y).data, got.data)
        assert same_state(state_of(m1, o1), state_of(m2, o2))
    with pytest.warns(JitWarning, match="switches modules between train"):
        compiled(x, y)


@pytest.mark.parametrize("loss, target", [
    (costs.binary_cross_entropy_with_logits, lambda y: y),
    (lambda out, y: costs.cross_entropy_cost(out.sigmoid(), y), lambda y: y),
    (costs.cross_entropy, lambda y: y / y.sum(axis=1, keepdims=True)),
])
def test_a_replayed_loss_checks_its_targets_on_every_call(loss, target):
    """Targets outside [0, 1] were refused eagerly but trained on by a replay: the range
    is now checked by a primitive, so a replay refuses them too, parameters unchanged."""
    (model, opt), _ = twins(nn.Tanh)
    step = jit(make_step(model, loss, opt))
    calls = batches()
    for _ in range(3):  # capture, check, replay
        x, y = next(calls)
        step(x, target(y))
    x, y = next(calls)
    bad = target(y)
    bad[1, 0] = -0.5
    before = state_of(model, opt)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\], but the one at index \(1, 0\)"):
        step(x, bad)
    assert same_state(before, state_of(model, opt)) and step.captures == 1


def test_batches_of_either_memory_order_replay_as_eager():
    """numpy's sums add in memory order: a replay of a Fortran-ordered capture on C-ordered
    batches differed from eager in the last bit. The layout is part of the plan's key."""
    def build():
        w = Tensor(np.ones(64), requires_grad=True)
        return w, optim.SGD([w], lr=1e-6)

    def stepper(w, opt):
        def step(x):
            opt.zero_grad()
            c = ((Tensor(x) * w) ** 2).sum()
            c.backward()
            opt.step()
            return c
        return step

    (w1, o1), (w2, o2) = build(), build()
    eager, compiled = stepper(w1, o1), jit(stepper(w2, o2))
    rng = np.random.default_rng(0)
    for k in range(6):
        x = rng.standard_normal((500, 64)) * (-1) ** k
        x = np.asfortranarray(x) if k < 2 else x
        assert same_bits(eager(x).data, compiled(x).data)
        assert same_bits(w1.data, w2.data) and same_bits(w1.grad.data, w2.grad.data)
    assert compiled.captures == 2


def test_an_error_raised_by_the_step_itself_leaves_what_the_step_did():
    """Only the jit's own refusals are rolled back; an exception of the step's own code (a
    NaN guard after the update) leaves the update done, as it is when run eagerly."""
    (m1, o1), (m2, o2) = twins(nn.Sigmoid)

    def stepper(model, opt):
        usual = make_step(model, costs.quadratic_cost, opt)

        def step(x, y):
            usual(x, y)
            raise FloatingPointError("the step's own check")
        return step

    x, y = next(batches())
    for step in (stepper(m1, o1), jit(stepper(m2, o2))):
        with pytest.raises(FloatingPointError):
            step(x, y)
    assert same_state(state_of(m1, o1), state_of(m2, o2))


# --- what the sigmoid saves for its VJP (e^{-z}), found by a review of 745e6d2 ----------------


def sigmoid_prime(z: np.ndarray) -> np.ndarray:
    s = 1.0 / (1.0 + np.exp(-z))
    return s * (1.0 - s)


def test_a_graph_the_step_keeps_survives_the_check_call_with_what_it_saved():
    """The second call replays and then reruns eagerly; it put back what the first call left
    in the tensors the step stored, but not the e^{-z} their sigmoid saved, so a backward
    through the kept graph mixed the first call's σ with the second call's e^{-z}. On
    745e6d2: [1.68e-03, 7.93e+01, 9.57e-05] where σ'([0, 1, 2]) = [0.25, 0.197, 0.105]."""
    from tinygrad_nn.autograd import grad

    kept = []

    @jit
    def step(x):
        z = Tensor(x).requires_grad_()
        a = ops.sigmoid(z * 1.0)
        kept.append(a)
        return a.sum()

    first = np.array([0.0, 1.0, 2.0])
    step(first)
    step(np.array([5.0, -5.0, 9.0]))  # the check: a replay, then an eager rerun
    (g,) = grad(kept[0].sum(), kept[0]._parents[0])
    np.testing.assert_allclose(g.data, sigmoid_prime(first), rtol=1e-12)


def test_a_replay_that_differs_at_a_sigmoid_is_blamed_on_the_step_not_its_saved_array():
    """`origins` classed the sigmoid's saved e^{-z} as made outside the step (it is no
    entry's result), so a replay differing there was explained as a value read from
    outside. On 745e6d2 the message said "read a value made outside tinygrad_nn's
    operations"; the saved array is the sigmoid's own."""
    p = Tensor(np.array([0.5, -0.5]), requires_grad=True)

    @jit
    def step(x):
        p.data *= 1.5  # numpy, outside the primitives: a replay cannot repeat it
        return (ops.sigmoid(p) * Tensor(x)).sum()

    step(np.array([1.0, 2.0]))
    with pytest.raises(JitError) as info:
        step(np.array([3.0, 4.0]))
    assert "outside tinygrad_nn's operations" not in str(info.value)
    assert "different numbers when replayed" in str(info.value)


def test_a_float16_sigmoid_saves_nothing_and_shows_no_saved_parameter():
    """float16's sigmoid runs in float32 and saves nothing; on 745e6d2 its node still
    carried saved=None, which the jit's tape printed as `sigmoid(t2, saved=None)`."""
    z = Tensor(np.array([[0.5, -2.0]], dtype=np.float16), requires_grad=True)
    assert "saved" not in ops.sigmoid(z)._params

    @jit
    def step(x):
        return ops.sigmoid(Tensor(x).requires_grad_()).sum()

    assert "saved" not in step.tape(np.array([[0.5, -2.0]], dtype=np.float16))
