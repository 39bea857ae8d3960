"""The tutorial's network (sec. 2.3), with the vocabulary of Nielsen's network.py.

>>> from tinygrad_nn import datasets
>>> training_data, validation_data, test_data = datasets.load_digits()
>>> net = Network([64, 30, 10], seed=0)
>>> history = net.SGD(training_data, 1, 10, 3.0, test_data=test_data)  # doctest: +ELLIPSIS
Epoch 0: ... / 300

The sequel's keywords work too, and so does its way of unpacking what SGD returns:

>>> net = Network([64, 30, 10], cost="cross-entropy", init="scaled", seed=0)
>>> evaluation_cost, evaluation_accuracy, training_cost, training_accuracy = net.SGD(
...     training_data, 2, 10, 0.5, lmbda=5.0, evaluation_data=validation_data,
...     monitor_evaluation_accuracy=True, verbose=False)
>>> len(evaluation_accuracy), evaluation_cost
(2, [])

What differs from the book: examples are rows, so a mini-batch is one (m, n) matrix pushed
forward and backward at once (never a Python loop over examples); the gradient comes from the
autograd (`cost.backward()`), not from hand-written BP1-BP4; the network is seeded, so the same
seed and data give bit-identical weights; and the data is checked before training starts.
"""

from __future__ import annotations

import errno
import math
import os
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from . import ops, optim
from .costs import COSTS, check_labels
from .datasets import Dataset
from .jit import jit as capture_and_replay  # (SGD's keyword `jit` would hide the name)
from .nn import INITS, Linear, Module, write_atomically
from .tensor import Tensor, no_grad

__all__ = ["ACTIVATIONS", "EpochStats", "History", "Network", "as_arrays", "load"]

# Hidden layers use the chosen activation; the output layer is always sigmoid, so outputs lie
# in (0, 1) like the one-hot targets, and the cross-entropy cost is defined.
ACTIVATIONS = {"sigmoid": ops.sigmoid, "tanh": ops.tanh, "relu": ops.relu}


@dataclass(frozen=True)
class EpochStats:
    """What one epoch of `Network.SGD` achieved.

    `training_cost` is the cost (eq. 2.1, or cross-entropy, plus the sequel's L2 term
    (λ/2n) Σ w² when lmbda > 0) over the whole training data at the end of the epoch;
    `test_correct` of `test_total` test examples were classified correctly (both None without
    test data). The sequel's monitored values are kept here too when asked for:
    `evaluation_cost`, `evaluation_correct` of `evaluation_total`, `training_correct` of
    `training_total` (None when not monitored).
    """

    epoch: int
    training_cost: float
    test_correct: int | None = None
    test_total: int | None = None
    evaluation_cost: float | None = None
    evaluation_correct: int | None = None
    evaluation_total: int | None = None
    training_correct: int | None = None
    training_total: int | None = None

    @property
    def test_accuracy(self) -> float | None:
        """test_correct / test_total, or None without test data."""
        if self.test_correct is None or not self.test_total:
            return None
        return self.test_correct / self.test_total


