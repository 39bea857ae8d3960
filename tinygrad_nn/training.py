"""The one training loop: `fit` and `evaluate` (sec. 2.2's mini-batch SGD, generalised).

`fit` is the only place that shuffles, gathers mini-batches, steps and evaluates, for any
`nn.Module` (or callable), any cost and any optimizer of `optim`: each epoch shuffles the rows,
takes one step of eqs. 2.4-2.6 per mini-batch matrix (`train_step`), measures a validation
split, steps a learning-rate schedule, and may stop early. `Network.SGD` is the tutorial's
face over it: its epoch lines and the sequel's monitors are `callbacks`, the sequel's early
stopping is `patience` with ``restore_best=False``. `as_arrays` is the one way in for data.
The test split is not `fit`'s business: measure it once, at the very end, with `evaluate`.

>>> from tinygrad_nn import costs, datasets, nn, optim
>>> train, validation, test = datasets.load_digits()
>>> model = nn.Sequential(nn.Linear(64, 32, "he", rng=0), nn.ReLU(), nn.Linear(32, 10, "he", rng=1))
>>> opt = optim.Adam(model.parameters(), lr=0.01)
>>> history = fit(model, costs.cross_entropy, opt, train, 3, 32, validation, seed=0,
...               verbose=False)
>>> len(history), history[-1].val_accuracy > 0.8
(3, True)
>>> evaluate(model, test).total
300
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _checks
from ._threads import blas_threads, threads_for_model
from .costs import COSTS, check_labels
from .datasets import Dataset
from .jit import jit as capture_and_replay  # (fit's keyword `jit` would hide the name)
from .optim import LRScheduler, Optimizer
from .records import EpochRecord, FitHistory, fit_line
from .tensor import Tensor, as_tensor, no_grad

__all__ = ["EpochRecord", "Evaluation", "FitHistory", "as_arrays", "cast_parameters", "checked",
           "evaluate", "fit", "train_step"]

EVAL_BATCH = 1000  # rows per forward pass when evaluating: bounded memory, few Python calls


class _SameCost:
    """validation_cost's default: the training cost (with a readable repr for help())."""

    def __repr__(self) -> str:
        return "<the training cost>"


_SAME = _SameCost()


class Evaluation(NamedTuple):
    """What `evaluate` measured: mean cost (None without a cost), accuracy, correct of total."""

    cost: float | None
    accuracy: float | None
    correct: int | None
    total: int


# --- data: every accepted form becomes (X, T) arrays, here and only here -----------------------


def _expected(what: str, data: Any, item: Any = None) -> TypeError:
    got = type(data).__name__ + ("" if item is None else f" of {type(item).__name__}")
    return TypeError(f"{what}: expected a datasets.Dataset or a tuple (X, Y) of arrays, or "
                     f"the book's list of (x, y) pairs; got a {got}")


def _pairs_to_arrays(data: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The book's list (or `zip`) of (x, y) pairs: x a column or flat, y a target or a label."""
    try:
        pairs = list(data)
    except TypeError:
        raise _expected(what, data) from None
    if not pairs:
        raise ValueError(f"{what}: no examples")
    xs, ys = [], []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list, np.ndarray)):
            raise _expected(what, data, pair)
        if isinstance(pair, np.ndarray) or len(pair) != 2:
            raise ValueError(f"{what}: example {i} is a {type(pair).__name__}, not an (x, y) "
                             f"pair (pass arrays as a tuple (X, Y), not a list)")
        xs.append(np.asarray(pair[0]).reshape(-1))
        ys.append(pair[1])
    for i, x in enumerate(xs):
        if x.size != xs[0].size:
            raise ValueError(f"{what}: example {i} has {x.size} inputs but example 0 has "
                             f"{xs[0].size}")
    labels = [isinstance(y, (int, np.integer)) and not isinstance(y, bool) for y in ys]
    if all(labels):
        return np.stack(xs), np.array(ys, dtype=np.int64)
    if any(labels):
        i = labels.index(not labels[0])
        raise ValueError(f"{what}: example 0 has a {'label' if labels[0] else 'target vector'} "
                         f"but example {i} has not; use integer labels or target vectors "
                         f"throughout")
    ts = [np.asarray(y).reshape(-1) for y in ys]
    for i, t in enumerate(ts):
        if t.size != ts[0].size:
            raise ValueError(f"{what}: example {i} has {t.size} target values but example 0 "
                             f"has {ts[0].size}")
    return np.stack(xs), np.stack(ts)


