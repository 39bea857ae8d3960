"""tinygrad_nn._threads: limiting numpy's BLAS threads for a block, and the rule deciding when.

Behaviour only (how much faster is benchmarks/contention.py's business): the count inside and
after a block, nesting, exceptions, the no-op without OpenBLAS and with a misbehaving one, and
results identical with and without the limit.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_nn import Network, _threads, datasets, nn
from tinygrad_nn._threads import (
    OpenBLAS,
    blas_threads,
    dense_shapes,
    find_openblas,
    get_blas_threads,
    openblas_libraries,
    threads_for,
    threads_for_model,
)

needs_openblas = pytest.mark.skipif(not openblas_libraries(),
                                    reason="numpy's BLAS here is not OpenBLAS")


class FakeBLAS:
    """A stand-in for an OpenBLAS: a thread count, and a log of what was set."""

    def __init__(self, threads: int) -> None:
        self.threads, self.calls = threads, []

    def get(self) -> int:
        return self.threads

    def set(self, n: int) -> None:
        self.calls.append(n)
        self.threads = n

    def library(self, name: str = "fake") -> OpenBLAS:
        return OpenBLAS(name, self.get, self.set)


@pytest.fixture
def fakes(monkeypatch):
    """Two fake libraries (4 and 2 threads) as the only ones the module knows of."""
    a, b = FakeBLAS(4), FakeBLAS(2)
    monkeypatch.setattr(_threads, "_found", [a.library("a"), b.library("b")])
    return a, b


def test_the_count_is_limited_inside_and_restored_after(fakes):
    a, b = fakes
    assert get_blas_threads() == 4
    with blas_threads(1) as limiter:
        assert (a.threads, b.threads) == (1, 1)
        assert get_blas_threads() == 1
    assert isinstance(limiter, blas_threads)
    assert (a.threads, b.threads) == (4, 2)


def test_a_limit_never_raises_a_count(fakes):
    a, b = fakes
    with blas_threads(3):
        assert (a.threads, b.threads) == (3, 2)
    assert (a.threads, b.threads) == (4, 2)
    assert b.calls == []  # already within the limit: left alone


def test_blocks_nest_and_each_restores_what_it_found(fakes):
    a, b = fakes
    with blas_threads(3):
        with blas_threads(1):
            assert (a.threads, b.threads) == (1, 1)
            with blas_threads(2):  # a looser limit inside a tighter one changes nothing
                assert (a.threads, b.threads) == (1, 1)
            assert (a.threads, b.threads) == (1, 1)
        assert (a.threads, b.threads) == (3, 2)
    assert (a.threads, b.threads) == (4, 2)


def test_one_limiter_entered_again_inside_itself(fakes):
    a, _ = fakes
    one = blas_threads(2)
    with one:
        a.threads = 3  # someone else changed it in between
        with one:
            assert a.threads == 2
        assert a.threads == 3
    assert a.threads == 4


def test_the_count_is_restored_when_the_block_raises(fakes):
    a, b = fakes
    with pytest.raises(KeyError):
        with blas_threads(1):
            raise KeyError("boom")
    assert (a.threads, b.threads) == (4, 2)


def test_no_limit_touches_nothing(fakes):
    a, b = fakes
    with blas_threads(None):
        assert (a.threads, b.threads) == (4, 2)
    assert a.calls == b.calls == []


def test_without_openblas_it_is_a_no_op(monkeypatch):
    monkeypatch.setattr(_threads, "_found", [])
    assert get_blas_threads() is None
    with blas_threads(1):
        product = np.ones((3, 4)) @ np.ones((4, 2))
    np.testing.assert_array_equal(product, np.full((3, 2), 4.0))


def test_discovery_that_fails_means_no_openblas(monkeypatch):
    def broken(paths=None):
        raise RuntimeError("no /proc here")

    monkeypatch.setattr(_threads, "_found", None)
    monkeypatch.setattr(_threads, "find_openblas", broken)
    assert openblas_libraries() == []
    with blas_threads(1):
        pass


def test_libraries_that_are_no_openblas_are_not_found():
    import _ctypes  # a loaded extension that reaches no BLAS

    assert find_openblas(["/nonexistent/libopenblas.so", _ctypes.__file__]) == []


def test_no_paths_to_look_at_means_nothing_found(monkeypatch):
    monkeypatch.setattr(_threads, "_loaded_paths", lambda: [])
    assert find_openblas() == []


@needs_openblas
def test_each_library_is_found_once_however_it_is_reached():
    found = find_openblas()
    assert len(found) == len({blas.path for blas in found})
    core = np._core._multiarray_umath.__file__  # numpy's BLAS, reached through its extension
    assert len(find_openblas([core] + [blas.path for blas in found])) == len(found)


@pytest.mark.parametrize("get", [lambda: 0, lambda: -1, lambda: 1 // 0])
def test_a_library_that_misbehaves_is_left_alone_without_an_error(monkeypatch, get):
    calls = []
    monkeypatch.setattr(_threads, "_found", [OpenBLAS("odd", get, calls.append)])
    assert get_blas_threads() is None
    with blas_threads(1):
        pass
    assert calls == []


def test_a_setter_that_raises_is_no_error(monkeypatch):
    def refuse(n: int) -> None:
        raise OSError("refused")

    monkeypatch.setattr(_threads, "_found", [OpenBLAS("odd", lambda: 4, refuse)])
    with blas_threads(1):
        pass


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, "1"])
def test_a_limit_must_be_a_positive_integer_or_none(limit):
    with pytest.raises(ValueError, match="blas_threads: limit must be an integer >= 1"):
        blas_threads(limit)


def test_the_rule_gives_one_thread_to_small_products_and_leaves_large_ones_alone():
    assert threads_for(dense_shapes([64, 30, 10], 10)) == 1        # the main job
    assert threads_for(dense_shapes([784, 30, 10], 10)) == 1       # the tutorial's MNIST net
    assert threads_for(dense_shapes([784, 256, 256, 10], 128)) is None  # large batches keep
    assert threads_for([(4096, 4096, 4096)]) is None
    assert threads_for([]) == 1
    assert dense_shapes([784, 30, 10], 10) == [(10, 784, 30), (10, 30, 10)]
    largest = _threads.ONE_THREAD_BELOW
    assert threads_for([(1, 1, largest - 1)]) == 1
    assert threads_for([(1, 1, largest)]) is None


def test_the_rule_for_a_model_reads_its_dense_weights():
    small, large = Network([64, 30, 10]), Network([784, 256, 256, 10])
    assert threads_for_model(small.parameters(), 10) == 1
    assert threads_for_model(large.parameters(), 10) == 1
    assert threads_for_model(large.parameters(), 128) is None
    assert threads_for_model([np.zeros((30, 64)), np.zeros(30)], 10) == 1  # arrays do too


def test_the_rule_leaves_convolutions_and_models_without_parameters_alone():
    conv = nn.Conv2d(1, 8, 3)
    assert threads_for_model(conv.parameters(), 1) is None
    assert threads_for_model([], 10) is None


# --- with this process's own BLAS (skipped where numpy has no OpenBLAS) ------------------------


@needs_openblas
def test_the_real_count_is_limited_and_restored():
    blas = openblas_libraries()[0]
    before = blas.get()
    blas.set(2)
    try:
        with blas_threads(1):
            assert blas.get() == 1
            with blas_threads(1):
                assert blas.get() == 1
            assert blas.get() == 1
        assert blas.get() == 2
    finally:
        blas.set(before)
    assert blas.get() == before


@needs_openblas
@pytest.mark.parametrize("shape", [(10, 64, 30), (10, 784, 30), (10, 30, 784), (30, 10, 784)])
def test_the_small_products_the_rule_limits_are_the_same_inside_and_outside(shape):
    # The forward and backward products of a batch-10 step: OpenBLAS computes them on one
    # thread anyway, so the limit changes no bit of them.
    m, k, n = shape
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    outside, outside_t = a @ b, b.T @ a.T
    with blas_threads(1):
        inside, inside_t = a @ b, b.T @ a.T
    np.testing.assert_array_equal(inside, outside)
    np.testing.assert_array_equal(inside_t, outside_t)


@needs_openblas
def test_a_large_product_agrees_inside_and_outside_to_rounding():
    # Split among threads, OpenBLAS may add a large product's terms in another order: the
    # same to the last bit or two, not bit for bit (300^3 differs at ~1e-14 on 2 cores).
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((300, 300)), rng.standard_normal((300, 300))
    outside = a @ b
    with blas_threads(1):
        inside = a @ b
    np.testing.assert_allclose(inside, outside, rtol=1e-12, atol=1e-12)


def test_training_gives_the_same_weights_inside_and_outside():
    train = datasets.load_digits().train
    nets = [Network([64, 30, 10], seed=0) for _ in range(2)]
    nets[0].SGD(train, 1, 10, 3.0, verbose=False)
    with blas_threads(1):
        nets[1].SGD(train, 1, 10, 3.0, verbose=False)
    for p, q in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        np.testing.assert_array_equal(p, q)
