"""Tests for tinygrad_nn.training: `fit` (sec. 2.2's loop for any module) and `evaluate`."""

import dataclasses
import math
import warnings

import numpy as np
import pytest

from tinygrad_nn import Tensor, costs, datasets, nn, optim, training
from tinygrad_nn.training import Evaluation, cast_parameters, evaluate, fit

DIGITS = datasets.load_digits()


def mlp(seed=0, hidden=32, dropout=0.0):
    rng = np.random.default_rng(seed)
    layers = [nn.Linear(64, hidden, "he", rng), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout, rng))
    return nn.Sequential(*layers, nn.Linear(hidden, 10, "he", rng))


def weights(model):
    return [p.data.copy() for p in model.parameters()]


class Recorder(nn.Module):
    """Wraps a model and records the mode and the number of rows of every call."""

    def __init__(self, model):
        self.model = model
        self.calls = []

    def forward(self, x):
        self.calls.append((self.training, len(x)))
        return self.model(x)


def test_fit_learns_the_digits_with_adam_and_a_schedule():
    model = mlp()
    opt = optim.Adam(model.parameters(), lr=0.01)
    schedule = optim.CosineAnnealingLR(opt, T_max=5)
    history = fit(model, costs.cross_entropy, opt, DIGITS.train, 5, 32, DIGITS.validation,
                  schedule=schedule, seed=0, verbose=False)
    assert len(history) == 5 and [r.epoch for r in history] == list(range(5))
    assert history.train_cost[-1] < history.train_cost[0]
    assert history.val_accuracy[-1] > 0.9
    # The lr of each epoch is the schedule's closed form at that epoch.
    expected = [0.01 * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(5)]
    np.testing.assert_allclose(history.lr, expected, rtol=1e-14)
    assert history.best_epoch is None and not history.stopped_early
    final = evaluate(model, DIGITS.validation, costs.cross_entropy)
    assert final.accuracy == history[-1].val_accuracy
    assert final.cost == pytest.approx(history[-1].val_cost, rel=1e-12)


