"""Tests for tinygrad_nn.network: the tutorial's session, data forms, determinism, save/load."""

import base64
import copy
import math
import os
import pickle
import time
import zlib

import numpy as np
import pytest

from tinygrad_nn import backprop, datasets, network, nn
from tinygrad_nn.network import EpochStats, Network, as_arrays

DIGITS = datasets.load_digits()


def arrays(split):
    return split.X, split.one_hot()


def small_data(n=40, n_in=4, n_out=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (n, n_in))
    labels = rng.integers(0, n_out, n)
    return X, np.eye(n_out)[labels], labels


def same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.weights + a.biases, b.weights + b.biases))


# --- the tutorial's session ---


def test_tutorial_session_on_the_digits_reaches_85_percent(capsys):
    training_data, validation_data, test_data = DIGITS
    net = Network([64, 30, 10], seed=0)
    history = net.SGD(training_data, 30, 10, 3.0, test_data=test_data)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 30 and lines[0].startswith("Epoch 0: ") and lines[-1].endswith("/ 300")
    correct = net.evaluate(test_data)
    assert correct / len(test_data) >= 0.85
    assert history.epochs[-1].test_correct == correct and history.epochs[-1].test_total == 300
    assert lines[-1] == f"Epoch 29: {correct} / 300"
    # Learning happened: the cost fell from the first epoch to the last.
    assert history.epochs[-1].train_cost < history.epochs[0].train_cost


def test_nielsens_attributes():
    net = Network([64, 30, 10])
    assert net.sizes == [64, 30, 10] and net.num_layers == 3
    assert [w.shape for w in net.weights] == [(30, 64), (10, 30)]
    assert [b.shape for b in net.biases] == [(30,), (10,)]
    # The live arrays of the layers' tensors.
    assert net.weights[0] is net.layers[0].weight.data
    assert net.parameters() == [net.layers[0].weight, net.layers[0].bias,
                                net.layers[1].weight, net.layers[1].bias]


def test_weights_and_biases_can_be_set_with_shapes_checked():
    net = Network([3, 2, 1])
    net.weights = [np.ones((2, 3)), np.full((1, 2), 2.0)]
    net.biases = [np.zeros(2), np.array([-1.0])]
    # σ(2 σ(3) · 2 - 1) for the input [1, 1, 1].
    s = 1 / (1 + math.exp(-3))
    assert net.feedforward(np.ones(3))[0] == pytest.approx(1 / (1 + math.exp(-(4 * s - 1))))
    with pytest.raises(ValueError, match=r"weights\[1\]: expected shape \(1, 2\)"):
        net.weights = [np.ones((2, 3)), np.ones((2, 1))]
    with pytest.raises(ValueError, match="expected 2 arrays"):
        net.biases = [np.zeros(2)]


def test_initial_weights_follow_init():
    standard = Network([400, 300, 10], seed=0)
    scaled = Network([400, 300, 10], seed=0, init="scaled")
    assert abs(standard.weights[0].std() - 1) < 0.01
    assert abs(scaled.weights[0].std() - 1 / 20) < 0.001


# --- agreement with the hand-derived BP1-BP4 reference ---


@pytest.mark.parametrize("cost", ["quadratic", "cross-entropy"])
def test_one_mini_batch_step_matches_backprop_py(cost):
    X, Y, _ = small_data(n=7)
    net = Network([4, 5, 3, 3], cost=cost, seed=1)
    w_ref, b_ref = backprop.update_mini_batch(net.weights, net.biases, X, Y, 0.7, cost=cost)
    net.update_mini_batch((X, Y), 0.7)
    for ours, ref in zip(net.weights + net.biases, w_ref + b_ref):
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14)


def test_an_epoch_of_one_mini_batch_is_one_full_gradient_step():
    X, Y, _ = small_data(n=12)
    net = Network([4, 6, 3], seed=2)
    w_ref, b_ref = backprop.update_mini_batch(net.weights, net.biases, X, Y, 3.0)
    net.SGD((X, Y), 1, 12, 3.0, verbose=False)
    for ours, ref in zip(net.weights + net.biases, w_ref + b_ref):
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14)


def test_feedforward_matches_backprop_py_for_every_input_form():
    net = Network([64, 30, 10], seed=3)
    X = DIGITS.test.X[:5]
    reference = backprop.feedforward_batch(net.weights, net.biases, X)[1][-1]
    np.testing.assert_allclose(net.feedforward(X), reference, rtol=1e-13)
    column = net.feedforward(X[1].reshape(64, 1))  # the book's column vector
    assert column.shape == (10, 1)
    np.testing.assert_allclose(column[:, 0], reference[1], rtol=1e-13)
    flat = net.feedforward(X[1])
    assert flat.shape == (10,)
    np.testing.assert_allclose(flat, reference[1], rtol=1e-13)


@pytest.mark.parametrize("bad", [np.ones(63), np.ones((2, 65)), np.ones((64, 2)),
                                 np.ones((2, 2, 64))], ids=lambda a: str(a.shape))
