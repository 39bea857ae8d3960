"""A training loop for any model: `fit` and `evaluate` (sec. 2.2's mini-batch SGD, generalised).

`Network.SGD` is the tutorial's loop for its own network. `fit` is the same loop (shuffle each
epoch, eqs. 2.4-2.6 on one mini-batch matrix at a time) for any `nn.Module`, any cost and any
optimizer of `optim`, with what the sequel adds around it: a validation split to watch
(the tutorial's 50,000 / 10,000 split of MNIST's 60,000 training images, `datasets.load_mnist`),
a learning-rate schedule, and early stopping that keeps the best weights seen on validation.
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .datasets import Dataset
from .jit import jit as capture_and_replay  # (fit's keyword `jit` would hide the name)
from .optim import LRScheduler, Optimizer
from .tensor import Tensor, no_grad

__all__ = ["EpochRecord", "Evaluation", "FitHistory", "cast_parameters", "evaluate", "fit"]

EVAL_BATCH = 1000  # rows per forward pass when evaluating: bounded memory, few Python calls


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of `fit`.

    `train_cost` is the mean of the epoch's mini-batch costs, weighted by their sizes, as
    measured during the epoch (in training mode, e.g. with dropout on): free to compute, and
    a lagging view of the cost. `val_cost` and `val_accuracy` are measured after the epoch in
    evaluation mode (None without validation data; `val_accuracy` is also None when the model
    has a single output). `lr` is the first parameter group's learning rate during the epoch.
    """

    epoch: int
    train_cost: float
    lr: float
    seconds: float
    val_cost: float | None = None
    val_accuracy: float | None = None


class FitHistory(list):
    """What `fit` returns: a list of `EpochRecord`, one per epoch run.

    Also: `best_epoch` (the epoch whose weights the model holds after early stopping, else
    None), `stopped_early` (True if `patience` ended the training), and one list per field
    (`train_cost`, `val_cost`, `val_accuracy`, `lr`) for plotting.
    """

    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def train_cost(self) -> list[float]:
        """The training cost of each epoch."""
        return [r.train_cost for r in self]

    @property
    def val_cost(self) -> list[float | None]:
        """The validation cost of each epoch (None without validation data)."""
        return [r.val_cost for r in self]

    @property
    def val_accuracy(self) -> list[float | None]:
        """The validation accuracy of each epoch (None without validation data)."""
        return [r.val_accuracy for r in self]

    @property
    def lr(self) -> list[float]:
        """The learning rate of each epoch (the first parameter group's)."""
        return [r.lr for r in self]


class Evaluation(NamedTuple):
    """What `evaluate` measured: mean cost (None without a cost), accuracy, correct of total."""

    cost: float | None
    accuracy: float | None
    correct: int | None
    total: int


# --- data -------------------------------------------------------------------------------------


