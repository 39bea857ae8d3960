"""Differential properties of `tinygrad_nn.jit`: a jitted training step against its eager twin.

The guarantee under test (docs/jit.md, the module docstring of tinygrad_nn/jit.py):

    Every call of a jitted step leaves exactly what the eager step leaves, to the last bit:
    every parameter, every parameter's ``.grad`` (None where eager's is None), every array
    of the optimizer's state, every random generator a step draws from, the values the step
    returns and the tensors it stores outside its result (``log["cost"] = cost``). The only
    alternative is a refusal: a `JitError` saying why, after which the parameters, their
    ``.grad``, the optimizer's state and the generators are exactly as before that call.

Each property builds two twins from one drawn `DifferentialRun` (tests/strategies.py): the
same model, optimizer and seeds, built twice. One runs the plain step, the other
``jit(step)``; both get the same N >= 6 calls, each on a *different* batch (fresh, or minus
the previous one, so every relu/where/maximum/clip/abs mask changes between calls; the last
batch may be short, a second plan), with the same changes made to both between calls (a new
learning rate, the optimizer's state cleared, an entry or a momentum deleted, a parameter
removed from its group, train/eval, a Dropout's p, gradients zeroed outside the step).
Everything listed above is compared after *every* call, so a replay that goes wrong on its
third call, or only after a change, is caught: the jit's own check of the second call is
not enough.

Which steps may be refused (decided here; a refusal anywhere else fails the property):

- a step that never calls zero_grad (`test_forgotten_zero_grad_accumulates_or_is_refused`):
  its gradients accumulate from call to call, as in PyTorch. It may be replayed exactly
  or refused with a JitError that mentions zero_grad.
- a step returning ``loss.item()``: always refused (a replay cannot recompute a Python
  number), on every call, leaving the state as before that call.
- every other step here: none. Those steps (`F.where` masks and a Huber loss included, an
  FGSM step that marks its input requires_grad included, whatever is changed between
  calls) are built from the public API only and read no value in Python, so the jit must
  replay them exactly; a refusal fails (after checking that it left the state untouched).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from strategies import DIFF_CHANGES, DIFF_COSTS, DifferentialRun, differential_runs

from tinygrad_nn import Tensor, costs, nn, ops, optim, training
from tinygrad_nn import functional as F
from tinygrad_nn.jit import JitError, JitWarning, jit


def examples(n: int) -> settings:
    """`n` examples under the default profile (which runs 40), proportionally more under a
    larger one (`thorough`: ten times as many)."""
    return settings(max_examples=max(1, n * settings.default.max_examples // 40))


# --- building a twin from a run ------------------------------------------------------------


class Activation(nn.Module):
    """A hidden activation written as a function of Tensors (public API only)."""

    def __init__(self, fn):
        self.fn = fn

    def forward(self, h):
        return self.fn(h)


ACTIVATIONS = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "where_leaky": lambda: Activation(lambda h: F.where(h > 0, h, 0.1 * h)),
    "maximum_leaky": lambda: Activation(lambda h: h.maximum(0.1 * h)),
    "clip": lambda: Activation(lambda h: h.clip(-1, 1)),
    "abs_relu": lambda: Activation(lambda h: (h + h.abs()) * 0.5),
}


def huber(out, y):
    """The Huber loss (δ = 1) written with `F.where`: its mask depends on the data."""
    d = out - y
    size = d.abs()
    return F.where(size <= 1.0, 0.5 * d * d, size - 0.5).mean()


#: Cost name -> (the cost of the model's outputs and targets, targets kind, sigmoid outputs).
COSTS = {
    "quadratic": (costs.quadratic_cost, "probabilities", True),
    "cross_entropy_cost": (costs.cross_entropy_cost, "probabilities", True),
    "cross_entropy_labels": (costs.cross_entropy, "labels", False),
    "cross_entropy_one_hot": (costs.cross_entropy, "one_hot", False),
    "bce_with_logits": (costs.binary_cross_entropy_with_logits, "probabilities", False),
    "nll_log_softmax": (lambda z, y: costs.nll_loss(F.log_softmax(z, axis=1), y), "labels",
                        False),
    "huber": (huber, "values", False),
}

OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "sgd_weight_decay": lambda ps: optim.SGD(ps, lr=0.1, weight_decay=0.05),
    "momentum": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
    "nesterov": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                     weight_decay=0.01),
    "adam": lambda ps: optim.Adam(ps, lr=0.01),
    "adam_weight_decay": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.1),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.1),
}


@dataclass
class Twin:
    """One copy of a run: its model, optimizer, Dropout layers, step and outside log."""

    model: nn.Module
    opt: optim.Optimizer
    dropouts: list
    step: Any = None
    log: dict = field(default_factory=dict)


def build_model(run: DifferentialRun) -> tuple[nn.Sequential, list]:
    """Linear layers with the run's activations (and Dropout after each) between them, a
    Sigmoid on top for the costs of sigmoid outputs; parameters cast to the run's dtype."""
    layers, dropouts = [], []
    for i, (n_in, n_out) in enumerate(zip(run.sizes[:-1], run.sizes[1:])):
        layers.append(nn.Linear(n_in, n_out, init=run.init, rng=(run.seed + i) % 2**32))
        if i < len(run.activations):
            layers.append(ACTIVATIONS[run.activations[i]]())
            if run.dropout is not None:
                dropouts.append(nn.Dropout(run.dropout, rng=(run.seed + 100 + i) % 2**32))
                layers.append(dropouts[-1])
    if COSTS[run.cost][2]:
        layers.append(nn.Sigmoid())
    model = nn.Sequential(*layers)
    training.cast_parameters(model, run.dtype)
    return model, dropouts