def test_feedforward_rejects_wrong_shapes(bad):
    with pytest.raises(ValueError, match=r"feedforward: input of shape"):
        Network([64, 30, 10]).feedforward(bad)


def test_activation_applies_to_hidden_layers_and_the_output_stays_sigmoid():
    net = Network([4, 3, 3, 2], activation="tanh", seed=4)
    x = np.random.default_rng(0).uniform(0, 1, (3, 4))
    a = np.tanh(x @ net.weights[0].T + net.biases[0])
    a = np.tanh(a @ net.weights[1].T + net.biases[1])
    out = 1 / (1 + np.exp(-(a @ net.weights[2].T + net.biases[2])))
    np.testing.assert_allclose(net.feedforward(x), out, rtol=1e-13)
    relu_net = Network([4, 3, 2], activation="relu", seed=4)
    hidden = np.maximum(x @ relu_net.weights[0].T + relu_net.biases[0], 0)
    out = 1 / (1 + np.exp(-(hidden @ relu_net.weights[1].T + relu_net.biases[1])))
    np.testing.assert_allclose(relu_net.feedforward(x), out, rtol=1e-13)


def test_cross_entropy_network_learns_the_digits():
    net = Network([64, 30, 10], cost="cross-entropy", seed=0, init="scaled")
    history = net.SGD(DIGITS.train, 5, 10, 0.5, test_data=DIGITS.validation, verbose=False)
    assert history.epochs[-1].train_cost < history.epochs[0].train_cost
    assert history.epochs[-1].test_accuracy > 0.8


# --- the sequel's keywords: L2 regularisation, monitoring, early stopping ---


def test_update_mini_batch_with_lmbda_is_the_sequels_rule():
    # w ← (1 - ηλ/n) w - (η/m) Σ ∇C: the tutorial's step from the reference, minus (ηλ/n) w.
    X, Y, _ = small_data(n=7)
    net = Network([4, 5, 3], seed=1)
    w_old = [w.copy() for w in net.weights]
    w_ref, b_ref = backprop.update_mini_batch(net.weights, net.biases, X, Y, 0.7)
    net.update_mini_batch((X, Y), 0.7, lmbda=5.0, n=70)
    for ours, ref, old in zip(net.weights, w_ref, w_old):
        np.testing.assert_allclose(ours, ref - 0.7 * 5.0 / 70 * old, rtol=1e-12, atol=1e-14)
    for ours, ref in zip(net.biases, b_ref):  # biases are not decayed
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14)


def test_lmbda_step_is_the_sequels_shrink_bit_for_bit():
    """w ← (1 - η(λ/n)) w - η ∇C exactly as network2 writes it (the gradient taken at the
    old w), not w - η(∇C + (λ/n) w), which rounds differently (review of issue 16)."""
    X, Y, _ = small_data(n=7)
    net, twin = Network([4, 5, 3], seed=1), Network([4, 5, 3], seed=1)
    eta, lmbda, n = 0.7, 5.0, 70
    cost = twin._cost_fn(twin.model(X), Y)
    cost.backward()  # the gradient at the old weights, as the step computes it
    expected = [w * (1.0 - eta * (lmbda / n)) - g.grad.data * eta
                for w, g in ((layer.weight.data, layer.weight) for layer in twin.layers)]
    expected_b = [b.data - b.grad.data * eta for b in (layer.bias for layer in twin.layers)]
    net.update_mini_batch((X, Y), eta, lmbda=lmbda, n=n)
    for ours, want in zip(net.weights + net.biases, expected + expected_b):
        assert np.array_equal(ours, want)


def test_a_single_output_network_counts_as_the_book_does():
    """argmax of one output is 0: evaluate counts the examples labelled 0 (as network.py);
    it must not become 0 correct because accuracy is undefined for one output."""
    X = np.random.default_rng(0).normal(size=(10, 2))
    one = Network([2, 3, 1], seed=0)
    assert one.evaluate((X, np.zeros(10, dtype=np.int64))) == 10


def test_sgd_with_lmbda_uses_the_whole_training_set_size():
    X, Y, _ = small_data(n=12)
    a, b = Network([4, 6, 3], seed=2), Network([4, 6, 3], seed=2)
    a.SGD((X, Y), 1, 12, 3.0, lmbda=2.0, verbose=False)  # one mini-batch of all n = 12
    b.update_mini_batch((X, Y), 3.0, lmbda=2.0, n=12)
    for x, y in zip(a.weights + a.biases, b.weights + b.biases):  # shuffled: sums reordered
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="pass n, the size of the whole training set"):
        b.update_mini_batch((X, Y), 3.0, lmbda=2.0)


def test_zero_lmbda_changes_nothing():
    a, b = Network([64, 30, 10], seed=3), Network([64, 30, 10], seed=3)
    a.SGD(DIGITS.train, 1, 10, 3.0, verbose=False)
    b.SGD(DIGITS.train, 1, 10, 3.0, lmbda=0.0, verbose=False)
    assert same_weights(a, b)


