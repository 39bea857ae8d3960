"""Tests for `tinygrad_nn.jit`: a training step captured once and replayed.

A replay makes the same numpy calls, in the same order, on the same values as the eager
step, so every comparison between a compiled and an eager run here is exact: the same
bits (`same_bits`), never a tolerance. Each test builds two identical models from one
seed, trains one eagerly and one through `jit`, and compares parameters, optimizer
state and returned costs after every step.
"""

from __future__ import annotations

import gc
import math
import re
import tracemalloc
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st
from strategies import JIT_ACTIVATIONS, SGDRun, TrainingRun, sgd_runs, training_runs

from tinygrad_nn import Network, Tensor, cli, costs, explain, nn, ops, optim, training
from tinygrad_nn.anomaly import detect_anomaly
from tinygrad_nn.jit import JitError, JitWarning, Plan, describe, jit
from tinygrad_nn.tensor import _GradMode


def examples(n: int) -> settings:
    """Settings of an expensive property: `n` examples under the `default` profile (which
    runs 40), proportionally more under a larger one (`thorough`: ten times as many)."""
    return settings(max_examples=max(1, n * settings.default.max_examples // 40))


# --- building twins --------------------------------------------------------------------------

ACTIVATION_MODULES = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}

OPTIMIZERS = {
    "sgd": lambda params: optim.SGD(params, lr=0.1),
    "momentum": lambda params: optim.SGD(params, lr=0.1, momentum=0.9),
    "nesterov": lambda params: optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True,
                                         weight_decay=0.01),
    "adam": lambda params: optim.Adam(params, lr=0.01),
    "adamw": lambda params: optim.AdamW(params, lr=0.01, weight_decay=0.1),
}

COST_FUNCTIONS = {
    "quadratic": costs.quadratic_cost,
    "cross_entropy": costs.cross_entropy,
    "binary_cross_entropy_with_logits": costs.binary_cross_entropy_with_logits,
}


def mlp(sizes, activation="sigmoid", seed=0, dtype=np.float64, sigmoid_output=False,
        dropout=None):
    """Linear layers with `activation` between them (and `Dropout(*dropout)` after each
    hidden activation); a sigmoid after the last layer if asked, else raw outputs."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out, init="scaled", rng=seed + i))
        if i < len(sizes) - 2:
            layers.append(ACTIVATION_MODULES[activation]())
            if dropout is not None:
                p, rng_seed = dropout
                layers.append(nn.Dropout(p, rng=rng_seed + i))
    if sigmoid_output:
        layers.append(nn.Sigmoid())
    model = nn.Sequential(*layers)
    training.cast_parameters(model, dtype)
    return model


def make_step(model, cost, opt):
    """The usual training step: forward, cost, backward, update; returns the cost."""

    def step(x, t):
        opt.zero_grad()
        c = cost(model(x), t)
        c.backward()
        opt.step()
        return c

    return step


def twins(run: TrainingRun):
    """Two identical (model, optimizer) pairs for `run`."""
    pairs = []
    for _ in range(2):
        model = mlp(run.sizes, run.activation, run.seed % 1000, run.dtype,
                    sigmoid_output=run.cost == "quadratic")
        pairs.append((model, OPTIMIZERS[run.optimizer](model.parameters())))
    return pairs


def mini_batch(rng, run: TrainingRun, m: int):
    """Inputs (m, n_in) in [-1, 1] and targets for `run.cost`."""
    n_in, n_out = run.sizes[0], run.sizes[-1]
    x = rng.uniform(-1, 1, (m, n_in)).astype(run.dtype)
    if run.cost == "cross_entropy":
        return x, rng.integers(0, n_out, m).astype(run.label_dtype)
    return x, rng.uniform(0, 1, (m, n_out)).astype(run.target_dtype or run.dtype)


# --- comparing bit for bit -------------------------------------------------------------------


def same_bits(a, b) -> bool:
    """The same dtype, shape and bytes: exact, -0.0 and NaN payloads included."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def snapshot(model, opt=None):
    """Copies of every parameter and every array of the optimizer's state, in order."""
    arrays = [p.data.copy() for p in model.parameters()]
    if opt is not None:
        for p in opt.params:
            state = opt.state.get(id(p), {})
            arrays += [np.array(state[k]) for k in sorted(state)]
    return arrays


def assert_same_parameters(eager_model, compiled_model, where=""):
    for (name, p), q in zip(eager_model.named_parameters(), compiled_model.parameters()):
        assert same_bits(p.data, q.data), f"parameter {name} differs {where}"


def assert_same_optimizer_state(eager_opt, compiled_opt):
    assert len(eager_opt.params) == len(compiled_opt.params)
    for i, (p, q) in enumerate(zip(eager_opt.params, compiled_opt.params)):
        a, b = eager_opt.state.get(id(p)), compiled_opt.state.get(id(q))
        assert (a is None) == (b is None), f"parameter {i}: state in one optimizer only"
        if a is not None:
            assert sorted(a) == sorted(b), f"parameter {i}: state keys {sorted(a)} {sorted(b)}"
            for key in a:
                assert same_bits(a[key], b[key]), f"parameter {i}: optimizer state {key!r}"


def only_plan(step) -> Plan:
    (plan,) = step.plans.values()
    return plan


# --- 1. compiled steps equal eager steps -----------------------------------------------------


@pytest.mark.property
@given(run=training_runs())
def test_compiled_steps_equal_eager_steps_bit_for_bit(run):
    """For random architectures, activations, costs, optimizers and float64/float32, N
    compiled steps on fresh mini-batches (of two sizes) leave exactly the parameters, the
    optimizer state and the returned costs that N eager steps leave."""
    event(f"{run.cost}, {run.optimizer}, {np.dtype(run.dtype).name}")
    (eager_model, eager_opt), (compiled_model, compiled_opt) = twins(run)
    cost = COST_FUNCTIONS[run.cost]
    eager = make_step(eager_model, cost, eager_opt)
    compiled = jit(make_step(compiled_model, cost, compiled_opt))
    rng = np.random.default_rng(run.seed)
    for k, m in enumerate(run.batch_sizes):
        x, t = mini_batch(rng, run, m)
        expected, got = eager(x, t), compiled(x, t)
        assert isinstance(got, Tensor) and not got.requires_grad
        assert same_bits(expected.data, got.data), f"cost of step {k}: {run.describe()}"
        assert_same_parameters(eager_model, compiled_model, f"after step {k}: {run.describe()}")
    assert_same_optimizer_state(eager_opt, compiled_opt)
    shapes = set(run.batch_sizes)
    assert compiled.captures == len(shapes)
    assert len(compiled.plans) == len(shapes)
    used_twice = {m for m in shapes if run.batch_sizes.count(m) >= 2}
    assert sum(plan.verified for plan in compiled.plans.values()) == len(used_twice)


