"""Tests for tinygrad_nn.datasets: eq. 1.9 scaling, the embedded digits, IDX and MNIST loading."""

import gzip
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_nn import datasets
from tinygrad_nn.datasets import (
    Dataset,
    Splits,
    find_fashion_mnist,
    load_digits,
    load_idx,
    load_mnist,
    min_max_scale,
    to_book_format,
)

IDX_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``: magic, big-endian dimension sizes, big-endian items."""
    array = np.asarray(array)
    code = IDX_CODES[array.dtype.str[1:]]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray | bytes, gz: bool | None = None) -> Path:
    """Write ``array`` (or raw bytes) as an IDX file; gzip it if asked or if the name ends .gz."""
    data = array if isinstance(array, bytes) else idx_bytes(array)
    if gz or (gz is None and path.name.endswith(".gz")):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def fake_mnist(directory: Path, n_train: int = 12, n_test: int = 5, gz: bool = False) -> Path:
    """A tiny MNIST-format folder: 4x4 images whose pixels encode the image index."""
    suffix = ".gz" if gz else ""
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = (np.arange(n * 16) % 256).astype(np.uint8).reshape(n, 4, 4)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(directory / f"{part}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{part}-labels-idx1-ubyte{suffix}", labels)
    return directory


# --- min_max_scale (eq. 1.9) ---


def test_min_max_scale_values():
    np.testing.assert_allclose(min_max_scale([2, 4, 6, 10]), [0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(min_max_scale([[0, 8], [16, 4]], 0, 16), [[0, 0.5], [1, 0.25]])
    # An explicit range is used as given, not the data's own min and max.
    np.testing.assert_allclose(min_max_scale([4, 8], lo=0, hi=16), [0.25, 0.5])


def test_min_max_scale_dtypes():
    assert min_max_scale(np.array([0, 255], dtype=np.uint8)).dtype == np.float64
    assert min_max_scale(np.array([0.0, 1.0], dtype=np.float32), 0.0, 255.0).dtype == np.float32
    assert min_max_scale(np.array([0.0, 1.0], dtype=np.float16)).dtype == np.float64


@pytest.mark.parametrize(
    ("x", "lo", "hi"), [([3, 3, 3], None, None), ([1, 2], 5, 5), ([1, 2], 6, 5)]
)
def test_min_max_scale_rejects_an_empty_range(x, lo, hi):
    with pytest.raises(ValueError, match="must be greater than min"):
        min_max_scale(x, lo, hi)


# --- the embedded digits ---


def test_load_digits_shapes_and_ranges():
    splits = load_digits()
    assert isinstance(splits, Splits)
    assert [len(part) for part in splits] == [1197, 300, 300]
    for part in splits:
        assert part.X.shape == (len(part), 64)
        assert part.X.dtype == np.float64 and part.labels.dtype == np.int64
        assert part.X.min() >= 0.0 and part.X.max() <= 1.0
        assert set(np.unique(part.labels)) == set(range(10))  # every class in every split
    # The fixed range 0..16 maps a full block to exactly 1 (eq. 1.9 with min 0, max 16).
    assert splits.train.X.max() == 1.0


def test_load_digits_is_deterministic_and_disjoint():
    first, second = load_digits(), load_digits()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.X, b.X)
        np.testing.assert_array_equal(a.labels, b.labels)
    rows = np.concatenate([np.column_stack([p.X * 16, p.labels]) for p in first])
    assert len(rows) == 1797
    with gzip.open(Path(datasets.__file__).parent / "data" / "digits.csv.gz", "rt") as f:
        original = np.loadtxt(f, delimiter=",")
    # Same multiset of rows as the file: the split neither drops nor duplicates an image.
    key = np.lexsort(rows.T)
    np.testing.assert_allclose(rows[key], original[np.lexsort(original.T)])


def test_load_digits_float32():
    splits = load_digits(dtype=np.float32)
    assert all(part.X.dtype == np.float32 for part in splits)
    np.testing.assert_allclose(splits.test.X, load_digits().test.X, rtol=1e-6)


def test_load_digits_rejects_integer_dtype():
    with pytest.raises(ValueError, match="floating"):
        load_digits(dtype=np.int64)


def test_read_digits_rejects_wrong_columns(tmp_path):
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(gzip.compress(b"1,2,3\n4,5,6\n"))
    with pytest.raises(ValueError, match=r"bad\.csv\.gz: expected 65 columns .* got 3"):
        datasets._read_digits(bad, "bad.csv.gz")


def test_read_digits_rejects_bad_labels(tmp_path):
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(gzip.compress((",".join(["0"] * 64) + ",10\n").encode()))
    with pytest.raises(ValueError, match=r"bad\.csv\.gz: labels span 10\.\.10"):
        datasets._read_digits(bad, "bad.csv.gz")


# --- Dataset ---


def test_dataset_one_hot_and_len():
    data = Dataset(np.zeros((3, 2)), np.array([2, 0, 9]))
    assert len(data) == 3
    y = data.one_hot()
    assert y.shape == (3, 10) and y.dtype == np.float64
    np.testing.assert_array_equal(y.argmax(axis=1), [2, 0, 9])
    assert y.sum() == 3
    with pytest.raises(ValueError, match="outside 0..4"):
        data.one_hot(num_classes=5)


def test_dataset_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"X \(3, 2\) and labels \(2,\)"):
        Dataset(np.zeros((3, 2)), np.zeros(2, dtype=np.int64))


# --- load_idx ---


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
def test_load_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    if dtype == "u1":
        array = rng.integers(0, 256, (3, 4, 5)).astype(np.uint8)
    path = write_idx(tmp_path / ("a.idx.gz" if gz else "a.idx"), array)
    loaded = load_idx(path)
    assert loaded.shape == array.shape
    assert loaded.dtype == array.dtype.newbyteorder("=")
    assert loaded.dtype.isnative and loaded.flags.writeable
    np.testing.assert_array_equal(loaded, array)


def test_load_idx_detects_gzip_by_content(tmp_path):
    array = np.arange(6, dtype=np.uint8)
    path = write_idx(tmp_path / "labels-idx1-ubyte", array, gz=True)  # no .gz in the name
    np.testing.assert_array_equal(load_idx(path), array)


def test_load_idx_wrong_magic(tmp_path):
    path = write_idx(tmp_path / "bad-magic.idx", b"\x01\x00\x08\x01\x00\x00\x00\x00")
    with pytest.raises(ValueError, match=r"bad-magic\.idx: bad magic number 0x01000801"):
        load_idx(path)


def test_load_idx_unknown_type_code(tmp_path):
    path = write_idx(tmp_path / "bad-type.idx", b"\x00\x00\x0a\x01\x00\x00\x00\x00")
    with pytest.raises(ValueError, match=r"bad-type\.idx: unknown IDX type code 0x0A"):
        load_idx(path)


def test_load_idx_zero_dimensions(tmp_path):
    path = write_idx(tmp_path / "no-dims.idx", b"\x00\x00\x08\x00")
    with pytest.raises(ValueError, match=r"no-dims\.idx: header declares 0 dimensions"):
        load_idx(path)


def test_load_idx_truncated_header(tmp_path):
    # Three dimensions declared, room for only one size.
    path = write_idx(tmp_path / "short-header.idx", b"\x00\x00\x08\x03\x00\x00\x00\x02")
    with pytest.raises(ValueError, match=r"short-header\.idx: file has 8 bytes.*16 bytes"):
        load_idx(path)


def test_load_idx_truncated_payload(tmp_path):
    header_and_payload = idx_bytes(np.zeros((60, 28, 28), dtype=np.uint8))
    data = header_and_payload[: 16 + 1000]  # 16-byte header, then 1000 of 47040 payload bytes
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", data)
    with pytest.raises(ValueError) as info:
        load_idx(path)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "payload has 1000 bytes, expected 47040 for shape (60, 28, 28) of uint8" in message


def test_load_idx_overlong_payload(tmp_path):
    data = idx_bytes(np.zeros((2, 3), dtype=">f4")) + b"\x00"
    path = write_idx(tmp_path / "long.idx", data)
    with pytest.raises(
        ValueError,
        match=r"long\.idx: payload has 25 bytes, expected 24 for shape "
        r"\(2, 3\) of float32",
    ):
        load_idx(path)


def test_load_idx_corrupt_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.zeros(100, dtype=np.uint8)))
    path = write_idx(tmp_path / "cut.gz", data[: len(data) // 2], gz=False)
    with pytest.raises(ValueError, match=r"cut\.gz: corrupt gzip data"):
        load_idx(path)


# --- load_mnist ---


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_load_mnist_tiny_folder(tmp_path, gz):
    train, validation, test = load_mnist(fake_mnist(tmp_path, gz=gz))
    # Fewer than 60,000 training images: the last sixth (12 // 6 = 2) is validation.
    assert [len(train), len(validation), len(test)] == [10, 2, 5]
    for part in (train, validation, test):
        assert part.X.shape == (len(part), 16) and part.X.dtype == np.float64
        assert part.labels.dtype == np.int64
    # Order is kept and eq. 1.9 uses the fixed range 0..255.
    np.testing.assert_allclose(train.X[0], np.arange(16) / 255)
    np.testing.assert_allclose(validation.X[-1], np.arange(11 * 16, 12 * 16) / 255)
    np.testing.assert_array_equal(validation.labels, [0, 1])
    np.testing.assert_array_equal(test.labels, [0, 1, 2, 3, 4])


def test_load_mnist_float32(tmp_path):
    splits = load_mnist(fake_mnist(tmp_path), dtype=np.float32)
    assert all(part.X.dtype == np.float32 for part in splits)


def test_load_mnist_missing_file(tmp_path):
    fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz" in message
    assert "train-images" not in message  # only the missing name is reported


def test_load_mnist_count_mismatch(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(11, dtype=np.uint8))
    with pytest.raises(ValueError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte has 12 images" in message
    assert "train-labels-idx1-ubyte has 11 labels" in message


def test_load_mnist_images_must_be_3d(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 16), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte: images must be 3-D.*\(5, 16\)"):
        load_mnist(tmp_path)


def test_load_mnist_labels_must_be_1d(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros((12, 1), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: labels must be 1-D.*\(12, 1\)"):
        load_mnist(tmp_path)


def test_load_mnist_labels_in_range(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3, 12], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: labels span 0\.\.12"):
        load_mnist(tmp_path)


def test_load_mnist_image_sizes_must_agree(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 3, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(4, 4\) images but .*t10k-images-idx3-ubyte has"):
        load_mnist(tmp_path)


def test_find_fashion_mnist_checks_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", os.fspath(tmp_path))
    assert find_fashion_mnist() is None
    fake_mnist(tmp_path, gz=True)
    assert find_fashion_mnist() == os.fspath(tmp_path)


def test_load_fashion_mnist():
    directory = find_fashion_mnist()
    if directory is None:
        pytest.skip(
            "dataset-fashion-mnist is not installed: apt-get install -y dataset-fashion-mnist"
        )
    # float32 halves the memory of the 70,000 x 784 inputs; the split is the same.
    train, validation, test = load_mnist(directory, dtype=np.float32)
    assert [len(train), len(validation), len(test)] == [50_000, 10_000, 10_000]
    for part in (train, validation, test):
        assert part.X.shape == (len(part), 784)
        assert part.X.min() == 0.0 and part.X.max() == 1.0
        assert set(np.unique(part.labels)) == set(range(10))


# --- to_book_format ---


def test_to_book_format_shapes():
    splits = load_digits()
    training_data = to_book_format(splits.train)
    assert len(training_data) == 1197
    x, y = training_data[0]
    assert x.shape == (64, 1) and y.shape == (10, 1)
    assert y.sum() == 1 and int(y.argmax()) == splits.train.labels[0]
    np.testing.assert_array_equal(x[:, 0], splits.train.X[0])

    test_data = to_book_format(splits.test, one_hot=False)
    assert len(test_data) == 300
    x, y = test_data[-1]
    assert x.shape == (64, 1)
    assert type(y) is int and y == splits.test.labels[-1]


def test_to_book_format_on_mnist_shapes(tmp_path):
    train, _, test = load_mnist(fake_mnist(tmp_path))
    x, y = to_book_format(train)[0]
    assert x.shape == (16, 1) and y.shape == (10, 1)
    assert isinstance(to_book_format(test, one_hot=False)[0][1], int)


# The fixture writer must itself be right for the tests above to mean anything.
def test_idx_fixture_matches_the_real_file_header():
    directory = find_fashion_mnist()
    if directory is None:
        pytest.skip(
            "dataset-fashion-mnist is not installed: apt-get install -y dataset-fashion-mnist"
        )
    with gzip.open(Path(directory) / "t10k-labels-idx1-ubyte.gz") as f:
        real_header = f.read(8)
    assert idx_bytes(np.zeros(10_000, dtype=np.uint8))[:8] == real_header


# --- issue 15, item 16: small files and NaN pixels; item 19: min_max_scale's range ---------


@pytest.mark.parametrize("n_train", [0, 1, 5])
def test_load_mnist_with_fewer_than_6_training_images_says_so(tmp_path, n_train):
    """n // 6 = 0 validation images ended in numpy's "cannot reshape array of size 0"."""
    fake_mnist(tmp_path, n_train=n_train)
    with pytest.raises(ValueError, match=rf"train-images-idx3-ubyte: {n_train} training images; "
                                         r"the tutorial's split needs at least 6"):
        load_mnist(tmp_path)