def test_regularised_cost_adds_the_l2_term():
    X, Y, _ = small_data(n=20)
    net = Network([4, 5, 3], seed=0)
    squares = sum(float((w ** 2).sum()) for w in net.weights)
    assert net.total_cost((X, Y), lmbda=3.0) == pytest.approx(
        net.total_cost((X, Y)) + 0.5 * 3.0 / 20 * squares, rel=1e-14)


def test_the_sequels_four_lists_unpack_and_match_the_measurements(capsys):
    train, validation, _ = DIGITS
    net = Network([64, 30, 10], cost="cross-entropy", init="scaled", seed=0)
    evaluation_cost, evaluation_accuracy, training_cost, training_accuracy = net.SGD(
        train, 3, 10, 0.5, lmbda=5.0, evaluation_data=validation,
        monitor_evaluation_cost=True, monitor_evaluation_accuracy=True,
        monitor_training_cost=True, monitor_training_accuracy=True)
    assert len(evaluation_cost) == len(evaluation_accuracy) == len(training_cost) == 3
    assert len(training_accuracy) == 3
    # After the last epoch: the sequel's total_cost (with its L2 term) and accuracy counts.
    assert evaluation_cost[-1] == pytest.approx(net.total_cost(validation, lmbda=5.0), rel=1e-12)
    assert training_cost[-1] == pytest.approx(net.total_cost(train, lmbda=5.0), rel=1e-12)
    assert evaluation_accuracy[-1] == net.evaluate(validation)
    assert training_accuracy[-1] == net.evaluate(train)
    assert all(isinstance(c, int) for c in evaluation_accuracy + training_accuracy)
    lines = capsys.readouterr().out.splitlines()
    assert lines[:5] == [
        "Epoch 0 training complete",
        f"Cost on training data: {training_cost[0]}",
        f"Accuracy on training data: {training_accuracy[0]} / {len(train)}",
        f"Cost on evaluation data: {evaluation_cost[0]}",
        f"Accuracy on evaluation data: {evaluation_accuracy[0]} / 300"]
    assert len(lines) == 15


def test_history_is_the_four_lists_plus_the_epoch_record():
    X, Y, labels = small_data()
    history = Network([4, 5, 3], seed=0).SGD((X, Y), 2, 10, 1.0, test_data=(X, labels),
                                             evaluation_data=(X, labels),
                                             monitor_evaluation_accuracy=True, verbose=False)
    assert isinstance(history, tuple) and len(history) == 4
    assert history.evaluation_cost == [] and history.training_cost == []
    assert history.training_accuracy == []
    assert history.evaluation_accuracy == [s.evaluation_correct for s in history.epochs]
    assert [s.test_correct for s in history.epochs] == history.evaluation_accuracy
    assert history.epochs[0].evaluation_total == 40
    assert "2 epochs" in repr(history)
    for copied in (copy.deepcopy(history), pickle.loads(pickle.dumps(history))):
        assert copied == history and copied.epochs == history.epochs


def test_unmonitored_lists_stay_empty_and_the_tutorials_lines_are_kept(capsys):
    X, Y, labels = small_data()
    history = Network([4, 5, 3], seed=0).SGD((X, Y), 2, 10, 1.0, test_data=(X, labels))
    assert tuple(history) == ([], [], [], [])
    assert capsys.readouterr().out.splitlines() == [
        f"Epoch {s.epoch}: {s.test_correct} / 40" for s in history.epochs]


def test_early_stopping_after_n_epochs_without_a_better_accuracy(capsys):
    X, Y, labels = small_data()
    net = Network([4, 5, 3], seed=0)
    # A learning rate so small that the accuracy cannot change: the best is epoch 0's, and
    # the sequel stops when early_stopping_n epochs in a row have not beaten it.
    history = net.SGD((X, Y), 30, 10, 1e-12, evaluation_data=(X, labels), early_stopping_n=3)
    assert len(history.epochs) == 4
    assert history.evaluation_accuracy == []  # not monitored, but measured for the stopping
    assert capsys.readouterr().out.splitlines() == [
        f"Epoch {k} training complete" for k in range(4)]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"lmbda": -1.0}, ValueError, "lmbda must be a finite number >= 0"),
    ({"lmbda": math.nan}, ValueError, "lmbda"),
    ({"monitor_evaluation_cost": True}, ValueError, "monitor_evaluation_cost need"),
    ({"monitor_evaluation_accuracy": True}, ValueError, "evaluation_data"),
    ({"early_stopping_n": 2}, ValueError, "early_stopping_n need evaluation_data"),
    ({"early_stopping_n": -1}, ValueError, "early_stopping_n must be an integer >= 0"),
    ({"monitor_training_cost": "yes"}, ValueError, "must be True or False"),
])
def test_sequel_keywords_are_checked_before_training(kwargs, error, match):
    X, Y, _ = small_data()
    net = Network([4, 3, 3], seed=0)
    before = net.weights[0].copy()
    with pytest.raises(error, match=match):
        net.SGD((X, Y), 1, 10, 1.0, **kwargs)
    np.testing.assert_array_equal(net.weights[0], before)