def _numbers(A: np.ndarray, what: str, name: str) -> np.ndarray:
    """A as floats (ints become float64), refused if it holds anything but finite numbers."""
    if A.dtype.kind not in "fiub":
        raise ValueError(f"{what}: {name} must hold numbers, got dtype {A.dtype}")
    if A.dtype.kind != "f":
        A = A.astype(np.float64)
    if A.flags.c_contiguous:
        # One pass allocating nothing (8 ms for 50,000 x 784, against 15 ms for the test of
        # each entry): Σx² is finite when every x is, and a nan or ±inf makes it nan or inf.
        # Squares beyond the largest float (|x| > 1e154 in float64) overflow it too; the test
        # of each entry below then decides. On one BLAS thread: a second one would gain 2 ms
        # and, woken before the training loop limits them, spin on a busy machine.
        flat = A.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"), blas_threads(1):
            if np.isfinite(np.vdot(flat, flat)):
                return A
    bad = ~np.isfinite(A)
    if bad.any():
        row, *rest = np.argwhere(bad)[0]
        where = f" (column {rest[0]})" if len(rest) == 1 else ""
        raise ValueError(f"{what}: row {row} of {name} holds {A[(row, *rest)]}{where}; every "
                         f"value must be finite")
    return A


class _Checked(tuple):
    """(X, T) as `as_arrays` returned them, with the widths they were checked against: given
    back to `as_arrays` (by `Network.SGD` to `fit`), they are not checked a second time."""

    widths: tuple[int | None, int | None]


def as_arrays(data: Any, n_inputs: int | None = None, n_outputs: int | None = None,
              what: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """Any accepted form of data as (X, T): X float rows (n, inputs), T labels or targets.

    Accepted forms, for `Network` and `fit` alike:

    - a tuple ``(X, Y)`` of arrays, X with one example per row and Y either targets of shape
      (n, outputs) (e.g. one-hot rows) or integer labels (n,);
    - a `datasets.Dataset` (its X and integer labels);
    - the book's list (or any iterable, e.g. `zip`) of ``(x, y)`` pairs, x a column vector
      (inputs, 1) or flat (inputs,), y a target column (outputs, 1), a flat target, or an
      int label, as `datasets.to_book_format` and Nielsen's `load_data_wrapper` give.

    With `n_inputs` (a network's input layer) X must be (n, n_inputs); with `n_outputs`,
    labels must be integers in 0..n_outputs-1 and targets (n, n_outputs). X (and 2-D targets)
    come back as floats, int64 labels as they are. Raises ValueError naming `what` for empty
    data, wrong widths or lengths, bad labels, or NaN/inf (naming the row); TypeError for
    something that is no form of data at all.
    """
    if isinstance(data, _Checked) and all(
            want in (None, have) for want, have in zip((n_inputs, n_outputs), data.widths)):
        return data
    return checked(*_convert(data, n_inputs, n_outputs, what), (n_inputs, n_outputs))


def checked(X: np.ndarray, T: np.ndarray,
            widths: tuple[int | None, int | None] = (None, None)) -> tuple[np.ndarray, np.ndarray]:
    """(X, T) marked as checked: arrays `as_arrays` returned, or made from them row for row
    (one-hot targets); `as_arrays`, hence `fit` and `evaluate`, then takes them as they are."""
    pair = _Checked((X, T))
    pair.widths = widths
    return pair


def _convert(data: Any, n_inputs: int | None, n_outputs: int | None,
             what: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(data, Dataset):
        X, T = data.X, data.labels
    elif isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], (np.ndarray, Tensor)):
        X, T = (np.asarray(d.data if isinstance(d, Tensor) else d) for d in data)
    else:
        X, T = _pairs_to_arrays(data, what)
    if X.ndim < 2 or (n_inputs and X.ndim != 2):  # (fit's models may take images (n, h, w))
        raise ValueError(f"{what}: X must have shape (n, {n_inputs or 'inputs'}), one example "
                         f"per row; got {X.shape}")
    if len(X) == 0:
        raise ValueError(f"{what}: no examples")
    if n_inputs and X.shape[1] != n_inputs:
        raise ValueError(f"{what}: examples have {X.shape[1]} inputs but the network's input "
                         f"layer has {n_inputs} neurons")
    if len(T) != len(X):
        raise ValueError(f"{what}: {len(X)} examples but {len(T)} labels or targets")
    X = _numbers(X, what, "X")
    if T.ndim == 1:  # one label per example (checked by the cost when the width is unknown)
        return X, T if n_outputs is None else check_labels(what, T, len(X), n_outputs)
    if n_outputs is not None and (T.ndim != 2 or T.shape[1] != n_outputs):
        raise ValueError(f"{what}: targets must have shape (n, {n_outputs}) for a network with "
                         f"{n_outputs} outputs (or be integer labels (n,)), got {T.shape}")
    return X, _numbers(T, what, "the targets")


