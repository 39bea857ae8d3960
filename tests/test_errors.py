"""Every bad input gets a clear error: the right exception type, and a message that names the
problem and the values or shapes involved.

One section per kind of input: tensors, networks, files (IDX and .npz models), the command
line. Where the library's message is not yet what a learner needs, the test asserts the
message it *should* give (see docs/errors.md for the catalogue of messages).
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from test_datasets import fake_mnist, idx_bytes, write_idx

from tinygrad_nn import Network, Tensor
from tinygrad_nn.datasets import load_idx, load_mnist

ROOT = Path(__file__).resolve().parent.parent


def message(info: pytest.ExceptionInfo) -> str:
    return str(info.value)


# ================================================================================================
# Tensors
# ================================================================================================

NON_NUMERIC = [
    pytest.param("abc", "strings", id="str"),
    pytest.param(["a", "b"], "strings", id="list-of-str"),
    pytest.param(b"bytes", "bytes", id="bytes"),
    pytest.param(object(), "objects", id="object"),
    pytest.param({"a": 1.0}, "objects", id="dict"),
    pytest.param(None, "objects", id="None"),
    pytest.param([1.0, "2"], "strings", id="mixed-list"),
    pytest.param(np.array(["1.5"]), "strings", id="str-ndarray"),
    pytest.param(np.array([1 + 2j]), "complex", id="complex-ndarray"),
]


@pytest.mark.parametrize("data, kind", NON_NUMERIC)
def test_non_numeric_data_is_a_type_error_naming_what_was_given(data, kind):
    with pytest.raises(TypeError) as info:
        Tensor(data)
    text = message(info)
    assert text.startswith("Tensor: cannot build a tensor from")
    assert kind in text and type(data).__name__ in text
    assert "expected numbers" in text


@pytest.mark.parametrize("ragged, detail", [
    ([[1.0, 2.0], [3.0]], "(2,)"),
    ([[[1.0], [2.0]], [[3.0]]], "(2,"),
    ([1.0, [2.0, 3.0]], "(2,)"),
])
def test_ragged_lists_are_a_value_error_naming_the_shape_that_was_found(ragged, detail):
    with pytest.raises(ValueError) as info:
        Tensor(ragged)
    text = message(info)
    assert "ragged" in text and "different lengths" in text
    assert detail in text  # how far the nesting was regular


@pytest.mark.parametrize("array", [
    np.array([1, "a"], dtype=object),
    np.array([1.0, 2.0], dtype=object),  # numbers, but boxed: refused, never unpickled or guessed
    np.array([[1.0], None], dtype=object),
], ids=["mixed", "boxed-floats", "nested"])
def test_object_arrays_are_refused_naming_the_dtype(array):
    with pytest.raises(TypeError) as info:
        Tensor(array)
    assert "objects" in message(info) and "dtype object" in message(info)


@pytest.mark.parametrize("make", [
    lambda: Tensor(np.arange(3), requires_grad=True),
    lambda: Tensor(np.array([True, False]), requires_grad=True),
    lambda: Tensor(np.arange(3, dtype=np.int32)).requires_grad_(),
    lambda: Tensor(3, dtype=np.int64, requires_grad=True),
], ids=["int64", "bool", "int32-requires_grad_", "dtype=int64"])
def test_requires_grad_on_integers_names_the_dtype_and_the_fix(make):
    with pytest.raises(RuntimeError) as info:
        make()
    text = message(info)
    assert re.search(r"dtype (int64|int32|bool)", text)
    assert "floating-point" in text and "float64" in text


def test_python_integers_become_float64_so_they_may_require_grad():
    # Documented (tensor.to_array): Python numbers and lists become float64.
    x = Tensor([1, 2], requires_grad=True)
    assert x.dtype == np.float64 and x.requires_grad


BINARY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a ** b,
    "maximum": lambda a, b: a.maximum(b),
    "minimum": lambda a, b: a.minimum(b),
}
PRIMITIVE_NAME = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow",
                  "maximum": "maximum", "minimum": "minimum"}


@pytest.mark.parametrize("op", list(BINARY))
@pytest.mark.parametrize("left, right", [((2, 3), (4,)), ((3, 1, 2), (4, 3)), ((5,), (0,))],
                         ids=["trailing", "middle", "empty"])
def test_binary_op_shape_mismatch_names_the_op_and_both_shapes(op, left, right):
    a = Tensor(np.ones(left), requires_grad=True)
    b = Tensor(np.ones(right))
    with pytest.raises(ValueError) as info:
        BINARY[op](a, b)
    text = message(info)
    assert text.startswith(PRIMITIVE_NAME[op] + ":")
    assert f"shapes {left} and {right} do not broadcast" in text


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**"])
def test_shape_mismatch_with_an_ndarray_on_the_left_names_both_shapes(op):
    with pytest.raises(ValueError) as info:
        BINARY[op](np.ones(4), Tensor(np.ones((2, 3))))
    assert "shapes (4,) and (2, 3) do not broadcast" in message(info)


@pytest.mark.parametrize("left, right, expected", [
    ((2, 3), (4, 2), "matmul: (2, 3) @ (4, 2): inner dimensions 3 and 4 differ"),
    ((3,), (4,), "matmul: (3,) @ (4,): inner dimensions 3 and 4 differ"),
    ((2, 3), (2,), "matmul: (2, 3) @ (2,): inner dimensions 3 and 2 differ"),
    ((2, 3), (), "matmul: (2, 3) @ (): both operands need at least one dimension"),
    ((2, 3, 4), (5, 4, 2), "matmul: (2, 3, 4) @ (5, 4, 2): batch dimensions do not broadcast"),
])
def test_matmul_mismatch_names_both_shapes_and_the_dimensions(left, right, expected):
    with pytest.raises(ValueError) as info:
        Tensor(np.ones(left)) @ Tensor(np.ones(right))
    assert message(info) == expected


REDUCTIONS = ["sum", "mean", "max", "min", "var", "std", "logsumexp", "softmax", "log_softmax"]


@pytest.mark.parametrize("axis, bad", [(-3, "-3"), ((0, 5), "5")], ids=["-3", "(0,5)"])
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_over_a_missing_axis_names_the_function_the_axis_and_the_shape(name, axis, bad):
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(np.exceptions.AxisError) as info:  # a ValueError and an IndexError
        getattr(x, name)(axis=axis)
    assert isinstance(info.value, ValueError) and isinstance(info.value, IndexError)
    text = message(info)
    # The learner called x.mean(axis=2): the message must say mean, not the primitive
    # (sum, max, logsumexp) that mean happens to be written with.
    assert re.match(rf"{name}\b", text), f"message does not start with {name!r}: {text}"
    assert f"axis {bad}" in text and "(2, 3)" in text


def test_reduction_over_a_repeated_axis_names_the_axis():
    with pytest.raises(ValueError) as info:
        Tensor(np.ones((2, 3))).sum(axis=(0, 0))
    assert message(info).startswith("sum:") and "(0, 0)" in message(info)
    assert "duplicate" in message(info)


@pytest.mark.parametrize("name", ["mean", "var", "std"])
def test_reducing_an_axis_of_an_empty_tensor_that_has_elements_to_combine_works(name):
    # numpy: np.mean(np.zeros((0, 3)), axis=1) is an empty (0,) array, no warning; only a
    # reduction over an axis of length 0 has nothing to divide by.
    x = Tensor(np.zeros((0, 3)))
    out = getattr(x, name)(axis=1)
    assert out.shape == (0,)


@pytest.mark.parametrize("name", ["mean", "var", "std"])
def test_reducing_over_an_empty_axis_names_the_function_and_the_shape(name):
    with pytest.raises(ValueError) as info:
        getattr(Tensor(np.zeros((0, 3))), name)(axis=0)
    assert message(info).startswith(f"{name}:") and "(0, 3)" in message(info)


@pytest.mark.parametrize("shape", [(4, 2), (-1, 4), (7,), (2, 2, 2)])
def test_reshape_to_an_incompatible_size_names_both_shapes_and_the_size(shape):
    x = Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError) as info:
        x.reshape(shape)
    text = message(info)
    assert text.startswith("reshape:") and "(2, 3)" in text
    assert f"shape={shape}" in text and "size 6" in text


@pytest.mark.parametrize("index, detail", [
    (5, "index 5 is out of bounds for axis 0 with size 2"),
    (-3, "index -3 is out of bounds for axis 0 with size 2"),
    ((0, 7), "index 7 is out of bounds for axis 1 with size 3"),
    ([0, 9], "index 9 is out of bounds for axis 0 with size 2"),
    ((0, 0, 0), "too many indices"),
])
def test_indexing_out_of_range_is_an_index_error_naming_the_index_and_shape(index, detail):
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(IndexError) as info:
        x[index]
    text = message(info)
    assert "shape (2, 3)" in text and detail in text


def test_indexing_a_0d_tensor_names_the_shape():
    with pytest.raises(IndexError) as info:
        Tensor(1.0)[0]
    assert "shape ()" in message(info)


def test_transpose_with_a_bad_axis_names_the_axes_and_shape():
    with pytest.raises(ValueError) as info:
        Tensor(np.ones((2, 3))).transpose(0, 2)
    assert "(2, 3)" in message(info) and "axes=(0, 2)" in message(info)
    with pytest.raises(ValueError, match=r"transpose: .*\(2, 3\).*repeated axis"):
        Tensor(np.ones((2, 3))).transpose(0, 0)


def test_swapaxes_with_a_missing_axis_names_the_axis_and_the_shape():
    with pytest.raises(IndexError) as info:  # numpy raises AxisError, an IndexError too
        Tensor(np.ones((2, 3))).swapaxes(0, 4)
    text = message(info)
    assert text.startswith("swapaxes:"), text
    assert "axis 4" in text and "(2, 3)" in text


def test_squeeze_of_an_axis_that_is_not_1_names_the_axis_and_the_shape():
    with pytest.raises(ValueError) as info:
        Tensor(np.ones((2, 3))).squeeze(0)
    text = message(info)
    assert text.startswith("squeeze:"), text
    assert "axis 0" in text and "(2, 3)" in text


def test_flatten_from_a_missing_axis_is_refused():
    # start_axis=5 of a 2-d tensor is a mistake, not axis 5 % 2 = 1.
    with pytest.raises(ValueError) as info:
        Tensor(np.ones((2, 3))).flatten(5)
    assert "flatten" in message(info) and "5" in message(info) and "(2, 3)" in message(info)


def test_unsqueeze_out_of_range_names_the_axis_and_the_shape():
    with pytest.raises(ValueError, match=r"unsqueeze: axis 5 is out of range .* \(2, 3\)"):
        Tensor(np.ones((2, 3))).unsqueeze(5)


def test_broadcast_to_an_incompatible_shape_names_both_shapes():
    with pytest.raises(ValueError) as info:
        Tensor(np.ones((2, 3))).broadcast_to((3, 3))
    assert message(info).startswith("broadcast_to:")
    assert "(2, 3)" in message(info) and "(3, 3)" in message(info)


def test_item_of_several_elements_names_the_shape():
    with pytest.raises(ValueError, match=r"item: .* shape \(2, 3\)"):
        Tensor(np.ones((2, 3))).item()


def test_truth_value_of_a_tensor_of_several_elements_names_the_shape():
    # `if cost > 0.5:` on a vector of costs: the learner needs to see the shape.
    with pytest.raises(ValueError) as info:
        bool(Tensor(np.ones((2, 3))) > 0.5)
    text = message(info)
    assert "ambiguous" in text and "(2, 3)" in text and ".any()" in text


def test_integer_tensor_to_a_negative_integer_power_names_the_dtype_and_the_fix():
    with pytest.raises(ValueError) as info:
        Tensor(np.array([2, 3])) ** Tensor(np.array([-1, 2]))
    text = message(info)
    assert text.startswith("pow:") and "negative integer powers" in text
    assert "with :" not in text  # no empty parameter list spliced into the sentence
    assert "int64" in text  # the dtype is the problem: the fix is a float tensor


def test_backward_on_a_non_scalar_without_gradient_names_the_shape():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError) as info:
        (x * 2).backward()
    text = message(info)
    assert "backward" in text and "shape (3,)" in text
    assert "gradient=" in text and ".sum()" in text


@pytest.mark.parametrize("gradient, shape", [(np.ones(4), "(4,)"), (np.ones((3, 1)), "(3, 1)"),
                                             (1.0, "()")])
def test_backward_with_a_gradient_of_the_wrong_shape_names_both_shapes(gradient, shape):
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError) as info:
        (x * 2).backward(gradient)
    assert message(info) == (f"backward: gradient has shape {shape} but the output has "
                             f"shape (3,)")
    assert x.grad is None  # nothing was accumulated


@pytest.mark.parametrize("make", [
    lambda: Tensor(np.ones(3)).sum(),
    lambda: Tensor(2.0),
    lambda: Tensor(np.ones(3), requires_grad=True).detach().sum(),
], ids=["constant-graph", "leaf", "detached"])
def test_backward_on_a_tensor_that_does_not_require_grad(make):
    with pytest.raises(RuntimeError) as info:
        make().backward()
    assert "does not require grad" in message(info)
    assert "requires_grad=True" in message(info)


# ================================================================================================
# Networks
# ================================================================================================


@pytest.mark.parametrize("sizes, shown", [
    ([3], "[3]"), ([], "[]"), ([3, 0, 2], "[3, 0, 2]"), ([3, -1, 2], "[3, -1, 2]"),
    ([0, 2], "[0, 2]"), ([3, 2.5, 2], "[3, 2.5, 2]"), (3, "3"), ("3,2", "'3,2'"),
])
def test_network_sizes_are_checked(sizes, shown):
    with pytest.raises(ValueError) as info:
        Network(sizes)
    text = message(info)
    assert text.startswith("Network:") and shown in text


@pytest.fixture
def net():
    return Network([3, 4, 2], seed=0)


X4 = np.linspace(0, 1, 12).reshape(4, 3)
LABELS4 = np.array([0, 1, 1, 0])


@pytest.mark.parametrize("a", [np.ones(4), np.ones((5, 4)), np.ones((4, 1)), np.ones((2, 2, 3)),
                               np.float64(1.0)],
                         ids=["vector", "rows", "column", "3-d", "0-d"])
def test_feedforward_of_the_wrong_width_names_the_shape_and_what_is_expected(net, a):
    with pytest.raises(ValueError) as info:
        net.feedforward(a)
    text = message(info)
    assert f"input of shape {np.shape(a)}" in text
    assert "(3, 1)" in text and "(3,)" in text and "(m, 3)" in text


def snapshot(net):
    return [w.copy() for w in net.weights] + [b.copy() for b in net.biases]


def assert_unchanged(net, before):
    for old, new in zip(before, snapshot(net), strict=True):
        np.testing.assert_array_equal(old, new)


BAD_TRAINING_DATA = [
    pytest.param((X4, np.array([0, 1, 2, 0])), r"row 2 has label 2, outside 0\.\.1",
                 id="label>max"),
    pytest.param((X4, np.array([0, -1, 1, 0])), r"row 1 has label -1, outside 0\.\.1",
                 id="label<0"),
    pytest.param((X4, np.zeros((4, 3))), r"targets must have shape \(n, 2\).*got \(4, 3\)",
                 id="one-hot-too-long"),
    pytest.param((X4, np.zeros((4, 1))), r"targets must have shape \(n, 2\).*got \(4, 1\)",
                 id="one-hot-too-short"),
    pytest.param((X4, np.array([0.0, 1, 1, 0])), r"labels must be integers, got dtype float64",
                 id="float-labels"),
    pytest.param((X4, LABELS4[:3]), r"4 examples but 3 labels", id="count"),
    pytest.param((np.ones((4, 5)), LABELS4), r"examples have 5 inputs .* 3 neurons", id="width"),
    pytest.param((np.zeros((0, 3)), np.zeros(0, dtype=int)), r"no examples", id="empty-arrays"),
    pytest.param([], r"no examples", id="empty-list"),
    pytest.param(iter([]), r"no examples", id="empty-iterator"),
]


@pytest.mark.parametrize("data, match", BAD_TRAINING_DATA)
def test_bad_training_data_is_refused_before_training(net, data, match, capsys):
    before = snapshot(net)
    with pytest.raises(ValueError, match=match) as info:
        net.SGD(data, 1, 2, 1.0)
    assert message(info).startswith("training_data:")
    assert_unchanged(net, before)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": -1}, r"epochs must be an integer >= 0, got -1"),
    ({"epochs": 1.5}, r"epochs must be an integer >= 0, got 1\.5"),
    ({"mini_batch_size": 0}, r"mini_batch_size must be an integer >= 1, got 0"),
    ({"mini_batch_size": -2}, r"mini_batch_size must be an integer >= 1, got -2"),
    ({"eta": 0.0}, r"eta must be a finite number > 0, got 0\.0"),
    ({"eta": -1.0}, r"eta must be a finite number > 0, got -1\.0"),
    ({"eta": float("nan")}, r"eta must be a finite number > 0, got nan"),
    ({"eta": float("inf")}, r"eta must be a finite number > 0, got inf"),
    ({"eta": "3"}, r"eta must be a finite number > 0, got '3'"),
], ids=lambda v: repr(v) if isinstance(v, dict) else None)
def test_bad_hyperparameters_are_refused_before_training(net, kwargs, match):
    args = {"epochs": 1, "mini_batch_size": 2, "eta": 1.0, **kwargs}
    before = snapshot(net)
    with pytest.raises(ValueError, match=match):
        net.SGD((X4, LABELS4), args["epochs"], args["mini_batch_size"], args["eta"])
    assert_unchanged(net, before)


@pytest.mark.parametrize("eta", [0.0, -0.5, float("nan")])
def test_update_mini_batch_names_eta_not_the_optimizers_lr(net, eta):
    before = snapshot(net)
    with pytest.raises(ValueError) as info:
        net.update_mini_batch((X4, LABELS4), eta)
    text = message(info)
    # The learner called update_mini_batch(..., eta): say so, in their words.
    assert text.startswith("update_mini_batch:"), text
    assert "eta" in text and repr(eta) in text
    assert_unchanged(net, before)


@pytest.mark.parametrize("where, value", [("X", np.nan), ("X", np.inf), ("X", -np.inf),
                                          ("targets", np.nan)])
def test_non_finite_data_names_the_row_and_leaves_the_weights_unchanged(net, where, value,
                                                                       capsys):
    X = X4.copy()
    Y = np.eye(2)[LABELS4]
    (X if where == "X" else Y)[2, 1 if where == "X" else 0] = value
    before = snapshot(net)
    with pytest.raises(ValueError) as info:
        net.SGD((X, Y), 3, 2, 1.0)
    text = message(info)
    name = "X" if where == "X" else "the targets"
    assert f"training_data: row 2 of {name} holds {value}" in text
    assert "every value must be finite" in text
    assert_unchanged(net, before)
    assert capsys.readouterr().out == ""  # no epoch ran


@pytest.mark.parametrize("part", ["test_data", "evaluation_data"])
def test_non_finite_held_out_data_is_refused_before_training(net, part):
    bad = X4.copy()
    bad[3, 0] = np.nan
    before = snapshot(net)
    extra = {"monitor_evaluation_accuracy": True} if part == "evaluation_data" else {}
    with pytest.raises(ValueError, match=rf"{part}: row 3 of X holds nan \(column 0\)"):
        net.SGD((X4, LABELS4), 1, 2, 1.0, **{part: (bad, LABELS4)}, **extra)
    assert_unchanged(net, before)


def test_non_finite_mini_batch_names_the_row(net):
    bad = X4.copy()
    bad[1, 2] = np.inf
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"mini_batch: row 1 of X holds inf \(column 2\)"):
        net.update_mini_batch((bad, LABELS4), 1.0)
    assert_unchanged(net, before)


def test_book_format_pairs_with_nan_name_the_example(net):
    pairs = [(np.zeros((3, 1)), 1), (np.array([[0.0], [np.nan], [0.0]]), 0)]
    with pytest.raises(ValueError, match=r"row 1 of X holds nan \(column 1\)"):
        net.SGD(pairs, 1, 1, 1.0)


# ================================================================================================
# Files: IDX (tests/test_datasets.py covers bad magic, unknown type code, zero dimensions,
# truncated header and payload, overlong payload, corrupt gzip, 3-d images, 1-d labels and
# the train count mismatch; these are the cases it does not)
# ================================================================================================


def test_load_idx_of_an_empty_file_names_the_file(tmp_path):
    path = write_idx(tmp_path / "empty-idx1-ubyte", b"")
    with pytest.raises(ValueError, match=r"empty-idx1-ubyte: file has 0 bytes, too short"):
        load_idx(path)


def test_load_idx_with_a_huge_declared_shape_fails_without_allocating(tmp_path):
    # Three dimensions of 2**32 - 1: 7.9e28 bytes declared, 3 present. The check is on the
    # byte count, so it fails at once rather than with a MemoryError.
    header = bytes([0, 0, 0x08, 3]) + np.full(3, 2**32 - 1, dtype=">u4").tobytes()
    path = write_idx(tmp_path / "huge.idx", header + b"abc")
    with pytest.raises(ValueError) as info:
        load_idx(path)
    assert "payload has 3 bytes" in message(info)
    assert "(4294967295, 4294967295, 4294967295)" in message(info)


def test_load_idx_with_a_gzip_suffix_but_plain_content_still_checks_the_header(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(b"\x00\x00\x08\x02" + np.asarray([2], ">u4").tobytes())  # 2 dims, 1 size
    with pytest.raises(ValueError, match=r"labels\.gz: file has 8 bytes.*12 bytes"):
        load_idx(path)


def test_load_mnist_test_part_count_mismatch_names_both_files(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError) as info:
        load_mnist(tmp_path)
    assert "t10k-images-idx3-ubyte has 5 images" in message(info)
    assert "t10k-labels-idx1-ubyte has 4 labels" in message(info)


def test_load_mnist_with_images_of_the_wrong_dimension_count_names_the_file(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((12, 4, 4, 1), dtype=np.uint8))
    with pytest.raises(ValueError,
                       match=r"train-images-idx3-ubyte: images must be 3-D.*\(12, 4, 4, 1\)"):
        load_mnist(tmp_path)


def test_load_mnist_with_a_truncated_compressed_file_names_that_file(tmp_path):
    fake_mnist(tmp_path, gz=True)
    data = idx_bytes(np.zeros((5, 4, 4), dtype=np.uint8))[:-7]
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(data))
    with pytest.raises(ValueError) as info:
        load_mnist(tmp_path)
    assert "t10k-images-idx3-ubyte.gz" in message(info)
    assert "payload has 73 bytes, expected 80 for shape (5, 4, 4)" in message(info)


def test_load_mnist_with_labels_that_are_images_names_the_file(tmp_path):
    # The two label files swapped for image files: a 3-d "labels" file.
    fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((12, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: labels must be 1-D"):
        load_mnist(tmp_path)


# ================================================================================================
# Files: .npz models
# ================================================================================================


@pytest.fixture
def saved(tmp_path):
    """A saved [3, 4, 2] network and its arrays."""
    path = tmp_path / "good.npz"
    Network([3, 4, 2], seed=0).save(path)
    with np.load(path) as archive:
        arrays = dict(archive)
    return path, arrays


def write_variant(folder: Path, name: str, arrays: dict, **changes) -> Path:
    arrays = dict(arrays)
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    path = folder / name
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("changes, match", [
    ({"weight_1": None}, r"missing array 'weight_1' \(the file has .*\)"),
    ({"bias_0": None}, r"missing array 'bias_0'"),
    ({"sizes": None}, r"missing array 'sizes'"),
    ({"weight_0": np.zeros((3, 4))},
     r"'weight_0' has shape \(3, 4\), but sizes \[3, 4, 2\] need \(4, 3\)"),
    ({"bias_1": np.zeros((2, 1))},
     r"'bias_1' has shape \(2, 1\), but sizes \[3, 4, 2\] need \(2,\)"),
    ({"sizes": np.array([3, 5, 2])}, r"'weight_0' has shape \(4, 3\), but sizes \[3, 5, 2\]"),
    ({"sizes": np.array([3])}, r"'sizes' must be at least 2 integers >= 1, got \[3\]"),
    ({"sizes": np.array([3.0, 4.0, 2.0])}, r"'sizes' .* \(dtype float64\)"),
    ({"weight_0": np.full((4, 3), np.nan)}, r"'weight_0' holds NaN or inf"),
    ({"weight_0": np.zeros((4, 3), dtype=int)}, r"'weight_0' must hold floats, got int64"),
    ({"cost": np.array("hinge")}, r"cost must be one of .*got 'hinge'"),
    ({"activation": np.array(3)}, r"'activation' must be a 0-d unicode array"),
], ids=["no-weight_1", "no-bias_0", "no-sizes", "weight-shape", "bias-shape", "sizes-disagree",
        "one-layer", "float-sizes", "nan-weights", "int-weights", "unknown-cost", "int-activation"])
def test_malformed_model_files_name_the_file_and_the_array(tmp_path, saved, changes, match):
    path = write_variant(tmp_path, "bad.npz", saved[1], **changes)
    with pytest.raises(ValueError, match=match) as info:
        Network.load(path)
    assert message(info).startswith(f"{path}:")


class Trap:
    """Unpickling an instance of this runs os.mkdir(marker): a visible side effect."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("key", ["weight_0", "sizes", "cost", "extra"])