def test_a_number_in_test_datas_place_points_to_lmbda():
    X, Y, _ = small_data()
    with pytest.raises(TypeError, match=r"lmbda is keyword-only here.*lmbda=5.0"):
        Network([4, 3, 3]).SGD((X, Y), 1, 10, 0.5, 5.0)


# --- data forms ---


def test_book_format_array_format_and_dataset_give_identical_training():
    train, _, test = DIGITS
    forms = {
        "book": (datasets.to_book_format(train), datasets.to_book_format(test, one_hot=False)),
        "arrays": ((train.X, train.one_hot()), (test.X, test.labels)),
        "dataset": (train, test),
        "zip": (zip(*zip(*datasets.to_book_format(train))), (test.X, test.one_hot())),
    }
    nets, histories = {}, {}
    for name, (training_data, test_data) in forms.items():
        nets[name] = Network([64, 30, 10], seed=5)
        histories[name] = nets[name].SGD(training_data, 2, 10, 3.0, test_data=test_data,
                                         verbose=False)
    for name in forms:
        assert same_weights(nets[name], nets["arrays"]), name
        assert histories[name].epochs == histories["arrays"].epochs, name


def test_as_arrays_normalises_every_form():
    X, Y, labels = small_data(n=5)
    book = [(x.reshape(4, 1), y.reshape(3, 1)) for x, y in zip(X, Y)]
    book_labels = [(x.reshape(4, 1), int(k)) for x, k in zip(X, labels)]
    for data, expected in [((X, Y), Y), ((X, labels), labels), (book, Y),
                           (book_labels, labels), (datasets.Dataset(X, labels), labels),
                           ([(x, y) for x, y in zip(X, Y)], Y)]:
        Xa, T = as_arrays(data, 4, 3)
        np.testing.assert_array_equal(Xa, X)
        np.testing.assert_array_equal(T, expected)
        assert T.dtype == (np.int64 if T.ndim == 1 else np.float64)


def test_evaluate_counts_correct_argmax_predictions():
    net = Network([64, 30, 10], seed=6)
    guesses = net.feedforward(DIGITS.test.X).argmax(axis=1)
    expected = int(np.sum(guesses == DIGITS.test.labels))
    assert net.evaluate(DIGITS.test) == expected
    assert net.evaluate((DIGITS.test.X, DIGITS.test.one_hot())) == expected
    assert net.evaluate(datasets.to_book_format(DIGITS.test, one_hot=False)) == expected


# --- determinism ---


def test_same_seed_same_data_gives_bit_identical_weights():
    a, b = Network([64, 30, 10], seed=11), Network([64, 30, 10], seed=11)
    assert same_weights(a, b)
    for net in (a, b):
        net.SGD(DIGITS.train, 2, 10, 3.0, verbose=False)
    assert same_weights(a, b)
    c = Network([64, 30, 10], seed=12)
    c.SGD(DIGITS.train, 2, 10, 3.0, verbose=False)
    assert not same_weights(a, c)


def test_training_does_not_modify_the_callers_data():
    X, Y, _ = small_data()
    X_before, Y_before = X.copy(), Y.copy()
    Network([4, 3, 3], seed=0).SGD((X, Y), 2, 5, 1.0, verbose=False)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(Y, Y_before)


# --- what SGD prints and returns ---


def test_history_and_printed_lines(capsys):
    X, Y, labels = small_data()
    net = Network([4, 5, 3], seed=0)
    history = net.SGD((X, Y), 3, 7, 2.0, test_data=(X, labels))
    out = capsys.readouterr().out.splitlines()
    assert out == [f"Epoch {s.epoch}: {s.test_correct} / 40" for s in history.epochs]
    assert [s.epoch for s in history.epochs] == [0, 1, 2]
    assert all(isinstance(s, EpochStats) for s in history.epochs)
    assert history.epochs[-1].test_correct == net.evaluate((X, labels))
    # The whole training set's cost is a pass over all of it: measured only when asked
    # (issue 17), then it is eq. 2.1 over the training data after the epoch.
    assert all(s.training_cost is None for s in history.epochs)
    monitored = net.SGD((X, Y), 1, 7, 2.0, monitor_training_cost=True, verbose=False)
    assert monitored.epochs[-1].training_cost == pytest.approx(net.total_cost((X, Y)),
                                                               rel=1e-14)
    assert monitored.training_cost == [monitored.epochs[-1].training_cost]
    assert history.epochs[-1].test_accuracy == history.epochs[-1].test_correct / 40


