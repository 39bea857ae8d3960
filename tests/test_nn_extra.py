"""Tests for the newer parts of tinygrad_nn.nn: Dropout, train/eval, Softmax, LeakyReLU, Flatten,
weight initialisation by name, state_dict / load_state_dict and save_state / load_state."""

from __future__ import annotations

import gc
import math
import os
import warnings
from collections import OrderedDict

import numpy as np
import pytest

from tinygrad_nn import Tensor, gradcheck
from tinygrad_nn.nn import (
    INITS,
    Dropout,
    Flatten,
    LeakyReLU,
    Linear,
    Module,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    init_weights,
    load_state,
    save_state,
)

# --- Dropout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan"), True, "0.5", None])
def test_dropout_refuses_p_outside_0_to_1(p):
    with pytest.raises(ValueError, match=r"Dropout: p .* \[0, 1\)"):
        Dropout(p)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_keeps_and_scales_exactly_the_seeded_draw(p):
    """out = x ⊙ m/(1 - p) with m = (rng.random(shape) >= p): checked element by element."""
    x = np.random.default_rng(0).uniform(0.5, 2.0, (4, 250))  # no zeros: zeros mean dropped
    out = Dropout(p, rng=123)(x).data
    keep = np.random.default_rng(123).random(x.shape) >= p  # the same draw, made here
    np.testing.assert_array_equal(out != 0, keep)
    np.testing.assert_array_equal(out[keep], x[keep] * (1 / (1 - p)))
    assert np.count_nonzero(out) == np.count_nonzero(keep)


def test_dropout_preserves_the_mean_in_expectation():
    """E[m/(1 - p)] = 1. With n = 10⁵ draws the kept fraction has standard deviation
    √(p(1-p)/n) ≈ 0.0014 for p = 0.3, so 5 of them (0.007) is a bound a correct
    implementation fails about once in 10⁶ seeds, while a forgotten 1/(1 - p) (mean 0.7) or a
    mask kept with probability p (0.3/0.7) misses it by far. The seed is fixed anyway."""
    p, n = 0.3, 100_000
    out = Dropout(p, rng=2024)(np.ones(n)).data
    kept = np.count_nonzero(out) / n
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(kept - (1 - p)) < 5 * sigma
    assert abs(out.mean() - 1) < 5 * sigma / (1 - p)


def test_dropout_in_eval_mode_is_the_identity():
    drop = Dropout(0.5, rng=0)
    assert drop.eval() is drop and drop.training is False
    x = Tensor(np.arange(1.0, 7.0), requires_grad=True)
    out = drop(x)
    assert out is x
    np.testing.assert_array_equal(drop(np.ones(3)).data, np.ones(3))
    drop.train()
    assert drop.training is True
    assert (drop(np.ones(1000)).data == 0).any()


def test_dropout_masks_differ_between_calls_and_a_seed_repeats_the_sequence():
    a, b = Dropout(0.5, rng=7), Dropout(0.5, rng=7)
    first, second = a(np.ones(64)).data, a(np.ones(64)).data
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(b(np.ones(64)).data, first)
    np.testing.assert_array_equal(b(np.ones(64)).data, second)
    gen = np.random.default_rng(7)  # a Generator is used (and consumed) as given
    np.testing.assert_array_equal(Dropout(0.5, rng=gen)(np.ones(64)).data, first)
    np.testing.assert_array_equal(Dropout(0.5, rng=gen)(np.ones(64)).data, second)


def test_dropout_gradient_uses_the_same_mask_and_scale():
    drop = Dropout(0.25, rng=5)
    x = Tensor(np.full((3, 4), 2.0), requires_grad=True)
    out = drop(x)
    out.backward(np.ones((3, 4)))
    np.testing.assert_array_equal(x.grad.data, out.data / 2.0)  # m/(1 - p), where x = 2
    # The mask is a constant: gradcheck on a fresh call with the same seed each time.
    assert gradcheck(lambda t: Dropout(0.25, rng=5)(t), Tensor(np.ones((3, 4)),
                                                               requires_grad=True))


def test_dropout_with_p_0_is_the_identity_and_float32_stays_float32():
    x = Tensor(np.ones(5))
    assert Dropout(0.0)(x) is x
    y = Dropout(0.5, rng=1)(Tensor(np.ones(100, dtype=np.float32), requires_grad=True))
    assert y.dtype == np.float32
    assert set(np.unique(y.data)) <= {np.float32(0.0), np.float32(2.0)}
    assert repr(Dropout(0.2)) == "Dropout(p=0.2)"