class History(tuple):
    """What `Network.SGD` returns: the sequel's four lists, plus one `EpochStats` per epoch.

    As a tuple it is ``(evaluation_cost, evaluation_accuracy, training_cost,
    training_accuracy)``, exactly what the sequel's ``network2.SGD`` returns, so

        evaluation_cost, evaluation_accuracy, training_cost, training_accuracy = net.SGD(...)

    works. Each list holds one value per epoch if the matching ``monitor_...`` flag was set
    and is empty otherwise; costs are floats, accuracies counts of correct examples (ints).
    The four are also attributes of the same names.

    `epochs` is the full per-epoch record, a list of `EpochStats` (always filled, whatever
    was monitored): ``history.epochs[-1].test_accuracy``. Tuple equality compares the four
    lists only; compare `epochs` for the whole record.
    """

    epochs: list[EpochStats]

    def __new__(cls, epochs: Iterable[EpochStats] = (), evaluation_cost: Iterable[float] = (),
                evaluation_accuracy: Iterable[int] = (), training_cost: Iterable[float] = (),
                training_accuracy: Iterable[int] = ()) -> History:
        self = super().__new__(cls, (list(evaluation_cost), list(evaluation_accuracy),
                                     list(training_cost), list(training_accuracy)))
        self.epochs = list(epochs)
        return self

    def __getnewargs__(self) -> tuple[Any, ...]:  # so copy and pickle rebuild all five lists
        return (self.epochs, *self)

    @property
    def evaluation_cost(self) -> list[float]:
        """The cost on evaluation_data per epoch (with monitor_evaluation_cost)."""
        return self[0]

    @property
    def evaluation_accuracy(self) -> list[int]:
        """Correct evaluation examples per epoch (with monitor_evaluation_accuracy)."""
        return self[1]

    @property
    def training_cost(self) -> list[float]:
        """The cost on the training data per epoch (with monitor_training_cost)."""
        return self[2]

    @property
    def training_accuracy(self) -> list[int]:
        """Correct training examples per epoch (with monitor_training_accuracy)."""
        return self[3]

    def __repr__(self) -> str:
        return (f"History({len(self.epochs)} epochs: evaluation_cost={self[0]}, "
                f"evaluation_accuracy={self[1]}, training_cost={self[2]}, "
                f"training_accuracy={self[3]})")


# --- data: every accepted form becomes (X, T) arrays, here and only here ---------------------


def _pairs_to_arrays(data: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The book's list of (x, y) pairs: x a column (n, 1) or flat vector, y a target or label."""
    try:
        pairs = list(data)
    except TypeError:
        raise TypeError(f"{what}: expected a tuple (X, Y) of arrays, a datasets.Dataset or a "
                        f"list of (x, y) pairs, got {type(data).__name__}") from None
    if not pairs:
        raise ValueError(f"{what}: no examples")
    xs, ys = [], []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
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


def _first_nonfinite(A: np.ndarray, what: str, name: str) -> None:
    bad = ~np.isfinite(A)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"{what}: row {row} of {name} holds {A[row, col]} (column {col}); "
                         f"every value must be finite")