def test_without_test_data_each_epoch_is_complete(capsys):
    X, Y, _ = small_data()
    history = Network([4, 5, 3], seed=0).SGD((X, Y), 2, 10, 1.0)
    assert capsys.readouterr().out.splitlines() == ["Epoch 0 complete", "Epoch 1 complete"]
    assert history.epochs[0].test_correct is None and history.epochs[0].test_accuracy is None


def test_verbose_false_prints_nothing(capsys):
    X, Y, _ = small_data()
    Network([4, 5, 3], seed=0).SGD((X, Y), 2, 10, 1.0, test_data=(X, Y), verbose=False)
    assert capsys.readouterr().out == ""


def test_progress_hook_wraps_each_epochs_mini_batches():
    X, Y, _ = small_data(n=23)
    calls = []

    def progress(iterable, total, desc):
        calls.append((total, desc))
        yield from iterable

    Network([4, 5, 3], seed=0).SGD((X, Y), 2, 5, 1.0, verbose=False, progress=progress)
    assert calls == [(5, "Epoch 0"), (5, "Epoch 1")]  # ceil(23 / 5) mini-batches


def test_zero_epochs_changes_nothing():
    X, Y, _ = small_data()
    net = Network([4, 5, 3], seed=0)
    before = [w.copy() for w in net.weights]
    assert net.SGD((X, Y), 0, 10, 1.0).epochs == []
    assert all(np.array_equal(w, v) for w, v in zip(net.weights, before))


# --- validation ---


@pytest.mark.parametrize("kwargs, match", [
    ({"sizes": [10]}, "at least 2 layers"),
    ({"sizes": [10, 0]}, ">= 1"),
    ({"sizes": [10, 2.5]}, ">= 1"),
    ({"sizes": "784,30,10"}, "list of layer widths"),
    ({"sizes": [4, 3], "cost": "hinge"}, "cost must be one of"),
    ({"sizes": [4, 3], "activation": "softmax"}, "activation must be one of"),
    ({"sizes": [4, 3], "init": "uniform"}, "init must be one of"),
])
def test_network_rejects_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Network(**kwargs)


@pytest.mark.parametrize("epochs, batch, eta, match", [
    (-1, 10, 3.0, "epochs"), (1.5, 10, 3.0, "epochs"), (1, 0, 3.0, "mini_batch_size"),
    (1, 10, 0.0, "eta"), (1, 10, -3.0, "eta"), (1, 10, math.nan, "eta"),
    (1, 10, math.inf, "eta"),
])
def test_sgd_rejects_bad_hyperparameters(epochs, batch, eta, match):
    X, Y, _ = small_data()
    with pytest.raises(ValueError, match=match):
        Network([4, 3, 3]).SGD((X, Y), epochs, batch, eta)


def data_errors():
    X, Y, labels = small_data()
    nan_X = X.copy()
    nan_X[7, 2] = np.nan
    inf_Y = Y.copy()
    inf_Y[3, 0] = np.inf
    bad_labels = labels.copy()
    bad_labels[9] = 3
    book = [(x.reshape(4, 1), y.reshape(3, 1)) for x, y in zip(X, Y)]
    return [
        ("nan", (nan_X, Y), r"row 7 of X holds nan \(column 2\)"),
        ("inf", (X, inf_Y), r"row 3 of the targets holds inf"),
        ("width", (X[:, :3], Y), "3 inputs but the network's input layer has 4"),
        ("label-range", (X, bad_labels), "row 9 has label 3, outside 0..2"),
        ("negative-label", (X, -labels - 1), "outside 0..2"),
        ("float-labels", (X, labels.astype(float)), "labels must be integers"),
        ("target-width", (X, Y[:, :2]), r"targets must have shape \(n, 3\)"),
        ("lengths", (X, Y[:-1]), "40 examples but 39"),
        ("empty", (X[:0], Y[:0]), "no examples"),
        ("empty-book", [], "no examples"),
        ("X-1d", (X[0], Y), "X must have shape"),
        ("ragged-book", book[:3] + [(np.ones(5), Y[0])], "example 3 has 5 inputs"),
        ("mixed-book", book[:2] + [(X[2], 1)], "example 2 has not"),
        ("not-a-pair", [(X[0], Y[0], 1)], "not an \\(x, y\\) pair"),
        ("list-of-arrays", [X, Y], "pass arrays as a tuple"),
    ]


@pytest.mark.parametrize("name, data, match", data_errors(), ids=[e[0] for e in data_errors()])
def test_bad_data_is_rejected_before_training_with_a_clear_error(name, data, match):
    net = Network([4, 3, 3], seed=0)
    before = [w.copy() for w in net.weights + net.biases]
    with pytest.raises(ValueError, match=match) as info:
        net.SGD(data, 1, 10, 1.0, verbose=False)
    assert "training_data" in str(info.value)
    assert all(np.array_equal(w, v) for w, v in zip(net.weights + net.biases, before))