# --- train / eval ----------------------------------------------------------------------------


class Blocks(Module):
    """Sub-modules in a list, a nested Sequential, and the same module reachable twice."""

    def __init__(self):
        self.layers = [Linear(3, 4, rng=0), Dropout(0.5, rng=1)]
        self.head = Sequential(Linear(4, 2, rng=2), Dropout(0.1, rng=3), Sigmoid())
        self.again = self.layers[0]
        self.scale = Tensor(1.5, requires_grad=True)
        self.constant = Tensor([1.0, 2.0])  # no grad: not a parameter, not state

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.head(x) * self.scale


def test_train_and_eval_reach_every_sub_module_and_return_self():
    net = Blocks()
    modules = net.modules()
    assert len(modules) == 7  # Blocks, 2 in the list, the head and its 3; `again` once
    assert len({id(m) for m in modules}) == len(modules)
    assert all(m.training for m in modules)  # the class default
    assert net.eval() is net
    assert not any(m.training for m in modules)
    assert net.train() is net
    assert all(m.training for m in modules)
    net.train(False)
    assert not any(m.training for m in modules)


def test_eval_makes_a_network_with_dropout_deterministic():
    net = Blocks()
    x = np.random.default_rng(0).standard_normal((5, 3))
    assert not np.array_equal(net(x).data, net(x).data)
    net.eval()
    np.testing.assert_array_equal(net(x).data, net(x).data)


def test_train_refuses_a_mode_that_is_not_a_bool():
    with pytest.raises(ValueError, match="train: mode must be True or False"):
        Blocks().train("no")


# --- Softmax, LeakyReLU, Flatten -------------------------------------------------------------


def test_softmax_layer_rows_sum_to_one_along_its_axis():
    z = np.random.default_rng(1).standard_normal((4, 3))
    rows = Softmax()(z).data
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(rows, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True),
                               rtol=1e-14)
    np.testing.assert_allclose(Softmax(axis=0)(z).data.sum(axis=0), 1.0, rtol=1e-15)
    assert repr(Softmax()) == "Softmax(axis=-1)" and Softmax().parameters() == []


def test_leaky_relu_layer():
    z = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(LeakyReLU()(z).data, [-0.02, 0.0, 3.0])
    np.testing.assert_array_equal(LeakyReLU(0.5)(Tensor(z)).data, [-1.0, 0.0, 3.0])
    assert repr(LeakyReLU(0.2)) == "LeakyReLU(slope=0.2)"


def test_flatten_layer_keeps_the_batch_axis():
    x = np.arange(48.0).reshape(2, 2, 3, 4)
    assert Flatten()(x).shape == (2, 24)
    assert Flatten(start_axis=2)(x).shape == (2, 2, 12)
    assert Flatten(0)(x).shape == (48,)
    np.testing.assert_array_equal(Flatten()(x).data, x.reshape(2, 24))
    net = Sequential(Flatten(), Linear(24, 3, rng=0), LeakyReLU(), Softmax())
    assert net(x).shape == (2, 3)
    assert repr(Flatten()) == "Flatten(start_axis=1)"


# --- weight initialisation -------------------------------------------------------------------

N_OUT, N_IN = 500, 400
#: The standard deviation of each scheme, written from its formula (not from the code).
STDS = {
    "standard": 1.0,
    "scaled": 1 / math.sqrt(N_IN),
    "xavier": math.sqrt(2 / (N_IN + N_OUT)),
    "glorot": math.sqrt(2 / (N_IN + N_OUT)),
    "he": math.sqrt(2 / N_IN),
    "kaiming": math.sqrt(2 / N_IN),
}


def test_every_scheme_has_a_formula_here():
    # "pytorch" is uniform, U(-1/√n_in, 1/√n_in): tests/test_layers.py checks it.
    assert set(INITS) == set(STDS) | {"pytorch"}


@pytest.mark.parametrize("scheme", sorted(STDS))
def test_init_weights_scales_the_seeded_standard_normals_by_the_formula(scheme):
    """Exact: the same seed's N(0, 1) draws times the scheme's σ (so normal, not uniform)."""
    w = init_weights((N_OUT, N_IN), scheme, rng=11)
    draws = np.random.default_rng(11).standard_normal((N_OUT, N_IN))
    assert w.shape == (N_OUT, N_IN) and w.dtype == np.float64
    np.testing.assert_allclose(w, draws * STDS[scheme], rtol=1e-15)