def _labels_of(T: np.ndarray) -> np.ndarray:
    """Class labels from integer labels (n,) or target rows (n, k) (the largest entry)."""
    return T if T.ndim == 1 else np.argmax(T, axis=1)


def _set_mode(model: Any, training: bool) -> None:
    # Only modules with train()/eval() (nn.Module) have modes; anything callable may be fitted.
    method = getattr(model, "train" if training else "eval", None)
    if callable(method):
        method()


def cast_parameters(model: Any, dtype: Any) -> None:
    """Give every parameter of `model` the float type `dtype` (e.g. np.float32), in place.

    Float32 halves the memory traffic of every matrix product, which is what an epoch on
    MNIST-sized data spends its time on. Call it before building the optimizer, whose state
    arrays take the parameters' dtype. The tensors stay the same objects. Floating-point
    buffers (batch norm's running estimates) are cast too, so evaluation stays in `dtype`.
    """
    dtype = _checks.float_dtype("cast_parameters", dtype)
    buffers: Iterable[Tensor] = getattr(model, "buffers", lambda: [])()
    for t in (*model.parameters(), *(b for b in buffers if b.dtype.kind == "f")):
        t.data = t.data.astype(dtype, copy=False)


# --- evaluating ---------------------------------------------------------------------------------


def evaluate(model: Any, data: Any, cost: Callable[[Tensor, Any], Tensor] | None = None,
             batch_size: int = EVAL_BATCH) -> Evaluation:
    """The model's mean `cost` and accuracy on `data`, `batch_size` rows per forward pass.

    In evaluation mode (`model.eval()`, so dropout is off; the previous mode is restored) and
    without recording a graph. Accuracy counts the rows whose largest output is at the label
    (eq. 2.1's network is judged the same way); with targets (n, k) instead of labels, the
    label is the target's largest entry. The cost of each batch is weighted by its rows, so
    the result is the mean over all of `data`, as one forward pass would give.
    """
    X, T = as_arrays(data, what="evaluate")
    batch_size = _checks.count("evaluate", "batch_size", batch_size, 1)
    labels = _labels_of(T)
    was_training = getattr(model, "training", None)
    _set_mode(model, False)
    total_cost, correct, single_output = 0.0, 0, False
    try:
        with no_grad():
            for k in range(0, len(X), batch_size):
                out = model(X[k:k + batch_size])
                if cost is not None:
                    total_cost += float(cost(out, T[k:k + batch_size]).item()) * len(out.data)
                scores = out.data
                if scores.ndim != 2 or scores.shape[1] < 2:
                    single_output = True
                else:
                    correct += int(np.count_nonzero(
                        np.argmax(scores, axis=1) == labels[k:k + batch_size]))
    finally:
        if was_training:
            _set_mode(model, True)
    n = len(X)
    mean_cost = total_cost / n if cost is not None else None
    if single_output:
        return Evaluation(mean_cost, None, None, n)
    return Evaluation(mean_cost, correct / n, correct, n)