def _arrays(data: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(X, targets): from a `datasets.Dataset` (X, labels) or a tuple of two arrays."""
    if isinstance(data, Dataset):
        return data.X, data.labels
    if isinstance(data, tuple) and len(data) == 2:
        X, T = (d.data if isinstance(d, Tensor) else np.asarray(d) for d in data)
    else:
        raise TypeError(f"{what}: expected a datasets.Dataset or a tuple (X, targets) of "
                        f"arrays, got {type(data).__name__}")
    if X.ndim < 2 or X.dtype.kind not in "fiu":
        raise ValueError(f"{what}: X must be numbers with one example per row, shape "
                         f"(n, inputs); got shape {X.shape}, dtype {X.dtype}")
    if len(X) == 0:
        raise ValueError(f"{what}: no examples")
    if len(T) != len(X):
        raise ValueError(f"{what}: {len(X)} examples but {len(T)} labels or targets")
    return X, T


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
    arrays take the parameters' dtype. The tensors stay the same objects.
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"cast_parameters: dtype must be a float type, got {dtype}")
    for p in model.parameters():
        p.data = p.data.astype(dtype, copy=False)


# --- evaluating -------------------------------------------------------------------------------


def evaluate(model: Any, data: Any, cost: Callable[[Tensor, Any], Tensor] | None = None,
             batch_size: int = EVAL_BATCH) -> Evaluation:
    """The model's mean `cost` and accuracy on `data`, `batch_size` rows per forward pass.

    In evaluation mode (`model.eval()`, so dropout is off; the previous mode is restored) and
    without recording a graph. Accuracy counts the rows whose largest output is at the label
    (eq. 2.1's network is judged the same way); with targets (n, k) instead of labels, the
    label is the target's largest entry. The cost of each batch is weighted by its rows, so
    the result is the mean over all of `data`, as one forward pass would give.
    """
    X, T = _arrays(data, "evaluate")
    batch_size = _positive_int(batch_size, "batch_size", "evaluate")
    labels = _labels_of(T)
    was_training = getattr(model, "training", None)
    _set_mode(model, False)
    total_cost, correct, single_output = 0.0, 0, False
    try:
        with no_grad():
            for k in range(0, len(X), batch_size):
                out = model(X[k:k + batch_size])
                if cost is not None:
                    rows = len(out.data)
                    total_cost += float(cost(out, T[k:k + batch_size]).item()) * rows
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


# --- training ---------------------------------------------------------------------------------


def _positive_int(value: Any, name: str, who: str = "fit") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {name} must be an integer >= 1, got {value!r}")
    return int(value)


def _better(new: Evaluation, best: Evaluation | None) -> bool:
    """Higher validation accuracy wins; ties (and models without accuracy) go by lower cost."""
    if best is None:
        return True
    if new.accuracy is not None and best.accuracy is not None and new.accuracy != best.accuracy:
        return new.accuracy > best.accuracy
    return new.cost is not None and best.cost is not None and new.cost < best.cost


def fit(model: Any, cost: Callable[[Tensor, Any], Tensor], optimizer: Optimizer,
        training_data: Any, epochs: int, batch_size: int, validation_data: Any = None, *,
        schedule: LRScheduler | None = None, patience: int | None = None,
        seed: int | np.random.Generator | None = None,
        progress: Callable[..., Iterable[int]] | None = None,
        verbose: bool = True, jit: bool = False) -> FitHistory:
    """Train `model` by mini-batch gradient descent with `optimizer` for `epochs` epochs.

    Each epoch: `model.train()`; shuffle the training rows with the generator made from
    `seed`; for each mini-batch of `batch_size` rows (the last may be smaller), compute
    ``cost(model(X_batch), targets_batch)`` on the whole batch at once, backpropagate it and
    take one optimizer step (eqs. 2.4-2.6 when the optimizer is plain SGD). Then, with
    `validation_data`, `evaluate` it (evaluation mode, 1,000 rows at a time); then
    ``schedule.step()``.

    Data is a `datasets.Dataset` (its integer labels become the targets) or a tuple
    ``(X, targets)`` of arrays with one example per row; the targets are passed to `cost`
    as they are: integer labels for `costs.cross_entropy`, one-hot rows for the tutorial's
    `costs.quadratic_cost`.

    `patience`: stop when `patience` epochs in a row have not beaten the best validation
    result (higher accuracy; for equal accuracy, lower cost), and in any case end with the
    best epoch's weights copied back into the parameters, in place. Needs validation data.

    `progress` wraps each epoch's iterable of mini-batch starts, called as
    ``progress(iterable, total=..., desc="Epoch k")`` (`tqdm.tqdm` fits); `verbose` prints one
    line per epoch. Raises ValueError if the cost becomes NaN or infinite (the learning rate
    is too large, most often). Returns a `FitHistory`.

    ``jit=True`` captures the training step (forward, backward, optimizer step) once per
    mini-batch shape and replays it (`tinygrad_nn.jit`); a schedule's new learning rate and
    the switch to evaluation mode and back make it capture again.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"fit: optimizer must be an optimizer from tinygrad_nn.optim, got "
                        f"{type(optimizer).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"fit: epochs must be an integer >= 0, got {epochs!r}")
    batch_size = _positive_int(batch_size, "batch_size")
    if patience is not None:
        patience = _positive_int(patience, "patience")
        if validation_data is None:
            raise ValueError("fit: patience (early stopping) needs validation_data")
    if schedule is not None and getattr(schedule, "optimizer", optimizer) is not optimizer:
        raise ValueError("fit: the schedule belongs to another optimizer")
    if not isinstance(jit, (bool, np.bool_)):
        raise ValueError(f"fit: jit must be True or False, got {jit!r}")
    X, T = _arrays(training_data, "training_data")
    validation = None if validation_data is None else _arrays(validation_data, "validation_data")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    params = optimizer.params
    n = len(X)
    history = FitHistory()
    best: Evaluation | None = None
    best_arrays: list[np.ndarray] | None = None
    since_best = 0

    def step(x: np.ndarray, t: np.ndarray) -> Tensor:
        c = cost(model(x), t)
        optimizer.zero_grad()
        c.backward()
        optimizer.step()
        return c

    if jit:
        step = capture_and_replay(step)
    for epoch in range(int(epochs)):
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        _set_mode(model, True)
        order = rng.permutation(n)
        starts: Iterable[int] = range(0, n, batch_size)
        if progress is not None:
            starts = progress(starts, total=len(starts), desc=f"Epoch {epoch}")
        total = 0.0
        for k in starts:
            batch = order[k:k + batch_size]  # gathered per batch: no copy of the data set
            x, t = X[batch], T[batch]
            total += step(x, t).item() * len(x)
        train_cost = total / n
        if not math.isfinite(train_cost):
            raise ValueError(f"fit: the training cost became {train_cost} in epoch {epoch} "
                             f"(lr {lr:g}); try a smaller learning rate")
        result = None if validation is None else evaluate(model, validation, cost)
        if schedule is not None:
            schedule.step()
        record = EpochRecord(epoch, train_cost, lr, time.perf_counter() - start)
        if result is not None:
            record = EpochRecord(epoch, train_cost, lr, record.seconds, result.cost,
                                 result.accuracy)
        history.append(record)
        if verbose:
            print(_epoch_line(record, result), flush=True)
        if patience is not None and result is not None:
            if _better(result, best):
                best, since_best, history.best_epoch = result, 0, epoch
                if best_arrays is None:
                    best_arrays = [p.data.copy() for p in params]
                else:
                    for saved, p in zip(best_arrays, params):
                        np.copyto(saved, p.data)
            else:
                since_best += 1
                if since_best >= patience:
                    history.stopped_early = True
                    break
    if best_arrays is not None and history.best_epoch != len(history) - 1:
        for saved, p in zip(best_arrays, params):
            p.data[...] = saved  # in place: layers and the optimizer hold these arrays
        if verbose:
            print(f"Restored the weights of epoch {history.best_epoch} "
                  f"(the best on validation)", flush=True)
    return history


def _epoch_line(record: EpochRecord, result: Evaluation | None) -> str:
    line = f"Epoch {record.epoch}: training cost {record.train_cost:.4f}"
    if result is not None:
        if result.cost is not None:
            line += f", validation cost {result.cost:.4f}"
        if result.correct is not None:
            line += (f", validation accuracy {result.correct} / {result.total} "
                     f"({100 * result.accuracy:.2f}%)")
    return line + f", lr {record.lr:.4g}, {record.seconds:.1f} s"