def test_object_arrays_in_a_model_are_refused_without_unpickling(tmp_path, saved, key):
    marker = tmp_path / "unpickled"
    trap = np.empty(1, dtype=object)
    trap[0] = Trap(marker)
    path = write_variant(tmp_path, "trap.npz", saved[1], **{key: trap})  # savez pickles it
    if key == "extra":
        Network.load(path)  # an unknown array is never read, so never unpickled
    else:
        with pytest.raises(ValueError) as info:
            Network.load(path)
        assert f"holds object arrays: {key!r} would need pickle" in message(info)
        assert "refused" in message(info)
    assert not marker.exists(), "loading the model ran pickled code"
    # The trap is real: numpy with allow_pickle=True would have run it.
    with np.load(path, allow_pickle=True) as archive:
        archive[key]
    assert marker.exists()


def test_a_pickle_file_named_npz_is_refused_without_unpickling(tmp_path):
    import pickle

    marker = tmp_path / "unpickled"
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps(Trap(marker)))
    with pytest.raises(ValueError, match=r"model\.npz is not an \.npz archive.*Python pickle"):
        Network.load(path)
    assert not marker.exists()


def test_an_object_npy_file_named_npz_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"
    trap = np.empty(1, dtype=object)
    trap[0] = Trap(marker)
    path = tmp_path / "model.npz"
    with open(path, "wb") as f:
        np.save(f, trap)
    with pytest.raises(ValueError, match=r"model\.npz holds a single array \(\.npy\)"):
        Network.load(path)
    assert not marker.exists()


