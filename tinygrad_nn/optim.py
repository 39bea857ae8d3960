"""Optimizers and learning-rate schedules: gradient descent (eqs. 2.2-2.6) and its descendants.

Eqs. 2.5/2.6 update w ← w - (η/m) Σ_j ∂C_{X_j}/∂w over a mini-batch of m examples. The costs
in `costs.py` already average over the mini-batch, so the gradient that `backward()` leaves
in `.grad` is (1/m) Σ_j ∂C_{X_j}/∂w, and one step of plain SGD is simply p ← p - η · p.grad
(eqs. 2.2/2.3). The other rules change what is subtracted; all follow PyTorch's `torch.optim`
update rules and defaults exactly, so results can be compared number for number:

- `SGD` with ``momentum`` μ keeps a velocity b ← μ b + g (b = g at the first step) and steps
  p ← p - lr · b; with ``nesterov=True`` it steps along g + μ b instead.
- `Adam` keeps running means of g and g², m ← β₁ m + (1 - β₁) g and v ← β₂ v + (1 - β₂) g²,
  corrects their bias towards 0 at early steps t (m̂ = m / (1 - β₁ᵗ), v̂ = v / (1 - β₂ᵗ)) and
  steps p ← p - lr · m̂ / (√v̂ + ε).
- `RMSprop` keeps a running mean of g², v ← α v + (1 - α) g², and steps
  p ← p - lr · g / (√v + ε) (with ``centered=True`` it divides by the running standard
  deviation √(v - ḡ²) instead, and ``momentum`` μ accumulates b ← μ b + g / (√v + ε)).
- ``weight_decay`` λ in `SGD`, `Adam` and `RMSprop` is L2 regularisation: it adds λ p to
  the gradient (the sequel's C = C₀ + λ/(2n) Σ w² with λ/n written as one number). `AdamW`
  instead shrinks the parameters directly, p ← p - lr · λ · p, before the Adam step
  ("decoupled" decay).

Every update is done *in place* on `p.data` (layers holding the arrays see the new values),
with per-parameter state arrays allocated once and reused, so a step allocates nothing. The
arithmetic goes through the primitives of `ops` with ``out=``, so that `jit` records it; the
step count ``state["step"]`` is a 0-d integer array for the same reason (in PyTorch, a tensor).

Parameter groups (PyTorch's way) give some parameters other hyperparameters, most often to
exempt biases from weight decay. `decay_groups` builds the usual split:

>>> w = Tensor([[1.0, 2.0]], requires_grad=True)
>>> b = Tensor([0.5], requires_grad=True)
>>> opt = SGD(decay_groups([w, b], weight_decay=0.1), lr=0.5)
>>> [(len(g["params"]), g["weight_decay"]) for g in opt.param_groups]
[(1, 0.1), (1, 0.0)]

Schedules change each group's ``lr`` once per epoch by PyTorch's closed forms: `StepLR`,
`ExponentialLR`, `CosineAnnealingLR`.

Every optimizer and schedule has PyTorch's `state_dict()` / `load_state_dict()`: an
optimizer's state is keyed by the parameter's index (its place in `params`), not by its
identity, so it loads into a new optimizer over a new model; `nn.save_checkpoint` writes it
with the model, the schedule and the epoch into one file, and training resumed from it gives
the same weights, bit for bit, as training that never stopped.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping
from numbers import Real
from typing import Any

import numpy as np

from . import _checks, ops
from .tensor import Tensor, _bump_versions, _GradMode, watch

__all__ = ["SGD", "Adam", "AdamW", "CosineAnnealingLR", "ExponentialLR", "LRScheduler",
           "Optimizer", "RMSprop", "StepLR", "decay_groups"]

ParamsLike = Iterable[Tensor] | Iterable[Mapping[str, Any]]


# --- checking hyperparameters: one line each, naming the optimizer and the value ----------------


def _check_betas(who: str, betas: Any) -> tuple[float, float]:
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}") from None
    return _checks.fraction(who, "betas[0]", beta1), _checks.fraction(who, "betas[1]", beta2)


def _as_index(key: Any) -> int:
    """A parameter index of a state dict: an int, or its digits (JSON makes keys text)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return int(key)
    if isinstance(key, str) and key.isdigit():
        return int(key)
    raise ValueError(f"load_state_dict: a parameter index must be an integer, got {key!r}")


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"a dict with keys {sorted(map(str, value))}"
    return f"a {type(value).__name__}"