@pytest.mark.parametrize("scheme", ["standard", "scaled", "xavier", "he"])
def test_init_weights_sample_variance_matches_the_formula(scheme):
    """Independent of how the draw is made. For N = 200,000 normal draws the sample variance
    has relative standard deviation √(2/N) ≈ 0.0032; 5 of them (1.6%) separates every pair of
    schemes here (xavier's 2/900 and scaled's 1/400 differ by 11%)."""
    w = init_weights((N_OUT, N_IN), scheme, rng=np.random.default_rng(3))
    tolerance = 5 * math.sqrt(2 / w.size)
    assert abs(w.var() / STDS[scheme] ** 2 - 1) < tolerance
    assert abs(w.mean()) < 5 * STDS[scheme] / math.sqrt(w.size)
    # Normal, not uniform: a uniform law of this variance never exceeds √3 σ, a normal one
    # does in 8% of draws.
    assert np.mean(np.abs(w) > math.sqrt(3) * STDS[scheme]) > 0.07


@pytest.mark.parametrize(("args", "match"), [
    (((3, 4), "uniform"), "scheme must be one of"),
    (((3,), "he"), r"shape must be \(n_out, n_in\)"),
    (((3, 4, 0), "he"), "positive integers"),
    (((0, 4), "he"), "positive integers"),
    (([3, 4], "he"), "positive integers"),
])
def test_init_weights_refuses_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        init_weights(*args)


@pytest.mark.parametrize("init", ["standard", "scaled"])
def test_standard_and_scaled_linear_layers_are_bit_identical_to_before(init):
    # The construction of earlier versions, written out: weights, then biases, one generator.
    rng = np.random.default_rng(9)
    weight = rng.standard_normal((3, 5))
    if init == "scaled":
        weight /= np.sqrt(5)
    bias = rng.standard_normal(3)
    layer = Linear(5, 3, init=init, rng=9)
    np.testing.assert_array_equal(layer.weight.data, weight)
    np.testing.assert_array_equal(layer.bias.data, bias)


@pytest.mark.parametrize("init", ["xavier", "glorot", "he", "kaiming"])
def test_linear_with_xavier_or_he_uses_init_weights_and_zero_biases(init):
    layer = Linear(5, 3, init=init, rng=4)
    np.testing.assert_array_equal(layer.weight.data, init_weights((3, 5), init, rng=4))
    np.testing.assert_array_equal(layer.bias.data, np.zeros(3))
    assert layer.bias.requires_grad and repr(layer) == f"Linear(n_in=5, n_out=3, init={init!r})"


# --- state_dict / load_state_dict ------------------------------------------------------------


def test_state_dict_names_follow_attribute_paths_in_parameter_order():
    net = Blocks()
    state = net.state_dict()
    assert isinstance(state, OrderedDict)
    assert list(state) == ["layers.0.weight", "layers.0.bias", "head.0.weight", "head.0.bias",
                           "scale"]
    assert [name for name, _ in net.named_parameters()] == list(state)
    assert all(p is q for (_, p), q in zip(net.named_parameters(), net.parameters()))
    seq = Sequential(Linear(2, 3, rng=0), ReLU(), Linear(3, 1, rng=1))
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_state_dict_holds_copies():
    net = Blocks()
    state = net.state_dict()
    np.testing.assert_array_equal(state["head.0.bias"], net.head[0].bias.data)
    state["head.0.bias"][:] = 99.0
    assert not (net.head[0].bias.data == 99.0).any()
    net.head[0].bias.data[:] = -1.0
    assert (state["head.0.bias"] == 99.0).all()


def test_load_state_dict_round_trip_in_place():
    source, target = Sequential(Linear(3, 4, rng=0), Sigmoid()), Sequential(
        Linear(3, 4, rng=1), Sigmoid())
    tensors = target.parameters()
    target.load_state_dict(source.state_dict())
    assert all(p is q for p, q in zip(target.parameters(), tensors))  # same Tensor objects
    x = np.random.default_rng(2).standard_normal((5, 3))
    np.testing.assert_array_equal(target(x).data, source(x).data)