def test_bad_test_data_is_rejected_before_training():
    X, Y, labels = small_data()
    net = Network([4, 3, 3], seed=0)
    before = net.weights[0].copy()
    with pytest.raises(ValueError, match=f"test_data: row 0 has label {labels[0] + 7}"):
        net.SGD((X, Y), 1, 10, 1.0, test_data=(X, labels + 7))
    np.testing.assert_array_equal(net.weights[0], before)


def test_data_of_the_wrong_kind_is_a_type_error():
    with pytest.raises(TypeError, match="training_data: expected"):
        Network([4, 3]).SGD(42, 1, 10, 1.0)


# --- save and load ---


def test_save_load_round_trip_is_exact(tmp_path):
    net = Network([64, 30, 10], cost="cross-entropy", activation="tanh", seed=7)
    net.SGD(DIGITS.train, 1, 10, 0.5, verbose=False)
    path = tmp_path / "model.npz"
    net.save(path)
    for loaded in (Network.load(path), network.load(str(path))):
        assert loaded.sizes == net.sizes
        assert loaded.cost == "cross-entropy" and loaded.activation == "tanh"
        assert same_weights(loaded, net)
        np.testing.assert_array_equal(loaded.feedforward(DIGITS.test.X),
                                      net.feedforward(DIGITS.test.X))
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_saved_file_holds_plain_arrays_only(tmp_path):
    path = tmp_path / "m.npz"
    Network([3, 2, 1], seed=0).save(path)
    with np.load(path, allow_pickle=False) as f:
        assert sorted(f.files) == ["activation", "bias_0", "bias_1", "cost", "init", "sizes",
                                   "weight_0", "weight_1"]
        assert f["cost"].dtype.kind == "U" and str(f["cost"]) == "quadratic"
        assert str(f["init"]) == "standard"
        assert f["sizes"].tolist() == [3, 2, 1] and f["sizes"].dtype == np.int64
        assert f["weight_0"].shape == (2, 3) and f["bias_1"].shape == (1,)


def test_one_reader_for_network_files_states_and_checkpoints(tmp_path):
    """Issue 16: a Network's file is `nn.save_state`'s format (its state dict, in Nielsen's
    names, plus `nn.BUILT_BY`), so nn.load_state and nn.load_checkpoint read it too."""
    net = Network([3, 4, 2], cost="cross-entropy", activation="relu", init="scaled", seed=3)
    assert list(net.state_dict()) == ["weight_0", "bias_0", "weight_1", "bias_1"]
    net.save(tmp_path / "n.npz")
    other = Network([3, 4, 2], seed=4)
    nn.load_state(other, tmp_path / "n.npz")
    assert same_weights(other, net)
    other = Network([3, 4, 2], seed=5)
    assert nn.load_checkpoint(tmp_path / "n.npz", other) == {"epoch": None, "extra": None}
    assert same_weights(other, net)
    loaded = Network.load(tmp_path / "n.npz")
    assert (loaded.cost, loaded.activation, loaded.init) == ("cross-entropy", "relu", "scaled")
    with pytest.raises(ValueError, match="missing keys"):
        nn.load_state(Network([3, 4, 4, 2]), tmp_path / "n.npz")
    nn.save_state(net, tmp_path / "n2.npz")  # no description of what built it
    with pytest.raises(ValueError, match=r"n2\.npz: missing array 'sizes'"):
        Network.load(tmp_path / "n2.npz")
    with pytest.raises(ValueError, match="built_by keys"):
        nn.save_state(net, tmp_path / "n3.npz", built_by={"seed": 3})


#: A Network([3, 2, 1], cost="cross-entropy", activation="tanh", seed=0) as `Network.save`
#: wrote it before issue 16 (arrays sizes, weight_i, bias_i, cost, activation), and
#: `save_state` of Sequential(Linear(2, 2, rng=0), Sigmoid(), Linear(2, 1, rng=1)); the
#: bytes of those very files, zlib-compressed, in base64.
OLD_NETWORK_FILE = (
    "eNoL8GZm0WWAAEWGc1Heov+hgJNBhKE4syq1WC+voJKRQYBhBlQZjJ7sF+obEMnIUMZQrZ6SWpxcpG6loG6TaaGu"
    "o6Cell9UUpSYF59flJIKEndLzClOBYoXZyQWpAL5GsY6mjoKtQoUAC5mqDuYoDQjlA5A8dLfHzd2wrzEAfRScn5x"
    "CcxHW6CqtuD1UaihMVFeotRDClzJQDcUAXE+EBdDMcgnqUCcB8QlSPIFQFyJ4dvKPX59MN/yAX2bmFySWZZYkpmf"
    "B/PzBKjaCfj9bEIfLytwgfyUCPVfBoZ/jt1U+wrzDw/QP+WpmekZJfEGMN9sgKrcgNc3acSlSSMdBWPKfMTl2HK7"
    "8634Afszrntfnn9xYH/uhowl4XVP7D9caXmz+9Yu+7fOzyRMVB7uf3bx3NR4lev2qL4t1z/0BOZbLqBvkzITixF+"
    "JS7miPYrxfnPRmCvmv7dL/aL92TuqfF7h+aXF09ajmOJOUOa+MZQR8GIwpjTWH/r4P+WZ/t3n5gzVcv+y35U3xS5"
    "nI7GiBm4Xzqg6jqo4xeKY+b3FwXPux8fA/3AyKTLjFq8z4CW4JwMCNAALjrhhT26NlARugVaTHKgaLsMJGEFKrou"
    "UFE0ARrBfCi6DgKtQy2Y0PWCsv0GaLbmQdE7EVjaIxcC6DpBWQhmKxeKznpgfYHIUOj6QMkVpg/VRm8WBpTEi64T"
    "lDQ6oJGPaqMkKwNSQgnwZmUDibMDYS8wBO6ygngAs1e5dQ==")