@pytest.mark.property
@examples(20)
@given(run=training_runs(max_steps=3), epochs=st.integers(1, 3), n=st.integers(4, 20),
       batch_size=st.integers(1, 8), dropout=st.sampled_from([None, 0.3]),
       schedule=st.booleans(), validation=st.booleans())
def test_fit_with_jit_equals_fit_without(run, epochs, n, batch_size, dropout, schedule,
                                        validation):
    """`training.fit(..., jit=True)` leaves bit-identical parameters and history (costs,
    accuracies, learning rates) to `jit=False`, with dropout, a learning-rate schedule and
    validation data (whose evaluation mode makes the step capture again)."""
    rng = np.random.default_rng(run.seed)  # (run.batch_sizes unused: fit makes its batches)
    data = mini_batch(rng, run, n)
    held_out = mini_batch(rng, run, 5) if validation else None
    results = []
    for use_jit in (False, True):
        model = mlp(run.sizes, run.activation, run.seed % 1000, run.dtype,
                    sigmoid_output=run.cost == "quadratic",
                    dropout=None if dropout is None else (dropout, run.seed % 997))
        opt = OPTIMIZERS[run.optimizer](model.parameters())
        lr_schedule = optim.StepLR(opt, step_size=1, gamma=0.5) if schedule else None
        history = training.fit(model, COST_FUNCTIONS[run.cost], opt, data, epochs, batch_size,
                               held_out, schedule=lr_schedule, seed=run.seed, verbose=False,
                               jit=use_jit)
        results.append((model, opt, history))
    (eager_model, eager_opt, eager_history), (model, opt, history) = results
    assert_same_parameters(eager_model, model, run.describe())
    assert_same_optimizer_state(eager_opt, opt)
    for field in ("train_cost", "val_cost", "val_accuracy", "lr"):
        assert getattr(history, field) == getattr(eager_history, field), field


# --- 2. Network.SGD(jit=True) ----------------------------------------------------------------


@pytest.mark.property
@pytest.mark.parametrize("cost", ["quadratic", "cross-entropy"])
@examples(20)
@given(run=sgd_runs())
def test_network_sgd_with_jit_gives_the_same_weights(cost, run: SGDRun):
    """`Network.SGD(..., jit=True)` gives bit-identical weights, biases and per-epoch costs to
    `jit=False`, for any sizes, mini-batch sizes (a short last mini-batch included), epochs
    and lmbda, with either of the network's costs."""
    event(f"short last mini-batch: {run.n % run.mini_batch_size != 0}")
    rng = np.random.default_rng(run.seed)
    X = rng.uniform(0, 1, (run.n, run.sizes[0]))
    labels = rng.integers(0, run.sizes[-1], run.n)
    nets, histories = [], []
    for use_jit in (False, True):
        net = Network(run.sizes, cost=cost, seed=run.seed, activation=run.activation)
        histories.append(net.SGD((X, labels), run.epochs, run.mini_batch_size, run.eta,
                                 lmbda=run.lmbda, verbose=False, jit=use_jit))
        nets.append(net)
    eager, compiled = nets
    for a, b in zip(eager.weights + eager.biases, compiled.weights + compiled.biases):
        assert same_bits(a, b), run
    assert ([s.train_cost for s in histories[0].epochs]
            == [s.train_cost for s in histories[1].epochs])


# --- 3. new shapes and dtypes capture again ----------------------------------------------------


def test_a_new_batch_shape_or_dtype_captures_again_and_both_match_eager():
    """A mini-batch of another size, then inputs of another dtype, each get a plan of their
    own; going back and forth between them replays the right plan, equal to eager steps."""
    run = TrainingRun([3, 5, 2], "tanh", "quadratic", "momentum", np.float64, [], 7)
    (eager_model, eager_opt), (model, opt) = twins(run)
    eager = make_step(eager_model, costs.quadratic_cost, eager_opt)
    compiled = jit(make_step(model, costs.quadratic_cost, opt))
    rng = np.random.default_rng(0)
    sequence = [(4, np.float64)] * 3 + [(3, np.float64)] * 3 + [(4, np.float64), (3, np.float64)]
    sequence += [(4, np.float32)] * 3 + [(4, np.float64), (4, np.float32), (3, np.float64)]
    seen = []
    for m, dtype in sequence:
        x = rng.uniform(-1, 1, (m, 3)).astype(dtype)
        y = rng.uniform(0, 1, (m, 2)).astype(dtype)
        assert same_bits(eager(x, y).data, compiled(x, y).data)
        assert_same_parameters(eager_model, model, f"after a batch ({m}, {dtype.__name__})")
        if (m, dtype) not in seen:
            seen.append((m, dtype))
        assert compiled.captures == len(seen)
        assert len(compiled.plans) == len(seen)
    assert_same_optimizer_state(eager_opt, opt)
    assert all(plan.verified for plan in compiled.plans.values())


def test_another_non_array_argument_captures_again():
    """A hashable non-array argument is part of the key: a step called with another value
    captures again, and each value gives what the eager step gives."""
    model_a, model_b = mlp([2, 3, 1], seed=3), mlp([2, 3, 1], seed=3)
    opt_a, opt_b = optim.SGD(model_a.parameters(), 0.1), optim.SGD(model_b.parameters(), 0.1)

    def step(model, opt, x, y, scale):
        opt.zero_grad()
        c = costs.quadratic_cost(model(x), y) * scale
        c.backward()
        opt.step()
        return c

    compiled = jit(lambda x, y, scale: step(model_b, opt_b, x, y, scale))
    rng = np.random.default_rng(1)
    for k, scale in enumerate([1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 1.0, 2.0]):
        x, y = rng.uniform(-1, 1, (4, 2)), rng.uniform(0, 1, (4, 1))
        assert same_bits(step(model_a, opt_a, x, y, scale).data, compiled(x, y, scale).data)
        assert_same_parameters(model_a, model_b, f"after step {k}")
    assert compiled.captures == 2


# --- 4. replaced state is detected -------------------------------------------------------------


def run_both(eager, compiled, eager_model, model, rng, steps, m=4, n_in=3, n_out=2):
    for k in range(steps):
        x, y = rng.uniform(-1, 1, (m, n_in)), rng.uniform(0, 1, (m, n_out))
        assert same_bits(eager(x, y).data, compiled(x, y).data), f"cost of step {k}"
        assert_same_parameters(eager_model, model, f"after step {k}")


