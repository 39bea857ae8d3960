"""Data sets for the tutorial's digit classifier: loading, scaling (eq. 1.9) and splitting.

Two sources, one shape of result. ``load_digits`` reads the small 8x8 digits shipped inside the
package, so everything runs on a fresh install with no download. ``load_mnist`` reads the IDX
files of MNIST (or Fashion-MNIST, which uses the same format) from a folder. Both return
``Splits(train, validation, test)`` of ``Dataset`` rows, pixels scaled to [0, 1] by eq. 1.9.
``to_book_format`` turns a ``Dataset`` into the lists of column-vector pairs that Nielsen's
``mnist_loader.load_data_wrapper`` returns, for code written against the book.

It imports only numpy, the standard library and the argument checks: no autograd is needed.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._checks import float_dtype

if TYPE_CHECKING:
    from collections.abc import Iterator
    from importlib.resources.abc import Traversable
    from pathlib import Path

__all__ = [
    "FASHION_MNIST_DIR",
    "MNIST_FILES",
    "Dataset",
    "Splits",
    "find_fashion_mnist",
    "load_digits",
    "load_idx",
    "load_mnist",
    "min_max_scale",
    "to_book_format",
]

NUM_CLASSES = 10

# Where the Debian package ``dataset-fashion-mnist`` installs its four gzip-compressed IDX files,
# under the standard MNIST names (checked with ``dpkg -L dataset-fashion-mnist``).
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# The standard MNIST file names; each may also carry a ``.gz`` suffix.
MNIST_FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)

# The tutorial keeps MNIST's 10,000 test images and splits its 60,000 training images into
# 50,000 for training and 10,000 for validation.
MNIST_VALIDATION_SIZE = 10_000
MNIST_TRAIN_FILE_SIZE = 60_000

# The 1,797 embedded digits are split in the same spirit: 300 validation, 300 test, rest train.
DIGITS_VALIDATION_SIZE = 300
DIGITS_TEST_SIZE = 300
DIGITS_PIXEL_MAX = 16  # each pixel counts the "on" pixels of a 4x4 block
DIGITS_SHUFFLE_SEED = 0

# IDX type code (third magic byte) -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def min_max_scale(
    x: ArrayLike, lo: float | None = None, hi: float | None = None
) -> NDArray[np.floating]:
    """Scale ``x`` to [0, 1] by min-max normalisation, eq. 1.9: x̃ = (x - min) / (max - min).

    ``lo`` and ``hi`` default to the minimum and maximum of the whole array. Pass them
    explicitly to scale several arrays the same way (the loaders pass the pixel range, 0..16 or
    0..255, so every image and every split is scaled identically, and a dark image is not
    stretched to full contrast). Values outside [lo, hi] are not clipped.

    Returns float32 if ``x`` is float32, else float64. The arithmetic is float64 whatever the
    input (float32 data spanning most of float32's range, ±3e38, would overflow in float32),
    done block by block so that a large float32 array needs no float64 copy of itself; a range
    too wide even for float64 (from -1e308 to 1e308) is halved first, which is exact.

    Raises ``ValueError`` if max <= min (a constant input has no range: eq. 1.9 would divide by
    zero), if the range is not finite, or if a value outside [lo, hi] lies so far out that its
    scaled value is beyond the range of the result's dtype.
    """
    x = np.asarray(x)
    dtype = np.dtype(np.float32 if x.dtype == np.float32 else np.float64)
    if x.size == 0 and (lo is None or hi is None):
        raise ValueError("min_max_scale: an empty array has no min or max; pass lo and hi")
    lo_ = _as_float(x.min() if lo is None else lo)
    hi_ = _as_float(x.max() if hi is None else hi)
    if not (math.isfinite(lo_) and math.isfinite(hi_)):
        raise ValueError(f"min_max_scale: the range [{lo_}, {hi_}] is not finite")
    if not hi_ > lo_:
        raise ValueError(
            f"min_max_scale: max ({hi_}) must be greater than min ({lo_}); a constant input has "
            "no range, so eq. 1.9 would divide by zero"
        )
    # Python floats are float64 and overflow to inf without a warning: if the span, or the
    # distance of x's extremes from lo, overflows, every term is halved (exact: x/2 - lo/2
    # cannot overflow), which leaves the quotient unchanged.
    extremes = (_as_float(x.min()), _as_float(x.max())) if x.size else (lo_, hi_)
    half = 0.5 if not all(math.isfinite(v - lo_) for v in (hi_, *extremes)) else 1.0
    lo_h, span = lo_ * half, hi_ * half - lo_ * half
    out = np.empty(x.shape, dtype)
    flat, flat_out = x.reshape(-1), out.reshape(-1)
    with np.errstate(over="ignore"):  # checked below, with the value named
        for start in range(0, flat.size, _SCALE_BLOCK):
            block = flat[start:start + _SCALE_BLOCK].astype(np.float64)
            if half != 1.0:
                block *= half
            block -= lo_h
            block /= span
            flat_out[start:start + _SCALE_BLOCK] = block
    if np.isinf(out).any():
        overflowed = np.isinf(out) & np.isfinite(x)
        if overflowed.any():
            i = tuple(int(j) for j in np.argwhere(overflowed)[0])
            raise ValueError(
                f"min_max_scale: x holds {x[i]!s} at index {i}, so far outside "
                f"[{lo_}, {hi_}] that its scaled value is beyond the range of {dtype}"
            )
    return out


#: Elements of x scaled at once by `min_max_scale`: its float64 temporaries stay at 2 MB.
_SCALE_BLOCK = 1 << 18


def _as_float(value: object) -> float:
    """A bound as a Python float; one beyond float64 (an int of 400 digits) becomes ±inf."""
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Examples as rows: ``X`` is (n, inputs) float, ``labels`` is (n,) int64 class indices."""

    X: NDArray[np.floating]
    labels: NDArray[np.int64]

    def __post_init__(self) -> None:
        if self.X.ndim != 2 or self.labels.ndim != 1 or len(self.X) != len(self.labels):
            raise ValueError(
                f"Dataset needs X of shape (n, inputs) and labels of shape (n,); "
                f"got X {self.X.shape} and labels {self.labels.shape}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int | slice) -> tuple[NDArray[np.floating], int] | Dataset:
        """Example `i` as the pair ``(x, label)``, x its row of `X`, or a slice as a `Dataset`:
        the book's ``training_data[0]`` and ``training_data[:1000]`` work.

        For the book's (inputs, 1) columns and one-hot y, use `to_book_format`.
        """
        if isinstance(i, slice):
            return Dataset(self.X[i], self.labels[i])
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(
                f"Dataset: index with an integer or a slice, got {type(i).__name__}; the arrays "
                f"are .X and .labels, and datasets.to_book_format(dataset) gives the book's "
                f"list of (x, y) pairs"
            )
        return self.X[i], int(self.labels[i])

    def __iter__(self) -> Iterator[tuple[NDArray[np.floating], int]]:
        """The pairs ``(x, label)``, as the book's ``for x, y in test_data`` expects."""
        return ((x, int(label)) for x, label in zip(self.X, self.labels))

    def one_hot(self, num_classes: int = NUM_CLASSES) -> NDArray[np.floating]:
        """The labels as (n, num_classes) one-hot rows, the desired outputs y(x) of the cost."""
        if len(self) and (self.labels.min() < 0 or self.labels.max() >= num_classes):
            raise ValueError(
                f"one_hot: labels span {self.labels.min()}..{self.labels.max()}, "
                f"outside 0..{num_classes - 1}"
            )
        dtype = self.X.dtype if self.X.dtype.kind == "f" else np.float64
        y = np.zeros((len(self), num_classes), dtype=dtype)
        y[np.arange(len(self)), self.labels] = 1
        return y


class Splits(NamedTuple):
    """The tutorial's three parts: fit on ``train``, tune on ``validation``, report ``test``."""

    train: Dataset
    validation: Dataset
    test: Dataset


def _scale_pixels(pixels: NDArray, pixel_max: int, dtype: np.dtype) -> NDArray[np.floating]:
    # A fixed range rather than each array's own min and max: the same pixel value must map
    # to the same input in every split and every image.
    return min_max_scale(pixels.astype(dtype), 0, pixel_max).astype(dtype, copy=False)


def _read_digits(source: Traversable | Path, name: str) -> NDArray[np.int64]:
    """Parse and check the digits CSV; ``source`` is anything with ``.open("rb")``."""
    try:
        with source.open("rb") as raw, gzip.open(raw, "rt") as text:
            table = np.loadtxt(text, delimiter=",", dtype=np.int64, ndmin=2)
    except (ValueError, OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{name}: not a gzip-compressed CSV of integers: {err}") from err
    if table.shape[1] != 65:
        raise ValueError(
            f"{name}: expected 65 columns (64 pixels then the label), got {table.shape[1]}"
        )
    pixels, labels = table[:, :64], table[:, 64]
    if len(table) and (pixels.min() < 0 or pixels.max() > DIGITS_PIXEL_MAX):
        raise ValueError(
            f"{name}: pixel counts span {pixels.min()}..{pixels.max()}, "
            f"expected 0..{DIGITS_PIXEL_MAX}"
        )
    if len(table) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"{name}: labels span {labels.min()}..{labels.max()}, expected 0..9")
    return table


def load_digits(dtype: DTypeLike = np.float64) -> Splits:
    """The embedded 8x8 handwritten digits (UCI, CC BY 4.0) as ``Splits(train, validation, test)``.

    1,797 images of 64 inputs, split 1,197 / 300 / 300 in the spirit of the tutorial's
    50k / 10k / 10k MNIST split. The rows are shuffled with the fixed seed
    ``np.random.default_rng(0)`` before splitting, so every split mixes all ten classes and two
    calls give the same split. Pixel counts 0..16 are scaled to [0, 1] by eq. 1.9 with the fixed
    range 0..16.
    """
    dt = float_dtype("load_digits", dtype)
    table = _read_digits(files("tinygrad_nn") / "data" / "digits.csv.gz", "digits.csv.gz")
    # The file is ordered by writer; shuffling keeps one writer's style out of a whole split.
    order = np.random.default_rng(DIGITS_SHUFFLE_SEED).permutation(len(table))
    table = table[order]
    X = _scale_pixels(table[:, :64], DIGITS_PIXEL_MAX, dt)
    labels = np.ascontiguousarray(table[:, 64])
    n_train = len(table) - DIGITS_VALIDATION_SIZE - DIGITS_TEST_SIZE
    n_val_end = n_train + DIGITS_VALIDATION_SIZE
    return Splits(
        Dataset(X[:n_train], labels[:n_train]),
        Dataset(X[n_train:n_val_end], labels[n_train:n_val_end]),
        Dataset(X[n_val_end:], labels[n_val_end:]),
    )


def load_idx(path: str | os.PathLike[str]) -> NDArray:
    """Read an IDX file (the MNIST format) into a numpy array of the shape it declares.

    Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, each dimension as a big-endian
    uint32, then the items, big-endian, row-major. A gzip-compressed file is recognised by its
    first bytes (1f 8b), whatever its name. The result has native byte order.

    Raises ``ValueError`` naming the file for a bad magic number, an unknown type code, zero
    dimensions, a truncated header, or a payload shorter or longer than the shape needs.
    """
    name = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    # An IDX file starts with two zero bytes, so the gzip magic cannot be mistaken for one.
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{name}: corrupt gzip data: {err}") from err
    if len(data) < 4:
        raise ValueError(f"{name}: file has {len(data)} bytes, too short for the 4-byte magic")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{name}: bad magic number 0x{data[:4].hex()}; an IDX file starts with two zero bytes"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{name}: unknown IDX type code 0x{code:02X} (known: {known})")
    if ndim < 1:
        raise ValueError(f"{name}: header declares {ndim} dimensions, need at least 1")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{name}: file has {len(data)} bytes, too short for the header of {ndim} "
            f"dimension sizes ({header} bytes)"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    # Python ints: the product of large dimensions would overflow a fixed-width integer.
    expected = math.prod(shape) * dtype.itemsize
    payload = len(data) - header
    if payload != expected:
        raise ValueError(
            f"{name}: payload has {payload} bytes, expected {expected} for shape {shape} "
            f"of {dtype.newbyteorder('=').name}"
        )
    # astype copies into native byte order, and the copy is writable (the bytes are not).
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _mnist_paths(directory: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """The path of each standard MNIST file in ``directory`` (plain preferred), and the missing."""
    found, missing = [], []
    for base in MNIST_FILES:
        for candidate in (base, base + ".gz"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                found.append(path)
                break
        else:
            missing.append(base)
    return found, missing


def _mnist_part(images: NDArray, labels: NDArray, names: tuple[str, str]) -> None:
    image_name, label_name = names
    if images.ndim != 3:
        raise ValueError(
            f"{image_name}: images must be 3-D (count, rows, columns), got shape {images.shape}"
        )
    if labels.ndim != 1:
        raise ValueError(f"{label_name}: labels must be 1-D (count,), got shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(
            f"{image_name} has {len(images)} images but {label_name} has {len(labels)} labels"
        )
    if labels.dtype.kind not in "iu":
        raise ValueError(f"{label_name}: labels must be integers, got {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise ValueError(f"{label_name}: labels span {labels.min()}..{labels.max()}, expected 0..9")
    if images.shape[1] * images.shape[2] == 0:
        raise ValueError(f"{image_name}: images of {images.shape[1]}x{images.shape[2]} pixels "
                         f"hold no pixels")
    # NaN compares false with everything, so it would slip through the range check below.
    if images.dtype.kind == "f" and np.isnan(images).any():
        i, row, col = (int(j) for j in np.argwhere(np.isnan(images))[0])
        raise ValueError(f"{image_name}: image {i} holds NaN at row {row}, column {col}; "
                         f"pixels must be numbers in 0..255")
    # uint8 pixels are in range by construction; other types are checked once, up front.
    if images.dtype != np.uint8 and images.size and (images.min() < 0 or images.max() > 255):
        raise ValueError(
            f"{image_name}: pixels span {images.min()}..{images.max()}, expected 0..255"
        )


def load_mnist(directory: str | os.PathLike[str], dtype: DTypeLike = np.float64) -> Splits:
    """MNIST-format IDX files in ``directory`` as ``Splits(train, validation, test)``.

    Needs ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
    and ``t10k-labels-idx1-ubyte``, each optionally gzip-compressed with a ``.gz`` suffix (the
    plain file wins if both exist). This is how MNIST is distributed and how the Debian package
    ``dataset-fashion-mnist`` installs Fashion-MNIST (see ``find_fashion_mnist``).

    The tutorial's split: the t10k files are ``test``; of the training file, the last 10,000
    images are ``validation`` and the rest (the first 50,000 of MNIST's 60,000) are ``train``.
    A training file with fewer than 60,000 images (a small fixture, a subset) gives its last
    sixth, rounded down, to validation instead. Images are flattened row-major (784 inputs for
    28x28) and pixels 0..255 scaled to [0, 1] by eq. 1.9 with the fixed range 0..255.

    Raises ``FileNotFoundError`` naming the directory and the file names looked for, and
    ``ValueError`` for malformed files (see ``load_idx``), images that are not 3-D or have no
    pixels, pixels that are NaN or outside 0..255, labels that are not 1-D or outside 0..9,
    image and label counts that differ, fewer than 6 training images or no test images.
    """
    dt = float_dtype("load_mnist", dtype)
    paths, missing = _mnist_paths(directory)
    if missing:
        looked_for = ", ".join(f"{m} or {m}.gz" for m in missing)
        raise FileNotFoundError(f"{os.fspath(directory)}: no MNIST file named {looked_for}")
    train_images, train_labels, test_images, test_labels = (load_idx(p) for p in paths)
    _mnist_part(train_images, train_labels, (paths[0], paths[1]))
    _mnist_part(test_images, test_labels, (paths[2], paths[3]))
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(
            f"{paths[0]} has {train_images.shape[1:]} images but {paths[2]} has "
            f"{test_images.shape[1:]}; both parts need the same image size"
        )

    n = len(train_images)
    if n < 6:
        raise ValueError(
            f"{paths[0]}: {n} training images; the tutorial's split needs at least 6, since "
            f"the last sixth of a small training file is the validation set"
        )
    if len(test_images) == 0:
        raise ValueError(f"{paths[2]}: no test images")

    def as_dataset(images: NDArray, labels: NDArray) -> Dataset:
        X = _scale_pixels(images.reshape(len(images), -1), 255, dt)
        return Dataset(X, labels.astype(np.int64))

    n_val = MNIST_VALIDATION_SIZE if n >= MNIST_TRAIN_FILE_SIZE else n // 6
    n_train = n - n_val
    return Splits(
        as_dataset(train_images[:n_train], train_labels[:n_train]),
        as_dataset(train_images[n_train:], train_labels[n_train:]),
        as_dataset(test_images, test_labels),
    )


def find_fashion_mnist() -> str | None:
    """``FASHION_MNIST_DIR`` if the four Fashion-MNIST IDX files are there, else None.

    Install them with ``apt-get install -y dataset-fashion-mnist``; load with
    ``load_mnist(find_fashion_mnist())``.
    """
    _, missing = _mnist_paths(FASHION_MNIST_DIR)
    return None if missing else FASHION_MNIST_DIR


def to_book_format(
    dataset: Dataset, one_hot: bool = True
) -> list[tuple[NDArray[np.floating], NDArray[np.floating] | int]]:
    """The book's list of ``(x, y)`` pairs, as Nielsen's ``load_data_wrapper`` returns them.

    ``x`` is an (inputs, 1) column vector. ``y`` is a (10, 1) one-hot column vector for
    training data (``one_hot=True``), or the integer label for validation and test data
    (``one_hot=False``). The vectors are views into ``dataset``, not copies.
    """
    xs = dataset.X[:, :, np.newaxis]
    if one_hot:
        ys = dataset.one_hot()[:, :, np.newaxis]
        return list(zip(xs, ys, strict=True))
    return [(x, int(label)) for x, label in zip(xs, dataset.labels, strict=True)]
