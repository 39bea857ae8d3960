"""What one epoch of training leaves behind: its record, the histories, the printed lines.

`EpochRecord` is the one record type of the one loop (`training.fit`); `FitHistory`, what
`fit` returns, is a list of them; `History`, what `Network.SGD` returns, shows the same
records as the sequel's four lists. `fit_line` is `fit`'s line per epoch,
`print_tutorial_lines` the tutorial's ``Epoch k: correct / total`` and the sequel's monitors.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["MONITORS", "EpochRecord", "FitHistory", "History", "fit_line",
           "print_tutorial_lines", "tutorial_callback"]

#: The sequel's monitoring flags of ``network2.SGD``, in the order of its four lists.
MONITORS = ("monitor_evaluation_cost", "monitor_evaluation_accuracy", "monitor_training_cost",
            "monitor_training_accuracy")


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of the loop: what `fit` measured, and what its callbacks added.

    Always: `train_cost`, the mean of the epoch's mini-batch costs weighted by their sizes,
    measured during the epoch (in training mode: free, and a lagging view); `lr`, the first
    parameter group's learning rate; `seconds` (left out of ``==``: timing is no result).
    With validation data, measured after the epoch in evaluation mode: `val_cost`,
    `val_accuracy`, `val_correct` of `val_total` (accuracy None for a single output).

    Measured by `Network.SGD`'s callbacks (None otherwise): `test_correct` of `test_total`
    with test data; with ``monitor_training_cost`` or ``monitor_training_accuracy``,
    `training_cost`, the cost over the whole training data after the epoch (eq. 2.1 or
    cross-entropy, plus the sequel's (λ/2n) Σ w²), and `training_correct` of
    `training_total` (a pass over all the training data, so only when asked, as in the
    sequel); with ``monitor_evaluation_cost``, `evaluation_cost` (with the L2 term).
    The sequel's `evaluation_correct`/`evaluation_total` are `val_correct`/`val_total`.
    """

    epoch: int
    train_cost: float
    lr: float
    seconds: float = field(default=0.0, compare=False)
    val_cost: float | None = None
    val_accuracy: float | None = None
    val_correct: int | None = None
    val_total: int | None = None
    training_cost: float | None = None
    training_correct: int | None = None
    training_total: int | None = None
    test_correct: int | None = None
    test_total: int | None = None
    evaluation_cost: float | None = None

    @property
    def evaluation_correct(self) -> int | None:
        """The sequel's name for `val_correct` (its evaluation_data is the validation split)."""
        return self.val_correct

    @property
    def evaluation_total(self) -> int | None:
        """The sequel's name for `val_total`."""
        return self.val_total

    @property
    def test_accuracy(self) -> float | None:
        """test_correct / test_total, or None without test data."""
        return self.test_correct / self.test_total if self.test_total else None  # type: ignore[operator]  # (set together)


class FitHistory(list):
    """What `fit` returns: a list of `EpochRecord`, one per epoch run.

    Also: `best_epoch` (the epoch judged best on validation by `patience`, else None),
    `stopped_early` (True if `patience` ended the training), and one list per field
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


def fit_line(record: EpochRecord) -> str:
    """`fit`'s line for an epoch (``verbose``): costs, validation accuracy, lr, seconds."""
    line = f"Epoch {record.epoch}: training cost {record.train_cost:.4f}"
    if record.val_cost is not None:
        line += f", validation cost {record.val_cost:.4f}"
    if record.val_correct is not None:
        line += (f", validation accuracy {record.val_correct} / {record.val_total} "
                 f"({100 * record.val_accuracy:.2f}%)")  # type: ignore[operator]  # (with val_correct)
    return line + f", lr {record.lr:.4g}, {record.seconds:.1f} s"