# --- training -----------------------------------------------------------------------------------


def train_step(model: Any, cost: Callable[[Tensor, Any], Tensor], optimizer: Optimizer,
               x: np.ndarray, t: Any) -> Tensor:
    """One step on one mini-batch (eqs. 2.4-2.6 with plain SGD); returns the cost before it.

    The gradients are cleared after the forward pass and before ``backward()``, so what the
    optimizer reads is this mini-batch's gradient only (and `jit` captures the step once).
    """
    c = cost(model(x), t)
    optimizer.zero_grad()
    c.backward()
    optimizer.step()
    return c


def _better(new: Evaluation, best: Evaluation | None) -> bool:
    """Higher validation accuracy wins; ties (and models without accuracy) go by lower cost.

    Without a validation cost (``validation_cost=None``, as `Network.SGD` runs the sequel's
    early stopping) only a strictly higher accuracy counts.
    """
    if best is None:
        return True
    if new.accuracy is not None and best.accuracy is not None and new.accuracy != best.accuracy:
        return new.accuracy > best.accuracy
    return new.cost is not None and best.cost is not None and new.cost < best.cost


class _EarlyStopping:
    """`patience`'s memory: the best validation result, its epoch, and a copy of its weights."""

    def __init__(self, params: list[Tensor], patience: int, keep_copy: bool) -> None:
        self.params, self.patience, self.keep_copy = params, patience, keep_copy
        self.best: Evaluation | None = None
        self.arrays: list[np.ndarray] | None = None
        self.since_best = 0

    def should_stop(self, result: Evaluation, history: FitHistory) -> bool:
        if not _better(result, self.best):
            self.since_best += 1
            return self.since_best >= self.patience
        self.best, self.since_best, history.best_epoch = result, 0, len(history) - 1
        if self.keep_copy and self.arrays is None:
            self.arrays = [p.data.copy() for p in self.params]
        elif self.keep_copy:
            for saved, p in zip(self.arrays, self.params):  # type: ignore[arg-type]  # (set above)
                np.copyto(saved, p.data)
        return False


