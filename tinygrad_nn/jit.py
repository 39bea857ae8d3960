"""Capture and replay: a whole training step compiled to a flat list of numpy calls.

Eager autograd pays Python for every op of every step: a Tensor per result, a graph node,
the walk, the optimizer's loop. Yet a step of a fixed network on mini-batches of a fixed
shape runs the *same* numpy calls every time; only the numbers in the arrays change. So
`jit` runs the step once, eagerly, while every primitive it executes (the forward, each
VJP of the backward, each in-place update of the optimizer) writes what it did onto a
tape: the primitive, the arrays it read, the array it wrote. A later call with inputs of
the same shapes and dtypes copies its inputs into the captured input arrays and replays
the tape: each primitive's forward again, writing into the very arrays the capture
allocated (numpy's ``out=``), with no Tensor, no graph and no new intermediate array.

>>> import numpy as np
>>> from tinygrad_nn import Tensor, optim
>>> w = Tensor([[0.5, -0.5]], requires_grad=True)
>>> opt = optim.SGD([w], lr=0.05)
>>> @jit
... def step(x, y):
...     opt.zero_grad()
...     cost = ((x @ w.T - y) ** 2).sum()
...     cost.backward()
...     opt.step()
...     return cost
>>> x, y = np.array([[1.0, 2.0]]), np.array([[1.0]])
>>> [round(step(x, y).item(), 6) for _ in range(3)]       # captured, checked, replayed
[2.25, 0.5625, 0.140625]
>>> step.captures
1

What a tape cannot see, and what is done about it:

- **Values that steer Python.** ``if cost.item() > 1:`` runs once, at capture; a replay
  repeats the branch taken then. Reading a value with ``item()`` or ``bool()`` during a
  capture warns (`JitWarning`).
- **Arrays made outside the primitives.** An array computed with numpy directly (or drawn
  from a generator other than through `ops.uniform`) is recorded as a constant: the replay
  keeps its first value. Dropout draws its masks through `ops.uniform`, so they are fresh
  on every replay.
- **Replaced state.** Parameters are updated in place, so a replay sees the optimizer's
  work. A parameter whose ``.data`` was replaced by another array, a module attribute
  reassigned, or an optimizer hyperparameter changed (a learning-rate schedule) makes the
  next call capture again instead of replaying.

The second call of every capture is a check: it replays the tape, then restores the state
(parameters, optimizer buffers, generators) and runs the step eagerly again, and compares
the two bit for bit. A difference raises `JitError` naming the first op that differed and
why (an outside array whose value changed, or different ops: value-dependent control flow),
with the state as it was before that call. Later calls replay.
"""

from __future__ import annotations

import functools
import types
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import anomaly
from .nn import Module
from .tensor import Tensor, _GradMode

__all__ = ["JitError", "JitWarning", "jit", "watch"]


class JitError(RuntimeError):
    """A step that a tape cannot replay faithfully (see the module docstring)."""


class JitWarning(UserWarning):
    """A capture saw something its replays will not repeat (a value read by Python)."""


@dataclass
class Entry:
    """One primitive as it ran: `op.forward(*inputs, **params)` gave `out`."""

    op: Any
    inputs: tuple
    params: dict
    out: np.ndarray
    inplace: bool  # out= was given: `out` is an existing array (a parameter, a buffer)
    phase: str  # "forward", "backward" or "update"