def load_refused(path: Path) -> tuple[str, list[str]]:
    """Network.load(path)'s ValueError message, and any files it left open (ResourceWarning).

    The warnings are recorded here, with a collection, so that a leaked file is reported by
    the test that leaked it, not by whichever later test the garbage collector runs in.
    """
    import gc

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError) as info:
            Network.load(path)
        text = message(info)
        del info
        gc.collect()
    return text, [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.mark.parametrize("content, why", [
    (b"", "is empty, not a tinygrad_nn model file (.npz)"),
    (b"hello", "is not an .npz archive, so not a tinygrad_nn model file (it begins with the "
               "text 'hello')"),
    (b"PK\x03\x04" + b"\x00" * 20, "(a damaged zip archive: BadZipFile: "),
], ids=["empty", "text", "zip-magic-only"])
def test_files_that_are_not_models_say_why(tmp_path, content, why):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    text, _ = load_refused(path)
    assert text.startswith(f"{path} ")
    assert why in text, text


@pytest.mark.parametrize("cut", [300, 4], ids=["truncated", "zip-magic-only"])
def test_a_file_that_is_not_a_zip_archive_is_closed_after_refusing_it(tmp_path, saved, cut):
    path = tmp_path / "cut.npz"
    path.write_bytes(saved[0].read_bytes()[:cut])
    text, leaks = load_refused(path)
    assert text.startswith(f"{path} is not an .npz archive, so not a tinygrad_nn model file")
    assert not leaks, f"Network.load left the file open: {leaks[0]}"


def test_a_missing_model_is_a_file_not_found_error_naming_the_path(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError) as info:
        Network.load(path)
    assert str(path) in message(info)


def test_loading_a_directory_names_it(tmp_path):
    with pytest.raises(ValueError) as info:
        Network.load(tmp_path)
    assert str(tmp_path) in message(info) and "directory" in message(info).lower()


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_save_under_a_missing_folder_names_the_path_and_leaves_nothing(tmp_path):
    target = tmp_path / "missing" / "model.npz"
    with pytest.raises(OSError) as info:
        Network([3, 2], seed=0).save(target)
    text = message(info)
    # The learner's path, not the name of an internal temporary file.
    assert str(target) in text, text
    assert ".tmp" not in text, text
    assert listing(tmp_path) == []


def test_save_over_a_directory_names_the_path_and_keeps_the_directory(tmp_path):
    target = tmp_path / "model.npz"
    target.mkdir()
    (target / "inside.txt").write_text("keep me")
    with pytest.raises(OSError) as info:
        Network([3, 2], seed=0).save(target)
    text = message(info)
    assert str(target) in text and ".tmp" not in text, text
    assert listing(tmp_path) == ["model.npz"]  # no temporary file left beside it
    assert (target / "inside.txt").read_text() == "keep me"


SAVE_WITH_A_SMALL_FILE_SIZE_LIMIT = """
import resource, signal, sys
from tinygrad_nn import Network
net = Network([64, 30, 10], seed=1)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    net.save(sys.argv[1])
except OSError as err:
    print(type(err).__name__, err)
    sys.exit(3)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_save_that_fails_midway_keeps_the_previous_model_byte_identical(tmp_path):
    # A real failure in the middle of writing (the file-size limit is hit after 4 KiB of
    # the ~17 KiB archive), in a child process so the limit does not touch the suite.
    target = tmp_path / "model.npz"
    Network([64, 30, 10], seed=0).save(target)
    previous = target.read_bytes()
    assert len(previous) > 4096
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", SAVE_WITH_A_SMALL_FILE_SIZE_LIMIT,
                             str(target)], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "File too large" in result.stdout
    assert target.read_bytes() == previous
    assert listing(tmp_path) == ["model.npz"]  # the partial temporary file was removed
    assert Network.load(target).sizes == [64, 30, 10]


# ================================================================================================
# The command line. tests/test_cli.py checks the messages of bad options in-process (cli.main)
# and runs three of them (`--sizes 64,,10`, `--eta -3`, `evaluate missing.npz`) in a
# subprocess. Here the mistakes of the issue run as a learner would type them,
# `python -m tinygrad_nn ...`, to check the whole path to the terminal (the -m entry point,
# the exit status, stderr): one line, never a traceback. Further mistakes run in-process.
# ================================================================================================

#: name: (argv, parts the one line must contain). {file}, {dir}... are filled in per run.
CLI_SUBPROCESS_CASES = {
    "sizes-one-width": (["train", "--sizes", "3"], ["--sizes", "'3'", "at least two"]),
    "sizes-not-numbers": (["train", "--sizes", "a,b"], ["--sizes", "'a,b'"]),
    "sizes-zero-width": (["train", "--sizes", "64,0,10"], ["--sizes", "'64,0,10'", ">= 1"]),
    "epochs-negative": (["train", "--epochs", "-1"], ["--epochs", "'-1'", ">= 0"]),
    "batch-size-zero": (["train", "--batch-size", "0"], ["--batch-size", "'0'"]),
    "eta-zero": (["train", "--eta", "0"], ["--eta", "'0'", "> 0"]),
    "eta-nan": (["train", "--eta", "nan"], ["--eta", "'nan'", "finite"]),
    "data-dir-missing": (["train", "--data-dir", "/nonexistent"], ["/nonexistent"]),
    "cost": (["train", "--cost", "nope"], ["--cost", "'nope'", "quadratic"]),
    "activation": (["train", "--activation", "nope"], ["--activation", "'nope'", "sigmoid"]),
    "seed": (["train", "--seed", "x"], ["--seed", "'x'"]),
    "save-missing-folder": (["train", "--epochs", "0", "--save", "/nonexistent/dir/m.npz"],
                            ["/nonexistent/dir/m.npz", "does not exist"]),
    "evaluate-not-npz": (["evaluate", "{file}"], ["{file}", "not a tinygrad_nn model file"]),
    "evaluate-truncated": (["evaluate", "{truncated}"], ["{truncated}", "not an .npz archive"]),
}

CLI_IN_PROCESS_CASES = {
    "sizes-negative": (["train", "--sizes", "64,-3,10"], ["--sizes", "'64,-3,10'"]),
    "epochs-float": (["train", "--epochs", "1.5"], ["--epochs", "'1.5'"]),
    "eta-inf": (["train", "--eta", "inf"], ["--eta", "'inf'", "finite"]),
    # argparse takes "-inf" for an option; the learner should still hear about -inf.
    "eta-minus-inf": (["train", "--eta", "-inf"], ["--eta", "-inf"]),
    "data-dir-is-a-file": (["train", "--data-dir", "{file}"], ["{file}", "not a directory"]),
    "data-dir-empty": (["train", "--data-dir", "{dir}"], ["{dir}", "train-images-idx3-ubyte"]),
    "save-to-a-directory": (["train", "--epochs", "0", "--save", "{dir}"],
                            ["{dir}", "is a directory"]),
    "evaluate-pickle": (["evaluate", "{pickle}"], ["{pickle}", "Python pickle, never loaded"]),
    "evaluate-directory": (["evaluate", "{dir}"], ["{dir}", "is a directory"]),
}


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory) -> dict[str, str]:
    """The files the CLI cases name: a text file, an empty folder, a pickle, a cut model."""
    folder = tmp_path_factory.mktemp("cli")
    empty = folder / "empty-dir"
    empty.mkdir()
    text_file = folder / "notes.txt"
    text_file.write_text("not a model\n")
    pickle_file = folder / "pickled.npz"
    pickle_file.write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.")  # pickle of 1
    good = folder / "good.npz"
    Network([64, 30, 10], seed=0).save(good)
    truncated = folder / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:500])
    return {"file": str(text_file), "dir": str(empty), "pickle": str(pickle_file),
            "truncated": str(truncated)}


def filled(case: tuple, names: dict[str, str]) -> tuple[list[str], list[str]]:
    argv, expected = case
    return [a.format(**names) for a in argv], [e.format(**names) for e in expected]


@pytest.fixture(scope="module")
def cli_results(cli_files):
    """Run every subprocess case at once: they are independent, and each pays ~0.4 s of
    interpreter and numpy start-up."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(case: str):
        argv, expected = filled(CLI_SUBPROCESS_CASES[case], cli_files)
        result = subprocess.run([sys.executable, "-m", "tinygrad_nn", *argv], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=120)
        return case, (argv, expected, result.returncode, result.stdout, result.stderr)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(pool.map(run, CLI_SUBPROCESS_CASES))


def check_one_line(argv, expected, status, out, err) -> None:
    command = "python -m tinygrad_nn " + " ".join(argv)
    assert status != 0, f"{command} succeeded"
    assert "Traceback" not in err, f"{command}:\n{err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"{command} printed {len(lines)} lines on stderr:\n{err}"
    assert lines[0].startswith("tinygrad-nn: error: ")
    for part in expected:
        assert part in lines[0], f"{command}: {part!r} not in {lines[0]!r}"
    assert "Epoch" not in out  # it failed before training


@pytest.mark.parametrize("case", list(CLI_SUBPROCESS_CASES))
def test_cli_mistake_in_a_subprocess_is_one_line_and_a_non_zero_exit(cli_results, case):
    check_one_line(*cli_results[case])


@pytest.mark.parametrize("case", list(CLI_IN_PROCESS_CASES))
def test_cli_mistake_is_one_line_and_a_non_zero_exit(cli_files, case, capsys):
    from tinygrad_nn import cli

    argv, expected = filled(CLI_IN_PROCESS_CASES[case], cli_files)
    status = cli.main(argv)
    captured = capsys.readouterr()
    check_one_line(argv, expected, status, captured.out, captured.err)