OLD_STATE_FILE = (
    "eNoL8GZm0WWAAEUGlyM1Fv+hgIdBhMFArzw1Mz2jRC+voJKRQYBhAVQljJ7sF+obEMnIUMZQrZ6SWpxcpG6loG6T"
    "ZqGuo6Cell9UUpSYF59flJIKEndLzClOBYoXZyQWpAL5GkY6CkaaOgq1CmQDLpXC+x7vT52wn2C9eYvatSv7524L"
    "dn139Ml+9e/qqSoPn+4PQPHdhU+Ma2C+4wL7LikzsRjmtwlQdROo4zfKfAb02wTxrhPzou7Yr7mzWPj+2kf2qH45"
    "tUpiOnJMGaHFFFV9Y0h5TDXkMjjOkptoP2HB3pm7kp6g+ea4/LZS5JgxQomZDqi6Dur4heKYuebYeqlO6gEwdTEy"
    "6TKj5p4F0NzBw4AADYwgEjkvoesEpcwJ0NjiQtF5D6wTFhro+kCpAKYP1cZVQDuN8NgICvEOaJii2ljBxIAU/gHe"
    "rGwgcRYgfAKkbZhBPACvjP3p")


def test_files_written_before_the_one_format_still_load(tmp_path):
    (tmp_path / "n.npz").write_bytes(zlib.decompress(base64.b64decode(OLD_NETWORK_FILE)))
    (tmp_path / "s.npz").write_bytes(zlib.decompress(base64.b64decode(OLD_STATE_FILE)))
    want = Network([3, 2, 1], cost="cross-entropy", activation="tanh", seed=0)
    loaded = Network.load(tmp_path / "n.npz")
    assert (loaded.sizes, loaded.cost, loaded.activation) == ([3, 2, 1], "cross-entropy", "tanh")
    assert same_weights(loaded, want)
    loaded.save(tmp_path / "n.npz")  # rewritten in today's format: the same network
    assert same_weights(Network.load(tmp_path / "n.npz"), want)
    module = nn.Sequential(nn.Linear(2, 2, rng=5), nn.Sigmoid(), nn.Linear(2, 1, rng=6))
    nn.load_state(module, tmp_path / "s.npz")
    want = nn.Sequential(nn.Linear(2, 2, rng=0), nn.Sigmoid(), nn.Linear(2, 1, rng=1))
    for name, array in want.state_dict().items():
        np.testing.assert_array_equal(module.state_dict()[name], array)
    assert nn.load_checkpoint(tmp_path / "s.npz", module)["epoch"] is None


def good_arrays():
    net = Network([3, 2, 1], seed=0)
    arrays = {"sizes": np.array([3, 2, 1]), "cost": np.array("quadratic"),
              "activation": np.array("sigmoid")}
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"weight_{i}"], arrays[f"bias_{i}"] = w, b
    return arrays


def malformed_files():
    cases = []
    arrays = good_arrays()
    del arrays["bias_1"]
    cases.append(("missing-bias", arrays, "missing array 'bias_1'"))
    arrays = good_arrays()
    del arrays["sizes"]
    cases.append(("missing-sizes", arrays, "missing array 'sizes'"))
    arrays = good_arrays()
    arrays["weight_0"] = np.zeros((3, 2))
    cases.append(("wrong-shape", arrays, r"'weight_0' has shape \(3, 2\).*need \(2, 3\)"))
    arrays = good_arrays()
    arrays["bias_0"] = np.zeros(3)
    cases.append(("wrong-bias-shape", arrays, r"'bias_0' has shape \(3,\)"))
    arrays = good_arrays()
    arrays["weight_1"] = np.array([[None, None]], dtype=object)
    cases.append(("object-array", arrays, "holds object arrays: 'weight_1' would need pickle"))
    arrays = good_arrays()
    arrays["sizes"] = np.array([3])
    cases.append(("short-sizes", arrays, "'sizes' must be at least 2 integers"))
    arrays = good_arrays()
    arrays["sizes"] = np.array([3.0, 2.0, 1.0])
    cases.append(("float-sizes", arrays, "'sizes' must be at least 2 integers"))
    arrays = good_arrays()
    arrays["cost"] = np.array("hinge")
    cases.append(("bad-cost", arrays, "cost must be one of"))
    arrays = good_arrays()
    arrays["weight_0"] = np.full((2, 3), np.nan)
    cases.append(("nan-weights", arrays, "'weight_0' holds NaN"))
    return cases