def test_load_state_dict_keeps_each_tensor_dtype():
    layer = Linear(2, 2, rng=0)
    layer.weight = Tensor(layer.weight.data.astype(np.float32), requires_grad=True)
    layer.load_state_dict({"weight": np.full((2, 2), 0.1), "bias": Tensor([1.0, 2.0])})
    assert layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, np.full((2, 2), np.float32(0.1)))
    np.testing.assert_array_equal(layer.bias.data, [1.0, 2.0])


def test_load_state_dict_lists_every_problem_and_changes_nothing():
    net = Sequential(Linear(3, 4, rng=0), Linear(4, 2, rng=1))
    before = net.state_dict()
    state = net.state_dict()
    del state["1.bias"]
    state["1.weight"] = np.zeros((2, 5))
    state["2.weight"] = np.zeros(1)
    state["0.bias"] = np.zeros(4)  # valid, but must not be copied either
    with pytest.raises(ValueError) as info:
        net.load_state_dict(state)
    message = str(info.value)
    assert "load_state_dict" in message and "Sequential" in message
    assert "missing keys ['1.bias']" in message
    assert "unexpected keys ['2.weight']" in message
    assert "'1.weight' has shape (2, 5) in the state but (2, 4) in the module" in message
    for name, value in net.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_refuses_arrays_that_are_not_numbers():
    layer = Linear(1, 1, rng=0)
    with pytest.raises(ValueError, match="'bias' holds <U1, not numbers"):
        layer.load_state_dict({"weight": np.zeros((1, 1)), "bias": np.array(["a"])})


# --- save_state / load_state -----------------------------------------------------------------


def test_save_and_load_state_round_trip(tmp_path):
    source, target = Blocks(), Blocks()
    target.load_state_dict({k: v + 1 for k, v in target.state_dict().items()})
    path = tmp_path / "weights.bin"
    save_state(source, path)
    assert sorted(os.listdir(tmp_path)) == ["weights.bin"]  # as given; no temporary left
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == sorted(source.state_dict())
    load_state(target, str(path))
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_save_state_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "net.npz"
    save_state(Linear(2, 2, rng=0), path)
    original = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_state(Linear(2, 2, rng=1), path)
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["net.npz"]


def test_load_state_errors_name_the_file(tmp_path):
    layer = Linear(2, 2, rng=0)
    with pytest.raises(FileNotFoundError):
        load_state(layer, tmp_path / "missing.npz")
    text = tmp_path / "notes.txt"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match=r"notes.txt is not an .npz archive"):
        load_state(layer, text)
    single = tmp_path / "one.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match="one.npy holds a single array"):
        load_state(layer, single)
    objects = tmp_path / "objects.npz"
    np.savez(objects, weight=np.array([{"a": 1}], dtype=object), bias=np.zeros(2))
    with pytest.raises(ValueError, match="objects.npz holds object arrays"):
        load_state(layer, objects)
    other = tmp_path / "other.npz"
    save_state(Linear(3, 2, rng=0), other)
    with pytest.raises(ValueError, match=r"other.npz: .*'weight' has shape \(2, 3\)"):
        load_state(layer, other)


def test_load_state_refuses_a_directory_and_an_empty_file(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        load_state(Linear(2, 2), tmp_path)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.npz is empty"):
        load_state(Linear(2, 2), empty)


@pytest.mark.parametrize("cut", [4, 30, 0.5])
def test_load_state_closes_a_damaged_archive_after_refusing_it(tmp_path, cut):
    """np.load(path) leaves the file open when zipfile refuses it; load_state must not."""
    saved = tmp_path / "net.npz"
    save_state(Linear(3, 2, rng=0), saved)
    data = saved.read_bytes()
    damaged = tmp_path / "cut.npz"
    damaged.write_bytes(data[:cut if isinstance(cut, int) else int(len(data) * cut)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="cut.npz is not an .npz archive"):
            load_state(Linear(3, 2), damaged)
        gc.collect()  # an unclosed file warns when it is collected
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_save_state_errors_name_the_path_not_the_temporary_file(tmp_path):
    target = tmp_path / "missing" / "net.npz"
    with pytest.raises(FileNotFoundError) as info:
        save_state(Linear(2, 2), target)
    assert str(target) in str(info.value) and ".tmp" not in str(info.value)
    folder = tmp_path / "net.npz"
    folder.mkdir()
    with pytest.raises(OSError) as info:
        save_state(Linear(2, 2), folder)
    assert str(folder) in str(info.value) and ".tmp" not in str(info.value)
    assert folder.is_dir() and os.listdir(tmp_path) == ["net.npz"]  # nothing left behind