def returned(run: DifferentialRun, cost, out):
    return {"cost": cost, "cost_and_output": (cost, out), "dict": {"cost": cost, "out": out},
            "nothing": None}[run.returns]


def train_on(run: DifferentialRun, twin: Twin, x, t):
    """forward, cost, backward, update; the cost is also stored in `twin.log`."""
    out = twin.model(x)
    cost = COSTS[run.cost][0](out, t)
    cost.backward()
    twin.opt.step()
    twin.log["cost"] = cost
    return returned(run, cost, out)


def plain_step(run: DifferentialRun, twin: Twin):
    """The usual step (with zero_grad first, or forgetting it, as `run` says)."""

    def step(x, t):
        if run.zero_grad:
            twin.opt.zero_grad()
        return train_on(run, twin, x, t)

    return step


def fgsm_step(run: DifferentialRun, twin: Twin):
    """Adversarial training (FGSM): the input is made to require grad inside the step, its
    gradient's sign perturbs it, and the model is trained on the perturbed batch."""
    cost_fn, model, opt = COSTS[run.cost][0], twin.model, twin.opt

    def step(x, t):
        x = Tensor(x, requires_grad=True)
        opt.zero_grad()
        cost_fn(model(x), t).backward()
        x_adv = x.detach() + 0.1 * ops.sign(x.grad)
        opt.zero_grad()
        return train_on(run, twin, x_adv, t)

    return step


def item_step(run: DifferentialRun, twin: Twin):
    """The usual step, returning ``cost.item()``: a Python number no replay can recompute."""
    cost_fn, model, opt = COSTS[run.cost][0], twin.model, twin.opt

    def step(x, t):
        opt.zero_grad()
        cost = cost_fn(model(x), t)
        cost.backward()
        opt.step()
        return cost.item()

    return step


def twins(run: DifferentialRun, make_step) -> tuple[Twin, Twin]:
    """An eager twin and a jitted twin, built alike from `run`."""
    pair = []
    for _ in range(2):
        model, dropouts = build_model(run)
        twin = Twin(model, OPTIMIZERS[run.optimizer](model.parameters()), dropouts)
        twin.step = make_step(run, twin)
        pair.append(twin)
    pair[1].step = jit(pair[1].step)
    return pair[0], pair[1]


