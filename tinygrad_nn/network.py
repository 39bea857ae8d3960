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

A `Network` is a face over the module stack and the one training loop, not a second
implementation: its layers are `nn.Linear`s in an `nn.Sequential` with the activations, and
`SGD` is `training.fit` with the tutorial's epoch line and the sequel's monitors as callbacks.
What differs from the book: examples are rows, so a mini-batch is one (m, n) matrix pushed
forward and backward at once (never a Python loop over examples); the gradient comes from the
autograd (`cost.backward()`), not from hand-written BP1-BP4; the network is seeded, so the same
seed and data give bit-identical weights; and the data is checked before training starts.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Callable, Iterable, Sequence
from numbers import Real
from typing import Any

import numpy as np

from . import _checks, nn, ops, optim, training
from .costs import COSTS
from .nn import INITS, Linear, ModelFile, Module, open_model_file, write_atomically
from .tensor import Tensor, no_grad
from .training import EpochRecord, FitHistory, as_arrays

__all__ = ["ACTIVATIONS", "EpochStats", "History", "Network", "as_arrays", "load", "stack"]

#: The hidden layers' neurons by name, the table the CLI offers too. The output layer is always
#: sigmoid, so outputs lie in (0, 1) like the one-hot targets and cross-entropy is defined.
ACTIVATIONS: dict[str, type[Module]] = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}

#: What one epoch of `Network.SGD` achieved: the loop's one record type (`training.EpochRecord`).
EpochStats = EpochRecord

_MONITORS = ("monitor_evaluation_cost", "monitor_evaluation_accuracy", "monitor_training_cost",
             "monitor_training_accuracy")


class History(tuple):
    """What `Network.SGD` returns: the sequel's four lists, views of one record per epoch.

    As a tuple it is ``(evaluation_cost, evaluation_accuracy, training_cost,
    training_accuracy)``, exactly what the sequel's ``network2.SGD`` returns, so
    ``evaluation_cost, evaluation_accuracy, training_cost, training_accuracy = net.SGD(...)``
    works. Each list holds one value per epoch if the matching ``monitor_...`` flag was set
    and is empty otherwise; costs are floats, accuracies counts of correct examples (ints).
    The four are also attributes of the same names. `epochs` is the loop's `FitHistory`, one
    `EpochRecord` per epoch (always filled): ``history.epochs[-1].test_accuracy``. Tuple
    equality compares the four lists only; compare `epochs` for the whole record.
    """

    epochs: FitHistory

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

    @property
    def evaluation_cost(self) -> list[float]:
        """Cost on evaluation_data per epoch."""
        return self[0]

    @property
    def evaluation_accuracy(self) -> list[int]:
        """Correct evaluation examples per epoch."""
        return self[1]

    @property
    def training_cost(self) -> list[float]:
        """Cost on the training data per epoch."""
        return self[2]

    @property
    def training_accuracy(self) -> list[int]:
        """Correct training examples per epoch."""
        return self[3]

    def __repr__(self) -> str:
        last = self.epochs[-1] if self.epochs else None
        seen = "" if last is None else f"; last: training cost {last.training_cost:.6g}" + (
            "" if last.test_total is None else f", test {last.test_correct} / {last.test_total}")
        lists = ", ".join(f"{name[8:]}={value}" for name, value in zip(_MONITORS, self))
        return f"History({len(self.epochs)} epochs{seen}; {lists})"


def stack(layers: Sequence[Linear], activation: str = "sigmoid", dropout: float = 0.0,
          rng: Any = None) -> nn.Sequential:
    """The module stack of a network: each hidden `Linear` followed by `activation` (a key of
    `ACTIVATIONS`) and, with `dropout` > 0, an `nn.Dropout`; the last `Linear` by a sigmoid.

    a^l = σ(w^l a^{l-1} + b^l), eq. 1.7 for a whole layer, for l = 2..L.
    """
    hidden: list[Module] = []
    for layer in layers[:-1]:
        hidden += [layer, ACTIVATIONS[activation]()]
        if dropout:
            hidden.append(nn.Dropout(dropout, rng))
    return nn.Sequential(*hidden, layers[-1], nn.Sigmoid())


