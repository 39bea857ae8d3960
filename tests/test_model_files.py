"""The one hardened reader of .npz model files, behind `nn.load_state` and `Network.load`.

Issue 15 (items 11, 12, 17, 19) and issue 16 ("one loader for both"): a damaged file (a flipped
bit, a truncation) either loads exactly the saved parameters or is refused with a ValueError
naming the file, never another exception, never after changing a parameter; a file that only
declares huge sizes allocates nothing; values beyond a parameter's dtype are refused.
"""

from __future__ import annotations

import io
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_nn import Network, cli
from tinygrad_nn.nn import Linear, Sequential, Sigmoid, load_state, save_state


def tiny_module() -> Sequential:
    return Sequential(Linear(3, 4, rng=0), Sigmoid(), Linear(4, 2, rng=1))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, bytes]:
    """The bytes of a saved Network([3, 4, 2]) and of a saved `tiny_module()`."""
    folder = tmp_path_factory.mktemp("saved")
    Network([3, 4, 2], seed=0).save(folder / "net.npz")
    save_state(tiny_module(), folder / "state.npz")
    return {kind: (folder / f"{kind}.npz").read_bytes() for kind in ("net", "state")}


def flipped(data: bytes, bit: int) -> bytes:
    damaged = bytearray(data)
    damaged[bit // 8] ^= 1 << (bit % 8)
    return bytes(damaged)


def check_network_file(path: Path, content: bytes) -> str:
    """Network.load of `content`: the saved network exactly, or a ValueError naming the file."""
    path.write_bytes(content)
    reference = Network([3, 4, 2], seed=0)
    try:
        net = Network.load(path)
    except ValueError as err:
        assert str(path) in str(err), err
        return "refused"
    assert net.sizes == reference.sizes and (net.cost, net.activation) == ("quadratic", "sigmoid")
    for got, want in zip(net.weights + net.biases, reference.weights + reference.biases):
        np.testing.assert_array_equal(got, want)
    return "loaded"


def check_state_file(path: Path, content: bytes) -> str:
    """load_state of `content`: the saved parameters exactly, or a ValueError naming the file
    and every parameter left as it was."""
    path.write_bytes(content)
    module = Sequential(Linear(3, 4, rng=5), Sigmoid(), Linear(4, 2, rng=6))
    before = {k: v.copy() for k, v in module.state_dict().items()}
    try:
        load_state(module, path)
    except ValueError as err:
        assert str(err).startswith(f"load_state: {path}"), err
        for key, value in module.state_dict().items():
            np.testing.assert_array_equal(value, before[key])  # nothing half-loaded
        return "refused"
    for key, value in tiny_module().state_dict().items():
        np.testing.assert_array_equal(module.state_dict()[key], value)
    return "loaded"


CHECKS = {"net": check_network_file, "state": check_state_file}


# --- bit flips and truncations ----------------------------------------------------------------


@pytest.mark.property
@given(kind=st.sampled_from(["net", "state"]), where=st.floats(0, 1, exclude_max=True),
       bit=st.integers(0, 7))
def test_a_flipped_bit_loads_the_same_parameters_or_is_refused(saved, tmp_path_factory, kind,
                                                               where, bit):
    data = saved[kind]
    position = int(where * len(data)) * 8 + bit
    CHECKS[kind](tmp_path_factory.mktemp("flip") / "m.npz", flipped(data, position))


@pytest.mark.property
@given(kind=st.sampled_from(["net", "state"]), where=st.floats(0, 1, exclude_max=True))
def test_a_truncated_file_is_refused(saved, tmp_path_factory, kind, where):
    data = saved[kind]
    path = tmp_path_factory.mktemp("cut") / "m.npz"
    assert CHECKS[kind](path, data[:int(where * len(data))]) == "refused"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["net", "state"])
def test_every_bit_flip_and_every_truncation(saved, tmp_path, kind):
    data, check = saved[kind], CHECKS[kind]
    outcomes = [check(tmp_path / "m.npz", flipped(data, bit)) for bit in range(8 * len(data))]
    # Most flips hit bytes that a CRC-32 or a header check covers; a few hit bytes no reader
    # needs (a timestamp), and those load the very same parameters.
    assert 0 < outcomes.count("loaded") < outcomes.count("refused")
    for cut in range(len(data)):
        assert check(tmp_path / "m.npz", data[:cut]) == "refused", cut


def test_a_flipped_bit_in_the_weights_is_refused_and_names_the_array(saved, tmp_path):
    """zipfile raised BadZipFile (bad CRC-32) straight through Network.load."""
    data = saved["net"]
    at = data.index(np.float64(Network([3, 4, 2], seed=0).weights[0][0, 0]).tobytes())
    path = tmp_path / "m.npz"
    path.write_bytes(flipped(data, 8 * at + 3))
    with pytest.raises(ValueError, match=r"m\.npz is damaged \(array 'weight_0': BadZipFile: "
                                         r"Bad CRC-32"):
        Network.load(path)
    with pytest.raises(ValueError, match=r"load_state: .*m\.npz is damaged"):
        load_state(tiny_module(), path)


