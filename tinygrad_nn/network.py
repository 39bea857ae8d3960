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

A `Network` is a face over the module stack (`nn.Linear`s and activations in an
`nn.Sequential`) and the one training loop (`SGD` is `training.fit` with the tutorial's and
the sequel's lines as callbacks). Unlike the book: a mini-batch is one (m, n) matrix of rows,
the gradient comes from the autograd, not hand-written BP1-BP4, the same seed gives
bit-identical weights, and the data is checked before training starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from numbers import Real
from typing import Any

import numpy as np

from . import _checks, checkpoint, nn, optim, training
from .costs import COSTS
from .nn import INITS, Linear, Module
from .records import MONITORS, EpochRecord, History, tutorial_callback
from .tensor import Tensor, no_grad
from .training import as_arrays

__all__ = ["ACTIVATIONS", "EpochStats", "History", "Network", "as_arrays", "load", "stack"]

#: The hidden layers' neurons by name, the table the CLI offers too. The output layer is always
#: sigmoid, so outputs lie in (0, 1) like the one-hot targets and cross-entropy is defined.
ACTIVATIONS: dict[str, type[Module]] = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}

#: What one epoch of `Network.SGD` achieved: the loop's one record type (`records.EpochRecord`).
EpochStats = EpochRecord


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
        _write(self._name, {i: value}, self._tensors)


def _write(name: str, values: dict[Any, Any], tensors: list[Tensor]) -> None:
    """Write values[i] into tensors[i] in place (the optimizer and the stack hold the arrays),
    each checked for its shape first; a bias may come as the book's column (n, 1)."""
    fitted = {}
    for i, value in values.items():
        v, shape = np.asarray(value), tensors[i].shape
        fitted[i] = v.reshape(-1) if len(shape) == 1 and v.shape == (shape[0], 1) else v
        if fitted[i].shape != shape:
            raise ValueError(f"Network.{name}[{i}]: expected shape {shape}, got {v.shape}")
    for i, v in fitted.items():
        tensors[i].data[...] = v