def fit(model: Any, cost: Callable[[Tensor, Any], Tensor], optimizer: Optimizer,
        training_data: Any, epochs: int, batch_size: int, validation_data: Any = None, *,
        schedule: LRScheduler | None = None, patience: int | None = None,
        restore_best: bool = True, seed: int | np.random.Generator | None = None,
        progress: Callable[..., Iterable[int]] | None = None, verbose: bool = True,
        jit: bool = False, widths: tuple[int, int] | None = None,
        validation_cost: Any = _SAME,
        callbacks: Sequence[Callable[[EpochRecord], EpochRecord | None]] = (),
        transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        ) -> FitHistory:
    """Train `model` by mini-batch gradient descent with `optimizer` for `epochs` epochs.

    Each epoch: `model.train()`; shuffle the training rows with the generator made from
    `seed`; for each mini-batch of `batch_size` rows (the last may be smaller), `train_step`:
    ``cost(model(X_batch), targets_batch)`` on the whole batch at once, backpropagated, one
    optimizer step (eqs. 2.4-2.6 when the optimizer is plain SGD). Then, with
    `validation_data`, `evaluate` it (evaluation mode, 1,000 rows at a time) with
    `validation_cost` (default: `cost`; None for accuracy only); then ``schedule.step()``;
    then each of `callbacks` gets the epoch's `EpochRecord` and may return it with more
    fields measured (``dataclasses.replace``); that record goes into the history.

    Data is any form `as_arrays` accepts; `widths` = (inputs, outputs), when known, checks it
    against the model up front. The targets go to `cost` as they are, except that integer
    labels become one-hot rows for the tutorial's costs of sigmoid outputs (`costs.COSTS`),
    which compare the outputs with desired outputs y(x) (as `Network.SGD` always did).

    `patience`: stop when `patience` epochs in a row have not beaten the best validation
    result (higher accuracy; for equal accuracy, lower cost). With `restore_best` (the
    default) the run ends, in any case, with the best epoch's weights copied back into the
    parameters, in place; without it the last weights stay (the sequel's early stopping).

    `transform`, data augmentation: ``transform(x, rng)`` gets each mini-batch's inputs (a
    fresh copy, which it may change in place) and fit's generator, and returns the inputs the
    step sees; validation data is never transformed.

    `progress` wraps each epoch's iterable of mini-batch starts, called as
    ``progress(iterable, total=..., desc="Epoch k")`` (`tqdm.tqdm` fits); `verbose` prints one
    line per epoch. Raises ValueError if the training cost becomes NaN or infinite (the
    learning rate is too large, most often). Returns a `FitHistory`.

    Before the first step, `cost` checks every label or target of the training and
    validation data (against the model's output for one row), so a label outside the
    classes is refused up front, eager or compiled, and nothing has changed.

    ``jit=True`` captures the training step (forward, backward, optimizer step) once per
    mini-batch shape and replays it (`tinygrad_nn.jit`); a schedule's new learning rate
    makes it capture again (evaluating in evaluation mode between epochs does not).
    """
    epochs, batch_size, patience = _check_options(optimizer, epochs, batch_size,
                                                  validation_data, schedule, patience, jit)
    n_in, n_out = widths or (None, None)
    X, T = as_arrays(training_data, n_in, n_out, "training_data")
    T = _check_targets(model, cost, X, T, "training_data")  # all of them, before the first step
    validation = None
    if validation_data is not None:
        X_val, T_val = as_arrays(validation_data, n_in, n_out, "validation_data")
        validation = X_val, _check_targets(model, cost, X_val, T_val, "validation_data")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    stopping = None if patience is None else _EarlyStopping(optimizer.params, patience,
                                                            restore_best)
    history = FitHistory()

    def step(x: np.ndarray, t: np.ndarray) -> Tensor:
        return train_step(model, cost, optimizer, x, t)

    if jit:
        step = capture_and_replay(step)
    # A small model's matrix products gain nothing from BLAS threads and lose a great deal
    # on a busy machine (issue 17; tinygrad_nn._threads): one thread, for the whole loop.
    with blas_threads(threads_for_model(optimizer.params, batch_size)):
        for epoch in range(epochs):
            start = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            _set_mode(model, True)
            train_cost = _one_epoch(step, X, T, rng, batch_size, progress, epoch, transform)
            if not math.isfinite(train_cost):
                restored = _restore_best(optimizer.params, stopping and stopping.arrays, history,  # type: ignore[arg-type]  # (an _EarlyStopping is true)
                                         verbose)
                raise ValueError(f"fit: the training cost became {train_cost} in epoch {epoch} "
                                 f"(lr {lr:g}); try a smaller learning rate{restored}")
            result = None if validation is None else evaluate(
                model, validation, cost if validation_cost is _SAME else validation_cost)
            if schedule is not None:
                schedule.step()
            record = _record(epoch, train_cost, lr, time.perf_counter() - start, result)
            for callback in callbacks:
                record = callback(record) or record
            history.append(record)
            if verbose:
                print(fit_line(record), flush=True)
            if (stopping is not None and result is not None
                    and stopping.should_stop(result, history)):
                history.stopped_early = True
                break
        if restore_best and stopping is not None and history.best_epoch != len(history) - 1:
            _restore_best(optimizer.params, stopping.arrays, history, verbose)
    return history