# --- parameter groups ---------------------------------------------------------------------------


def decay_groups(params: Iterable[Tensor], weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: matrices decayed by `weight_decay`, vectors (biases) not at all.

    This is the sequel's convention (its L2 term sums over weights only, eq. 85 of Nielsen's
    chapter 3): a bias shifts a neuron's threshold and does not make the network more
    sensitive to its inputs, so there is nothing to gain from shrinking it. Parameters with
    ndim >= 2 are weights; the others (biases, scalars) go into the group without decay.
    Empty groups are left out.
    """
    weights: list[Tensor]
    others: list[Tensor]
    weights, others = [], []
    for p in params:
        (weights if isinstance(p, Tensor) and p.ndim >= 2 else others).append(p)
    groups = [{"params": weights, "weight_decay": weight_decay},
              {"params": others, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def _with_l2(state: dict[str, Any], x: np.ndarray, g: np.ndarray, decay: float) -> np.ndarray:
    """g + λ p, L2 regularisation, into the parameter's second scratch array (never into
    p.grad), made once and reused; the arithmetic through `ops` with out=, for `jit`."""
    d = state.get("scratch2")
    if d is None:
        d = state["scratch2"] = np.empty_like(x)
    ops.mul(x, decay, out=d)
    ops.add(d, g, out=d)
    return d


class Optimizer:
    """What every optimizer shares: parameter groups, per-parameter state and `zero_grad`.

    `params` is an iterable of Tensors, or of dicts (PyTorch's parameter groups) each with a
    ``"params"`` list and any hyperparameters that differ from the defaults given to the
    constructor, e.g. ``[{"params": weights}, {"params": biases, "weight_decay": 0}]``.
    Every parameter must be a leaf Tensor that requires grad and appear only once.

    `param_groups` is the list of groups, each a dict holding its ``params`` and every
    hyperparameter (schedules change ``group["lr"]``); `params` all parameters in order;
    `state` maps ``id(p)`` to that parameter's state arrays (momentum, running means).
    """

    def __init__(self, params: ParamsLike, defaults: dict[str, Any]) -> None:
        who = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{who}: params must be an iterable of Tensors (or of parameter "
                            f"groups), got a single Tensor; wrap it in a list")
        items = list(params)
        if not items:
            raise ValueError(f"{who}: got an empty list of parameters")
        groups: list[Any] = (items if all(isinstance(g, Mapping) for g in items)
                             else [{"params": items}])
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        self.params: list[Tensor] = []
        self.state: dict[int, dict[str, Any]] = {}
        seen: set[int] = set()
        for k, group in enumerate(groups):
            unknown = set(group) - {"params"} - set(defaults)
            if unknown:
                raise ValueError(f"{who}: parameter group {k} has unknown option(s) "
                                 f"{', '.join(sorted(unknown))}; known: "
                                 f"{', '.join(sorted(defaults))}")
            if "params" not in group:
                raise ValueError(f"{who}: parameter group {k} has no 'params'")
            group_params = group["params"]
            group_params = [group_params] if isinstance(group_params, Tensor) else list(
                group_params)
            for p in group_params:
                i = len(self.params)
                if isinstance(p, Mapping):
                    raise TypeError(f"{who}: parameter {i} is a parameter group among Tensors; "
                                    f"pass either Tensors or parameter groups (dicts), not both")
                if not isinstance(p, Tensor):
                    raise TypeError(f"{who}: parameter {i} is a {type(p).__name__}, "
                                    f"not a Tensor")
                if not p.requires_grad or not p.is_leaf:
                    raise ValueError(f"{who}: parameter {i} (shape {p.shape}) must be a leaf "
                                     f"tensor that requires grad")
                if id(p) in seen:
                    raise ValueError(f"{who}: parameter {i} (shape {p.shape}) appears more "
                                     f"than once; each parameter may be in one group only")
                seen.add(id(p))
                self.params.append(p)
            full = {**defaults, **group, "params": group_params}
            self._check_group(full)
            self.param_groups.append(full)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Check (and normalise) a group's hyperparameters; subclasses extend it."""
        group["lr"] = _checks.number(type(self).__name__, "the learning rate lr", group["lr"],
                                     positive=True)

    def zero_grad(self) -> None:
        """Set every parameter's `.grad` to None (PyTorch's default, set_to_none=True)."""
        if _GradMode.tape is not None:  # `jit` capturing: it may have to put them back
            _GradMode.tape.note_grads(self.params, clearing=True)
        for p in self.params:
            p.grad = None

    #: The names of the state arrays that carry information from step to step (saved by
    #: `state_dict`); every other entry is workspace, overwritten before it is read.
    _state_names: tuple[str, ...] = ("step",)

    def _state(self, p: Tensor) -> dict[str, Any]:
        state = self.state.get(id(p))
        if state is None:
            # One scratch array per parameter, reused by every step (numpy's out=).
            state = self.state[id(p)] = {"step": np.zeros((), dtype=np.int64),
                                         "scratch": np.empty_like(p.data)}
        return state

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state and hyperparameters, as PyTorch's ``Optimizer.state_dict()``.

        ``{"state": {i: {name: array}}, "param_groups": [{..., "params": [i, ...]}]}``, where
        i is a parameter's index in `params` (the order the parameters were given), so the
        state loads into an optimizer over another copy of the model. The arrays are copies
        (PyTorch returns references): the dict is the state at this moment. Workspace arrays
        (scratch buffers, Adam's bias corrections) are left out; they are rewritten before
        they are read.
        """
        index = {id(p): i for i, p in enumerate(self.params)}
        state = {}
        for key, entry in self.state.items():
            if key in index:
                state[index[key]] = {name: np.array(value, copy=True)
                                     for name, value in entry.items()
                                     if name in self._state_names}
        groups = [{**{k: v for k, v in group.items() if k != "params"},
                   "params": [index[id(p)] for p in group["params"]]}
                  for group in self.param_groups]
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load what `state_dict()` gave (of this optimizer or another of the same kind over
        parameters of the same shapes), as PyTorch's ``Optimizer.load_state_dict``.

        The groups must be as many and as large as this optimizer's; their hyperparameters
        (the learning rate too) replace this optimizer's and are checked as the constructor
        checks them. State arrays are copied, cast to their parameter's dtype (the step count
        stays an integer). Anything that does not fit raises ValueError naming every problem,
        and nothing changes.
        """
        who = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{who}: expected a dict with 'state' and 'param_groups' (what "
                             f"state_dict() returns), got {_describe(state_dict)}")
        groups, owner = self._loaded_groups(who, state_dict["param_groups"])
        state, problems = {}, []
        for key, entry in dict(state_dict["state"]).items():
            p = owner.get(_as_index(key))
            if p is None:
                problems.append(f"state for parameter {key!r}, which no group holds")
                continue
            state[id(p)] = self._loaded_entry(p, _as_index(key), entry, problems)
        if problems:
            raise ValueError(f"{who}: the state does not fit this {type(self).__name__}: "
                             f"{'; '.join(problems)}")
        self.param_groups[:] = groups
        self.state.clear()
        self.state.update(state)

    def _loaded_groups(self, who: str, saved: Any) -> tuple[list[dict[str, Any]],
                                                            dict[int, Tensor]]:
        """This optimizer's groups with `saved`'s hyperparameters, and which of this
        optimizer's parameters each saved index names."""
        saved = list(saved)
        if len(saved) != len(self.param_groups):
            raise ValueError(f"{who}: the state has {len(saved)} parameter groups, this "
                             f"optimizer {len(self.param_groups)}")
        groups, owner = [], {}
        for k, (mine, theirs) in enumerate(zip(self.param_groups, saved)):
            indices = list(theirs.get("params", ()))
            if len(indices) != len(mine["params"]):
                raise ValueError(f"{who}: group {k} of the state holds {len(indices)} "
                                 f"parameters, this optimizer's {len(mine['params'])}")
            options = {name: value for name, value in theirs.items() if name != "params"}
            if set(options) != set(self.defaults):
                raise ValueError(f"{who}: group {k} of the state has the options "
                                 f"{sorted(options)}, {type(self).__name__} has "
                                 f"{sorted(self.defaults)}")
            group = {**options, "params": mine["params"]}
            self._check_group(group)
            groups.append(group)
            owner.update({_as_index(i): p for i, p in zip(indices, mine["params"])})
        return groups, owner

    def _loaded_entry(self, p: Tensor, i: int, entry: Mapping[str, Any],
                      problems: list[str]) -> dict[str, Any]:
        """A fresh state entry for `p` (its workspace allocated) holding copies of `entry`."""
        loaded = {"step": np.zeros((), dtype=np.int64), "scratch": np.empty_like(p.data)}
        for name, value in entry.items():
            value = np.asarray(value)
            shape, dtype = ((), np.dtype(np.int64)) if name == "step" else (p.shape, p.dtype)
            if name not in self._state_names:
                problems.append(f"parameter {i} has an unknown state {name!r} (known: "
                                f"{', '.join(self._state_names)})")
            elif value.shape != shape or value.dtype.kind not in "fiu":
                problems.append(f"state {name!r} of parameter {i} is {value.dtype} of shape "
                                f"{value.shape}; expected numbers of shape {shape}")
            else:
                loaded[name] = value.astype(dtype)  # (astype copies)
        return loaded

    def _contents(self) -> tuple:
        """What a captured step bakes in: each group's parameters and hyperparameters, and
        every state array (by identity)."""
        groups = tuple((tuple(group["params"]),
                        tuple((k, v) for k, v in group.items() if k != "params"))
                       for group in self.param_groups)
        state = tuple((key, tuple(entry.items())) for key, entry in self.state.items())
        return groups, state

    def _unchanged_since(self, contents: tuple) -> bool:
        """Whether `_contents()` would still give `contents`, compared in place (this runs
        before every replay, so it builds no tuples): a parameter removed from a group, a new
        learning rate, the state cleared or one momentum buffer dropped all make it False."""
        groups, state = contents
        if len(self.param_groups) != len(groups) or len(self.state) != len(state):
            return False
        for group, (params, options) in zip(self.param_groups, groups):
            now = group["params"]
            if len(now) != len(params) or len(group) != len(options) + 1:
                return False
            for p, q in zip(now, params):
                if p is not q:
                    return False
            for k, v in options:
                if group.get(k) != v:
                    return False
        for key, items in state:
            entry = self.state.get(key)
            if entry is None or len(entry) != len(items):
                return False
            for name, value in items:
                if entry.get(name) is not value:
                    return False
        return True

    @property
    def lr(self) -> float:
        """The learning rate of the first group (of every group, when there is one)."""
        return self.param_groups[0]["lr"]

    def step(self) -> None:
        """Update every parameter that has a gradient, in place (each optimizer's `_update`).

        Every gradient is checked before any parameter changes: a `.grad` of another shape
        than its parameter is refused, never broadcast, and nothing is updated.
        """
        updated = []
        for k, group in enumerate(self.param_groups):
            for i, p in enumerate(group["params"]):
                grad = p.grad
                if grad is not None:
                    g = grad.data
                    if g.shape != p.data.shape or g.dtype.kind != "f":
                        raise ValueError(
                            f"{type(self).__name__}.step: parameter {i} of group {k} has "
                            f"shape {p.shape} but its .grad has shape {g.shape} ({g.dtype}); "
                            f"a gradient must be floating-point and of its parameter's "
                            f"shape. Nothing was updated")
                    updated.append(p)
        if _GradMode.tape is not None:  # `jit` capturing: a refused step must undo this one
            _GradMode.tape.on_rollback(self._state_restorer())
        self._update()
        _bump_versions(updated)  # changed in place: a graph made before must not use them
        if _GradMode.tape is not None:  # after the update, which may have made the state
            watch(functools.partial(self._unchanged_since, self._contents()))

    def _state_restorer(self) -> Callable[[], None]:
        """A function that puts the state's entries back as they are now (the arrays'
        values are `jit`'s to restore; this undoes entries and buffers the step adds)."""
        entries = {key: (entry, dict(entry)) for key, entry in self.state.items()}

        def restore() -> None:
            for key in [key for key in self.state if key not in entries]:
                del self.state[key]
            for key, (entry, items) in entries.items():
                entry.clear()
                entry.update(items)
                self.state[key] = entry

        return restore

    def _update(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _update()")

    def __repr__(self) -> str:
        options = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        shown = ", ".join(f"{k}={v}" for k, v in options.items())
        groups = f", {len(self.param_groups)} groups" if len(self.param_groups) > 1 else ""
        return f"{type(self).__name__}({len(self.params)} parameters{groups}, {shown})"


class SGD(Optimizer):
    """Stochastic gradient descent (eqs. 2.5/2.6), with PyTorch's momentum and weight decay.

    With the defaults, `step()` is the tutorial's rule p ← p - lr · ∂C/∂p. Per parameter with
    gradient g (PyTorch's torch.optim.SGD with dampening 0):

    - weight_decay λ > 0:  g ← g + λ p  (L2 regularisation);
    - momentum μ > 0:  b ← μ b + g (b ← g at the first step), then g ← b, or with
      nesterov=True g ← g + μ b;
    - p ← p - lr · g.

    Without momentum, weight decay is applied as the sequel writes it, p ← (1 - lr·λ) p -
    lr · g: the same rule as p - lr · (g + λ p) in exact arithmetic (they differ in the last
    bit), one pass over p cheaper, and bit for bit Nielsen's network2 with λ/n as λ.

    Parameters without a gradient are left alone. Raises ValueError for lr <= 0, momentum < 0,
    weight_decay < 0, or nesterov without momentum.

    >>> w = Tensor([1.0, 2.0], requires_grad=True)
    >>> (w * w).sum().backward()          # grad = 2w = [2, 4]
    >>> SGD([w], lr=0.5).step()
    >>> w
    Tensor([0., 0.], requires_grad=True)
    """

    _state_names = ("step", "momentum_buffer")

    def __init__(self, params: ParamsLike, lr: float, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov,
                                  "weight_decay": weight_decay})

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        group["momentum"] = _checks.number("SGD", "momentum", group["momentum"])
        group["weight_decay"] = _checks.number("SGD", "weight_decay", group["weight_decay"])
        group["nesterov"] = _checks.flag("SGD", "nesterov", group["nesterov"])
        if group["nesterov"] and group["momentum"] == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0 (Nesterov's step looks "
                             "ahead along the momentum)")

    def _update(self) -> None:
        """One update of every parameter that has a gradient (see the class docstring)."""
        for group in self.param_groups:
            lr, mu, decay = group["lr"], group["momentum"], group["weight_decay"]
            if mu == 0:
                self._plain_step(group["params"], lr, decay)
                continue
            nesterov = group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, x, state = p.grad.data, p.data, self._state(p)
                s = state["scratch"]
                if decay:
                    ops.mul(x, decay, out=s)
                    ops.add(s, g, out=s)
                    g = s  # g + λp, never written into p.grad
                if mu:
                    b = state.get("momentum_buffer")
                    if b is None:  # μ·0 + g = g: PyTorch's b = g at the first step
                        b = state["momentum_buffer"] = np.zeros_like(x)
                    ops.mul(b, mu, out=b)
                    ops.add(b, g, out=b)
                    if nesterov:
                        t = state.get("scratch2")
                        if t is None:
                            t = state["scratch2"] = np.empty_like(x)
                        ops.mul(b, mu, out=t)
                        ops.add(g, t, out=s)
                        g = s
                    else:
                        g = b
                ops.mul(g, lr, out=s)
                ops.sub(x, s, out=x)
                ops.add(state["step"], 1, out=state["step"])

    def _plain_step(self, params: list[Tensor], lr: float, decay: float) -> None:
        # The tutorial's rule and Network's hot loop: two in-place ufuncs per parameter. With
        # weight decay, first the sequel's shrink p ← (1 - lr·λ) p, exactly as its network2
        # writes (1 - η(λ/n)) w: one more in-place ufunc, no copy of p.
        state, shrink = self.state, 1.0 - lr * decay
        # Eager, numpy's ufuncs themselves (the same calls the primitives make on arrays): a
        # primitive's Python adds ~0.7 µs a call, and only a capture (`jit`) needs them taped.
        mul, sub = (ops.mul, ops.sub) if _GradMode.tape is not None else (np.multiply,
                                                                          np.subtract)
        for p in params:
            grad = p.grad
            if grad is not None:
                entry = state.get(id(p))
                if entry is None:
                    entry = self._state(p)
                s = entry["scratch"]
                if decay:
                    mul(p.data, shrink, out=p.data)
                mul(grad.data, lr, out=s)
                sub(p.data, s, out=p.data)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with PyTorch's update rule and defaults.

    Per parameter with gradient g, at step t = 1, 2, ...:

    - weight_decay λ > 0:  g ← g + λ p  (L2 regularisation, as torch.optim.Adam);
    - m ← β₁ m + (1 - β₁) g,  v ← β₂ v + (1 - β₂) g²  (m = v = 0 before the first step);
    - p ← p - lr · m̂ / (√v̂ + ε), with m̂ = m / (1 - β₁ᵗ) and v̂ = v / (1 - β₂ᵗ).

    The bias correction makes the first step lr · g / (|g| + ε): about lr in size whatever the
    scale of the gradient. Raises ValueError for lr <= 0, betas outside [0, 1), eps <= 0 or
    weight_decay < 0.
    """

    _decoupled = False
    _state_names = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params: ParamsLike, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps,
                                  "weight_decay": weight_decay})

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        who = type(self).__name__
        group["betas"] = _check_betas(who, group["betas"])
        group["eps"] = _checks.number(who, "eps", group["eps"], positive=True)
        group["weight_decay"] = _checks.number(who, "weight_decay", group["weight_decay"])

    def _update(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            decay = group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, x, state = p.grad.data, p.data, self._state(p)
                if "exp_avg" not in state:
                    state["exp_avg"] = np.zeros_like(x)
                    state["exp_avg_sq"] = np.zeros_like(x)
                if "corrections" not in state:  # (workspace: absent from a loaded state)
                    # lr / (1 - β₁ᵗ) and √(1 - β₂ᵗ), worked out in float64 and then taken
                    # in the parameter's dtype, as PyTorch's Python floats are.
                    state["corrections"] = np.zeros(2)
                    state["corrections_as_p"] = np.zeros(2, dtype=x.dtype)
                m, v, s = state["exp_avg"], state["exp_avg_sq"], state["scratch"]
                t, both, both_as_p = state["step"], state["corrections"], state["corrections_as_p"]
                step_size, root = both[0, ...], both[1, ...]  # 0-d views of the two
                ops.add(t, 1, out=t)
                if decay:
                    if self._decoupled:  # AdamW: p ← p - lr·λ·p, apart from the gradient
                        ops.mul(x, 1.0 - lr * decay, out=x)
                    else:  # Adam: L2, g ← g + λp
                        g = _with_l2(state, x, g, decay)
                # m ← β₁ m + (1 - β₁) g and v ← β₂ v + (1 - β₂) g², in place.
                ops.mul(m, beta1, out=m)
                ops.mul(g, 1.0 - beta1, out=s)
                ops.add(m, s, out=m)
                ops.mul(v, beta2, out=v)
                ops.mul(g, g, out=s)
                ops.mul(s, 1.0 - beta2, out=s)
                ops.add(v, s, out=v)
                # The bias corrections from the step count t, as arrays so a replay
                # recomputes them: lr / (1 - β₁ᵗ) and √(1 - β₂ᵗ).
                ops.pow(beta1, t, out=step_size)
                ops.sub(1.0, step_size, out=step_size)
                ops.div(lr, step_size, out=step_size)
                ops.pow(beta2, t, out=root)
                ops.sub(1.0, root, out=root)
                ops.sqrt(root, out=root)
                ops.cast(both, dtype=x.dtype, out=both_as_p)
                step_size, root = both_as_p[0, ...], both_as_p[1, ...]
                # p ← p - (lr / (1 - β₁ᵗ)) · m / (√v / √(1 - β₂ᵗ) + ε), PyTorch's order.
                ops.sqrt(v, out=s)
                ops.div(s, root, out=s)
                ops.add(s, eps, out=s)
                ops.div(m, s, out=s)
                ops.mul(s, step_size, out=s)
                ops.sub(x, s, out=x)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as torch.optim.AdamW.

    Before each Adam step (with no L2 term in the gradient) every parameter shrinks,
    p ← p - lr · λ · p, so the decay is not rescaled by Adam's per-coordinate step sizes.
    The default λ is 0.01, as in PyTorch; use `decay_groups` to leave biases alone.
    """

    _decoupled = True

    def __init__(self, params: ParamsLike, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class RMSprop(Optimizer):
    """RMSprop (Hinton, lecture 6e of "Neural Networks for Machine Learning", 2012), with
    torch.optim.RMSprop's update rule, defaults and state names.

    Per parameter with gradient g (v, ḡ and b start at 0):

    - weight_decay λ > 0:  g ← g + λ p  (L2 regularisation);
    - v ← α v + (1 - α) g²  (``square_avg``);
    - centered=True:  ḡ ← ḡ + (1 - α)(g - ḡ)  (``grad_avg``, torch's ``lerp_``; for α ≤ 0.5
      torch's other form g - α(g - ḡ)), and d = √(v - ḡ²) + ε, the running standard
      deviation of g; otherwise d = √v + ε;
    - momentum μ > 0:  b ← μ b + g / d  (``momentum_buffer``), p ← p - lr · b;
      otherwise p ← p - lr · g / d.

    Unlike Adam there is no bias correction, so the first steps are large: v starts at
    (1 - α) g², and the first step is lr · g / (0.1 |g|) = 10 lr in size with α = 0.99.
    Raises ValueError for lr <= 0, alpha outside [0, 1], eps <= 0 (torch allows 0; here, as
    in `Adam`, it must keep d > 0), momentum < 0 or weight_decay < 0.

    >>> w = Tensor([1.0, -2.0], requires_grad=True)
    >>> (w * w).sum().backward()          # g = [2, -4]: v = 0.01 g², the step 10 lr sign(g)
    >>> RMSprop([w], lr=0.01).step()
    >>> w
    Tensor([ 0.9, -1.9], requires_grad=True)
    """

    _state_names = ("step", "square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params: ParamsLike, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps,
                                  "weight_decay": weight_decay, "momentum": momentum,
                                  "centered": centered})

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        group["alpha"] = _checks.fraction("RMSprop", "alpha", group["alpha"], closed=True)
        group["eps"] = _checks.number("RMSprop", "eps", group["eps"], positive=True)
        group["weight_decay"] = _checks.number("RMSprop", "weight_decay", group["weight_decay"])
        group["momentum"] = _checks.number("RMSprop", "momentum", group["momentum"])
        group["centered"] = _checks.flag("RMSprop", "centered", group["centered"])

    def _update(self) -> None:
        """One RMSprop update of every parameter that has a gradient (class docstring)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update_one(p, group)

    def _update_one(self, p: Tensor, group: dict[str, Any]) -> None:
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        decay, mu, centered = group["weight_decay"], group["momentum"], group["centered"]
        g, x, state = p.grad.data, p.data, self._state(p)  # type: ignore[union-attr]  # (set)
        for name, wanted in (("square_avg", True), ("momentum_buffer", mu > 0),
                             ("grad_avg", centered)):
            if wanted and name not in state:
                state[name] = np.zeros_like(x)
        v, s = state["square_avg"], state["scratch"]
        ops.add(state["step"], 1, out=state["step"])
        if decay:
            g = _with_l2(state, x, g, decay)
        # v ← α v + (1 - α) g², torch's addcmul order: ((1 - α) g) g.
        ops.mul(v, alpha, out=v)
        ops.mul(g, 1.0 - alpha, out=s)
        ops.mul(s, g, out=s)
        ops.add(v, s, out=v)
        if centered:
            self._centered_denominator(state["grad_avg"], g, v, s, alpha)
        else:
            ops.sqrt(v, out=s)
        ops.add(s, eps, out=s)  # s = d, the denominator
        if mu > 0:
            b = state["momentum_buffer"]
            ops.mul(b, mu, out=b)
            ops.div(g, s, out=s)
            ops.add(b, s, out=b)
            ops.mul(b, lr, out=s)
        else:
            ops.div(g, s, out=s)
            ops.mul(s, lr, out=s)
        ops.sub(x, s, out=x)

    @staticmethod
    def _centered_denominator(ga: np.ndarray, g: np.ndarray, v: np.ndarray, s: np.ndarray,
                              alpha: float) -> None:
        """ḡ ← lerp(ḡ, g, 1 - α) in place, then s ← √(v - ḡ²)."""
        weight = 1.0 - alpha
        ops.sub(g, ga, out=s)
        if weight < 0.5:  # torch's lerp: start + w (end - start) ...
            ops.mul(s, weight, out=s)
            ops.add(ga, s, out=ga)
        else:  # ... or, for w >= 0.5, end - (1 - w)(end - start)
            ops.mul(s, alpha, out=s)
            ops.sub(g, s, out=ga)
        ops.mul(ga, ga, out=s)
        ops.sub(v, s, out=s)
        ops.sqrt(s, out=s)


# --- learning-rate schedules ----------------------------------------------------------------


class LRScheduler:
    """Sets each parameter group's lr from its initial lr and the epoch, once per epoch.

    Call `step()` at the end of every epoch (after the optimizer's steps of that epoch);
    `get_last_lr()` gives the lr of each group now. Every schedule here is a closed form
    lr(epoch) of PyTorch's, so the sequence depends only on the number of `step()` calls.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an optimizer from "
                            f"tinygrad_nn.optim, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def lr_at(self, base_lr: float, epoch: int) -> float:
        """The learning rate of a group that started at `base_lr`, after `epoch` epochs."""
        raise NotImplementedError

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.last_epoch)

    def step(self) -> None:
        """Advance one epoch and set every group's lr for the next."""
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The lr of each parameter group, as set by the last `step()` (or the constructor)."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Every attribute but the optimizer, as PyTorch's ``LRScheduler.state_dict()``:
        ``last_epoch``, ``base_lrs`` and the schedule's own settings (Python numbers)."""
        return {name: list(value) if isinstance(value, list) else value
                for name, value in vars(self).items() if name != "optimizer"}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load what `state_dict()` gave, then set every group's lr for the loaded epoch.

        Setting the lr (which PyTorch leaves to the optimizer's own `load_state_dict`) makes
        the order of the two loads indifferent, and a scheduler made after the optimizer's
        state was loaded, from the loaded lr, still resumes the saved schedule exactly. The
        names must be this schedule's; otherwise ValueError, and nothing changes.
        """
        who = f"{type(self).__name__}.load_state_dict"
        own = self.state_dict()
        if not isinstance(state_dict, Mapping) or set(state_dict) != set(own):
            raise ValueError(f"{who}: expected the keys {sorted(own)}, got "
                             f"{_describe(state_dict)}")
        base_lrs = list(state_dict["base_lrs"])
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise ValueError(f"{who}: the state has {len(base_lrs)} base learning rates, the "
                             f"optimizer {len(self.optimizer.param_groups)} parameter groups")
        epoch = state_dict["last_epoch"]
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"{who}: last_epoch must be an integer >= 0, got {epoch!r}")
        for name, value in state_dict.items():
            if name not in ("base_lrs", "last_epoch") and not isinstance(value, Real):
                raise ValueError(f"{who}: {name} must be a number, got {value!r}")
        for name, value in state_dict.items():
            setattr(self, name, value)
        self.base_lrs = [_checks.number(who, "the learning rate lr", lr, positive=True)
                         for lr in base_lrs]
        self.last_epoch = int(epoch)
        self._apply()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(epoch {self.last_epoch}, lr {self.get_last_lr()})"


class StepLR(LRScheduler):
    """lr = lr₀ · γ^⌊epoch / step_size⌋: divide by 1/γ every `step_size` epochs."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = _checks.count("StepLR", "step_size", step_size, 1)
        self.gamma = _checks.number("StepLR", "gamma", gamma, positive=True)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """lr = lr₀ · γ^epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self.gamma = _checks.number("ExponentialLR", "gamma", gamma, positive=True)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        return base_lr * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """lr = η_min + (lr₀ - η_min) · (1 + cos(π · epoch / T_max)) / 2 (SGDR without restarts).

    The lr falls from lr₀ to `eta_min` over `T_max` epochs along half a cosine: slowly at
    first, fastest in the middle, slowly again at the end. Past T_max the closed form rises
    again (as PyTorch's does), so set T_max to the number of epochs.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = _checks.count("CosineAnnealingLR", "T_max", T_max, 1)
        self.eta_min = _checks.number("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        cosine = (1 + math.cos(math.pi * epoch / self.T_max)) / 2
        return self.eta_min + (base_lr - self.eta_min) * cosine