def as_arrays(data: Any, n_inputs: int, n_outputs: int,
              what: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """Any accepted form of data as (X, T): X (n, n_inputs) floats, T labels or targets.

    Accepted forms:

    - a tuple ``(X, Y)`` of arrays, X of shape (n, n_inputs) with one example per row and Y
      either targets of shape (n, n_outputs) (e.g. one-hot rows) or integer labels (n,);
    - a `datasets.Dataset` (its X and integer labels);
    - the book's list (or any iterable, e.g. `zip`) of ``(x, y)`` pairs, x a column vector
      (n_inputs, 1) or flat (n_inputs,), y a target column (n_outputs, 1), a flat target, or
      an int label, as `datasets.to_book_format` and Nielsen's `load_data_wrapper` give.

    T comes back as int64 labels of shape (n,) if the data held labels, else as float targets
    of shape (n, n_outputs). Raises ValueError naming `what` for empty data, wrong widths,
    labels outside 0..n_outputs-1, or NaN/inf (naming the row).
    """
    if isinstance(data, Dataset):
        X, T = data.X, data.labels
    elif (isinstance(data, tuple) and len(data) == 2
          and all(isinstance(d, (np.ndarray, Tensor)) for d in data)):
        X, T = (d.data if isinstance(d, Tensor) else d for d in data)
    else:
        X, T = _pairs_to_arrays(data, what)
    X, T = np.asarray(X), np.asarray(T)
    if X.ndim != 2:
        raise ValueError(f"{what}: X must have shape (n, {n_inputs}), one example per row; "
                         f"got {X.shape}")
    if X.dtype.kind not in "fiub":
        raise ValueError(f"{what}: X must hold numbers, got dtype {X.dtype}")
    if len(X) == 0:
        raise ValueError(f"{what}: no examples")
    if X.shape[1] != n_inputs:
        raise ValueError(f"{what}: examples have {X.shape[1]} inputs but the network's input "
                         f"layer has {n_inputs} neurons")
    if len(T) != len(X):
        raise ValueError(f"{what}: {len(X)} examples but {len(T)} labels or targets")
    if X.dtype.kind != "f":
        X = X.astype(np.float64)
    _first_nonfinite(X, what, "X")
    if T.ndim == 1:  # one label per example, each one of the network's outputs
        return X, check_labels(what, T, len(X), n_outputs)
    if T.ndim != 2 or T.shape[1] != n_outputs:
        raise ValueError(f"{what}: targets must have shape (n, {n_outputs}) for a network with "
                         f"{n_outputs} outputs (or be integer labels (n,)), got {T.shape}")
    if T.dtype.kind not in "fiub":
        raise ValueError(f"{what}: targets must hold numbers, got dtype {T.dtype}")
    if T.dtype.kind != "f":
        T = T.astype(np.float64)
    _first_nonfinite(T, what, "the targets")
    return X, T


def _check_count(value: Any, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"SGD: {name} must be an integer >= {least}, got {value!r}")
    return int(value)


def _check_lmbda(lmbda: Any) -> float:
    if isinstance(lmbda, bool) or not isinstance(lmbda, Real) or not (
            math.isfinite(lmbda) and lmbda >= 0):
        raise ValueError(f"SGD: the regularisation parameter lmbda must be a finite number "
                         f">= 0, got {lmbda!r}")
    return float(lmbda)


def _print_epoch(stats: EpochStats, sequel: bool, monitors: dict[str, bool]) -> None:
    """The tutorial's epoch line, then the sequel's monitoring lines, in the sequel's order."""
    if stats.test_total is not None:
        print(f"Epoch {stats.epoch}: {stats.test_correct} / {stats.test_total}", flush=True)
    elif sequel:
        print(f"Epoch {stats.epoch} training complete", flush=True)
    else:
        print(f"Epoch {stats.epoch} complete", flush=True)
    if monitors["monitor_training_cost"]:
        print(f"Cost on training data: {stats.training_cost}")
    if monitors["monitor_training_accuracy"]:
        print(f"Accuracy on training data: {stats.training_correct} / {stats.training_total}")
    if monitors["monitor_evaluation_cost"]:
        print(f"Cost on evaluation data: {stats.evaluation_cost}")
    if monitors["monitor_evaluation_accuracy"]:
        print(f"Accuracy on evaluation data: {stats.evaluation_correct} / "
              f"{stats.evaluation_total}", flush=True)


# --- the network ------------------------------------------------------------------------------


class Network(Module):
    """A feed-forward network of fully connected layers, sec. 1.5 and 2.3 of the tutorial.

    `sizes` lists the neurons per layer, input layer first: ``Network([784, 30, 10])``.
    `cost` is ``"quadratic"`` (eq. 2.1) or ``"cross-entropy"``; `activation` the hidden
    layers' neuron (``"sigmoid"``, ``"tanh"`` or ``"relu"``; the output layer is always
    sigmoid); `init` the weight initialisation of `nn.Linear`; `seed` seeds the generator
    that draws the initial weights and shuffles every epoch.

    `weights[i]` (shape (n_{l}, n_{l-1})) and `biases[i]` (shape (n_l,)) are the arrays of
    layer l = i + 2, as in Nielsen's network.py, read from the `Linear` layers' tensors.
    """

    def __init__(self, sizes: Sequence[int], cost: str = "quadratic", seed: Any = None,
                 activation: str = "sigmoid", init: str = "standard") -> None:
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Iterable):
            raise ValueError(f"Network: sizes must be a list of layer widths such as "
                             f"[784, 30, 10], got {sizes!r}")
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"Network: sizes needs at least 2 layers (input and output), "
                             f"got {sizes}")
        for n in sizes:
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"Network: every layer width must be an integer >= 1, "
                                 f"got {sizes}")
        if cost not in COSTS:
            raise ValueError(f"Network: cost must be one of {', '.join(COSTS)}, got {cost!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"Network: activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {activation!r}")
        if init not in INITS:
            raise ValueError(f"Network: init must be one of {', '.join(INITS)}, got {init!r}")
        self.sizes = [int(n) for n in sizes]
        self.num_layers = len(self.sizes)
        self.cost, self.activation, self.init, self.seed = cost, activation, init, seed
        self.rng = np.random.default_rng(seed)
        self.layers = tuple(Linear(n_in, n_out, init, self.rng)
                            for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]))
        self._cost_fn = COSTS[cost]
        self._act = ACTIVATIONS[activation]

    # --- Nielsen's attributes, over the layers' tensors ---

    @property
    def weights(self) -> list[np.ndarray]:
        """[w^2, ..., w^L]: the live weight arrays, w^l of shape (n_l, n_{l-1})."""
        return [layer.weight.data for layer in self.layers]

    @weights.setter
    def weights(self, values: Sequence[Any]) -> None:
        self._assign("weights", values, [layer.weight for layer in self.layers])

    @property
    def biases(self) -> list[np.ndarray]:
        """[b^2, ..., b^L]: the live bias arrays, b^l of shape (n_l,)."""
        return [layer.bias.data for layer in self.layers]

    @biases.setter
    def biases(self, values: Sequence[Any]) -> None:
        self._assign("biases", values, [layer.bias for layer in self.layers])

    def _assign(self, name: str, values: Sequence[Any], tensors: list[Tensor]) -> None:
        values = [np.asarray(v) for v in values]
        if len(values) != len(tensors):
            raise ValueError(f"Network.{name}: expected {len(tensors)} arrays for sizes "
                             f"{self.sizes}, got {len(values)}")
        for i, (v, t) in enumerate(zip(values, tensors)):
            if v.shape != t.shape:
                raise ValueError(f"Network.{name}[{i}]: expected shape {t.shape}, got {v.shape}")
        for v, t in zip(values, tensors):
            t.data[...] = v

    # --- computing ---

    def forward(self, x: Any) -> Tensor:
        """a^L for rows of inputs x: per layer one `linear` (z = a wᵀ + b) and one activation."""
        a = x
        last = self.layers[-1]
        for layer in self.layers:
            z = ops.linear(a, layer.weight, layer.bias)
            a = ops.sigmoid(z) if layer is last else self._act(z)
        return a

    def feedforward(self, a: Any) -> np.ndarray:
        """The network's output for `a`, as an array, without recording a graph.

        `a` may be the book's column vector (n_1, 1), giving an (n_L, 1) column; a flat vector
        (n_1,), giving (n_L,); or rows of examples (m, n_1), giving (m, n_L).
        """
        x = a.data if isinstance(a, Tensor) else np.asarray(a)
        n_in = self.sizes[0]
        column = x.ndim == 2 and x.shape == (n_in, 1) and n_in != 1
        if column:
            x = x.reshape(1, n_in)
        elif x.ndim not in (1, 2) or x.shape[-1] != n_in:
            raise ValueError(f"feedforward: input of shape {x.shape}; expected a column "
                             f"({n_in}, 1), a vector ({n_in},) or rows (m, {n_in})")
        with no_grad():
            out = self.forward(x).data
        return out.reshape(-1, 1) if column else out

    def evaluate(self, test_data: Any) -> int:
        """The number of examples whose output's largest entry is at the right label."""
        X, T = as_arrays(test_data, self.sizes[0], self.sizes[-1], "test_data")
        return self._correct(X, T)

    def total_cost(self, data: Any, lmbda: float = 0.0) -> float:
        """The network's cost over `data` (eq. 2.1, or cross-entropy), with labels one-hot.

        With ``lmbda`` > 0 it adds the sequel's L2 term (λ/2n) Σ_w w² over every weight (not
        the biases), with n the number of examples in `data`, as the sequel's
        ``network2.total_cost`` computes it.
        """
        X, T = as_arrays(data, self.sizes[0], self.sizes[-1], "data")
        return self._total_cost(X, self._targets(T), _check_lmbda(lmbda))

    def _correct(self, X: np.ndarray, T: np.ndarray) -> int:
        labels = T if T.ndim == 1 else np.argmax(T, axis=1)
        with no_grad():
            guesses = np.argmax(self.forward(X).data, axis=1)
        return int(np.count_nonzero(guesses == labels))

    def _total_cost(self, X: np.ndarray, Y: np.ndarray, lmbda: float = 0.0) -> float:
        with no_grad():
            cost = float(self._cost_fn(self.forward(X), Y).item())
        if lmbda:
            squares = sum(float(np.vdot(w, w)) for w in self.weights)
            cost += 0.5 * (lmbda / len(X)) * squares
        return cost

    def _targets(self, T: np.ndarray) -> np.ndarray:
        if T.ndim == 2:
            return T
        return np.eye(self.sizes[-1])[T]  # labels as one-hot rows

    # --- learning ---

    def update_mini_batch(self, mini_batch: Any, eta: float, lmbda: float = 0.0,
                          n: int | None = None) -> float:
        """One step of eqs. 2.5/2.6 on one mini-batch (any form `as_arrays` accepts).

        With ``lmbda`` > 0 the weights also decay as in the sequel,
        w ← (1 - ηλ/n) w - (η/m) Σ_j ∂C_{X_j}/∂w, where `n` (then required) is the size of
        the whole training set; biases are not decayed. Returns the mini-batch's cost before
        the step (without the L2 term).
        """
        if isinstance(eta, bool) or not isinstance(eta, Real) or not (
                math.isfinite(eta) and eta > 0):
            raise ValueError(f"update_mini_batch: the learning rate eta must be a finite "
                             f"number > 0, got {eta!r}")
        X, T = as_arrays(mini_batch, self.sizes[0], self.sizes[-1], "mini_batch")
        lmbda = _check_lmbda(lmbda)
        shrink = 1.0
        if lmbda:
            if n is None:
                raise ValueError("update_mini_batch: with lmbda > 0, pass n, the size of the "
                                 "whole training set (the sequel's 1 - eta*lmbda/n)")
            shrink = 1.0 - eta * lmbda / _check_count(n, "n", 1)
        opt = optim.SGD(self.parameters(), eta)
        return self._step(X, self._targets(T), opt, shrink).item()

    def _step(self, X: np.ndarray, Y: np.ndarray, opt: optim.SGD, shrink: float = 1.0) -> Tensor:
        # The hot loop: forward (one linear + activation per layer), cost, backward, update.
        cost = self._cost_fn(self.forward(X), Y)
        opt.zero_grad()
        cost.backward()
        if shrink != 1.0:
            # The sequel's weight decay, w ← (1 - ηλ/n) w: one in-place multiply per weight
            # matrix. The gradient was computed from the old w, so the order does not matter.
            for layer in self.layers:
                ops.mul(layer.weight.data, shrink, out=layer.weight.data)
        opt.step()
        return cost

    def SGD(self, training_data: Any, epochs: int, mini_batch_size: int, eta: float,
            test_data: Any = None, *, lmbda: float = 0.0, evaluation_data: Any = None,
            monitor_evaluation_cost: bool = False, monitor_evaluation_accuracy: bool = False,
            monitor_training_cost: bool = False, monitor_training_accuracy: bool = False,
            early_stopping_n: int = 0, verbose: bool = True,
            progress: Callable[..., Iterable[int]] | None = None, jit: bool = False) -> History:
        """Train by mini-batch stochastic gradient descent (sec. 2.2, eqs. 2.4-2.6).

        Each epoch shuffles the training data with the network's seeded generator, splits it
        into mini-batches of `mini_batch_size` (the last may be smaller), and for each one
        computes the mean cost of the whole mini-batch at once, backpropagates it and steps
        every weight and bias by -eta times its gradient. After each epoch it prints
        ``Epoch k: correct / total`` on `test_data` (the tutorial's line) unless `verbose` is
        False.

        The sequel's keywords (Nielsen's ``network2.SGD``; keyword-only here, because the
        tutorial's `test_data` holds the fifth place):

        - ``lmbda``: L2 regularisation, w ← (1 - ηλ/n) w - (η/m) Σ_j ∂C_{X_j}/∂w with n the
          size of the whole training set; biases are not decayed.
        - ``evaluation_data`` and ``monitor_evaluation_cost``/``_accuracy``,
          ``monitor_training_cost``/``_accuracy``: after each epoch, compute and print
          (``Cost on training data: ...``, ``Accuracy on evaluation data: c / n``) the cost
          (including the L2 term (λ/2n) Σ w², n the size of the data measured, as the
          sequel's ``total_cost``) and the number classified correctly.
        - ``early_stopping_n``: stop when the accuracy on `evaluation_data` has not beaten
          its best for that many epochs in a row (0: never). As in the sequel, the network
          keeps its last weights (`training.fit` with ``patience`` restores the best ones).

        With any of them the epoch line reads ``Epoch k training complete`` (the sequel's)
        when there is no `test_data`; with none of them and no test data, ``Epoch k
        complete`` (the tutorial's).

        `progress`, if given, wraps each epoch's iterable of mini-batch start indices and is
        called as ``progress(iterable, total=number_of_mini_batches, desc="Epoch k")``;
        `tqdm.tqdm` fits.

        ``jit=True`` captures the training step once per mini-batch shape and replays it
        (`tinygrad_nn.jit`): the same numpy calls in the same order, so the same seed gives
        the same weights to the last bit, in about two thirds of the time at mini-batches of 10.

        Returns a `History`: the sequel's four lists (evaluation_cost, evaluation_accuracy,
        training_cost, training_accuracy), with `.epochs`, one `EpochStats` per epoch.

        Everything is checked before the first step: epochs >= 0, mini_batch_size >= 1,
        eta > 0, lmbda >= 0, early_stopping_n >= 0, evaluation data present when it is
        monitored, and the data (see `as_arrays`).
        """
        epochs = _check_count(epochs, "epochs", 0)
        mini_batch_size = _check_count(mini_batch_size, "mini_batch_size", 1)
        if isinstance(eta, bool) or not isinstance(eta, Real) or not (
                math.isfinite(eta) and eta > 0):
            raise ValueError(f"SGD: the learning rate eta must be a finite number > 0, "
                             f"got {eta!r}")
        if isinstance(test_data, Real):
            raise TypeError(f"SGD: test_data is the number {test_data!r}; the sequel's lmbda "
                            f"is keyword-only here: net.SGD(..., eta, lmbda={test_data!r})")
        lmbda = _check_lmbda(lmbda)
        early_stopping_n = _check_count(early_stopping_n, "early_stopping_n", 0)
        monitors = {"monitor_evaluation_cost": monitor_evaluation_cost,
                    "monitor_evaluation_accuracy": monitor_evaluation_accuracy,
                    "monitor_training_cost": monitor_training_cost,
                    "monitor_training_accuracy": monitor_training_accuracy}
        for name, flag in monitors.items():
            if not isinstance(flag, (bool, np.bool_)):
                raise ValueError(f"SGD: {name} must be True or False, got {flag!r}")
        if evaluation_data is None:
            needs = [name for name in ("monitor_evaluation_cost", "monitor_evaluation_accuracy")
                     if monitors[name]] + (["early_stopping_n"] if early_stopping_n else [])
            if needs:
                raise ValueError(f"SGD: {' and '.join(needs)} need evaluation_data")
        n_in, n_out = self.sizes[0], self.sizes[-1]
        X, T = as_arrays(training_data, n_in, n_out, "training_data")
        Y = self._targets(T)
        test = None if test_data is None else as_arrays(test_data, n_in, n_out, "test_data")
        evaluation = None
        if evaluation_data is not None:
            X_eval, T_eval = as_arrays(evaluation_data, n_in, n_out, "evaluation_data")
            evaluation = X_eval, T_eval, self._targets(T_eval)
        sequel = bool(lmbda or evaluation is not None or early_stopping_n
                      or any(monitors.values()))
        if not isinstance(jit, (bool, np.bool_)):
            raise ValueError(f"SGD: jit must be True or False, got {jit!r}")
        opt = optim.SGD(self.parameters(), eta)
        n = len(X)
        shrink = 1.0 - eta * lmbda / n  # the sequel's weight decay factor; 1 without lmbda

        def step(X_batch: np.ndarray, Y_batch: np.ndarray) -> None:
            self._step(X_batch, Y_batch, opt, shrink)

        if jit:
            step = capture_and_replay(step)
        stats_list: list[EpochStats] = []
        lists: tuple[list, list, list, list] = ([], [], [], [])
        best_accuracy, no_accuracy_change = 0, 0
        for epoch in range(epochs):
            order = self.rng.permutation(n)
            starts: Iterable[int] = range(0, n, mini_batch_size)
            if progress is not None:
                starts = progress(starts, total=len(starts), desc=f"Epoch {epoch}")
            for k in starts:
                # Gather each mini-batch rather than copy the shuffled data set each epoch:
                # memory stays flat (no second copy of X alive while the next is made).
                batch = order[k:k + mini_batch_size]
                step(X[batch], Y[batch])
            stats = self._epoch_stats(epoch, X, Y, lmbda, test, evaluation, monitors,
                                      need_accuracy=bool(early_stopping_n))
            stats_list.append(stats)
            values = (stats.evaluation_cost, stats.evaluation_correct, stats.training_cost,
                      stats.training_correct)
            flags = (monitor_evaluation_cost, monitor_evaluation_accuracy,
                     monitor_training_cost, monitor_training_accuracy)
            for values_list, value, flag in zip(lists, values, flags):
                if flag:
                    values_list.append(value)
            if verbose:
                _print_epoch(stats, sequel, monitors)
            if early_stopping_n:
                # The sequel's early stopping: count the epochs since the best accuracy.
                if stats.evaluation_correct > best_accuracy:
                    best_accuracy, no_accuracy_change = stats.evaluation_correct, 0
                else:
                    no_accuracy_change += 1
                if no_accuracy_change == early_stopping_n:
                    break
        return History(stats_list, *lists)

    def _epoch_stats(self, epoch: int, X: np.ndarray, Y: np.ndarray, lmbda: float,
                     test: tuple[np.ndarray, np.ndarray] | None,
                     evaluation: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                     monitors: dict[str, bool], need_accuracy: bool) -> EpochStats:
        """Measure the network after an epoch: what is always recorded and what is asked for."""
        fields: dict[str, Any] = {}
        if test is not None:
            fields.update(test_correct=self._correct(*test), test_total=len(test[0]))
        if monitors["monitor_training_accuracy"]:
            fields.update(training_correct=self._correct(X, Y), training_total=len(X))
        if evaluation is not None:
            X_eval, T_eval, Y_eval = evaluation
            if monitors["monitor_evaluation_cost"]:
                fields["evaluation_cost"] = self._total_cost(X_eval, Y_eval, lmbda)
            if monitors["monitor_evaluation_accuracy"] or need_accuracy:
                fields.update(evaluation_correct=self._correct(X_eval, T_eval),
                              evaluation_total=len(X_eval))
        return EpochStats(epoch, self._total_cost(X, Y, lmbda), **fields)

    # --- saving and loading ---

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write sizes, weights, biases, cost and activation names to an .npz file at `path`.

        Arrays: ``sizes`` (int64), ``weight_i`` and ``bias_i`` for i = 0..L-2, and ``cost``
        and ``activation`` as 0-d unicode arrays, so `load` needs no pickle. The file is
        written atomically: to a temporary file in the same folder, then renamed over `path`;
        if anything fails, the temporary file is removed and a previous file at `path` is left
        as it was. `path` is used as given (no ``.npz`` is appended).
        """
        path = os.fspath(path)
        arrays = {"sizes": np.array(self.sizes, dtype=np.int64),
                  "cost": np.array(self.cost), "activation": np.array(self.activation)}
        for i, layer in enumerate(self.layers):
            arrays[f"weight_{i}"] = layer.weight.data
            arrays[f"bias_{i}"] = layer.bias.data
        folder = os.path.dirname(os.path.abspath(path))
        # Checked first so that an error names the learner's path, not the temporary file.
        if not os.path.isdir(folder):
            raise FileNotFoundError(errno.ENOENT, f"No folder {folder} to save the network in",
                                    path)
        if os.path.isdir(path):
            raise IsADirectoryError(errno.EISDIR, "Is a directory; the network is not saved",
                                    path)
        write_atomically(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Network:
        """A network read from a file written by `save`, with every array checked.

        Raises FileNotFoundError if there is no file, and ValueError naming the file for
        anything else: not an .npz archive, a missing array, a wrong shape or dtype, an
        object array (which would need pickle; files are read with allow_pickle=False).
        ``cost`` and ``activation`` default to quadratic and sigmoid when absent.
        """
        name = os.fspath(path)
        if os.path.isdir(name):
            raise ValueError(f"{name}: is a directory, not a network file written by "
                             f"Network.save")
        try:
            f = open(name, "rb")  # closed by the `with f` below, whatever happens
        except FileNotFoundError:
            raise
        except OSError as err:
            raise ValueError(f"{name}: cannot be read ({err.strerror})") from None
        # The file is ours to close: np.load(path) leaves it open when the zip is broken.
        with f:
            if os.fstat(f.fileno()).st_size == 0:
                raise ValueError(f"{name}: not a network file written by Network.save "
                                 f"(the file is empty)")
            try:
                archive = np.load(f, allow_pickle=False)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
                # numpy falls back to unpickling whatever is neither .npz nor .npy; we refuse.
                why = "not an .npz archive" if "pickle" in str(err) else str(err)
                raise ValueError(f"{name}: not a network file written by Network.save "
                                 f"({why})") from None
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError(f"{name}: holds a single array, not an .npz archive of a "
                                 f"network")
            with archive:
                return cls._from_archive(archive, name)

    @classmethod
    def _from_archive(cls, archive: Any, name: str) -> Network:
        def get(key: str, default: Any = None) -> np.ndarray:
            if key not in archive.files:
                if default is not None:
                    return np.array(default)
                raise ValueError(f"{name}: missing array {key!r} (the file has "
                                 f"{', '.join(archive.files) or 'no arrays'})")
            try:
                return archive[key]
            except ValueError:
                raise ValueError(f"{name}: array {key!r} is an object array that would need "
                                 f"pickle to load; refused (allow_pickle=False)") from None

        sizes = get("sizes")
        if sizes.ndim != 1 or sizes.dtype.kind not in "iu" or len(sizes) < 2 or (
                sizes < 1).any():
            raise ValueError(f"{name}: 'sizes' must be at least 2 integers >= 1, got "
                             f"{sizes.tolist()} (dtype {sizes.dtype})")
        texts = {}
        for key, default in (("cost", "quadratic"), ("activation", "sigmoid")):
            value = get(key, default)
            if value.ndim != 0 or value.dtype.kind != "U":
                raise ValueError(f"{name}: {key!r} must be a 0-d unicode array, got dtype "
                                 f"{value.dtype} and shape {value.shape}")
            texts[key] = str(value)
        try:
            net = cls(sizes.tolist(), cost=texts["cost"], activation=texts["activation"])
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        for kind, tensors in (("weight", [la.weight for la in net.layers]),
                              ("bias", [la.bias for la in net.layers])):
            for i, t in enumerate(tensors):
                key = f"{kind}_{i}"
                value = get(key)
                if value.shape != t.shape:
                    raise ValueError(f"{name}: {key!r} has shape {value.shape}, but sizes "
                                     f"{sizes.tolist()} need {t.shape}")
                if value.dtype.kind != "f":
                    raise ValueError(f"{name}: {key!r} must hold floats, got {value.dtype}")
                if not np.isfinite(value).all():
                    raise ValueError(f"{name}: {key!r} holds NaN or inf")
                t.data = value.astype(np.float64)
        return net

    def __repr__(self) -> str:
        return (f"Network({self.sizes}, cost={self.cost!r}, activation={self.activation!r}, "
                f"init={self.init!r})")


def load(path: str | os.PathLike[str]) -> Network:
    """`Network.load`: a network read from an .npz file written by `Network.save`."""
    return Network.load(path)