def test_same_seed_same_weights_and_another_seed_shuffles_differently():
    results = []
    for model_seed, shuffle_seed in [(0, 1), (0, 1), (0, 2)]:
        model = mlp(model_seed)
        fit(model, costs.cross_entropy, optim.SGD(model.parameters(), 0.1), DIGITS.train, 2,
            50, seed=shuffle_seed, verbose=False)
        results.append(weights(model))
    assert all(np.array_equal(a, b) for a, b in zip(results[0], results[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(results[0], results[2]))


def test_one_full_batch_epoch_is_one_step_and_its_cost_is_the_cost_before_it():
    X, labels = DIGITS.train.X[:40], DIGITS.train.labels[:40]
    model, reference = mlp(3), mlp(3)
    fit(model, costs.cross_entropy, optim.SGD(model.parameters(), 0.5), (X, labels), 1, 40,
        seed=0, verbose=False)
    before = costs.cross_entropy(reference(X), labels)
    before.backward()
    optim.SGD(reference.parameters(), 0.5).step()
    for a, b in zip(weights(model), weights(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_train_cost_is_the_mean_of_the_mini_batch_costs():
    seen = []

    def cost(out, t):
        c = costs.cross_entropy(out, t)
        seen.append((c.item(), len(t)))
        return c

    model = mlp()
    history = fit(model, cost, optim.SGD(model.parameters(), 0.1), DIGITS.train, 1, 400,
                  seed=0, verbose=False)
    n = len(DIGITS.train)
    # (the first call is fit's check of all n targets, before the first step)
    assert [m for _, m in seen] == [n, 400, 400, n - 800]
    assert history[0].train_cost == pytest.approx(sum(c * m for c, m in seen[1:]) / n,
                                                  rel=1e-12)


def test_training_mode_for_steps_and_evaluation_mode_in_batches_of_1000():
    model = Recorder(mlp(dropout=0.5))
    X = np.tile(DIGITS.train.X, (3, 1))[:2500]
    labels = np.tile(DIGITS.train.labels, 3)[:2500]
    fit(model, costs.cross_entropy, optim.SGD(model.parameters(), 0.1), DIGITS.train, 1, 500,
        validation_data=(X, labels), seed=0, verbose=False)
    # (first, in evaluation mode, one row of each data set for fit's check of the targets)
    assert model.calls == [(False, 1), (False, 1), (True, 500), (True, 500), (True, 197),
                           (False, 1000),
                           (False, 1000), (False, 500)]
    assert model.training  # evaluate puts the mode back
    model.eval()
    evaluate(model, DIGITS.test)
    assert not model.training


def test_evaluate_matches_one_pass_and_is_deterministic_with_dropout():
    model = mlp(dropout=0.5)
    X, labels = DIGITS.train.X, DIGITS.train.labels
    result = evaluate(model, (X, labels), costs.cross_entropy, batch_size=100)
    again = evaluate(model, (X, labels), costs.cross_entropy, batch_size=1000)
    model.eval()
    out = model(X)
    assert result.correct == again.correct == int((out.data.argmax(axis=1) == labels).sum())
    assert result.total == len(X) and result.accuracy == result.correct / len(X)
    assert result.cost == pytest.approx(costs.cross_entropy(out, labels).item(), rel=1e-12)
    assert again.cost == pytest.approx(result.cost, rel=1e-12)
    assert evaluate(model, DIGITS.test).cost is None  # no cost asked for


def test_evaluate_accepts_one_hot_targets():
    model = mlp()
    by_label = evaluate(model, DIGITS.test)
    by_target = evaluate(model, (DIGITS.test.X, DIGITS.test.one_hot()))
    assert by_label.correct == by_target.correct


def scripted_evaluate(monkeypatch, accuracies):
    """Replace evaluate with a script of accuracies; return the weights seen at each call."""
    snapshots = []
    script = iter(accuracies)

    def fake(model, data, cost=None, batch_size=1000):
        snapshots.append(weights(model))
        return Evaluation(1.0, next(script), None, 1)

    monkeypatch.setattr(training, "evaluate", fake)
    return snapshots


def test_patience_stops_and_restores_the_best_weights_in_place(monkeypatch, capsys):
    snapshots = scripted_evaluate(monkeypatch, [0.5, 0.7, 0.6, 0.65, 0.9])
    model = mlp()
    arrays = [p.data for p in model.parameters()]
    history = fit(model, costs.cross_entropy, optim.SGD(model.parameters(), 0.1),
                  DIGITS.train, 10, 100, DIGITS.validation, patience=2, seed=0)
    assert len(history) == 4 and history.stopped_early and history.best_epoch == 1
    for now, best in zip(weights(model), snapshots[1]):
        np.testing.assert_array_equal(now, best)
    assert all(p.data is a for p, a in zip(model.parameters(), arrays))
    assert "Restored the weights of epoch 1" in capsys.readouterr().out


def test_patience_keeps_the_last_weights_when_they_are_the_best(monkeypatch):
    snapshots = scripted_evaluate(monkeypatch, [0.5, 0.7, 0.8])
    model = mlp()
    history = fit(model, costs.cross_entropy, optim.SGD(model.parameters(), 0.1),
                  DIGITS.train, 3, 100, DIGITS.validation, patience=1, seed=0, verbose=False)
    assert history.best_epoch == 2 and not history.stopped_early
    for now, last in zip(weights(model), snapshots[-1]):
        np.testing.assert_array_equal(now, last)


def test_equal_accuracy_is_decided_by_the_cost(monkeypatch):
    results = iter([Evaluation(0.5, 0.8, 8, 10), Evaluation(0.4, 0.8, 8, 10),
                    Evaluation(0.6, 0.8, 8, 10)])
    monkeypatch.setattr(training, "evaluate", lambda *args, **kwargs: next(results))
    model = mlp()
    history = fit(model, costs.cross_entropy, optim.SGD(model.parameters(), 0.1),
                  DIGITS.train, 3, 100, DIGITS.validation, patience=1, seed=0, verbose=False)
    assert history.best_epoch == 1 and history.stopped_early


def test_verbose_lines_and_progress_hook(capsys):
    calls = []

    def progress(iterable, total, desc):
        calls.append((total, desc))
        return iterable

    model = mlp()
    fit(model, costs.cross_entropy, optim.SGD(model.parameters(), 0.1), DIGITS.train, 2, 500,
        DIGITS.validation, seed=0, progress=progress)
    lines = capsys.readouterr().out.splitlines()
    assert calls == [(3, "Epoch 0"), (3, "Epoch 1")]
    assert len(lines) == 2
    assert lines[0].startswith("Epoch 0: training cost ")
    assert "validation accuracy " in lines[0] and " / 300 (" in lines[0]
    assert lines[0].endswith(" s") and ", lr 0.1, " in lines[0]


def test_float32_parameters_and_data_train_in_float32():
    train32, validation32, _ = datasets.load_digits(dtype=np.float32)
    model = mlp()
    cast_parameters(model, np.float32)
    opt = optim.Adam(model.parameters(), lr=0.01)
    fit(model, costs.cross_entropy, opt, train32, 1, 64, validation32, seed=0, verbose=False)
    assert {p.data.dtype for p in model.parameters()} == {np.dtype(np.float32)}
    with pytest.raises(ValueError, match="float type"):
        cast_parameters(model, np.int32)


def test_a_diverging_cost_is_an_error():
    model = mlp()
    with pytest.raises(ValueError, match="training cost became .* smaller learning rate"):
        fit(model, lambda out, t: out.sum() * 0.0 + math.inf, optim.SGD(model.parameters(),
            1.0), DIGITS.train, 1, 500, seed=0, verbose=False)


def test_early_stopping_keeps_the_best_weights_when_the_cost_diverges():
    """`patience` promises the best epoch's weights "in any case": a cost that becomes inf
    in epoch 2 still ends with them (issue 15: fit raised first, leaving |w| ~ 1e288)."""
    model = mlp()
    after_epoch = []  # the weights as each epoch starts: those the previous one left
    diverged = {"now": False}

    def progress(starts, total, desc):
        after_epoch.append(weights(model))
        diverged["now"] = desc == "Epoch 2"
        return starts

    def cost(out, t):
        c = costs.cross_entropy(out, t)
        return c * 0.0 + math.inf if diverged["now"] else c  # (a finite gradient)

    with pytest.raises(ValueError, match=r"became (inf|nan) in epoch 2.* epoch (0|1), the "
                                         r"best on validation, are restored"):
        fit(model, cost, optim.SGD(model.parameters(), 0.1), DIGITS.train, 5, 100,
            DIGITS.validation, patience=3, seed=0, progress=progress, verbose=False)
    best = [np.array_equal(a, b) for a, b in zip(weights(model), after_epoch[1])]
    second = [np.array_equal(a, b) for a, b in zip(weights(model), after_epoch[2])]
    assert all(best) or all(second)


def test_zero_epochs_changes_nothing():
    model = mlp()
    before = weights(model)
    history = fit(model, costs.cross_entropy, optim.SGD(model.parameters(), 0.1),
                  DIGITS.train, 0, 10, verbose=False)
    assert history == [] and all(np.array_equal(a, b) for a, b in zip(before, weights(model)))


def bad_calls():
    model = mlp()
    opt = optim.SGD(model.parameters(), 0.1)
    other = optim.StepLR(optim.SGD(mlp().parameters(), 0.1), 1)
    train = DIGITS.train
    X, labels = train.X, train.labels
    return [
        ("epochs", lambda: fit(model, costs.cross_entropy, opt, train, -1, 10), "epochs"),
        ("batch", lambda: fit(model, costs.cross_entropy, opt, train, 1, 0), "batch_size"),
        ("patience-without-validation",
         lambda: fit(model, costs.cross_entropy, opt, train, 1, 10, patience=2),
         "patience .* needs validation_data"),
        ("patience-zero", lambda: fit(model, costs.cross_entropy, opt, train, 1, 10,
                                      DIGITS.validation, patience=0), "patience"),
        ("schedule", lambda: fit(model, costs.cross_entropy, opt, train, 1, 10,
                                 schedule=other), "another optimizer"),
        ("lengths", lambda: fit(model, costs.cross_entropy, opt, (X, labels[:-1]), 1, 10),
         "examples but"),
        ("empty", lambda: fit(model, costs.cross_entropy, opt, (X[:0], labels[:0]), 1, 10),
         "no examples"),
        ("x-1d", lambda: fit(model, costs.cross_entropy, opt, (X[0], labels), 1, 10),
         "one example per row"),
        ("eval-batch", lambda: evaluate(model, train, batch_size=0), "batch_size"),
    ]


@pytest.mark.parametrize("name, call, match", bad_calls(), ids=[c[0] for c in bad_calls()])
def test_bad_arguments_are_clear_errors(name, call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_wrong_kinds_are_type_errors():
    model = mlp()
    with pytest.raises(TypeError, match="optimizer from tinygrad_nn.optim"):
        fit(model, costs.cross_entropy, "adam", DIGITS.train, 1, 10)
    with pytest.raises(TypeError, match="Dataset or a tuple"):
        fit(model, costs.cross_entropy, optim.SGD(model.parameters(), 0.1), [1, 2], 1, 10)


def test_any_callable_model_works_without_modes():
    w = Tensor(np.zeros((64, 10)), requires_grad=True)
    history = fit(lambda x: x @ w, costs.cross_entropy, optim.SGD([w], 0.5), DIGITS.train, 2,
                  50, DIGITS.validation, seed=0, verbose=False)
    assert history[-1].val_accuracy > 0.5


# --- issue 16: one loop, one way in for data ---


def test_integer_labels_become_one_hot_rows_for_the_tutorials_costs():
    """fit, like Network.SGD, turns labels into the desired outputs y(x) of eq. 2.1."""
    model_a = nn.Sequential(nn.Linear(64, 10, rng=0), nn.Sigmoid())
    model_b = nn.Sequential(nn.Linear(64, 10, rng=0), nn.Sigmoid())
    train = DIGITS.train
    fit(model_a, costs.quadratic_cost, optim.SGD(model_a.parameters(), 1.0), train, 1, 50,
        seed=0, verbose=False)
    fit(model_b, costs.quadratic_cost, optim.SGD(model_b.parameters(), 1.0),
        (train.X, train.one_hot()), 1, 50, seed=0, verbose=False)
    assert all(np.array_equal(a, b) for a, b in zip(weights(model_a), weights(model_b)))
    with pytest.raises(ValueError, match="outside 0..9"):
        fit(model_a, costs.quadratic_cost, optim.SGD(model_a.parameters(), 1.0),
            (train.X, train.labels + 1), 1, 50, verbose=False)


def test_fit_takes_the_books_pairs_too():
    pairs = datasets.to_book_format(DIGITS.train, one_hot=False)
    model_a, model_b = mlp(), mlp()
    fit(model_a, costs.cross_entropy, optim.SGD(model_a.parameters(), 0.1), pairs, 1, 50,
        seed=0, verbose=False)
    fit(model_b, costs.cross_entropy, optim.SGD(model_b.parameters(), 0.1), DIGITS.train, 1,
        50, seed=0, verbose=False)
    assert all(np.array_equal(a, b) for a, b in zip(weights(model_a), weights(model_b)))


def test_without_restore_best_early_stopping_keeps_the_last_weights(monkeypatch):
    snapshots = scripted_evaluate(monkeypatch, [0.5, 0.7, 0.6, 0.65])
    model = mlp()
    history = fit(model, costs.cross_entropy, optim.SGD(model.parameters(), 0.1),
                  DIGITS.train, 10, 100, DIGITS.validation, patience=2, restore_best=False,
                  seed=0, verbose=False)
    assert history.stopped_early and history.best_epoch == 1 and len(history) == 4
    for now, last in zip(weights(model), snapshots[-1]):
        np.testing.assert_array_equal(now, last)


def test_callbacks_add_to_each_epochs_record():
    model = mlp()
    seen = []

    def add_test(record):
        seen.append(record.epoch)
        return dataclasses.replace(record, test_correct=1, test_total=2)

    history = fit(model, costs.cross_entropy, optim.SGD(model.parameters(), 0.1),
                  DIGITS.train, 2, 100, seed=0, verbose=False, callbacks=[add_test, print])
    assert seen == [0, 1] and [r.test_accuracy for r in history] == [0.5, 0.5]


def test_no_core_or_layer_module_imports_jit():
    """The capture layer sits on top (docs/design.md): the framework never calls the tracer."""
    import pathlib
    import re

    root = pathlib.Path(training.__file__).parent
    for name in ("tensor", "ops", "autograd", "functional", "nn", "optim", "costs"):
        source = (root / f"{name}.py").read_text()
        assert not re.search(r"^\s*(from \.jit |from \. import .*\bjit\b|import .*\bjit\b)",
                             source, re.M), name


# --- data augmentation: transform ---------------------------------------------------------------


def test_transform_gets_a_copy_of_each_batch_and_the_loops_generator():
    rng = np.random.default_rng(0)
    X, labels = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    X_before, seen = X.copy(), []

    def mirror(x, gen):
        assert not np.shares_memory(x, X) and isinstance(gen, np.random.Generator)
        seen.append(len(x))
        x[:, :] = x[:, ::-1]  # in place: allowed, the data set must stay as it was
        return x

    model = nn.Sequential(nn.Linear(4, 3, rng=1))
    fit(model, costs.cross_entropy, optim.SGD(model.parameters(), 0.1), (X, labels), 2, 8,
        (X, labels), seed=0, verbose=False, transform=mirror)
    assert seen == [8, 8, 8, 6] * 2  # every training batch, never the validation data
    np.testing.assert_array_equal(X, X_before)


def test_a_random_transform_trains_the_same_eager_and_compiled():
    rng = np.random.default_rng(1)
    X, labels = rng.normal(size=(40, 5)), rng.integers(0, 2, 40)

    def noisy_flip(x, gen):
        flip = gen.random(len(x)) < 0.5
        x[flip] = -x[flip]
        return x

    weights = []
    for use_jit in (False, True):
        model = nn.Sequential(nn.Linear(5, 6, rng=2), nn.Tanh(), nn.Linear(6, 2, rng=3))
        fit(model, costs.cross_entropy, optim.Adam(model.parameters(), 0.01), (X, labels), 3,
            10, seed=4, verbose=False, jit=use_jit, transform=noisy_flip)
        weights.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*weights):
        assert np.array_equal(a, b)


# --- the data check: one pass (Σx²) in the common case, each entry when that sum is not finite

_EDGE_VALUES = [0.0, -0.0, 1.0, -1.0, 1e-310, 1e154, -1e155, 1e300, -1.7e308, np.nan, np.inf,
                -np.inf]


def _data_with(values, dtype, fortran):
    X = np.array(values, dtype=np.float64).reshape(-1, 3)
    with np.errstate(over="ignore"):  # (a value beyond float16/32 becomes ±inf: that is the point)
        X = X.astype(dtype)
    return np.asfortranarray(X) if fortran else X


def _first_bad_row(X):
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    return None if bad.size == 0 else int(bad[0])


@pytest.mark.property
def test_the_data_check_refuses_exactly_the_non_finite_rows():
    """Huge finite values (whose squares overflow the one-pass sum) are accepted; any nan or
    ±inf is refused naming its first row, in every float dtype and memory order, silently.
    On the commit before the one-pass check, the same property held (it is a refactoring);
    the mutant that trusts the sum alone fails it: values=[0.0, 0.0, -1e+155], float64."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from(_EDGE_VALUES) | st.floats(allow_nan=True), min_size=3,
                    max_size=30).map(lambda v: v[:len(v) - len(v) % 3]),
           st.sampled_from([np.float16, np.float32, np.float64]), st.booleans())
    def check(values, dtype, fortran):
        X = _data_with(values, dtype, fortran)
        labels = np.zeros(len(X), dtype=np.int64)
        row = _first_bad_row(X)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            if row is None:
                got, _ = training.as_arrays((X, labels), what="data")
                assert got.dtype == X.dtype and np.array_equal(got, X)
            else:
                with pytest.raises(ValueError, match=rf"data: row {row} of X holds .*finite"):
                    training.as_arrays((X, labels), what="data")

    check()