class Tape:
    """What a capture records: the entries, the parameters read and the values watched."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.phase = "forward"
        self.leaves: dict[int, tuple[Tensor, np.ndarray, bool]] = {}
        self.watches: list[tuple[Callable[[], Any], Any]] = []
        self.value_reads: list[str] = []

    def record(self, op: Any, given: Any, arrays: Any, params: dict, out: Any,
               inplace: bool) -> np.ndarray:
        """Note one call: `given` are the inputs as passed (Tensors among them), `arrays`
        the values the forward read, `out` what it wrote. Returns `out` as an array."""
        if type(out) is not np.ndarray:  # a scalar: an array, so later ops can find it
            out = np.asarray(out)
        for x in given:
            if isinstance(x, Tensor) and x._op is None:  # a leaf: its array is watched
                self.leaves[id(x)] = (x, x.data, x.requires_grad)
        self.entries.append(Entry(op, tuple(arrays), params, out, inplace, self.phase))
        return out

    def read_value(self, tensor: Tensor, how: str) -> None:
        where = anomaly.user_frame()
        self.value_reads.append(f"{how} of a tensor of shape {tensor.shape} at {where}")


def watch(value: Callable[[], Any]) -> None:
    """While a step is being captured, capture again whenever `value()` changes.

    For Python numbers a step bakes into its tape: the optimizers watch their
    hyperparameters this way, so a learning-rate schedule takes effect.
    """
    tape = _GradMode.tape
    if tape is not None:
        tape.watches.append((value, value()))


def _module_assignments() -> int:
    return Module._assignments


# --- a captured step ---------------------------------------------------------------------


def _copy_into(out: np.ndarray, forward: Callable, inputs: tuple, params: dict) -> None:
    # For forwards that cannot write into `out` (the rarer ops): one temporary per call.
    result = forward(*inputs, **params)
    if np.shape(result) != out.shape:  # e.g. x[mask]: as many entries as the mask holds
        raise JitError(f"jit: an op gave shape {np.shape(result)} on replay but {out.shape} "
                       f"when captured: its shape depends on the values, which a replay "
                       f"cannot follow")
    np.copyto(out, result)


def _as_operand(x: Any, arrays: list[np.ndarray]) -> Any:
    """A Python number as a 0-d array of the dtype numpy would give it here, converted once
    rather than on every call (numpy's rules for Python numbers: they take the array's type)."""
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(x, dtype=np.result_type(x, *arrays) if arrays else None)


def _replay_calls(e: Entry) -> tuple[list[Callable[[], Any]], bool]:
    """The calls that redo `e` into its own output array, and whether they allocate.

    No call for a view (a reshape, a transpose, a basic slice): it shares its input's
    memory, so it follows the input with no work at all.
    """
    op, inputs, out = e.op, e.inputs, e.out
    if not e.inplace and any(isinstance(x, np.ndarray) and np.may_share_memory(out, x)
                             for x in inputs):
        return [], False
    if isinstance(op.forward, np.ufunc):
        arrays = [x for x in inputs if isinstance(x, np.ndarray)]
        operands, calls = [_as_operand(x, arrays) for x in inputs], []
        for i, x in enumerate(operands):
            if x.ndim and x.shape != out.shape and op.forward.signature is None:
                # numpy buffers a broadcasting operand, allocating on every call; a copy
                # into an array of out's shape (no buffer needed) gives the same sums.
                operands[i] = np.empty(out.shape, x.dtype)
                calls.append(functools.partial(np.copyto, operands[i], x))
        return [*calls, functools.partial(op.forward, *operands, out=out)], False
    if op.takes_out:
        params = dict(e.params, out=out)
        if op.work is not None:
            params["work"] = op.work(*inputs, **e.params)
        return [functools.partial(op.forward, *inputs, **params)], False
    return [functools.partial(_copy_into, out, op.forward, inputs, e.params)], True


def _arrays_in(values: Any) -> list[np.ndarray]:
    """The arrays among `values`, looking inside tuples and lists (an index such as
    ``(np.arange(n), labels)`` is a parameter that holds arrays)."""
    found = []
    for x in values:
        if isinstance(x, np.ndarray):
            found.append(x)
        elif isinstance(x, (tuple, list)):
            found += _arrays_in(x)
    return found


def _without_arrays(value: Any) -> Any:
    """A parameter with each array replaced by its shape: what a tape bakes in by value."""
    if isinstance(value, np.ndarray):
        return ("array", value.shape)
    if isinstance(value, (tuple, list)):
        return tuple(_without_arrays(v) for v in value)
    return value


def _live(entries: list[Entry], outputs: list[np.ndarray],
          leaves: list[tuple[Tensor, np.ndarray, bool]]) -> list[bool]:
    """Which entries a replay must run: those whose result is seen after the step.

    Seen: what the step returns, every array written in place (parameters, optimizer
    state), every parameter's `.grad`, and whatever those were computed from. The cost a
    training step computes but does not return is not (backward needs a and y, not C).
    """
    needed = {id(a) for a in outputs}
    needed.update(id(t.grad.data) for t, *_ in leaves if t.grad is not None)
    live = [False] * len(entries)
    for k in range(len(entries) - 1, -1, -1):
        e = entries[k]
        draws = any(isinstance(p, np.random.Generator) for p in e.params.values())
        if e.inplace or draws or id(e.out) in needed:  # a draw advances its generator
            live[k] = True
            needed.update(id(x) for x in _arrays_in((*e.inputs, *e.params.values())))
    return live


def _flatten(result: Any, found: list[np.ndarray], who: str) -> Any:
    """The returned structure, with each array replaced by its index in `found`."""
    if result is None:
        return None
    if isinstance(result, Tensor):
        found.append(result.data)
        return ("tensor", len(found) - 1)
    if isinstance(result, np.ndarray):
        found.append(result)
        return ("array", len(found) - 1)
    if isinstance(result, (tuple, list)):
        return (type(result), [_flatten(r, found, who) for r in result])
    if isinstance(result, dict):
        return (dict, {k: _flatten(v, found, who) for k, v in result.items()})
    raise JitError(f"{who}: the step returned a {type(result).__name__} ({result!r}); a replay "
                   f"can only give back Tensors and arrays (it does not run the Python that "
                   f"made this value). Return the tensor and call .item() on the result")


def _rebuild(shape: Any, arrays: list[np.ndarray]) -> Any:
    if shape is None:
        return None
    kind, body = shape
    if kind == "tensor":
        return Tensor._make(arrays[body].copy())
    if kind == "array":
        return arrays[body].copy()
    if kind is dict:
        return {k: _rebuild(v, arrays) for k, v in body.items()}
    items = [_rebuild(v, arrays) for v in body]
    return kind(*items) if hasattr(kind, "_fields") else kind(items)  # a NamedTuple, or not


class Plan:
    """A captured step: the tape, the calls that replay it and what must hold to replay.

    `entries` is the tape; `calls` the replay, one call per entry that does work (views
    need none); `inputs` the arrays each call's arguments are copied into. `allocating`
    counts the calls that make a temporary (ops whose forward cannot write into `out=`).
    """

    def __init__(self, tape: Tape, inputs: list[np.ndarray], result: Any, who: str) -> None:
        outputs: list[np.ndarray] = []
        self.result_shape = _flatten(result, outputs, who)
        self.outputs = outputs
        self.entries, self.inputs = tape.entries, inputs
        self.leaves = list(tape.leaves.values())
        self.watches = tape.watches
        self.calls: list[Callable[[], Any]] = []
        self.allocating = 0
        self.live = _live(self.entries, outputs, self.leaves)
        self.replayed: list[bool] = []  # per entry: does a replay run it?
        for e, live in zip(self.entries, self.live):
            calls, allocates = _replay_calls(e) if live else ([], False)
            self.calls += calls
            self.allocating += allocates
            self.replayed.append(bool(calls))
        # Each parameter's .grad as this capture left it: a replay points them back here,
        # for another plan (another mini-batch shape) may have been run in between.
        self.grads = [(t, t.grad) for t, *_ in self.leaves]
        # What a replay changes beyond its own buffers: parameters, optimizer state.
        state = {id(e.out): e.out for e in self.entries if e.inplace}
        self.state = list(state.values())
        self.generators = list({id(g): g for e in self.entries
                                for g in e.params.values()
                                if isinstance(g, np.random.Generator)}.values())
        self.verified = False
        origins = self.origins()
        # The tensors whose values persist from call to call: not those over an input or
        # over an array the step itself made.
        self.kept = [t for t, array, _ in self.leaves
                     if not origins[id(array)].startswith(("input", "op"))]
        for array in outputs:
            if origins.get(id(array), "outside") == "outside":  # (unknown to the tape too)
                raise JitError(f"{who}: the step returns an array of shape {array.shape} made "
                               f"outside tinygrad_nn's operations (with numpy, e.g. .argmax() "
                               f"or .data.copy()); a replay would give back its first value. "
                               f"Return the Tensor and compute that from the result")

    def holds(self) -> bool:
        """Whether nothing the tape baked in has changed since the capture."""
        for tensor, array, requires_grad in self.leaves:
            if tensor.data is not array or tensor.requires_grad is not requires_grad:
                return False
        for value, seen in self.watches:
            if value() != seen:
                return False
        return True

    def replay(self, arrays: list[np.ndarray]) -> Any:
        for buffer, array in zip(self.inputs, arrays):
            if buffer is not array:
                np.copyto(buffer, array)
        for call in self.calls:
            call()
        for tensor, gradient in self.grads:
            tensor.grad = gradient
        return _rebuild(self.result_shape, self.outputs)

    def save(self) -> tuple:
        """Copies of what a step changes: parameters and their .grad, state, generators."""
        leaves = [(t, t.data, t.data.copy(), t.grad, None if t.grad is None else t.grad.data,
                   None if t.grad is None else t.grad.data.copy()) for t in self.kept]
        return ([a.copy() for a in self.state], [g.bit_generator.state for g in self.generators],
                leaves)

    def restore(self, saved: tuple) -> None:
        for array, copy in zip(self.state, saved[0]):
            np.copyto(array, copy)
        for generator, state in zip(self.generators, saved[1]):
            generator.bit_generator.state = state
        for tensor, data, data_copy, grad, grad_data, grad_copy in saved[2]:
            tensor.data, tensor.grad = data, grad
            np.copyto(data, data_copy)
            if grad is not None:
                grad.data = grad_data
                np.copyto(grad_data, grad_copy)

    def origins(self) -> dict[int, str]:
        """Where each array of the tape comes from, by id: an input, an op, or outside."""
        found = {id(a): f"input {i + 1}" for i, a in enumerate(self.inputs)}
        for _, array, requires_grad in self.leaves:
            if requires_grad:
                found[id(array)] = "parameter"
        for array in self.state:
            found.setdefault(id(array), "state")
        for k, e in enumerate(self.entries):
            for x in _arrays_in((*e.inputs, *e.params.values())):
                found.setdefault(id(x), "outside")
            found.setdefault(id(e.out), f"op {k + 1}")
        return found


def _shapes(e: Entry) -> str:
    given = ", ".join(str(np.shape(x)) for x in e.inputs)
    return f"{e.op.name}({given}) -> {e.out.shape}"


_DIFFERENT_OPS = ("Python control flow that depends on values (an `if` on a tensor's value) "
                  "cannot be replayed; nor can gradients accumulated from one call to the "
                  "next (call zero_grad() inside the step)")


def _difference(first: Plan, replayed: list[np.ndarray], second: Plan,
                after: list[np.ndarray]) -> str | None:
    """Why replaying `first` differed from running the step again (`second`), if it did."""
    for k, (a, b) in enumerate(zip(first.entries, second.entries)):
        if a.op is not b.op or a.out.shape != b.out.shape or a.out.dtype != b.out.dtype:
            return (f"the step ran different operations on its second call: op {k + 1} was "
                    f"{_shapes(a)} and is now {_shapes(b)}. {_DIFFERENT_OPS}")
    if len(first.entries) != len(second.entries):
        return (f"the step ran {len(first.entries)} operations on its first call and "
                f"{len(second.entries)} on its second. {_DIFFERENT_OPS}")
    origins = first.origins()
    for k, (a, b, value) in enumerate(zip(first.entries, second.entries, replayed)):
        # (a view mirrors its base, and an unused result is not replayed: skip both)
        if not first.replayed[k] or value.tobytes() == b.out.tobytes():
            continue
        read = zip((*a.inputs, *_arrays_in(a.params.values())),
                   (*b.inputs, *_arrays_in(b.params.values())))
        for x, y in read:
            base = x
            while isinstance(base, np.ndarray) and base.base is not None:
                base = base.base  # a view (a transpose) of an outside array reads it too
            outside = not isinstance(x, np.ndarray) or "outside" in (
                origins.get(id(x)), origins.get(id(base)))
            if outside and np.asarray(x).tobytes() != np.asarray(y).tobytes():
                return (f"op {k + 1}, {_shapes(a)}, read a value made "
                        f"outside tinygrad_nn's operations (with numpy directly, or from a "
                        f"Python number computed from the data), and it changed between "
                        f"calls: a replay would keep its first value. Compute it with "
                        f"tinygrad_nn operations (random numbers: ops.uniform with a seeded "
                        f"np.random.Generator), or pass it as an argument of the step")
        changed = [key for key in a.params if _without_arrays(a.params[key])
                   != _without_arrays(b.params.get(key))]
        if changed:
            return (f"op {k + 1}, {_shapes(a)}, was called with {changed[0]}="
                    f"{a.params[changed[0]]!r} and then {b.params.get(changed[0])!r}: a "
                    f"Python value computed from the data is baked into a replay")
        return (f"op {k + 1}, {_shapes(a)}, gave different numbers when replayed than when "
                f"run again from the same state (state the tape cannot see: a gradient "
                f"accumulated over calls, or arrays replaced between ops)")
    for tensor, value in zip(first.kept, after):
        if value.tobytes() != tensor.data.tobytes():
            return (f"a tensor of shape {tensor.shape} read by the step has other values after "
                    f"a replay than after the step run again: the step changes it outside "
                    f"tinygrad_nn's operations (e.g. `w.data -= ...` with numpy), which a "
                    f"replay does not repeat. Update it with an optimizer, or with "
                    f"tinygrad_nn.ops and out=")
    return None


# --- the decorator -------------------------------------------------------------------------


def _key_part(x: Any, who: str, where: str) -> Hashable:
    if isinstance(x, np.ndarray):  # (a subclass; `_split` keys plain arrays the same way)
        return (x.shape, x.dtype)
    if isinstance(x, Tensor):
        if x.requires_grad:
            raise TypeError(f"{who}: {where} is a Tensor that requires grad; a jitted step "
                            f"takes its data as arguments and reaches its parameters "
                            f"through a module or optimizer")
        return ("tensor", x.shape, x.dtype)
    try:
        hash(x)
    except TypeError:
        raise TypeError(f"{who}: {where} is a {type(x).__name__}, neither an array nor "
                        f"hashable; a jitted step takes arrays, Tensors and hashable "
                        f"values (numbers, strings, objects)") from None
    return (type(x), x)


class jit:
    """Capture a whole training step on its first call and replay it on the next ones.

    `fn` takes arrays or Tensors (the mini-batch) and any hashable values (an optimizer,
    a number); it does a forward pass, `backward()` and an optimizer's `step()` and may
    return Tensors or arrays (copies come back; Python numbers cannot). A call whose array
    arguments have new shapes or dtypes, or whose other arguments differ, captures again:
    up to `cache_size` plans are kept (the short last mini-batch of an epoch is the usual
    second one). See the module docstring for what a capture cannot see.

    `captures` counts the captures so far; `plans` maps each key to its `Plan`.
    """

    def __init__(self, fn: Callable, cache_size: int = 8) -> None:
        if not callable(fn):
            raise TypeError(f"jit: expected a function, got {type(fn).__name__}")
        functools.update_wrapper(self, fn)
        self.fn, self.cache_size, self.captures = fn, cache_size, 0
        self.plans: OrderedDict[Hashable, Plan] = OrderedDict()
        self._who = f"jit({getattr(fn, '__qualname__', repr(fn))})"

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return self if obj is None else types.MethodType(self, obj)

    def _split(self, args: tuple, kwargs: dict) -> tuple[Hashable, list[np.ndarray]]:
        """The cache key and the array arguments, in order."""
        key, arrays = [], []
        for i, x in enumerate(args if not kwargs else (*args, *sorted(kwargs.items()))):
            if i >= len(args):
                name, x = x
                where = f"argument {name}="
            else:
                where = f"argument {i + 1}"  # only formatted into an error message
            if type(x) is np.ndarray:  # the common case first: this runs on every call
                key.append((x.shape, x.dtype))
                arrays.append(x)
                continue
            key.append(_key_part(x, self._who, where))
            if isinstance(x, (np.ndarray, Tensor)):
                arrays.append(x.data if isinstance(x, Tensor) else x)
        return (tuple(key), tuple(sorted(kwargs))), arrays

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _GradMode.tape is not None or _GradMode.anomaly:
            return self.fn(*args, **kwargs)  # inside another capture, or checking: eager
        key, arrays = self._split(args, kwargs)
        plan = self.plans.get(key)
        if plan is None or not plan.holds():
            self.captures += 1
            return self._capture(key, args, kwargs)
        self.plans.move_to_end(key)
        if not plan.verified:
            return self._check(plan, key, args, kwargs, arrays)
        return plan.replay(arrays)

    def _capture(self, key: Hashable, args: tuple, kwargs: dict, warn: bool = True) -> Any:
        # The step runs on copies of its array arguments: those copies are the arrays a
        # replay copies each new mini-batch into.
        inputs: list[np.ndarray] = []

        def own(x: Any) -> Any:
            if isinstance(x, (np.ndarray, Tensor)):
                inputs.append(np.array(x.data if isinstance(x, Tensor) else x))
                return Tensor._make(inputs[-1]) if isinstance(x, Tensor) else inputs[-1]
            return x

        own_args = [own(a) for a in args]
        own_kwargs = {k: own(kwargs[k]) for k in sorted(kwargs)}
        tape = Tape()
        tape.watches.append((_module_assignments, _module_assignments()))
        _GradMode.tape = tape
        try:
            result = self.fn(*own_args, **own_kwargs)
        finally:
            _GradMode.tape = None
        for read in tape.value_reads if warn else ():  # (the check's rerun warned already)
            warnings.warn(f"{self._who}: the step read a value during its capture ({read}); "
                          f"a replay does not run Python, so whatever was decided from that "
                          f"value stays as it was decided at capture", JitWarning, stacklevel=3)
        if warn and _module_assignments() != tape.watches[0][1]:
            warnings.warn(f"{self._who}: the step assigns attributes of a module, so every "
                          f"call captures it again and none is replayed; keep state that "
                          f"changes in arrays updated in place", JitWarning, stacklevel=3)
        plan = Plan(tape, inputs, result, self._who)
        self.plans[key] = plan
        self.plans.move_to_end(key)
        while len(self.plans) > self.cache_size:
            self.plans.popitem(last=False)
        return _rebuild(plan.result_shape, plan.outputs)

    def _check(self, plan: Plan, key: Hashable, args: tuple, kwargs: dict,
               arrays: list[np.ndarray]) -> Any:
        """Replay, then rerun eagerly from the same state: the two must agree bit for bit."""
        saved = plan.save()
        plan.replay(arrays)
        replayed = [e.out.copy() for e in plan.entries]
        after = [t.data.copy() for t in plan.kept]
        plan.restore(saved)
        result = self._capture(key, args, kwargs, warn=False)
        problem = _difference(plan, replayed, self.plans[key], after)
        if problem is not None:
            plan.restore(saved)
            del self.plans[key]
            raise JitError(f"{self._who}: {problem}. The parameters are as before this call.")
        self.plans[key].verified = True
        return result

    def tape(self, *args: Any, names: dict[int, str] | None = None,
             input_names: list[str] | None = None, **kwargs: Any) -> str:
        """The step captured for these arguments as a numbered list of numpy calls.

        Captures (and so runs) the step once if it has no plan for them yet. `names` maps
        ``id(array)`` to a name to show (a parameter's), `input_names` names the array
        arguments; see `describe`.
        """
        key, _ = self._split(args, kwargs)
        if key not in self.plans:
            self.captures += 1
            self._capture(key, args, kwargs)
        return describe(self.plans[key], names, input_names)


def describe(plan: Plan, names: dict[int, str] | None = None,
             input_names: list[str] | None = None) -> str:
    """A plan as numbered lines, ``t7 = np.multiply(t5, t6)  (10, 30) (10, 30) -> (10, 30)``.

    Arrays are named ``t<k>`` (made by entry k), ``p<n>`` (parameters), ``s<n>`` (state
    written in place: optimizer buffers), ``c<n>`` (constants), the step's inputs by
    `input_names` (default ``in1, in2, ...``) and any array in `names` (by id) by its name.
    A 0-d constant is shown as its value.
    """
    label = dict(names or {})
    for i, a in enumerate(plan.inputs):
        label.setdefault(id(a), input_names[i] if input_names and i < len(input_names)
                         else f"in{i + 1}")
    parameters = [a for _, a, requires_grad in plan.leaves if requires_grad]
    for n, a in enumerate(parameters):
        label.setdefault(id(a), f"p{n + 1}")
    origins = plan.origins()
    counts = {"s": 0, "c": 0}

    def name(x: Any) -> str:
        if not isinstance(x, np.ndarray):
            return repr(x.item() if isinstance(x, np.generic) else x)
        if id(x) not in label:
            if origins.get(id(x)) == "outside" and x.ndim == 0:
                return repr(x.item())
            kind = "s" if origins.get(id(x)) == "state" else "c"
            counts[kind] += 1
            label[id(x)] = f"{kind}{counts[kind]}"
        return label[id(x)]

    rows: list[tuple[str, str, str]] = []  # (number, call, shapes), or a phase heading
    phase, step = None, 0
    for k, (e, live, replayed) in enumerate(zip(plan.entries, plan.live, plan.replayed)):
        if e.phase != phase:
            phase = e.phase
            rows.append(("", f"{phase}:", ""))
        inputs = [name(x) for x in e.inputs]
        params = [f"{key}={value!r}" for key, value in e.params.items()
                  if key != "offsets" and not isinstance(value, (np.ndarray, np.random.Generator))]
        target = name(e.out) if e.inplace else label.setdefault(id(e.out), f"t{k + 1}")
        fn = e.op.forward
        what = f"np.{fn.__name__}" if isinstance(fn, np.ufunc) else e.op.name
        text = f"{target} = {what}({', '.join(inputs + params)})" + (
            "  in place" if e.inplace else "")
        shapes = " ".join(str(np.shape(x)) for x in e.inputs if isinstance(x, np.ndarray))
        shapes += f" -> {e.out.shape}"
        if not live:
            rows.append(("-", text, shapes + "  unused: not replayed"))
        elif not replayed:
            rows.append(("-", text, shapes + "  view: no work"))
        else:
            step += 1
            rows.append((str(step), text, shapes))
    width = max(len(text) for number, text, _ in rows if number)
    lines = [f"  {number:>4}  {text:<{width}}  {shapes}" if number else text
             for number, text, shapes in rows]
    unused = plan.live.count(False)
    views = plan.live.count(True) - plan.replayed.count(True)
    lines.append(f"{step} ops replayed ({views} views need no work, {unused} unused results "
                 f"are skipped); {plan.allocating} allocate a temporary")
    return "\n".join(lines)