def batches(run: DifferentialRun):
    """The inputs and targets of each call: fresh, or minus the previous inputs."""
    rng = np.random.default_rng(run.seed)
    n_in, n_out = run.sizes[0], run.sizes[-1]
    kind = COSTS[run.cost][1]
    x = t = None
    for rows, negated in run.calls:
        if negated:
            x, t = -x[:rows], t[:rows]
        else:
            x = rng.uniform(-2, 2, (rows, n_in)).astype(run.dtype)
            labels = rng.integers(0, n_out, rows)
            t = {"labels": labels,
                 "one_hot": np.eye(n_out, dtype=run.dtype)[labels],
                 "probabilities": rng.uniform(0, 1, (rows, n_out)).astype(run.dtype),
                 "values": rng.uniform(-3, 3, (rows, n_out)).astype(run.dtype)}[kind]
        yield x, t


# --- changes between calls, made to both twins alike ----------------------------------------


def _new_lr(twin: Twin, which: int) -> None:
    for group in twin.opt.param_groups:
        group["lr"] = group["lr"] * (0.5, 2.0)[which % 2]


def _drop_state_entry(twin: Twin, which: int) -> None:
    params = twin.model.parameters()
    twin.opt.state.pop(id(params[which % len(params)]), None)


def _drop_momentum(twin: Twin, which: int) -> None:
    """Delete one parameter's momentum (SGD) or running means (Adam), keeping its entry."""
    params = twin.model.parameters()
    entry = twin.opt.state.get(id(params[which % len(params)]), {})
    for key in ("momentum_buffer", "exp_avg"):
        entry.pop(key, None)


def _remove_param(twin: Twin, which: int) -> None:
    group = twin.opt.param_groups[0]["params"]
    if len(group) > 1:
        del group[which % len(group)]


def _dropout_p(twin: Twin, which: int) -> None:
    for layer in twin.dropouts:
        layer.p = (0.0, 0.25, 0.5)[which % 3]


CHANGES = {
    "none": lambda twin, which: None,
    "lr": _new_lr,
    "clear_state": lambda twin, which: twin.opt.state.clear(),
    "drop_state_entry": _drop_state_entry,
    "drop_momentum": _drop_momentum,
    "remove_param": _remove_param,
    "eval": lambda twin, which: twin.model.eval(),
    "train": lambda twin, which: twin.model.train(),
    "dropout_p": _dropout_p,
    "zero_grad_outside": lambda twin, which: twin.opt.zero_grad(),
}


# --- comparing bit for bit ------------------------------------------------------------------


def bits(a) -> tuple | None:
    """An array's dtype, shape and bytes (None for None): equal only if bit-identical."""
    if a is None:
        return None
    a = np.asarray(a.data if isinstance(a, Tensor) else a)
    return a.dtype.str, a.shape, a.tobytes()


def state(twin: Twin) -> dict[str, dict[str, Any]]:
    """Everything a call may change, by kind and then by name: the parameters, their .grad,
    the optimizer (its state arrays, its groups), the Dropout generators and the tensor the
    step stored outside its result."""
    names = {id(p): name for name, p in twin.model.named_parameters()}
    found: dict[str, dict[str, Any]] = {
        "parameters": {}, "grads": {}, "generators": {},
        "optimizer": {"len(opt.state)": len(twin.opt.state)},
        "stored": {"log['cost']": bits(twin.log.get("cost"))}}
    for name, p in twin.model.named_parameters():
        found["parameters"][name] = bits(p.data)
        found["grads"][f"{name}.grad"] = bits(p.grad)
        entry = twin.opt.state.get(id(p))
        found["optimizer"][f"opt.state[{name}]"] = None if entry is None else sorted(entry)
        for key in sorted(entry or {}):
            found["optimizer"][f"opt.state[{name}][{key!r}]"] = bits(entry[key])
    for k, group in enumerate(twin.opt.param_groups):
        found["optimizer"][f"param_groups[{k}]"] = (
            [names.get(id(p)) for p in group["params"]],
            {key: v for key, v in group.items() if key != "params"})
    for k, layer in enumerate(twin.dropouts):
        found["generators"][f"dropout {k}"] = layer.rng.bit_generator.state
    return found