class _SequelSGD(optim.SGD):
    """Plain SGD after the sequel's weight decay, w ← (1 - ηλ/n) w - (η/m) Σ_j ∂C_{X_j}/∂w.

    One in-place multiply per weight matrix (biases are not decayed) before the step: the
    gradient was computed from the old w, so the order does not matter. The factor is a group
    hyperparameter, so `jit` watches it like the learning rate.
    """

    def __init__(self, params: list[Tensor], lr: float, shrink: float) -> None:
        optim.Optimizer.__init__(self, params, {"lr": lr, "momentum": 0.0, "nesterov": False,
                                                "weight_decay": 0.0, "shrink": shrink})

    def _update(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim >= 2 and p.grad is not None:
                    ops.mul(p.data, group["shrink"], out=p.data)
        super()._update()


def _sgd(params: list[Tensor], eta: float, shrink: float) -> optim.SGD:
    return optim.SGD(params, eta) if shrink == 1.0 else _SequelSGD(params, eta, shrink)


class _LiveArrays(list):
    """`net.weights` or `net.biases`: the layers' live arrays; ``net.weights[i] = w`` writes
    into layer i's tensor (a plain list would silently forget the assignment)."""

    def __init__(self, name: str, tensors: list[Tensor]) -> None:
        super().__init__(t.data for t in tensors)
        self._name, self._tensors = name, tensors

    def __setitem__(self, i: Any, value: Any) -> None:
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"Network.{self._name}: assign one array, [i] = array, or the "
                            f"whole list")
        _write(self._tensors[i], _fitted(f"Network.{self._name}[{i}]", value, self._tensors[i]))


def _fitted(where: str, value: Any, tensor: Tensor) -> np.ndarray:
    """`value` as an array of `tensor`'s shape; a bias may come as the book's column (n, 1)."""
    v = np.asarray(value)
    if tensor.ndim == 1 and v.shape == (tensor.shape[0], 1):
        v = v.reshape(-1)
    if v.shape != tensor.shape:
        raise ValueError(f"{where}: expected shape {tensor.shape}, got {v.shape}")
    return v


def _write(tensor: Tensor, value: np.ndarray) -> None:
    tensor.data[...] = value  # in place: the optimizer and the stack hold this array