def test_load_mnist_with_6_training_images_keeps_one_for_validation(tmp_path):
    train, validation, test = load_mnist(fake_mnist(tmp_path, n_train=6))
    assert [len(train), len(validation), len(test)] == [5, 1, 5]


def test_load_mnist_without_test_images_says_so(tmp_path):
    fake_mnist(tmp_path, n_test=0)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte: no test images"):
        load_mnist(tmp_path)


def test_load_mnist_refuses_nan_pixels_naming_the_image(tmp_path):
    """NaN compares false, so float pixels holding NaN passed the 0..255 range check."""
    fake_mnist(tmp_path)
    images = np.full((5, 4, 4), 128.0, dtype=np.float32)
    images[3, 1, 2] = np.nan
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte: image 3 holds NaN at row 1, "
                                         r"column 2"):
        load_mnist(tmp_path)


def test_load_mnist_refuses_images_without_pixels(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((12, 0, 4), dtype=np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 0, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"images of 0x4 pixels hold no pixels"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("dtype, big", [(np.float32, 3e38), (np.float64, 1.7e308)])
def test_min_max_scale_of_data_spanning_most_of_the_float_range(dtype, big):
    """float32 data from -3e38 to 3e38 gave [0, 0, nan] and overflow warnings."""
    x = np.array([-big, 0.0, big], dtype=dtype)
    scaled = min_max_scale(x)
    assert scaled.dtype == dtype
    np.testing.assert_array_equal(scaled, [0.0, 0.5, 1.0])


def test_min_max_scale_refuses_a_value_whose_scaled_value_overflows():
    with pytest.raises(ValueError, match=r"x holds 1e\+38 at index \(1,\), so far outside "
                                         r"\[0\.0, 1e-10\] .*beyond the range of float32"):
        min_max_scale(np.array([0.5, 1e38], dtype=np.float32), lo=0, hi=1e-10)


@pytest.mark.property
@given(hnp.arrays(np.float32, st.integers(2, 6),
                   elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))
def test_min_max_scale_of_any_finite_float32_data_is_correctly_rounded(x):
    """Within half a float32 ulp of 1 of the exact (x - min) / (max - min), whatever the
    range, with no warning."""
    assume(x.max() > x.min())
    scaled = min_max_scale(x)
    assert scaled.dtype == np.float32
    lo, hi = Fraction(float(x.min())), Fraction(float(x.max()))
    for value, got in zip(x, scaled):
        exact = (Fraction(float(value)) - lo) / (hi - lo)
        assert abs(Fraction(float(got)) - exact) <= Fraction(1, 2**24), (value, got)
    assert scaled[x.argmin()] == 0 and scaled[x.argmax()] == 1


def test_splits_behave_like_the_books_lists_where_a_learner_expects_it():
    """Issue 16: ``training_data[0]``, ``for x, y in test_data``, ``len()`` and the sequel's
    ``training_data[:1000]`` work on `load_digits()`'s splits."""
    from tinygrad_nn import Network

    training_data, _, test_data = datasets.load_digits()
    x, y = training_data[0]
    np.testing.assert_array_equal(x, training_data.X[0])
    assert y == training_data.labels[0] and type(y) is int
    assert training_data[-1][1] == training_data.labels[-1]
    pairs = [(x, y) for x, y in test_data]
    assert len(pairs) == len(test_data) == 300
    assert all(type(y) is int for _, y in pairs)
    part = training_data[:100]
    assert isinstance(part, datasets.Dataset) and len(part) == 100
    net = Network([64, 10, 10], seed=0)
    # The book's way of counting, and the network's, agree; a list of the pairs is data too.
    assert sum(int(np.argmax(net.feedforward(x)) == y) for x, y in test_data) == net.evaluate(
        test_data) == net.evaluate(list(test_data))
    net.SGD(training_data[:100], 1, 10, 1.0, verbose=False)
    with pytest.raises(TypeError, match=r"\.X and \.labels.*to_book_format"):
        training_data["X"]
    with pytest.raises(IndexError):
        training_data[len(training_data)]