def replay_ready_twins(optimizer="momentum", seed=11):
    """Eager and compiled twins of a [3, 5, 2] tanh network, after 3 steps (captured,
    checked and replayed once)."""
    run = TrainingRun([3, 5, 2], "tanh", "quadratic", optimizer, np.float64, [], seed)
    (eager_model, eager_opt), (model, opt) = twins(run)
    eager = make_step(eager_model, costs.quadratic_cost, eager_opt)
    compiled = jit(make_step(model, costs.quadratic_cost, opt))
    rng = np.random.default_rng(seed)
    run_both(eager, compiled, eager_model, model, rng, 3)
    assert compiled.captures == 1 and only_plan(compiled).verified
    return eager_model, eager_opt, eager, model, opt, compiled, rng


def test_a_parameter_whose_data_is_replaced_is_captured_again():
    """`layer.weight.data = new_array` between calls: the next call captures again (the
    plan's guard sees another array) and training goes on exactly as eager training does
    from the new array."""
    eager_model, _, eager, model, _, compiled, rng = replay_ready_twins()
    new = rng.normal(size=model[0].weight.shape)
    eager_model[0].weight.data = new.copy()
    model[0].weight.data = new.copy()
    assert not only_plan(compiled).holds()
    run_both(eager, compiled, eager_model, model, rng, 4)
    assert compiled.captures == 2


def test_a_module_attribute_reassigned_is_captured_again():
    """A layer replaced by attribute assignment, or a parameter replaced by a new Tensor,
    makes the next call capture again; the results stay those of eager steps."""

    class TwoLayers(nn.Module):
        def __init__(self, seed):
            self.hidden = nn.Linear(3, 5, rng=seed)
            self.out = nn.Linear(5, 2, rng=seed + 1)

        def forward(self, x):
            return self.out(self.hidden(x).tanh())

    def make(model, opt):
        def step(x, y):
            model.zero_grad()  # also the new layers' gradients, which opt does not hold
            c = costs.quadratic_cost(model(x), y)
            c.backward()
            opt.step()
            return c

        return step

    models = [TwoLayers(5), TwoLayers(5)]
    opts = [optim.SGD(m.parameters(), lr=0.1, momentum=0.5) for m in models]
    eager, compiled = make(models[0], opts[0]), jit(make(models[1], opts[1]))
    rng = np.random.default_rng(2)
    run_both(eager, compiled, models[0], models[1], rng, 3)
    for m in models:
        m.out = nn.Linear(5, 2, rng=99)  # not in the optimizer: used, never updated
    run_both(eager, compiled, models[0], models[1], rng, 3)
    assert compiled.captures == 2
    new = rng.normal(size=(5, 3))
    for m in models:
        m.hidden.weight = Tensor(new.copy(), requires_grad=True)
    run_both(eager, compiled, models[0], models[1], rng, 3)
    assert compiled.captures == 3
    for a, b in zip((models[0].out, models[0].hidden), (models[1].out, models[1].hidden)):
        assert same_bits(a.weight.data, b.weight.data)


def test_a_layer_replaced_inside_a_sequential_is_not_replayed_stale():
    """A `Sequential`'s layers are a tuple, so a layer cannot be swapped unseen by item
    assignment (`model.layers[2] = other` is a TypeError); assigning a new tuple of layers
    (another layer built beforehand, whose parameters the optimizer holds too) changes what
    the step computes, and later calls give what eager steps give, not the old layer's."""
    pairs = []
    for _ in range(2):
        model = mlp([3, 5, 2], "tanh", seed=11)
        spare = nn.Linear(5, 2, rng=42)
        opt = optim.SGD(model.parameters() + spare.parameters(), lr=0.1, momentum=0.9)
        pairs.append((model, spare, make_step(model, costs.quadratic_cost, opt)))
    (eager_model, eager_spare, eager), (model, spare, step) = pairs
    compiled = jit(step)
    rng = np.random.default_rng(3)
    run_both(eager, compiled, eager_model, model, rng, 3)  # captured, checked, replayed
    assert compiled.captures == 1 and only_plan(compiled).verified
    with pytest.raises(TypeError):
        model.layers[2] = spare
    eager_model.layers = (*eager_model.layers[:2], eager_spare)
    model.layers = (*model.layers[:2], spare)
    run_both(eager, compiled, eager_model, model, rng, 3)
    assert compiled.captures == 2


def test_a_parameter_frozen_between_calls_is_not_updated_by_replays():
    """`p.requires_grad_(False)` between calls (freezing a layer) stops eager steps from
    updating p; compiled steps must stop too, not replay the update captured before."""
    eager_model, _, eager, model, _, compiled, rng = replay_ready_twins()
    for m in (eager_model, model):
        m[0].weight.requires_grad_(False)
    frozen = model[0].weight.data.copy()
    run_both(eager, compiled, eager_model, model, rng, 3)
    assert same_bits(model[0].weight.data, frozen)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_a_new_learning_rate_is_captured_again(optimizer):
    """Setting `param_groups[0]["lr"]`, or stepping an LR scheduler, between calls makes the
    next call capture again (the optimizers watch their hyperparameters), so the new rate
    is used exactly as in eager steps."""
    eager_model, eager_opt, eager, model, opt, compiled, rng = replay_ready_twins(optimizer)
    for o in (eager_opt, opt):
        o.param_groups[0]["lr"] = o.param_groups[0]["lr"] / 3
    run_both(eager, compiled, eager_model, model, rng, 3)
    assert compiled.captures == 2
    schedules = [optim.ExponentialLR(o, gamma=0.5) for o in (eager_opt, opt)]
    assert compiled.captures == 2
    for epoch in range(2):
        for s in schedules:
            s.step()
        run_both(eager, compiled, eager_model, model, rng, 3)
        assert compiled.captures == 3 + epoch
    assert_same_optimizer_state(eager_opt, opt)


# --- 5. no allocation in a replay --------------------------------------------------------------


def network_step(sizes, activation="sigmoid", cost="quadratic", optimizer="sgd", seed=0):
    """A jitted `Network._step` (the step of `Network.SGD`) that returns None."""
    net = Network(sizes, cost=cost, seed=seed, activation=activation)
    opt = OPTIMIZERS[optimizer](net.parameters())

    def step(x, y):
        net._step(x, y, opt)

    return net, opt, step


@pytest.mark.parametrize("activation", JIT_ACTIVATIONS)
@pytest.mark.parametrize("cost", ["quadratic", "cross-entropy"])
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_network_steps_replay_without_temporaries(activation, cost, optimizer):
    """Every call of a captured Network step writes into an array of its own (`out=`):
    none is counted as allocating a temporary."""
    _, _, step = network_step([4, 6, 5, 3], activation, cost, optimizer)
    compiled = jit(step)
    rng = np.random.default_rng(0)
    compiled(rng.random((7, 4)), np.eye(3)[rng.integers(0, 3, 7)])
    plan = only_plan(compiled)
    assert plan.allocating == 0, describe(plan)
    assert 0 < len(plan.calls) <= len(plan.entries)