@pytest.mark.parametrize("name, arrays, match", malformed_files(),
                         ids=[c[0] for c in malformed_files()])
def test_malformed_files_give_clear_errors(tmp_path, name, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=match) as info:
        Network.load(path)
    assert str(path) in str(info.value)


def test_files_that_are_not_npz_archives(tmp_path):
    text = tmp_path / "model.npz"
    text.write_text("not a model\n")
    with pytest.raises(ValueError, match="model.npz is not an .npz archive, so not a "
                                         "tinygrad_nn model file"):
        Network.load(text)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="single array"):
        Network.load(single)
    with pytest.raises(FileNotFoundError):
        Network.load(tmp_path / "absent.npz")


def test_cost_and_activation_default_when_absent(tmp_path):
    arrays = good_arrays()
    del arrays["cost"], arrays["activation"]
    np.savez(tmp_path / "m.npz", **arrays)
    net = Network.load(tmp_path / "m.npz")
    assert (net.cost, net.activation) == ("quadratic", "sigmoid")


def test_failed_save_leaves_the_previous_file_intact_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = Network([3, 2, 1], seed=1)
    old.save(path)
    content = path.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("No space left on device")

    monkeypatch.setattr(network.np, "savez", broken_savez)
    with pytest.raises(OSError, match="No space left"):
        Network([3, 2, 1], seed=2).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == content
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    assert same_weights(Network.load(path), old)


def test_save_into_a_missing_folder_fails_and_creates_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        Network([3, 2, 1]).save(tmp_path / "absent" / "model.npz")
    assert os.listdir(tmp_path) == []


def test_save_overwrites_with_the_new_network(tmp_path):
    path = tmp_path / "model.npz"
    Network([3, 2, 1], seed=1).save(path)
    new = Network([3, 4, 1], seed=2)
    new.save(path)
    assert same_weights(Network.load(path), new)


# --- real data ---


def test_fashion_mnist_one_epoch_of_784_30_10():
    folder = datasets.find_fashion_mnist()
    if folder is None:
        pytest.skip(f"Fashion-MNIST not found in {datasets.FASHION_MNIST_DIR} "
                    f"(apt-get install dataset-fashion-mnist)")
    training_data, validation_data, test_data = datasets.load_mnist(folder)
    net = Network([784, 30, 10], seed=0)
    start = time.perf_counter()
    history = net.SGD(training_data, 1, 10, 3.0, test_data=test_data, verbose=False)
    seconds = time.perf_counter() - start
    assert len(training_data) == 50_000 and history.epochs[0].test_total == 10_000
    # Ten classes: chance is 10%; one epoch of the tutorial's network does far better.
    assert history.epochs[0].test_accuracy > 0.5, (history, seconds)


# --- issue 16: one training path, and the small inconsistencies it fixed ---


def test_assigning_one_weight_or_bias_writes_into_the_layer():
    net = Network([3, 2, 1], seed=0)
    net.weights[0] = np.ones((2, 3))
    net.biases[-1] = np.array([[0.5]])  # the book's column (n, 1)
    assert np.array_equal(net.layers[0].weight.data, np.ones((2, 3)))
    assert net.layers[1].bias.data.tolist() == [0.5]
    with pytest.raises(ValueError, match=r"weights\[1\]: expected shape \(1, 2\)"):
        net.weights[1] = np.ones((2, 1))


def test_biases_may_be_set_as_the_books_columns():
    net = Network([3, 2, 1], seed=0)
    net.biases = [np.zeros((2, 1)), np.ones((1, 1))]
    assert [b.shape for b in net.biases] == [(2,), (1,)]
    assert net.biases[1].tolist() == [1.0]


def test_history_repr_shows_what_was_recorded():
    X, Y, labels = small_data()
    history = Network([4, 5, 3], seed=0).SGD((X, Y), 2, 10, 1.0, test_data=(X, labels),
                                             verbose=False)
    last = history.epochs[-1]
    assert f"test {last.test_correct} / 40" in repr(history) and "train_cost" in repr(history)


def test_sgd_is_fit_with_callbacks(monkeypatch):
    from tinygrad_nn import training

    calls = []
    original = training.fit

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "fit", spy)
    X, Y, labels = small_data()
    net = Network([4, 5, 3], seed=0)
    net.SGD((X, Y), 2, 10, 1.0, evaluation_data=(X, labels), early_stopping_n=1, verbose=False)
    kwargs, = calls
    assert kwargs["patience"] == 1 and kwargs["restore_best"] is False
    assert len(kwargs["callbacks"]) == 1