def _one_epoch(step: Callable[[np.ndarray, np.ndarray], Tensor], X: np.ndarray, T: np.ndarray,
               rng: np.random.Generator, batch_size: int,
               progress: Callable[..., Iterable[int]] | None, epoch: int,
               transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None,
               ) -> float:
    """Shuffle the rows, step once per mini-batch; the mean mini-batch cost."""
    order = rng.permutation(len(X))
    starts: Iterable[int] = range(0, len(X), batch_size)
    if progress is not None:
        starts = progress(starts, total=len(starts), desc=f"Epoch {epoch}")  # type: ignore[arg-type]  # (a range)
    total = 0.0
    for k in starts:
        # Gathered per mini-batch rather than copying the shuffled data set each epoch:
        # memory stays flat (no second copy of X alive while the next is made).
        batch = order[k:k + batch_size]
        x = X[batch]
        if transform is not None:
            x = transform(x, rng)
        total += step(x, T[batch]).item() * len(x)
    return total / len(X)


def _record(epoch: int, train_cost: float, lr: float, seconds: float,
            result: Evaluation | None) -> EpochRecord:
    if result is None:
        return EpochRecord(epoch, train_cost, lr, seconds)
    return EpochRecord(epoch, train_cost, lr, seconds, result.cost, result.accuracy,
                       result.correct, result.total)


def _check_options(optimizer: Any, epochs: Any, batch_size: Any, validation_data: Any,
                   schedule: Any, patience: Any, jit: Any) -> tuple[int, int, int | None]:
    """fit's arguments checked before anything runs: (epochs, batch_size, patience) as ints."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"fit: optimizer must be an optimizer from tinygrad_nn.optim, got "
                        f"{type(optimizer).__name__}")
    epochs = _checks.count("fit", "epochs", epochs, 0)
    batch_size = _checks.count("fit", "batch_size", batch_size, 1)
    if patience is not None:
        patience = _checks.count("fit", "patience", patience, 1)
        if validation_data is None:
            raise ValueError("fit: patience (early stopping) needs validation_data")
    if schedule is not None and getattr(schedule, "optimizer", optimizer) is not optimizer:
        raise ValueError("fit: the schedule belongs to another optimizer")
    _checks.flag("fit", "jit", jit)
    return epochs, batch_size, patience


def _restore_best(params: list[Tensor], best_arrays: list[np.ndarray] | None,
                  history: FitHistory, verbose: bool) -> str:
    """Copy the best epoch's weights back (early stopping's promise), if there are any;
    returns a note saying so, for an error message."""
    if best_arrays is None:
        return ""
    for saved, p in zip(best_arrays, params):
        p.data[...] = saved  # in place: layers and the optimizer hold these arrays
    if verbose:
        print(f"Restored the weights of epoch {history.best_epoch} "
              f"(the best on validation)", flush=True)
    return f". The weights of epoch {history.best_epoch}, the best on validation, are restored"


def _check_targets(model: Any, cost: Callable[[Tensor, Any], Tensor], X: np.ndarray,
                   T: np.ndarray, what: str) -> np.ndarray:
    """Let `cost` check every label or target of the data set before any step; the targets.

    A replayed step runs no Python, so no check of the cost's runs on the later mini-batches
    (a label of -1 would pick the last class). So the cost is evaluated once on all the
    targets, against the model's output for the first row repeated (a broadcast view: no
    copy of the data set is made), and whatever it refuses is refused here. Labels meant for
    a cost of sigmoid outputs (`costs.COSTS`) come back as one-hot rows of the output width.
    """
    was_training = getattr(model, "training", None)
    _set_mode(model, False)  # (no dropout draw: the generators are left as they are)
    try:
        with no_grad():
            first = model(X[:1]).data
            if T.ndim == 1 and first.ndim == 2 and cost in COSTS.values():
                k = first.shape[1]
                T = np.eye(k)[check_labels(what, T, len(T), k)]  # y(x), as the tutorial
            stand_in = np.broadcast_to(first, (len(X),) + first.shape[1:])
            cost(as_tensor(stand_in), T)  # shared: Tensor() would copy all n rows
    except (ValueError, TypeError, IndexError) as err:
        raise type(err)(f"fit: {what}: {err}") from None
    finally:
        if was_training:
            _set_mode(model, True)
    return T