@pytest.mark.parametrize("activation", JIT_ACTIVATIONS)
def test_replays_write_into_the_same_buffers(activation):
    """After warm-up, replays reuse the plan's arrays: every entry keeps its output array,
    each replay call returns the same array object every time (one of the plan's own), and
    a new mini-batch changes the numbers in those arrays, not the arrays."""
    net, _, step = network_step([4, 6, 5, 3], activation, optimizer="momentum")
    compiled = jit(step)
    rng = np.random.default_rng(1)
    batches = [(rng.random((8, 4)), np.eye(3)[rng.integers(0, 3, 8)]) for _ in range(8)]
    for x, y in batches[:3]:
        compiled(x, y)
    plan = only_plan(compiled)
    outs = [e.out for e in plan.entries]
    own = {id(a) for a in outs}
    grads = [p.grad.data for p in net.parameters()]
    first = [call() for call in plan.calls]
    assert all(id(r) in own for r in first)  # no call allocates: each returns its own out
    for x, y in batches[3:]:
        before = outs[0].copy()
        compiled(x, y)
        assert only_plan(compiled) is plan
        assert all(e.out is a for e, a in zip(plan.entries, outs))
        assert not same_bits(before, plan.entries[0].out)  # the first linear, for new x
        assert all(p.grad.data is g for p, g in zip(net.parameters(), grads))
    again = [call() for call in plan.calls]
    assert all(a is b for a, b in zip(first, again))