def _live(name: str, part: str, doc: str) -> property:
    """`Network.weights` or `.biases`: read as `_LiveArrays`, assigned whole as a list."""
    def tensors(net: Network) -> list[Tensor]:
        return [getattr(layer, part) for layer in net.layers]

    def assign(net: Network, values: Sequence[Any]) -> None:
        values = list(values)
        if len(values) != len(net.layers):
            raise ValueError(f"Network.{name}: expected {len(net.layers)} arrays for sizes "
                             f"{net.sizes}, got {len(values)}")
        _write(name, dict(enumerate(values)), tensors(net))

    def read(net: Network) -> list[np.ndarray]:
        return _LiveArrays(name, tensors(net))

    read.__doc__ = doc
    return property(read, assign, doc=doc)


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
        sizes = _checks.widths("Network", sizes)
        for name, value, table in (("cost", cost, COSTS), ("activation", activation, ACTIVATIONS),
                                   ("init", init, INITS)):
            _checks.one_of("Network", name, value, table)
        self.sizes = sizes
        self.num_layers = len(self.sizes)
        self.cost, self.activation, self.init, self.seed = cost, activation, init, seed
        self.rng = np.random.default_rng(seed)
        self.layers = tuple(Linear(n_in, n_out, init, self.rng)
                            for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:]))
        self.model = stack(self.layers, activation)
        self._cost_fn = COSTS[cost]

    # --- Nielsen's attributes, over the layers' tensors ---

    weights = _live("weights", "weight",
                    "[w^2, ..., w^L]: the live weight arrays, w^l of shape (n_l, n_{l-1}).")
    biases = _live("biases", "bias", "[b^2, ..., b^L]: the live bias arrays, b^l of shape "
                                     "(n_l,) (set: (n_l, 1) too).")

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
        return self._score(*self._data(test_data, "test_data"))[1]

    def total_cost(self, data: Any, lmbda: float = 0.0) -> float:
        """The network's cost over `data` (eq. 2.1, or cross-entropy), with labels one-hot.

        With ``lmbda`` > 0 it adds the sequel's L2 term (λ/2n) Σ_w w² over every weight (not
        the biases), with n the number of examples in `data`, as the sequel's
        ``network2.total_cost`` computes it.
        """
        X, T = self._data(data, "data")
        return self._score(X, T, _checks.number("total_cost", "the regularisation parameter "
                                                          "lmbda", lmbda))[0]

    def _score(self, X: np.ndarray, T: np.ndarray, lmbda: float = 0.0) -> tuple[float, int]:
        """(cost with the L2 term, number correct) of the rows X, by `training.evaluate`."""
        result = training.evaluate(self.model, training.checked(X, self._targets(T)),
                                   self._cost_fn)
        squares = sum(float(np.vdot(w, w)) for w in self.weights) if lmbda else 0.0
        correct = result.correct  # (None for one output: argmax is then 0, as the book's)
        if correct is None:
            correct = int(np.count_nonzero(training._labels_of(T) == 0))
        return result.cost + 0.5 * (lmbda / len(X)) * squares, correct  # type: ignore[operator]  # (measured)

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
        if lmbda and n is None:
            raise ValueError("update_mini_batch: with lmbda > 0, pass n, the size of the "
                             "whole training set (the sequel's 1 - eta*lmbda/n)")
        decay = lmbda / _checks.count("update_mini_batch", "n", n, 1) if lmbda else 0.0
        return self._step(X, self._targets(T), self._optimizer(eta, decay)).item()

    def _step(self, X: np.ndarray, Y: np.ndarray, opt: optim.Optimizer) -> Tensor:
        # The step `SGD`'s loop takes (forward, cost, backward, update), for jit and benchmarks.
        return training.train_step(self.model, self._cost_fn, opt, X, Y)

    def _optimizer(self, eta: float, decay: float) -> optim.SGD:
        """Plain SGD; with the sequel's λ, weight decay λ/n on the weights only (not biases),
        which plain `optim.SGD` applies as the sequel writes it: (1 - η(λ/n)) w - η∇C."""
        params = self.parameters()
        return optim.SGD(optim.decay_groups(params, decay) if decay else params, eta)

    def SGD(self, training_data: Any, epochs: int, mini_batch_size: int, eta: float,
            test_data: Any = None, *, lmbda: float = 0.0, evaluation_data: Any = None,
            monitor_evaluation_cost: bool = False, monitor_evaluation_accuracy: bool = False,
            monitor_training_cost: bool = False, monitor_training_accuracy: bool = False,
            early_stopping_n: int = 0, verbose: bool = True,
            progress: Callable[..., Iterable[int]] | None = None, jit: bool = False) -> History:
        """Train by mini-batch stochastic gradient descent (sec. 2.2, eqs. 2.4-2.6).

        Each epoch shuffles the training data with the network's seeded generator, splits it
        into mini-batches of `mini_batch_size` (the last may be smaller) and steps every weight
        and bias by -eta times the gradient of the mini-batch's mean cost: `training.fit`, the
        one loop. After each epoch it prints ``Epoch k: correct / total`` on `test_data` (the
        tutorial's line), or ``Epoch k complete`` without test data, unless `verbose` is False.

        The sequel's keywords (``network2.SGD``; keyword-only, since `test_data` is fifth):
        ``lmbda``, L2 regularisation, w ← (1 - ηλ/n) w - (η/m) Σ_j ∂C_{X_j}/∂w with n the size
        of the training set (biases are not decayed); ``evaluation_data`` and the four
        ``monitor_...`` flags, which after each epoch compute and print (``Cost on training
        data: ...``, ``Accuracy on evaluation data: c / n``) the cost, with the L2 term
        (λ/2n) Σ w² as the sequel's ``total_cost``, and the number correct;
        ``early_stopping_n``, stop when the evaluation accuracy has not beaten its best for
        that many epochs (0: never), keeping the last weights as the sequel does (`fit`'s
        ``patience`` with ``restore_best=False``). With any of them the line without test
        data reads ``Epoch k training complete`` (the sequel's).

        `progress` wraps each epoch's iterable of mini-batch starts, called as
        ``progress(iterable, total=number_of_mini_batches, desc="Epoch k")`` (`tqdm.tqdm`
        fits). ``jit=True`` captures the step once per mini-batch shape and replays it
        (`tinygrad_nn.jit`): the same numpy calls, so the same weights to the last bit, faster.

        Everything (the numbers, the flags, the data: see `as_arrays`) is checked before the
        first step. Returns a `History` of the sequel's four lists, with `.epochs`.
        """
        epochs = _checks.count("SGD", "epochs", epochs, 0)
        mini_batch_size = _checks.count("SGD", "mini_batch_size", mini_batch_size, 1)
        eta = _checks.number("SGD", "the learning rate eta", eta, positive=True)
        if isinstance(test_data, Real):
            raise TypeError(f"SGD: test_data is the number {test_data!r}; the sequel's lmbda "
                            f"is keyword-only here: net.SGD(..., eta, lmbda={test_data!r})")
        lmbda = _checks.number("SGD", "the regularisation parameter lmbda", lmbda)
        early_stopping_n = _checks.count("SGD", "early_stopping_n", early_stopping_n, 0)
        monitored = tuple(_checks.flag("SGD", name, on) for name, on in zip(MONITORS, (
            monitor_evaluation_cost, monitor_evaluation_accuracy, monitor_training_cost,
            monitor_training_accuracy)))
        needs = [name for name, on in zip(MONITORS[:2], monitored) if on] + (
            ["early_stopping_n"] if early_stopping_n else [])
        if evaluation_data is None and needs:
            raise ValueError(f"SGD: {' and '.join(needs)} need evaluation_data")
        _checks.flag("SGD", "jit", jit)
        data = self._data(training_data, "training_data")  # checked once, here, not again by fit
        X, Y = data[0], self._targets(data[1])
        test, evaluation = (None if d is None else self._data(d, what) for d, what in (
            (test_data, "test_data"), (evaluation_data, "evaluation_data")))
        sequel = bool(lmbda or evaluation is not None or early_stopping_n or any(monitored))

        measure = tutorial_callback(self._score, (X, Y), test, evaluation, lmbda, monitored,
                                    sequel if verbose else None)
        fitted = training.fit(
            self.model, self._cost_fn, self._optimizer(eta, lmbda / len(X)),
            data, epochs, mini_batch_size, evaluation,
            patience=early_stopping_n or None, restore_best=False, seed=self.rng,
            progress=progress, verbose=False, jit=jit, widths=(self.sizes[0], self.sizes[-1]),
            validation_cost=None, callbacks=[measure])
        return History(fitted, monitored)

    # --- saving and loading ---

    def _named_tensors(self) -> list[tuple[str, Tensor]]:
        # Nielsen's names: weight_i and bias_i of layer l = i + 2, in `state_dict` and the file.
        return [(f"{part}_{i}", getattr(layer, part)) for i, layer in enumerate(self.layers)
                for part in ("weight", "bias")]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the network to the .npz file `path` (used as given: no ``.npz`` added).

        The one model-file format, `nn.save_state`'s: the arrays of `state_dict()`
        (``weight_i``, ``bias_i``) and, as `nn.BUILT_BY`, ``sizes`` (int64) and ``cost``,
        ``activation`` and ``init`` (0-d unicode), so `load` needs no pickle. Written
        atomically: if anything fails, a previous file at `path` is left as it was.
        """
        nn.save_state(self, path, built_by={"sizes": self.sizes, "cost": self.cost,
                                            "activation": self.activation, "init": self.init})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Network:
        """A network read from a file written by `save` (`nn.load_state` reads it too).

        Read by `checkpoint.read_built`, through the one hardened reader behind `nn.load_state`
        and `nn.load_checkpoint`: it never unpickles. Raises FileNotFoundError if there is no
        file, and ValueError naming the file for anything else: not an .npz archive, damage (a
        flipped bit, a truncation), a missing array, a wrong shape or dtype, NaN or inf, an
        object array. Every array is checked against ``sizes`` before the network is built, so
        a file that only declares huge sizes allocates nothing. ``cost``, ``activation`` and
        ``init`` default to quadratic, sigmoid and standard when absent (older files).
        """
        name = os.fspath(path)
        built, state = checkpoint.read_built(name)
        widths = built.pop("sizes")
        try:
            net = cls(widths, **built)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        net.load_state_dict({key: state[key] for key in net.state_dict()})
        return net

    def __repr__(self) -> str:
        return (f"Network({self.sizes}, cost={self.cost!r}, activation={self.activation!r}, "
                f"init={self.init!r})")


def load(path: str | os.PathLike[str]) -> Network:
    """`Network.load`: a network read from an .npz file written by `Network.save`."""
    return Network.load(path)