class History(tuple):
    """What `Network.SGD` returns: the sequel's four lists, views of one record per epoch.

    As a tuple, ``(evaluation_cost, evaluation_accuracy, training_cost, training_accuracy)``
    as the sequel's ``network2.SGD`` returns (also attributes); each list has a value per
    epoch if its ``monitor_...`` flag was set, else none; costs are floats, accuracies counts.
    `epochs` is the loop's `FitHistory`, one `EpochRecord` per epoch (always filled). Tuple
    equality compares the four lists only; compare `epochs` for the whole record.
    """

    epochs: FitHistory
    monitored: tuple[bool, ...]

    def __new__(cls, epochs: Iterable[EpochRecord] = (),
                monitored: Sequence[bool] = (False,) * 4) -> History:
        epochs = epochs if isinstance(epochs, FitHistory) else FitHistory(epochs)
        fields = ("evaluation_cost", "evaluation_correct", "training_cost", "training_correct")
        self = super().__new__(cls, ([getattr(r, name) for r in epochs] if on else []
                                     for name, on in zip(fields, monitored)))
        self.epochs, self.monitored = epochs, tuple(monitored)
        return self

    def __getnewargs__(self) -> tuple[Any, ...]:  # so copy and pickle rebuild the views
        return self.epochs, self.monitored

    evaluation_cost = property(operator.itemgetter(0), doc="Cost on evaluation_data per epoch.")
    evaluation_accuracy = property(operator.itemgetter(1),
                                   doc="Correct evaluation examples per epoch.")
    training_cost = property(operator.itemgetter(2), doc="Cost on the training data per epoch.")
    training_accuracy = property(operator.itemgetter(3), doc="Correct training examples per epoch.")

    def __repr__(self) -> str:
        last = self.epochs[-1] if self.epochs else None
        seen = "" if last is None else f"; last: train_cost {last.train_cost:.6g}" + (
            "" if last.test_total is None else f", test {last.test_correct} / {last.test_total}")
        lists = ", ".join(f"{name[8:]}={value}" for name, value in zip(MONITORS, self))
        return f"History({len(self.epochs)} epochs{seen}; {lists})"


Score = Callable[..., tuple[float, int]]
Data = tuple[np.ndarray, np.ndarray]


def tutorial_callback(score: Score, training: Data, test: Data | None,
                      evaluation: Data | None, lmbda: float, monitored: Sequence[bool],
                      sequel: bool | None) -> Callable[[EpochRecord], EpochRecord]:
    """`Network.SGD`'s callback for `fit`: after each epoch, the tutorial's and the sequel's
    measurements, then (unless `sequel` is None: not verbose) their lines.

    ``score(X, T, lmbda=0.0)`` gives (cost with the L2 term, number correct) of rows X;
    `monitored` are the four ``monitor_...`` flags in `MONITORS` order; `sequel` says whether
    the line without test data is the sequel's ``Epoch k training complete``.
    """
    def measure(record: EpochRecord) -> EpochRecord:
        fields: dict[str, Any] = {}
        if test is not None:
            fields.update(test_correct=score(*test)[1], test_total=len(test[0]))
        if monitored[2] or monitored[3]:  # a pass over all the training data: only if asked
            cost, correct = score(*training, lmbda)
            fields.update(training_cost=cost, training_correct=correct,
                          training_total=len(training[0]))
        if monitored[0]:
            fields["evaluation_cost"] = score(*evaluation, lmbda)[0]  # type: ignore[misc]  # (given)
        record = dataclasses.replace(record, **fields)
        if sequel is not None:
            print_tutorial_lines(record, sequel, monitored)
        return record

    return measure


def print_tutorial_lines(r: EpochRecord, sequel: bool, monitored: Sequence[bool]) -> None:
    """The tutorial's epoch line, then the sequel's monitoring lines, in the sequel's order."""
    print(f"Epoch {r.epoch}: {r.test_correct} / {r.test_total}" if r.test_total is not None
          else f"Epoch {r.epoch}{' training' if sequel else ''} complete", flush=True)
    evaluation_cost, evaluation_accuracy, training_cost, training_accuracy = monitored
    for on, line in ((training_cost, f"Cost on training data: {r.training_cost}"),
                     (training_accuracy, f"Accuracy on training data: {r.training_correct} / "
                                         f"{r.training_total}"),
                     (evaluation_cost, f"Cost on evaluation data: {r.evaluation_cost}"),
                     (evaluation_accuracy, f"Accuracy on evaluation data: {r.val_correct} / "
                                           f"{r.val_total}")):
        if on:
            print(line, flush=True)