def replay_peak(step, batches, warm_up=30):
    """The traced memory's peak above its level before, over the replays of `batches`.

    Captured, checked and replayed `warm_up` times under tracing first: Python's free lists
    (tuples, small objects) then hold what the replays need, and the measured noise is
    steady.
    """
    gc.collect()
    tracemalloc.start()
    try:
        for k in range(3 + warm_up):
            step(*batches[k % len(batches)])
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for x, y in batches:
            step(x, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


@pytest.mark.property
# No shrinking: a smaller network only measures again, and the message gives the sizes.
@settings(examples(4), phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(batch=st.integers(32, 64), widths=st.lists(st.integers(48, 64), min_size=2, max_size=3),
       n_in=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_replays_allocate_less_than_one_intermediate_array(batch, widths, n_in, seed):
    """20 replays of a Network step (returning None) raise the traced memory by less than
    one (batch, width) array of the step, while 20 eager steps raise it by far more.

    The bound: Python itself leaves noise in the traced memory (free lists of tuples and
    small objects that a call takes and gives back). Measured on a network of width 1 and
    batch 1 (arrays of 8 bytes, so all of it is noise), 20 replays after warm-up peak at
    about 4 KiB above the level before, whatever the depth; that baseline is measured here
    too and must stay below the bound. The smallest (batch, width) float64 array drawn is
    32 x 48 x 8 bytes = 12 KiB: three times the noise, and a replay that allocated even one
    intermediate array of the step would pass it.
    """
    sizes = [n_in, *widths]
    bound = batch * min(widths) * 8
    rng = np.random.default_rng(seed)
    batches = [(rng.random((batch, n_in)), np.eye(widths[-1])[rng.integers(0, widths[-1], batch)])
               for _ in range(20)]
    _, _, step = network_step(sizes, seed=seed)
    eager_peak = replay_peak(step, batches)
    assert eager_peak > bound  # the measurement can fail: eager steps allocate
    tiny = [(np.ones((1, 1)), np.ones((1, 1)))] * 20
    noise = replay_peak(jit(network_step([1] * len(sizes))[2]), tiny)
    assert noise < bound / 2
    compiled = jit(step)
    peak = replay_peak(compiled, batches)
    assert only_plan(compiled).verified and compiled.captures == 1
    assert peak < bound, (f"20 replays peaked {peak} bytes above the memory before; one "
                          f"({batch}, {min(widths)}) array is {bound} bytes, Python's noise "
                          f"{noise}, 20 eager steps {eager_peak}")


# --- 6. dropout --------------------------------------------------------------------------------


@pytest.mark.property
@examples(15)
@given(p=st.sampled_from([0.2, 0.5, 0.8]), seed=st.integers(0, 2**16), steps=st.integers(5, 8))
def test_dropout_masks_are_fresh_on_every_replay(p, seed, steps):
    """Dropout draws its mask through a primitive: each replayed step drops other neurons
    than the step before (on the same input), and the compiled steps equal eager steps with
    the same seeded generator, masks, costs and parameters, bit for bit."""
    results = []
    for use_jit in (False, True):
        drop = nn.Dropout(p, rng=seed)
        model = nn.Sequential(nn.Linear(6, 16, rng=seed), nn.Sigmoid(), drop)
        head = nn.Linear(16, 3, rng=seed + 1)
        opt = optim.SGD(model.parameters() + head.parameters(), lr=0.5)

        def step(x, y, model=model, head=head, opt=opt):
            opt.zero_grad()
            h = model(x)  # sigmoid outputs are > 0: a zero is a dropped neuron
            c = costs.quadratic_cost(head(h), y)
            c.backward()
            opt.step()
            return c, h

        results.append((jit(step) if use_jit else step, model, head))
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-1, 1, (8, 6)), rng.uniform(0, 1, (8, 3))
    masks = []
    for k in range(steps):
        (c_eager, h_eager), (c, h) = results[0][0](x, y), results[1][0](x, y)
        assert same_bits(c_eager.data, c.data) and same_bits(h_eager.data, h.data), k
        masks.append(h.data == 0)
        for eager_part, part in zip(results[0][1:], results[1][1:]):
            assert_same_parameters(eager_part, part, f"after step {k}")
    assert results[1][0].captures == 1
    for k in range(3, steps):  # replays: each mask differs from the one before
        assert not np.array_equal(masks[k], masks[k - 1]), f"steps {k - 1} and {k}"


# --- 7. hazards ----------------------------------------------------------------------------------


def hazard_twin(seed=4):
    model = mlp([3, 5, 2], "tanh", seed=seed, sigmoid_output=True)
    return model, optim.SGD(model.parameters(), lr=0.5, momentum=0.9)


@pytest.mark.parametrize("outside", ["numpy mask", "numpy noise"])
def test_an_array_computed_from_the_data_with_numpy_is_refused_at_capture(outside):
    """An array computed with numpy from the step's data (a mask, data plus noise) would be
    replayed as a constant: the traced arrays notice numpy's function, and the first call
    refuses the step, naming it and the line, with parameters and optimizer state as they
    were."""
    model, opt = hazard_twin()

    @jit
    def step(x, y):
        opt.zero_grad()
        if outside == "numpy mask":
            x = x * (x > 0.0)  # numpy arithmetic on the data
        else:
            x = x + np.random.default_rng().random(x.shape)
        c = costs.quadratic_cost(model(x), y)
        c.backward()
        opt.step()
        return c

    rng = np.random.default_rng(0)
    before = snapshot(model, opt)
    name = "multiply" if outside == "numpy mask" else "add"
    with pytest.raises(JitError, match=rf"computed from the step's data outside .*np\.{name} "
                                       rf"at .*test_jit\.py"):
        step(rng.uniform(-1, 1, (4, 3)), rng.uniform(0, 1, (4, 2)))
    assert all(same_bits(a, b) for a, b in zip(before, snapshot(model, opt)))
    assert not step.plans


def test_an_outside_array_that_changes_is_caught_on_the_check():
    """Random numbers drawn from a generator directly are not computed from the step's
    data, so the capture takes them as a constant; the check call sees the value change,
    raises JitError naming it, and leaves parameters and optimizer state as they were."""
    model, opt = hazard_twin()

    @jit
    def step(x, y):
        opt.zero_grad()
        noise = Tensor(np.random.default_rng().random(x.shape))
        c = costs.quadratic_cost(model(noise + x), y)
        c.backward()
        opt.step()
        return c

    rng = np.random.default_rng(0)
    y = rng.uniform(0, 1, (4, 2))
    step(rng.uniform(-1, 1, (4, 3)), y)
    before = snapshot(model, opt)
    with pytest.raises(JitError, match="made outside tinygrad_nn's operations") as err:
        step(rng.uniform(-1, 1, (4, 3)), y)
    assert "parameters are as before this call" in str(err.value)
    assert all(same_bits(a, b) for a, b in zip(before, snapshot(model, opt)))
    assert not step.plans


def test_value_dependent_control_flow_warns_and_is_caught_when_the_branch_flips():
    """`if cost.item() > threshold:` warns at capture (JitWarning names item()); when the
    second call takes the other branch, the check raises JitError naming different
    operations and control flow, with the state as before that call."""
    model, opt = hazard_twin()

    @jit
    def step(x, y):
        opt.zero_grad()
        c = costs.quadratic_cost(model(x), y)
        if c.item() > 10.0:  # a sigmoid output is in (0, 1): only far targets pass
            c = c * 0.01
        c.backward()
        opt.step()
        return c

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (4, 3))
    with pytest.warns(JitWarning, match=r"item\(\)"):
        step(x, np.full((4, 2), 100.0))
    before = snapshot(model, opt)
    with pytest.raises(JitError, match="control flow") as err:  # (warned at capture only)
        step(x, np.full((4, 2), 0.5))
    assert "operations" in str(err.value)
    assert all(same_bits(a, b) for a, b in zip(before, snapshot(model, opt)))


def test_bool_of_a_tensor_during_capture_warns():
    """`bool()` on a tensor while the step is captured warns too."""
    w = Tensor([1.0, -1.0], requires_grad=True)

    @jit
    def step(x):
        c = (ops.mul(x, w)).sum()
        if c > 0:
            return c * 2.0
        return c

    with pytest.warns(JitWarning, match=r"bool\(\)"):
        step(np.ones(2))


def test_returning_a_python_number_is_an_error():
    """A replay runs no Python, so a step that returns a Python float is refused with a
    JitError that names the float and says to return the tensor."""
    model, opt = hazard_twin()

    @jit
    def step(x, y):
        opt.zero_grad()
        c = costs.quadratic_cost(model(x), y)
        c.backward()
        opt.step()
        return float(c.data)

    with pytest.raises(JitError, match=r"returned a float.*\.item\(\)"):
        step(np.ones((2, 3)), np.ones((2, 2)))


def test_a_tensor_argument_that_requires_grad_is_refused():
    """Parameters are reached through the model, not passed: a Tensor argument that
    requires grad is a TypeError naming it."""
    step = jit(lambda x: (x * 2.0).sum())
    with pytest.raises(TypeError, match="argument 1 is a Tensor that requires grad"):
        step(Tensor(np.ones(3), requires_grad=True))
    assert step.captures == 0


def test_an_unhashable_argument_is_refused():
    """A non-array argument is part of the cache key: an unhashable one (a list) is a
    TypeError naming its type and position."""
    step = jit(lambda x, extra: ops.mul(x, 2.0))
    with pytest.raises(TypeError, match="argument 2 is a list, neither an array nor hashable"):
        step(np.ones(3), [1, 2])
    with pytest.raises(TypeError, match="argument extra= is a dict"):
        step(np.ones(3), extra={})


# --- what a step takes and gives back ------------------------------------------------------------


class CostAndOutput(NamedTuple):
    cost: Tensor
    output: Tensor


def returning_twins(shape_of_result):
    """Eager and compiled steps of two identical models returning `shape_of_result(c, out, x)`."""
    steps, models = [], []
    for use_jit in (False, True):
        model, opt = hazard_twin(seed=12)

        def step(x, y, model=model, opt=opt):
            opt.zero_grad()
            out = model(x)
            c = costs.quadratic_cost(out, y)
            c.backward()
            opt.step()
            return shape_of_result(c, out, x)

        steps.append(jit(step) if use_jit else step)
        models.append(model)
    return steps, models


def test_returned_structures_come_back_as_copies():
    """Tensors and arrays returned in dicts, lists and tuples come back in the same
    structure, equal to the eager step's, as copies: changing them changes nothing that
    later replays compute."""
    (eager, compiled), (eager_model, model) = returning_twins(
        lambda c, out, x: {"cost": c, "parts": [out, (x, c)]})
    rng = np.random.default_rng(4)
    for k in range(6):
        x, y = rng.uniform(-1, 1, (4, 3)), rng.uniform(0, 1, (4, 2))
        expected, got = eager(x, y), compiled(x, y)
        assert sorted(got) == ["cost", "parts"] and isinstance(got["parts"], list)
        assert isinstance(got["parts"][1], tuple) and isinstance(got["parts"][1][0], np.ndarray)
        for a, b in [(expected["cost"].data, got["cost"].data),
                     (expected["parts"][0].data, got["parts"][0].data),
                     (expected["parts"][1][0], got["parts"][1][0]),
                     (expected["parts"][1][1].data, got["parts"][1][1].data)]:
            assert same_bits(a, b), f"step {k}"
        got["cost"].data[...] = np.nan  # scribbling on the copies
        got["parts"][0].data[...] = np.nan
        got["parts"][1][0][...] = np.nan
        assert_same_parameters(eager_model, model, f"after step {k}")


def test_a_named_tuple_of_tensors_comes_back_as_that_named_tuple():
    """A step may return a named tuple of tensors (a tuple like any other): it comes back
    as that named tuple, with the eager step's values."""
    (eager, compiled), _ = returning_twins(lambda c, out, x: CostAndOutput(c, out))
    rng = np.random.default_rng(5)
    for k in range(4):
        x, y = rng.uniform(-1, 1, (4, 3)), rng.uniform(0, 1, (4, 2))
        expected, got = eager(x, y), compiled(x, y)
        assert isinstance(got, CostAndOutput), f"step {k}"
        assert same_bits(expected.cost.data, got.cost.data)
        assert same_bits(expected.output.data, got.output.data)


def test_tensor_arguments_without_grad_are_copied_in_like_arrays():
    """Data may be passed as Tensors that do not require grad: each call's values are
    copied into the captured inputs, and the steps equal eager ones."""
    model_a, opt_a = hazard_twin(seed=13)
    model_b, opt_b = hazard_twin(seed=13)
    eager = make_step(model_a, costs.quadratic_cost, opt_a)
    compiled = jit(make_step(model_b, costs.quadratic_cost, opt_b))
    rng = np.random.default_rng(6)
    for k in range(5):
        x, y = Tensor(rng.uniform(-1, 1, (4, 3))), Tensor(rng.uniform(0, 1, (4, 2)))
        assert same_bits(eager(x, y).data, compiled(x, y).data), f"step {k}"
        assert_same_parameters(model_a, model_b, f"after step {k}")
    assert compiled.captures == 1 and only_plan(compiled).verified


def test_an_exception_during_a_capture_leaves_no_tape_and_no_plan():
    """A step that raises while it is captured stops the recording (later eager code is
    not recorded) and leaves no plan: the next call captures again."""
    w = Tensor([1.0, 2.0], requires_grad=True)
    fail = [True]

    @jit
    def step(x):
        y = ops.mul(x, w)
        if fail[0]:
            raise ValueError("a mistake in the step")
        return y

    with pytest.raises(ValueError, match="a mistake in the step"):
        step(np.ones(2))
    assert _GradMode.tape is None and not step.plans
    fail[0] = False
    assert same_bits(step(np.full(2, 3.0)).data, np.array([3.0, 6.0]))
    assert step.captures == 2 and len(step.plans) == 1


def test_a_small_cache_keeps_the_latest_plans_and_stays_exact():
    """With `cache_size=2` and three batch shapes in turn, at most two plans are kept (the
    oldest is dropped and captured again when needed), and every step equals eager."""
    model_a, opt_a = hazard_twin(seed=14)
    model_b, opt_b = hazard_twin(seed=14)
    eager = make_step(model_a, costs.quadratic_cost, opt_a)
    compiled = jit(make_step(model_b, costs.quadratic_cost, opt_b), cache_size=2)
    rng = np.random.default_rng(7)
    sizes = [2, 2, 3, 3, 4, 2, 4, 4, 4, 3]
    for k, m in enumerate(sizes):
        x, y = rng.uniform(-1, 1, (m, 3)), rng.uniform(0, 1, (m, 2))
        assert same_bits(eager(x, y).data, compiled(x, y).data), f"step {k}"
        assert_same_parameters(model_a, model_b, f"after step {k}")
        assert len(compiled.plans) <= 2
    # 2, 3, 4 are new; 2 was dropped for 4; 3 was dropped for 2.
    assert compiled.captures == 5


# --- 8. the listing, explain --tape and train --jit ---------------------------------------------

SUMMARY = re.compile(r"^(\d+) ops replayed \((\d+) views need no work, (\d+) unused results "
                     r"are skipped\); (\d+) allocate a temporary$")


def check_listing(text, plan=None):
    """Forward, backward and update sections in order, calls numbered 1..N, then the
    summary line, whose counts agree with the numbered lines (and with `plan`)."""
    lines = text.splitlines()
    headings = [line for line in lines if line in ("forward:", "backward:", "update:")]
    assert headings == ["forward:", "backward:", "update:"]
    numbers = [int(line.split()[0]) for line in lines if re.match(r"^\s+\d+\s", line)]
    assert numbers == list(range(1, len(numbers) + 1))
    summary = SUMMARY.match(lines[-1])
    assert summary, lines[-1]
    calls, views, unused, allocating = map(int, summary.groups())
    assert calls == len(numbers)
    skipped = [line for line in lines if re.match(r"^\s+-\s", line)]
    assert views + unused == len(skipped)
    if plan is not None:
        assert (calls, allocating) == (plan.replayed.count(True), plan.allocating)
        assert calls + views + unused == len(plan.entries)


def test_step_tape_lists_the_three_phases_and_a_summary():
    """`explain.step_tape((2, 3, 1))` names the network, lists the forward, backward and
    update calls numbered in order and ends with a summary that counts them."""
    text = explain.step_tape((2, 3, 1))
    assert text.splitlines()[0].startswith("One SGD step of Network([2, 3, 1])")
    check_listing(text)
    assert re.search(r"w2 = np\.subtract\(w2, s\d+\)\s+in place", text)


def test_jitted_tape_and_describe_agree_with_the_plan():
    """`jitted.tape(*args)` captures once (if needed) and lists that plan; `describe(plan)`
    gives the same text, with the counts of the plan itself."""
    model, opt = hazard_twin()
    step = jit(make_step(model, costs.quadratic_cost, opt))
    x, y = np.ones((3, 3)), np.ones((3, 2))
    text = step.tape(x, y)
    assert step.captures == 1
    plan = only_plan(step)
    check_listing(text, plan)
    assert describe(plan) == text
    assert step.tape(x, y) == text and step.captures == 1


def test_cli_explain_tape(capsys):
    """`tinygrad-nn explain --tape` exits 0 and prints the listing of the asked sizes and
    mini-batch; `--tape --json` is a usage error."""
    assert cli.main(["explain", "--tape", "--sizes", "2,4,1", "--batch-size", "3"]) == 0
    out = capsys.readouterr().out
    check_listing(out.rstrip("\n"))
    assert "Network([2, 4, 1])" in out and "(3, 2) (4, 2) (4,) -> (3, 4)" in out
    assert cli.main(["explain", "--tape", "--json"]) == 2
    assert "--tape" in capsys.readouterr().err


@pytest.mark.parametrize("cost", ["quadratic", "cross-entropy"])
def test_cli_train_with_jit_prints_the_same_accuracy(cost, capsys):
    """`tinygrad-nn train --jit` on the embedded digits prints the same test accuracy line
    as without `--jit`, for both of the network's costs."""
    argv = ["train", "--epochs", "2", "--quiet", "--cost", cost]
    assert cli.main(argv) == 0
    eager = capsys.readouterr().out
    assert cli.main([*argv, "--jit"]) == 0
    compiled = capsys.readouterr().out
    assert re.fullmatch(r"Test accuracy: \d+ / 300 \(\d+\.\d\d%\)\n", eager)
    assert compiled == eager


# --- 9. methods, nesting, anomaly mode ----------------------------------------------------------


def test_jit_as_a_method_decorator():
    """`@jit` on a method binds like a function: each instance gets its own plan (the
    instance is part of the key), keyword arguments work, and results equal eager steps."""

    class Trainer:
        def __init__(self, seed):
            self.model = mlp([3, 4, 2], "relu", seed=seed)
            self.opt = optim.Adam(self.model.parameters(), lr=0.05)

        def eager_step(self, x, y):
            return make_step(self.model, costs.quadratic_cost, self.opt)(x, y)

        @jit
        def step(self, x, y):
            return make_step(self.model, costs.quadratic_cost, self.opt)(x, y)

    assert isinstance(Trainer.__dict__["step"], jit) and Trainer.step is Trainer.__dict__["step"]
    eager, first, second = Trainer(1), Trainer(1), Trainer(2)
    eager_second = Trainer(2)
    rng = np.random.default_rng(3)
    for k in range(5):
        x, y = rng.uniform(-1, 1, (5, 3)), rng.uniform(0, 1, (5, 2))
        assert same_bits(eager.eager_step(x, y).data, first.step(x, y=y).data)
        assert same_bits(eager_second.eager_step(x, y).data, second.step(x=x, y=y).data)
        assert_same_parameters(eager.model, first.model, f"after step {k}")
        assert_same_parameters(eager_second.model, second.model, f"after step {k}")
    assert Trainer.step.captures == 2 and len(Trainer.step.plans) == 2


def test_a_jitted_function_called_during_a_capture_runs_eagerly():
    """A jitted function called inside another's capture runs eagerly (it never captures),
    so its operations become part of the outer tape, and the outer replays equal eager
    steps."""
    results = []
    for use_jit in (False, True):
        model, opt = hazard_twin(seed=8)

        def cost_of(x, y, model=model):
            return costs.quadratic_cost(model(x), y)

        inner = jit(cost_of) if use_jit else cost_of

        def step(x, y, opt=opt, inner=inner):
            opt.zero_grad()
            c = inner(x, y)
            c.backward()
            opt.step()
            return c

        results.append((jit(step) if use_jit else step, inner, model))
    rng = np.random.default_rng(5)
    for k in range(5):
        x, y = rng.uniform(-1, 1, (4, 3)), rng.uniform(0, 1, (4, 2))
        assert same_bits(results[0][0](x, y).data, results[1][0](x, y).data)
        assert_same_parameters(results[0][2], results[1][2], f"after step {k}")
    outer, inner = results[1][0], results[1][1]
    assert outer.captures == 1 and inner.captures == 0 and not inner.plans


def test_under_detect_anomaly_a_jitted_step_runs_eagerly():
    """Inside `detect_anomaly()` a jitted step runs eagerly: no capture, eager results."""
    model_a, opt_a = hazard_twin(seed=6)
    model_b, opt_b = hazard_twin(seed=6)
    eager = make_step(model_a, costs.quadratic_cost, opt_a)
    compiled = jit(make_step(model_b, costs.quadratic_cost, opt_b))
    with detect_anomaly():
        run_both(eager, compiled, model_a, model_b, np.random.default_rng(0), 3, n_out=2)
    assert compiled.captures == 0 and not compiled.plans


# --- what a step leaves behind besides the parameters --------------------------------------------


def test_parameter_grads_after_each_step_are_that_steps_gradients():
    """After every compiled step each parameter's `.grad` holds that step's gradient, as
    after an eager step; also when mini-batches of two sizes alternate (two plans)."""
    run = TrainingRun([3, 5, 2], "sigmoid", "quadratic", "sgd", np.float64, [], 9)
    (eager_model, eager_opt), (model, opt) = twins(run)
    eager = make_step(eager_model, costs.quadratic_cost, eager_opt)
    compiled = jit(make_step(model, costs.quadratic_cost, opt))
    rng = np.random.default_rng(0)
    for k, m in enumerate([4, 4, 4, 4, 3, 3, 3, 4, 3, 4]):
        x, y = rng.uniform(-1, 1, (m, 3)), rng.uniform(0, 1, (m, 2))
        eager(x, y)
        compiled(x, y)
        for (name, p), q in zip(eager_model.named_parameters(), model.parameters()):
            assert same_bits(p.grad.data, q.grad.data), f"{name}.grad after step {k} (m={m})"


def test_fit_without_validation_or_schedule_captures_once_per_batch_shape():
    """With no validation data and no schedule nothing changes between the epochs of
    `fit(jit=True)`, so the step runs eagerly only for the capture and the check of its one
    batch shape; every other step, in every epoch, is a replay."""
    forwards = []

    class Counting(nn.Module):
        def __init__(self, inner):
            self.inner = inner

        def forward(self, x):
            forwards.append(x.shape)  # runs only when the step runs eagerly
            return self.inner(x)

    rng = np.random.default_rng(0)
    X, labels = rng.uniform(-1, 1, (24, 3)), rng.integers(0, 2, 24)
    model = Counting(mlp([3, 5, 2], "tanh", seed=1))
    opt = optim.SGD(model.parameters(), lr=0.1)
    training.fit(model, costs.cross_entropy, opt, (X, labels), 4, 8, seed=0, verbose=False,
                 jit=True)
    # (the first forward, of one row, is fit's check of the labels before any step)
    assert forwards[0] == (1, 3) and len(forwards[1:]) == 2, \
        f"{len(forwards) - 1} eager steps of {4 * 3}"


# --- what a fresh-eyed review found ----------------------------------------------------------


def test_a_hand_written_update_is_refused_at_capture():
    """`w.data -= lr * w.grad.data` with numpy is no primitive, so a replay would never
    update w: the traced arrays see numpy write values from the step into w, and the first
    call refuses the step, naming it, with w and its .grad as before."""
    w = Tensor([[0.5, -0.5]], requires_grad=True)

    @jit
    def step(x, y):
        w.grad = None
        ((x @ w.T - y) ** 2).sum().backward()
        w.data -= 0.1 * w.grad.data  # outside the primitives

    rng = np.random.default_rng(0)
    for _ in range(2):
        with pytest.raises(JitError, match=r"np\.subtract\(\.\.\., out=\) at .*test_jit\.py"
                                           r".*writes in place"):
            step(rng.random((3, 2)), rng.random((3, 1)))
        assert same_bits(w.data, np.array([[0.5, -0.5]])) and w.grad is None


@pytest.mark.parametrize("made", ["argmax", "data.copy"])
def test_returning_an_array_made_outside_the_primitives_is_an_error(made):
    """An array computed with numpy from the step's results (`.argmax()`, `.data.copy()`)
    would come back unchanged from every replay: the capture refuses it."""
    model, opt = hazard_twin()

    @jit
    def step(x, y):
        opt.zero_grad()
        out = model(x)
        c = costs.quadratic_cost(out, y)
        c.backward()
        opt.step()
        return out.argmax(axis=1) if made == "argmax" else c.data.copy()

    with pytest.raises(JitError, match="made outside tinygrad_nn's operations"):
        step(np.ones((4, 3)), np.zeros((4, 2)))


def test_a_parameter_unfrozen_between_calls_is_captured_again():
    """A parameter frozen at capture (`requires_grad_(False)`) and unfrozen later: the next
    call captures again, and the parameter trains exactly as in eager steps."""
    eager_model, _, eager, model, _, compiled, rng = replay_ready_twins()
    for m in (eager_model, model):
        m[0].weight.requires_grad_(False)
    run_both(eager, compiled, eager_model, model, rng, 3)
    for m in (eager_model, model):
        m[0].weight.requires_grad_(True)
    frozen = model[0].weight.data.copy()
    run_both(eager, compiled, eager_model, model, rng, 3)
    assert not same_bits(model[0].weight.data, frozen)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_an_optimizer_state_cleared_between_calls_is_captured_again(optimizer):
    """`opt.state.clear()` (a restart of momentum) between calls: the next call captures
    again with fresh state, exactly as eager steps start afresh."""
    eager_model, eager_opt, eager, model, opt, compiled, rng = replay_ready_twins(optimizer)
    eager_opt.state.clear()
    opt.state.clear()
    run_both(eager, compiled, eager_model, model, rng, 4)
    assert compiled.captures == 2
    assert_same_optimizer_state(eager_opt, opt)


def test_an_unused_random_draw_still_advances_its_generator():
    """A dropout whose output the step does not use is still drawn on every replay, so the
    generator stays where eager steps leave it."""
    generators = []
    steps = []
    for _ in range(2):
        model, opt = hazard_twin()
        drop = nn.Dropout(0.5, rng=7)
        generators.append(drop.rng)

        def step(x, y, model=model, opt=opt, drop=drop):
            opt.zero_grad()
            drop(x)  # drawn, never used
            c = costs.quadratic_cost(model(x), y)
            c.backward()
            opt.step()
            return c

        steps.append(step)
    eager, compiled = steps[0], jit(steps[1])
    rng = np.random.default_rng(0)
    for _ in range(4):
        x, y = rng.uniform(-1, 1, (4, 3)), rng.uniform(0, 1, (4, 2))
        assert same_bits(eager(x, y).data, compiled(x, y).data)
    assert generators[0].random() == generators[1].random()


def test_a_shape_that_depends_on_the_values_is_refused_at_capture():
    """`err[mask]` with a mask from the data has as many entries as the mask holds, a shape a
    replay cannot follow: the capture refuses it at once, naming the step, and leaves w as
    it was; so does every later call, whatever its batch."""
    w = Tensor([[0.5, -0.5]], requires_grad=True)
    sgd = optim.SGD([w], lr=0.1)

    @jit
    def step(x, y):
        sgd.zero_grad()
        err = x @ w.T - y
        c = (err[Tensor(y) >= 0.5] ** 2).sum()
        c.backward()
        sgd.step()

    x = np.ones((3, 2))
    for y in ([[1.0], [1.0], [0.0]], [[1.0], [0.0], [1.0]], [[1.0], [1.0], [1.0]]):
        with pytest.raises(JitError, match=r"jit\(.*step\): .*depends on the values"):
            step(x, np.array(y))
        assert same_bits(w.data, np.array([[0.5, -0.5]])) and w.grad is None


def test_a_step_that_assigns_module_attributes_warns():
    """A step that assigns an attribute of a module would be captured again on every call
    (the guard sees the assignment): the capture warns."""
    model, opt = hazard_twin()

    @jit
    def step(x, y):
        opt.zero_grad()
        c = costs.quadratic_cost(model(x), y)
        model.last_cost = c
        c.backward()
        opt.step()

    with pytest.warns(JitWarning, match="assigns attributes of a module"):
        step(np.ones((4, 3)), np.zeros((4, 2)))


def test_maximum_and_minimum_replay_exactly_and_quietly():
    """Steps through `maximum` and `minimum` replay exactly (and, with warnings as errors,
    with no warning from how the replay calls numpy)."""
    steps = []
    for _ in range(2):
        w = Tensor([[0.5, -0.5], [0.2, 0.1]], requires_grad=True)
        sgd = optim.SGD([w], lr=0.1)

        def step(x, w=w, sgd=sgd):
            sgd.zero_grad()
            z = x @ w.T
            c = (ops.maximum(z, 0.1 * z) + ops.minimum(z, 0.0)).sum()
            c.backward()
            sgd.step()
            return c

        steps.append((step, w))
    (eager, w_eager), (compiled, w) = steps[0], (jit(steps[1][0]), steps[1][1])
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.uniform(-1, 1, (3, 2))
        assert same_bits(eager(x).data, compiled(x).data)
    assert same_bits(w_eager.data, w.data)


def test_adam_in_float32_scales_by_float32_corrections():
    """Adam's bias corrections are worked out in float64 and used in the parameter's dtype,
    as PyTorch's Python floats are: float32 steps equal a float32 reference written with
    Python floats, bit for bit."""
    rng = np.random.default_rng(0)
    w = Tensor(rng.standard_normal((6, 5)).astype(np.float32), requires_grad=True)
    ref = w.data.copy()
    m, v = np.zeros_like(ref), np.zeros_like(ref)
    opt = optim.Adam([w], lr=1e-2)
    for t in range(1, 8):
        g = rng.standard_normal((6, 5)).astype(np.float32)
        opt.zero_grad()
        (w * Tensor(g)).sum().backward()
        opt.step()
        m *= 0.9  # the update as PyTorch writes it, in float32 with Python floats
        m += g * (1.0 - 0.9)
        v *= 0.999
        v += g * g * (1.0 - 0.999)
        s = np.sqrt(v)
        s /= math.sqrt(1.0 - 0.999 ** t)
        s += 1e-8
        s = m / s
        s *= 1e-2 / (1.0 - 0.9 ** t)
        ref -= s
        assert same_bits(w.data, ref), f"step {t}"
    assert opt.state[id(w)]["step"] == 7