def result_bits(result) -> Any:
    """A step's result with each Tensor or array as `bits`, its structure kept."""
    if isinstance(result, (Tensor, np.ndarray)):
        return bits(result)
    if isinstance(result, (tuple, list)):
        return [result_bits(r) for r in result]
    if isinstance(result, dict):
        return {k: result_bits(v) for k, v in result.items()}
    return result


def differing(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """The names whose values differ (or that only one side has)."""
    return sorted(key for key in {*expected, *got} if expected.get(key) != got.get(key))


def kept_by_a_refusal(twin: Twin) -> dict[str, Any]:
    """What a refused call must leave as it was: all of `state` but the stored cost (a
    refused call may have run the step's Python, which assigns `log["cost"]`)."""
    found = state(twin)
    return {**found["parameters"], **found["grads"], **found["optimizer"],
            **found["generators"]}


def assert_twins_agree(eager: Twin, compiled: Twin, got: Any, expected: Any, call: int) -> None:
    """One assertion per kind, so that Hypothesis reports each kind of divergence apart."""
    a, b = state(eager), state(compiled)
    assert result_bits(got) == result_bits(expected), f"call {call}: the results differ"
    assert differing(a["parameters"], b["parameters"]) == [], f"after call {call}"
    assert differing(a["grads"], b["grads"]) == [], f"after call {call}"
    assert differing(a["optimizer"], b["optimizer"]) == [], f"after call {call}"
    assert differing(a["generators"], b["generators"]) == [], f"after call {call}"
    assert differing(a["stored"], b["stored"]) == [], f"after call {call}"


# --- running the twins -----------------------------------------------------------------------


def refusal_allowed(run: DifferentialRun, err: JitError) -> bool:
    """The one refusal these properties accept (see the module docstring)."""
    return not run.zero_grad and "zero_grad" in str(err)


def run_twins(run: DifferentialRun, make_step=plain_step, must_replay: bool = False) -> str:
    """Both twins through every call of `run`, compared after each; returns how it ended.

    `must_replay`: also check that the jit did replay (one capture per batch shape, as with
    no change between calls it should), so that agreement is not won by never replaying."""
    eager, compiled = twins(run, make_step)
    for k, (x, t) in enumerate(batches(run)):
        if k:
            change, which = run.changes[k - 1]
            for twin in (eager, compiled):
                CHANGES[change](twin, which)
        before = kept_by_a_refusal(compiled)
        try:
            got = compiled.step(x.copy(), t.copy())  # (copies: each twin owns its batch)
        except JitError as err:
            changed = differing(before, kept_by_a_refusal(compiled))
            assert changed == [], f"call {k + 1} was refused ({err}) but changed state"
            assert refusal_allowed(run, err), f"call {k + 1} refused: {err}"
            return "refused"
        assert_twins_agree(eager, compiled, got, eager.step(x.copy(), t.copy()), k + 1)
    shapes = len({rows for rows, _ in run.calls})
    event(f"captures per batch shape: {compiled.step.captures / shapes:.1f}")
    assert not must_replay or compiled.step.captures == shapes, "every call was captured"
    return "agreed"


def describe(run: DifferentialRun) -> str:
    return (f"{'/'.join(run.activations)}, {run.cost}, {run.optimizer}, "
            f"{np.dtype(run.dtype).name}")


# --- the properties -------------------------------------------------------------------------

#: Activations and costs without a data-dependent mask: a focused property on them is not
#: shadowed by a mask that a replay gets wrong.
SMOOTH = ("sigmoid", "tanh")
SMOOTH_COSTS = tuple(c for c in DIFF_COSTS if c != "huber")
OPTIMIZER_CONTENTS = ("none", "clear_state", "drop_state_entry", "drop_momentum", "remove_param")


@pytest.mark.property
@examples(100)
@given(run=differential_runs())
def test_jitted_steps_equal_eager_steps(run):
    """For tiny models of every activation (modules, `F.where`, maximum, clip, abs), every
    cost and optimizer, float32 and float64, N >= 6 calls on different batches (negated
    ones flip the masks, a short last one makes a second plan) leave bit-identical
    parameters, .grad, optimizer state, generators, results and stored cost. No refusal;
    and the jit does replay (one capture per batch shape)."""
    event(describe(run))
    assert run_twins(run, must_replay=True) == "agreed"


@pytest.mark.property
@examples(100)
@given(run=differential_runs(changes=DIFF_CHANGES))
def test_changes_between_calls_are_seen(run):
    """Changes made between calls (a new lr, opt.state cleared, an entry or a momentum
    deleted, a parameter removed from its group, train()/eval(), a Dropout's p, zero_grad called
    outside the step) take effect in the jitted twin exactly as in the eager one: after
    every call all state is bit-identical. No refusal."""
    event(", ".join(sorted({c for c, _ in run.changes} - {"none"})) or "no change")
    assert run_twins(run) == "agreed"


@pytest.mark.property
@examples(20)
@given(run=differential_runs(SMOOTH, SMOOTH_COSTS))
def test_a_tensor_stored_outside_the_result_follows_every_call(run):
    """The cost the step stores in a dict (``log["cost"] = cost``), whatever it returns,
    holds after every call the value eager's holds: not the capture's."""
    assert run_twins(run) == "agreed"


@pytest.mark.property
@examples(40)
@given(run=differential_runs(SMOOTH, SMOOTH_COSTS, changes=OPTIMIZER_CONTENTS))
def test_optimizer_contents_changed_between_calls_are_seen(run):
    """``opt.state.clear()``, deleting one parameter's state entry or only its momentum
    (``del opt.state[id(p)]["momentum_buffer"]``, Adam's ``exp_avg``), and removing a
    parameter from ``param_groups[0]["params"]`` between calls change the jitted twin's next
    steps exactly as the eager twin's. No refusal."""
    assert run_twins(run) == "agreed"


@pytest.mark.property
@examples(40)
@given(run=differential_runs(changes=("none", "zero_grad_outside"), zero_grad=False))
def test_forgotten_zero_grad_accumulates_or_is_refused(run):
    """A step that never calls zero_grad accumulates its gradients over calls (PyTorch's
    semantics; here and there the user zeroes them between calls): the jitted twin must
    accumulate exactly as the eager one, call after call, or refuse with a JitError naming
    zero_grad and leave the state as it was."""
    event(run_twins(run))


@pytest.mark.property
@examples(30)
@given(run=differential_runs())
def test_fgsm_step_marking_its_input_requires_grad(run):
    """An FGSM step (the input batch made to require grad inside the step, the model trained
    on x + 0.1 * sign(x.grad)) replays bit-identically to eager: no refusal."""
    assert run_twins(run, fgsm_step) == "agreed"


@pytest.mark.property
@examples(10)
@given(run=differential_runs(min_calls=3, max_calls=4))
def test_a_step_returning_item_is_refused_and_changes_nothing(run):
    """A step returning ``cost.item()`` is refused with a JitError on every call, and each
    refusal leaves parameters, .grad, optimizer state and generators as before the call.
    (Reading item() during a capture may also warn, with a JitWarning: allowed, not needed.)"""
    _, compiled = twins(run, item_step)
    for k, (x, t) in enumerate(batches(run)):
        before = kept_by_a_refusal(compiled)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", JitWarning)
            with pytest.raises(JitError):
                compiled.step(x, t)
        assert all(issubclass(w.category, JitWarning) for w in caught), [str(w.message)
                                                                         for w in caught]
        changed = differing(before, kept_by_a_refusal(compiled))
        assert changed == [], f"call {k + 1} was refused but changed state"


@pytest.mark.property
@examples(10)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 4))
def test_where_leaky_relu_follows_each_batchs_mask(seed, rows):
    """The issue's first case, pinned: `F.where(h > 0, h, 0.1 * h)` on x, -x, x, -x, ...
    (zero biases, so every mask flips on every call) equals eager at every call."""
    calls = [(rows, k % 2 == 1) for k in range(8)]
    run = DifferentialRun([3, 4, 2], ["where_leaky"], "xavier", None, "quadratic", "momentum",
                          np.float64, calls, [("none", 0)] * 7, True, "cost", seed)
    assert run_twins(run) == "agreed"