class Network(Module):
    """A feed-forward network of fully connected layers, sec. 1.5 and 2.3 of the tutorial.

    `sizes` lists the neurons per layer, input layer first: ``Network([784, 30, 10])``.
    `cost` is ``"quadratic"`` (eq. 2.1) or ``"cross-entropy"``; `activation` the hidden
    layers' neuron (a key of `ACTIVATIONS`; the output layer is always sigmoid); `init` the
    weight initialisation of `nn.Linear`; `seed` seeds the generator that draws the initial
    weights and shuffles every epoch.

    `weights[i]` (shape (n_{l}, n_{l-1})) and `biases[i]` (shape (n_l,)) are the arrays of
    layer l = i + 2, as in Nielsen's network.py, read from the `Linear` layers' tensors;
    `layers` are those `Linear`s and `model` the `nn.Sequential` that `SGD` trains.
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
        _checks.one_of("Network", "cost", cost, COSTS)
        _checks.one_of("Network", "activation", activation, ACTIVATIONS)
        _checks.one_of("Network", "init", init, INITS)
        self.sizes = [int(n) for n in sizes]
        self.num_layers = len(self.sizes)
        self.cost, self.activation, self.init, self.seed = cost, activation, init, seed
        self.rng = np.random.default_rng(seed)
        self.layers = tuple(Linear(n_in, n_out, init, self.rng)
                            for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]))
        self.model = stack(self.layers, activation)
        self._cost_fn = COSTS[cost]

    # --- Nielsen's attributes, over the layers' tensors ---

    @property
    def weights(self) -> list[np.ndarray]:
        """[w^2, ..., w^L]: the live weight arrays, w^l of shape (n_l, n_{l-1})."""
        return _LiveArrays("weights", [layer.weight for layer in self.layers])

    @weights.setter
    def weights(self, values: Sequence[Any]) -> None:
        self._assign("weights", values, [layer.weight for layer in self.layers])

    @property
    def biases(self) -> list[np.ndarray]:
        """[b^2, ..., b^L]: the live bias arrays, b^l of shape (n_l,) (set: (n_l, 1) too)."""
        return _LiveArrays("biases", [layer.bias for layer in self.layers])

    @biases.setter
    def biases(self, values: Sequence[Any]) -> None:
        self._assign("biases", values, [layer.bias for layer in self.layers])

    def _assign(self, name: str, values: Sequence[Any], tensors: list[Tensor]) -> None:
        values = list(values)
        if len(values) != len(tensors):
            raise ValueError(f"Network.{name}: expected {len(tensors)} arrays for sizes "
                             f"{self.sizes}, got {len(values)}")
        fitted = [_fitted(f"Network.{name}[{i}]", v, t)  # all checked before any is written
                  for i, (v, t) in enumerate(zip(values, tensors))]
        for t, v in zip(tensors, fitted):
            _write(t, v)

    # --- computing ---

    def forward(self, x: Any) -> Tensor:
        """a^L for rows of inputs x: per layer one `linear` (z = a wᵀ + b) and one activation."""
        return self.model(x)

    def feedforward(self, a: Any) -> np.ndarray:
        """The network's output for `a`, as an array, without recording a graph (eq. 1.7).

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

    def _data(self, data: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
        return as_arrays(data, self.sizes[0], self.sizes[-1], what)

    def evaluate(self, test_data: Any) -> int:
        """The number of examples whose output's largest entry is at the right label."""
        return self._correct(*self._data(test_data, "test_data"))

    def total_cost(self, data: Any, lmbda: float = 0.0) -> float:
        """The network's cost over `data` (eq. 2.1, or cross-entropy), with labels one-hot.

        With ``lmbda`` > 0 it adds the sequel's L2 term (λ/2n) Σ_w w² over every weight (not
        the biases), with n the number of examples in `data`, as the sequel's
        ``network2.total_cost`` computes it.
        """
        X, T = self._data(data, "data")
        lmbda = _checks.number("total_cost", "the regularisation parameter lmbda", lmbda)
        return self._total_cost(X, self._targets(T), lmbda)

    def _correct(self, X: np.ndarray, T: np.ndarray) -> int:
        with no_grad():
            guesses = np.argmax(self.forward(X).data, axis=1)
        return int(np.count_nonzero(guesses == training._labels_of(T)))

    def _total_cost(self, X: np.ndarray, Y: np.ndarray, lmbda: float = 0.0) -> float:
        with no_grad():
            cost = float(self._cost_fn(self.forward(X), Y).item())
        if lmbda:
            squares = sum(float(np.vdot(w, w)) for w in self.weights)
            cost += 0.5 * (lmbda / len(X)) * squares
        return cost

    def _targets(self, T: np.ndarray) -> np.ndarray:
        return T if T.ndim == 2 else np.eye(self.sizes[-1])[T]  # labels as one-hot rows y(x)

    # --- learning ---

    def update_mini_batch(self, mini_batch: Any, eta: float, lmbda: float = 0.0,
                          n: int | None = None) -> float:
        """One step of eqs. 2.5/2.6 on one mini-batch (any form `as_arrays` accepts).

        With ``lmbda`` > 0 the weights also decay as in the sequel,
        w ← (1 - ηλ/n) w - (η/m) Σ_j ∂C_{X_j}/∂w, where `n` (then required) is the size of
        the whole training set; biases are not decayed. Returns the mini-batch's cost before
        the step (without the L2 term). The step is `training.train_step`, the loop's own.
        """
        eta = _checks.number("update_mini_batch", "the learning rate eta", eta, positive=True)
        X, T = self._data(mini_batch, "mini_batch")
        lmbda = _checks.number("update_mini_batch", "the regularisation parameter lmbda", lmbda)
        shrink = 1.0
        if lmbda:
            if n is None:
                raise ValueError("update_mini_batch: with lmbda > 0, pass n, the size of the "
                                 "whole training set (the sequel's 1 - eta*lmbda/n)")
            shrink = 1.0 - eta * lmbda / _checks.count("update_mini_batch", "n", n, 1)
        return self._step(X, self._targets(T), _sgd(self.parameters(), eta, shrink)).item()

    def _step(self, X: np.ndarray, Y: np.ndarray, opt: optim.Optimizer) -> Tensor:
        # The hot loop's step: forward (one linear + activation per layer), cost, backward,
        # update. The cost gets the sigmoid's own output tensor (cross-entropy reads its z).
        return training.train_step(self.model, self._cost_fn, opt, X, Y)

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
        every weight and bias by -eta times its gradient: `training.fit`, the one loop. After
        each epoch it prints ``Epoch k: correct / total`` on `test_data` (the tutorial's line)
        unless `verbose` is False.

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
          keeps its last weights (`fit`'s ``patience`` with ``restore_best=False``).

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
        training_cost, training_accuracy), with `.epochs`, one `EpochRecord` per epoch.

        Everything is checked before the first step: epochs >= 0, mini_batch_size >= 1,
        eta > 0, lmbda >= 0, early_stopping_n >= 0, evaluation data present when it is
        monitored, and the data (see `as_arrays`).
        """
        epochs = _checks.count("SGD", "epochs", epochs, 0)
        mini_batch_size = _checks.count("SGD", "mini_batch_size", mini_batch_size, 1)
        eta = _checks.number("SGD", "the learning rate eta", eta, positive=True)
        if isinstance(test_data, Real):
            raise TypeError(f"SGD: test_data is the number {test_data!r}; the sequel's lmbda "
                            f"is keyword-only here: net.SGD(..., eta, lmbda={test_data!r})")
        lmbda = _checks.number("SGD", "the regularisation parameter lmbda", lmbda)
        early_stopping_n = _checks.count("SGD", "early_stopping_n", early_stopping_n, 0)
        monitored = (monitor_evaluation_cost, monitor_evaluation_accuracy, monitor_training_cost,
                     monitor_training_accuracy)
        for name, value in zip(_MONITORS, monitored):
            _checks.flag("SGD", name, value)
        needs = [name for name, on in zip(_MONITORS[:2], monitored) if on] + (
            ["early_stopping_n"] if early_stopping_n else [])
        if evaluation_data is None and needs:
            raise ValueError(f"SGD: {' and '.join(needs)} need evaluation_data")
        _checks.flag("SGD", "jit", jit)
        data = self._data(training_data, "training_data")  # checked once, here, not again by fit
        X, Y = data[0], self._targets(data[1])
        test = None if test_data is None else self._data(test_data, "test_data")
        evaluation = None if evaluation_data is None else self._data(evaluation_data,
                                                                     "evaluation_data")
        sequel = bool(lmbda or evaluation is not None or early_stopping_n or any(monitored))

        def measure(record: EpochRecord) -> EpochRecord:
            """The tutorial's and the sequel's measurements after the epoch, then the lines."""
            fields: dict[str, Any] = {"training_cost": self._total_cost(X, Y, lmbda)}
            if test is not None:
                fields.update(test_correct=self._correct(*test), test_total=len(test[0]))
            if monitor_training_accuracy:
                fields.update(training_correct=self._correct(X, Y), training_total=len(X))
            if monitor_evaluation_cost:
                fields["evaluation_cost"] = self._total_cost(evaluation[0],
                                                             self._targets(evaluation[1]), lmbda)
            record = dataclasses.replace(record, **fields)
            if verbose:
                _print_epoch(record, sequel, monitored)
            return record

        fitted = training.fit(
            self.model, self._cost_fn, _sgd(self.parameters(), eta, 1.0 - eta * lmbda / len(X)),
            data, epochs, mini_batch_size, evaluation,
            patience=early_stopping_n or None, restore_best=False, seed=self.rng,
            progress=progress, verbose=False, jit=jit, widths=(self.sizes[0], self.sizes[-1]),
            validation_cost=None, callbacks=[measure])
        return History(fitted, monitored)

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

        Read by `nn.open_model_file`, the same hardened reader as `nn.load_state`: it never
        unpickles and refuses damaged files. Raises FileNotFoundError if there is no file,
        and ValueError naming the file for anything else: not an .npz archive, damage (a
        flipped bit, a truncation), a missing array, a wrong shape or dtype, NaN or inf, an
        object array. Every array is checked against ``sizes`` before the network is built,
        so a file that only declares huge sizes allocates nothing. ``cost`` and
        ``activation`` default to quadratic and sigmoid when absent.
        """
        name = os.fspath(path)
        with open_model_file(name) as archive:
            return cls._from_archive(archive, name)

    @classmethod
    def _from_archive(cls, archive: ModelFile, name: str) -> Network:
        def get(key: str, default: Any = None) -> np.ndarray:
            if key not in archive.files:
                if default is not None:
                    return np.array(default)
                raise ValueError(f"{name}: missing array {key!r} (the file has "
                                 f"{', '.join(archive.files) or 'no arrays'})")
            return archive.read(key)

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
        widths = sizes.tolist()
        # Every array is read and checked against the sizes *before* the network is built:
        # building first would allocate whatever the file declares (sizes [4, 1e6, 1e6, 2]
        # asked for 7.28 TiB), while an array read here is at most as big as the file.
        arrays = {}
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            for key, shape in ((f"weight_{i}", (n_out, n_in)), (f"bias_{i}", (n_out,))):
                value = get(key)
                if value.shape != shape:
                    raise ValueError(f"{name}: {key!r} has shape {value.shape}, but sizes "
                                     f"{widths} need {shape}")
                if value.dtype.kind != "f":
                    raise ValueError(f"{name}: {key!r} must hold floats, got {value.dtype}")
                if not np.isfinite(value).all():
                    raise ValueError(f"{name}: {key!r} holds NaN or inf")
                arrays[key] = value
        try:
            net = cls(widths, cost=texts["cost"], activation=texts["activation"])
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        for i, layer in enumerate(net.layers):
            layer.weight.data = arrays[f"weight_{i}"].astype(np.float64)
            layer.bias.data = arrays[f"bias_{i}"].astype(np.float64)
        return net

    def __repr__(self) -> str:
        return (f"Network({self.sizes}, cost={self.cost!r}, activation={self.activation!r}, "
                f"init={self.init!r})")


def _print_epoch(record: EpochRecord, sequel: bool, monitored: Sequence[bool]) -> None:
    """The tutorial's epoch line, then the sequel's monitoring lines, in the sequel's order."""
    if record.test_total is not None:
        print(f"Epoch {record.epoch}: {record.test_correct} / {record.test_total}", flush=True)
    else:
        print(f"Epoch {record.epoch}{' training' if sequel else ''} complete", flush=True)
    evaluation_cost, evaluation_accuracy, training_cost, training_accuracy = monitored
    if training_cost:
        print(f"Cost on training data: {record.training_cost}")
    if training_accuracy:
        print(f"Accuracy on training data: {record.training_correct} / {record.training_total}")
    if evaluation_cost:
        print(f"Cost on evaluation data: {record.evaluation_cost}")
    if evaluation_accuracy:
        print(f"Accuracy on evaluation data: {record.val_correct} / {record.val_total}",
              flush=True)


def load(path: str | os.PathLike[str]) -> Network:
    """`Network.load`: a network read from an .npz file written by `Network.save`."""
    return Network.load(path)