def test_evaluate_on_a_damaged_model_is_one_line_and_exit_2(saved, tmp_path, capsys):
    data = saved["net"]
    at = data.index(np.float64(Network([3, 4, 2], seed=0).weights[0][0, 0]).tobytes())
    path = tmp_path / "m.npz"
    path.write_bytes(flipped(data, 8 * at))
    assert cli.main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tinygrad-nn: error: {path} is damaged") and err.count("\n") == 1
    path.write_bytes(data[:len(data) // 2])
    assert cli.main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tinygrad-nn: error: {path} is not an .npz archive")
    assert err.count("\n") == 1


# --- sizes declared but not present -----------------------------------------------------------


def peak_bytes(fn) -> int:
    """The peak of memory allocated (numpy's arrays included) while `fn()` runs."""
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_huge_declared_sizes_are_refused_before_anything_is_allocated(tmp_path):
    """sizes [4, 1e6, 1e6, 2] built the network first: MemoryError, 7.28 TiB."""
    path = tmp_path / "huge.npz"
    np.savez(path, sizes=np.array([4, 10**6, 10**6, 2]), weight_0=np.zeros((3, 4)),
             bias_0=np.zeros(3), weight_1=np.zeros((3, 3)), bias_1=np.zeros(3),
             weight_2=np.zeros((2, 3)), bias_2=np.zeros(2))

    def load() -> None:
        with pytest.raises(ValueError, match=r"'weight_0' has shape \(3, 4\), but sizes "
                                             r"\[4, 1000000, 1000000, 2\] need \(1000000, 4\)"):
            Network.load(path)

    assert peak_bytes(load) < 2**20


def npz_with_header(path: Path, shape: tuple[int, ...], payload: bytes) -> None:
    """An .npz whose weight_0.npy header declares `shape` (float64) but holds `payload`."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        member, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("sizes.npy", _npy(np.array([4, 2])))
        archive.writestr("weight_0.npy", member.getvalue() + payload)
        archive.writestr("bias_0.npy", _npy(np.zeros(2)))


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_an_array_header_declaring_more_than_the_file_holds_is_refused_unallocated(tmp_path):
    """numpy's reader allocates the declared shape before reading the data."""
    path = tmp_path / "liar.npz"
    npz_with_header(path, (10**6, 10**6), b"\0" * 8)

    def load() -> None:
        with pytest.raises(ValueError, match=r"liar\.npz is damaged \(array 'weight_0': the "
                                             r"header declares shape \(1000000, 1000000\) of "
                                             r"float64 \(8000000000000 bytes\) but 8 bytes"):
            Network.load(path)
        with pytest.raises(ValueError, match=r"load_state: .*liar\.npz is damaged"):
            load_state(Linear(4, 2), path)

    assert peak_bytes(load) < 2**20


# --- files that are not models (item 17) ------------------------------------------------------


def test_a_text_file_is_not_a_model_file_and_no_allow_pickle_advice(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("weights: 1 2 3\n")
    for load in (lambda: load_state(Linear(2, 2), path), lambda: Network.load(path)):
        with pytest.raises(ValueError) as info:
            load()
        text = str(info.value)
        assert f"{path} is not an .npz archive, so not a tinygrad_nn model file" in text
        assert "it begins with the text 'weights: 1 2 3" in text
        assert "allow_pickle" not in text


# --- values beyond a parameter's dtype (item 19) ----------------------------------------------


def test_values_beyond_float32_are_refused_naming_the_parameter_and_value():
    """Casting 1e39 into a float32 parameter warned "overflow encountered in cast" (and
    stored inf, which torch's load_state_dict does silently)."""
    layer = Linear(2, 2, rng=0)
    layer.weight.data = layer.weight.data.astype(np.float32)
    before = layer.weight.data.copy(), layer.bias.data.copy()
    state = {"weight": np.array([[0.5, 1e39], [0.0, 0.0]]), "bias": np.array([2.0, 3.0])}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"'weight' holds 1e\+39 at index \(0, 1\), beyond "
                                             r"the range of its dtype float32 \(largest "
                                             r"3\.40282e\+38\)"):
            layer.load_state_dict(state)
    np.testing.assert_array_equal(layer.weight.data, before[0])
    np.testing.assert_array_equal(layer.bias.data, before[1])  # nothing half-loaded


def test_values_that_round_to_float32s_largest_and_infinities_load():
    """Only a finite value that the cast would turn into inf is refused: 3.4028235e38 rounds
    to float32's largest finite value, and an inf in the state is kept as inf."""
    layer = Linear(2, 1, rng=0)
    layer.weight.data = layer.weight.data.astype(np.float32)
    largest = float(np.finfo(np.float32).max)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer.load_state_dict({"weight": np.array([[largest * (1 + 2**-26), -np.inf]]),
                               "bias": np.array([0.0])})
    assert layer.weight.data.tolist() == [[largest, -np.inf]]
