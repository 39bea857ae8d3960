"""numpy's BLAS threads, limited at run time from Python: OpenBLAS through ctypes, numpy alone.

OpenBLAS starts one thread per core and splits every matrix product above a small size among
them. For a small network that buys nothing; on a busy machine it costs a great deal: a
product waits for its slowest thread, and a thread whose core is held by another process
waits for the scheduler (milliseconds, up to a tenth of a second on the 2-core machine;
benchmarks/contention.py measures it).

`blas_threads(limit)` lowers the thread count of every OpenBLAS loaded in the process (numpy's
own, e.g. ``numpy.libs/libscipy_openblas64_-*.so``; scipy's, when imported) for the duration of
a ``with`` block and restores each one's count after. It is a no-op, never an error, where no
OpenBLAS is found (numpy built on MKL, Accelerate, a reference BLAS) or the library misbehaves.
`threads_for(...)` is the rule deciding the limit from a step's shapes.

The count is global to the process: two Python threads entering and leaving blocks out of
order restore each other's counts. Enter it around a whole training loop, not around a step.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

__all__ = ["blas_threads", "dense_shapes", "get_blas_threads", "openblas_libraries",
           "threads_for", "threads_for_model"]

# (setter, getter) per build of OpenBLAS: plain, numpy's scipy-openblas64 (ILP64, symbols
# suffixed 64_), scipy-openblas32, and a distribution's ILP64 build. Both take/return a C int.
_SYMBOLS = (
    ("openblas_set_num_threads", "openblas_get_num_threads"),
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
)

# The rule of `threads_for`: one BLAS thread when the largest matrix product of a training step
# has fewer multiply-adds than this, else BLAS's own count. Measured on the 2-core machine
# (benchmarks/contention.py --steps and the same steps timed apart; eager tinygrad_nn steps;
# the machine was never idle, so "quiet" is the fastest step seen): below it two threads gained
# at most 1.3x quiet ([784, 30, 10] batch 10, 235k multiply-adds: 1.00; [784, 100, 10] batch
# 10, 784k: 1.15; [784, 30, 10] batch 100, 2.4M: 1.31; [784, 256, 256, 10] batch 16, 3.2M:
# 1.16) and their mean step was 5x to 100x slower with a busy loop per core. Above it the
# quiet gain grows: [784, 256, 256, 10] batch 32 (6.4M) 2.0x in one run (1.2x slower in
# another), the batch-128 epoch (25.7M) 1.6x at its best; large batches keep their threads.
ONE_THREAD_BELOW = 5_000_000


class OpenBLAS:
    """One OpenBLAS loaded in this process: its path and its get/set thread-count functions."""

    __slots__ = ("path", "_get", "_set")

    def __init__(self, path: str, get: Callable[[], int], set: Callable[[int], object]) -> None:
        self.path, self._get, self._set = path, get, set

    def get(self) -> int | None:
        """The current thread count, or None if the library gave no sensible answer."""
        try:
            n = int(self._get())
        except Exception:  # a foreign library: whatever it does, never an error here
            return None
        return n if n >= 1 else None

    def set(self, n: int) -> None:
        """Set the thread count to `n` (silently nothing if the library refuses)."""
        try:
            self._set(n)
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"OpenBLAS({self.path!r}, threads={self.get()})"


def _numpy_paths() -> list[str]:
    """numpy's core extension (its BLAS is found through it: dlsym searches a library's
    dependencies), then the libraries shipped beside numpy (``numpy.libs``, ``.dylibs``)."""
    numpy = sys.modules.get("numpy")
    where = os.path.dirname(getattr(numpy, "__file__", None) or "")
    if not where:
        return []
    core = getattr(getattr(getattr(numpy, "_core", None), "_multiarray_umath", None),
                   "__file__", None)
    patterns = (os.path.join(where + ".libs", "*openblas*"),
                os.path.join(where, ".dylibs", "*openblas*"))
    return ([core] if core else []) + sorted(p for pattern in patterns
                                             for p in glob.glob(pattern))


def _loaded_paths() -> list[str]:
    """Where to look for OpenBLAS: the libraries named like a BLAS that this process has
    loaded (Linux's /proc/self/maps: numpy's, a system OpenBLAS numpy links to, scipy's),
    then numpy's own files (`_numpy_paths`, for other systems)."""
    paths: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                if "blas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    return paths + [p for p in _numpy_paths() if p not in paths]


def _open(path: str) -> ctypes.CDLL | None:
    """The already loaded library at `path`, never loading a new one where the OS allows."""
    mode = getattr(os, "RTLD_NOLOAD", 0) | getattr(os, "RTLD_LAZY", 0)
    try:
        return ctypes.CDLL(path, mode=mode) if mode else ctypes.CDLL(path)
    except OSError:
        return None


def _bind(path: str, lib: ctypes.CDLL) -> tuple[int, OpenBLAS] | None:
    """(the setter's address, the library) if `lib` has (or reaches) an OpenBLAS."""
    for set_name, get_name in _SYMBOLS:
        setter, getter = getattr(lib, set_name, None), getattr(lib, get_name, None)
        if setter is not None and getter is not None:
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            address = ctypes.cast(setter, ctypes.c_void_p).value or 0
            return address, OpenBLAS(path, getter, setter)
    return None


def find_openblas(paths: Iterable[str] | None = None) -> list[OpenBLAS]:
    """Every OpenBLAS reached from `paths` (default: `_loaded_paths`), each library once."""
    found: dict[int, OpenBLAS] = {}
    for path in _loaded_paths() if paths is None else paths:
        lib = _open(path)
        bound = None if lib is None else _bind(path, lib)
        if bound is not None and bound[0] not in found and bound[1].get() is not None:
            found[bound[0]] = bound[1]
    return list(found.values())


_found: list[OpenBLAS] | None = None


def openblas_libraries() -> list[OpenBLAS]:
    """The OpenBLAS libraries of this process, found once (numpy's is loaded with numpy)."""
    global _found
    if _found is None:
        try:
            import numpy  # noqa: F401  (its BLAS is what we are after: make sure it is loaded)

            _found = find_openblas()
        except Exception:  # never an error: no BLAS found is no limit
            _found = []
    return _found


def get_blas_threads() -> int | None:
    """The largest thread count among the OpenBLAS libraries found, or None without any."""
    counts = [n for n in (blas.get() for blas in openblas_libraries()) if n is not None]
    return max(counts) if counts else None


class blas_threads:
    """``with blas_threads(1): ...``: at most `limit` BLAS threads inside the block.

    Each OpenBLAS found gets min(limit, its count) on entry and its own count back on exit,
    whatever ends the block; blocks nest. ``limit=None``, or no OpenBLAS found, does nothing.
    It never raises thread counts: a user's OPENBLAS_NUM_THREADS=1 stays 1. Entering and
    leaving cost a few microseconds (two C calls per library).
    """

    __slots__ = ("limit", "_saved")

    def __init__(self, limit: int | None) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise ValueError(f"blas_threads: limit must be an integer >= 1 or None, "
                             f"got {limit!r}")
        self.limit = limit
        self._saved: list[list[tuple[OpenBLAS, int]]] = []

    def __enter__(self) -> blas_threads:
        saved: list[tuple[OpenBLAS, int]] = []
        if self.limit is not None:
            for blas in openblas_libraries():
                n = blas.get()
                if n is not None and n > self.limit:
                    saved.append((blas, n))
                    blas.set(self.limit)
        self._saved.append(saved)  # a stack: the same object may be entered again inside
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        for blas, n in self._saved.pop() if self._saved else ():
            blas.set(n)


def threads_for(shapes: Sequence[tuple[int, int, int]]) -> int | None:
    """The BLAS thread limit for a step whose matrix products are `shapes`, (m, k, n) each
    (an (m, k) by (k, n) product): 1 when the largest has fewer than `ONE_THREAD_BELOW`
    multiply-adds, else None (keep BLAS's own count).

    For a dense network of widths `sizes` trained on mini-batches of `batch` rows the
    products are ``(batch, a, b)`` for each layer (a, b) (with their transposes in the
    backward pass, the same size): see `dense_shapes`.
    """
    largest = max((m * k * n for m, k, n in shapes), default=0)
    return 1 if largest < ONE_THREAD_BELOW else None


def dense_shapes(sizes: Sequence[int], batch: int) -> list[tuple[int, int, int]]:
    """The forward products of a dense network of widths `sizes` at `batch` rows."""
    return [(batch, a, b) for a, b in zip(sizes, sizes[1:])]


def threads_for_model(parameters: Iterable[Any], batch: int) -> int | None:
    """`threads_for` a model trained on mini-batches of `batch` rows, from its parameters.

    Each 2-D parameter (out, in) is a dense layer's weight: products (batch, in, out). A
    parameter of more dimensions (a convolution's kernel, whose products grow with the image,
    not with the kernel) leaves BLAS's own count: None. So does a model without parameters.
    """
    shapes = [tuple(getattr(p, "shape", ())) for p in parameters]
    if not shapes or any(len(shape) > 2 for shape in shapes):
        return None
    return threads_for([(batch, s[1], s[0]) for s in shapes if len(s) == 2])
