"""Training checkpoints: `nn.save_checkpoint` / `nn.load_checkpoint` write the model, the
optimizer, the schedule, the epoch and a user's JSON extras into one .npz of arrays, read back
by the hardened reader; a run resumed from one gives the weights of the run that never
stopped, bit for bit."""

import json
import os
import zipfile

import numpy as np
import pytest

from tinygrad_nn import costs, datasets, nn, optim
from tinygrad_nn.training import fit

TRAIN, _, _ = datasets.load_digits()


def build(seed):
    """A model with batch norm (buffers) and dropout (a generator of its own), its
    optimizer and its schedule."""
    model = nn.Sequential(nn.Linear(64, 32, rng=seed), nn.BatchNorm1d(32), nn.ReLU(),
                          nn.Dropout(0.2, rng=seed), nn.Linear(32, 10, rng=seed + 1))
    opt = optim.AdamW(optim.decay_groups(model.parameters(), 0.01), lr=3e-3)
    return model, opt, optim.CosineAnnealingLR(opt, T_max=4)


def epoch(model, opt, schedule, shuffle):
    fit(model, costs.cross_entropy, opt, TRAIN, 1, 64, schedule=schedule, seed=shuffle,
        verbose=False)


def test_a_run_resumed_from_a_checkpoint_equals_the_run_that_never_stopped(tmp_path):
    model, opt, schedule = build(0)
    shuffle = np.random.default_rng(42)
    for _ in range(4):
        epoch(model, opt, schedule, shuffle)

    first, opt1, schedule1 = build(0)
    shuffle1 = np.random.default_rng(42)
    for _ in range(2):
        epoch(first, opt1, schedule1, shuffle1)
    path = tmp_path / "run.ckpt.npz"
    nn.save_checkpoint(path, first, opt1, schedule1, epoch=1,
                       extra={"shuffle": shuffle1.bit_generator.state,
                              "dropout": first[3].rng.bit_generator.state})

    resumed, opt2, schedule2 = build(5)  # other weights and generators: all from the file
    info = nn.load_checkpoint(path, resumed, opt2, schedule2)
    assert info["epoch"] == 1
    shuffle2 = np.random.default_rng()
    shuffle2.bit_generator.state = info["extra"]["shuffle"]
    resumed[3].rng.bit_generator.state = info["extra"]["dropout"]
    for _ in range(info["epoch"] + 1, 4):
        epoch(resumed, opt2, schedule2, shuffle2)

    for (name, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)  # buffers too
    assert opt2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    for i, entry in opt.state_dict()["state"].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(opt2.state_dict()["state"][i][key], value)
    assert schedule2.state_dict() == schedule.state_dict()


def test_a_checkpoint_is_arrays_only_with_json_metadata(tmp_path):
    model, opt, schedule = build(0)
    epoch(model, opt, schedule, 0)
    path = tmp_path / "c.npz"
    nn.save_checkpoint(path, model, opt, schedule, epoch=0, extra={"note": "é"})
    with np.load(path, allow_pickle=False) as archive:  # numpy reads it, never unpickling
        names = archive.files
        meta = json.loads(archive["checkpoint.json"].tobytes().decode("utf-8"))
        assert archive["checkpoint.json"].dtype == np.uint8
        assert archive["model/1.running_var"].shape == (32,)
        assert archive["optimizer/0/exp_avg"].shape == (32, 64)
    assert meta["format"] == "tinygrad_nn checkpoint" and meta["epoch"] == 0
    assert meta["optimizer"]["type"] == "AdamW" and meta["scheduler"]["type"] == "CosineAnnealingLR"
    # Indices in the optimizer's order, group after group (PyTorch's): the two weight
    # matrices of the first group are 0 and 1.
    assert [g["params"] for g in meta["optimizer"]["param_groups"]] == [[0, 1], [2, 3, 4, 5]]
    assert meta["extra"] == {"note": "é"}
    assert all(n.startswith(("model/", "optimizer/")) for n in names if n != "checkpoint.json")
    assert [f for f in os.listdir(tmp_path) if f != "c.npz"] == []  # no temporary left


def test_load_state_reads_the_model_of_a_checkpoint_and_old_files_load_as_checkpoints(tmp_path):
    model, opt, schedule = build(0)
    epoch(model, opt, schedule, 0)
    nn.save_checkpoint(tmp_path / "c.npz", model, opt, schedule, epoch=0)
    other, _, _ = build(1)
    nn.load_state(other, tmp_path / "c.npz")
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[name], array)

    nn.save_state(model, tmp_path / "m.npz")  # a model file as today's code writes it
    third, opt3, _ = build(2)
    assert nn.load_checkpoint(tmp_path / "m.npz", third) == {"epoch": None, "extra": None}
    np.testing.assert_array_equal(third.state_dict()["0.weight"], model.state_dict()["0.weight"])
    with pytest.raises(ValueError, match="holds no optimizer state"):
        nn.load_checkpoint(tmp_path / "m.npz", third, opt3)


def test_a_checkpoint_that_does_not_fit_changes_nothing(tmp_path):
    model, opt, schedule = build(0)
    epoch(model, opt, schedule, 0)
    nn.save_checkpoint(tmp_path / "c.npz", model, opt, schedule, epoch=0)
    target, target_opt, _ = build(1)
    before = target.state_dict()
    with pytest.raises(ValueError, match="state of a AdamW, not of a SGD"):
        nn.load_checkpoint(tmp_path / "c.npz", target, optim.SGD(target.parameters(), lr=0.1))
    # The optimizer's state does not fit (one parameter group, the file's has two): the
    # model, loaded first, is put back.
    with pytest.raises(ValueError, match="parameter groups"):
        nn.load_checkpoint(tmp_path / "c.npz", target, optim.AdamW(target.parameters()))
    for name, array in before.items():
        np.testing.assert_array_equal(target.state_dict()[name], array)
    small = nn.Sequential(nn.Linear(64, 10))
    with pytest.raises(ValueError, match="load_checkpoint: .*unexpected keys"):
        nn.load_checkpoint(tmp_path / "c.npz", small)


def test_damaged_or_foreign_checkpoints_are_refused(tmp_path):
    model, opt, schedule = build(0)
    path = tmp_path / "c.npz"
    nn.save_checkpoint(path, model, opt, epoch=3)
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    bad = tmp_path / "bad.npz"
    arrays = {n[:-4]: np.load(path)[n[:-4]] for n in members}
    arrays["checkpoint.json"] = np.frombuffer(b"{not json", dtype=np.uint8)
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="not JSON"):
        nn.load_checkpoint(bad, model)
    arrays["checkpoint.json"] = np.frombuffer(b'{"format": "other"}', dtype=np.uint8)
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="does not describe"):
        nn.load_checkpoint(bad, model)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        nn.load_checkpoint(bad, model, opt)
    with pytest.raises(ValueError, match="holds no scheduler state"):
        nn.load_checkpoint(path, model, opt, schedule)


def test_extra_must_be_json_and_a_failed_save_leaves_the_old_file(tmp_path):
    model, opt, _ = build(0)
    path = tmp_path / "c.npz"
    nn.save_checkpoint(path, model, epoch=1)
    old = path.read_bytes()
    with pytest.raises(TypeError, match="JSON"):
        nn.save_checkpoint(path, model, opt, extra={"rng": np.random.default_rng(0)})
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["c.npz"]
