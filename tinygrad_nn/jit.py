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

What a tape cannot see, and what is done about it (docs/jit.md has the whole table):

- **Arrays computed from the step's data outside the primitives.** While a step is
  captured, its arrays are traced (`_Traced`): numpy reports every function applied to
  them, and a result computed outside a primitive (``~mask``, ``h.data > 0``, ``x + noise``)
  is marked; given to a primitive, it makes the capture refuse the step at once, naming
  numpy's function and the step's line; so is a numpy write (``out=``, ``x[...] =``) into
  the step's arrays or of their values into any array. Other outside arrays (a
  generator's draws) and Python values from outside are constants, which the check below
  compares on the second call only.
- **Values that steer Python.** ``if cost.item() > 1:`` runs once, at capture; a replay
  repeats the branch taken then. Reading a value during a capture warns (`JitWarning`).
  A step that calls ``train()`` or ``eval()`` warns and is captured on every call.
- **Replaced state.** A parameter whose ``.data`` was replaced, a module attribute
  reassigned, a module switched between train() and eval(), an optimizer's
  hyperparameters, parameters or state buffers changed, or a ``.grad`` left from the last
  call where the capture had none: the next call captures again instead of replaying.
- **Gradients accumulated from call to call** (no ``zero_grad()`` in the step), shapes
  that depend on values (``h[h > 0]``) and Python numbers returned: refused with a
  `JitError` that says what to write instead.

The second call of every capture is a check: it replays the tape, then restores the state
(parameters, optimizer buffers, generators) and runs the step eagerly again, and compares
the two bit for bit. A difference raises `JitError` naming the first op that differed and
why. Every refusal, at capture or at the check, leaves parameters, ``.grad``s and optimizer
state as they were before the call: a capture keeps a journal of what the step changes
(`Tape`) and rolls it back. Later calls replay.
"""

from __future__ import annotations

import functools
import os
import sys
import types
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import anomaly
from .nn import Module
from .tensor import Tensor, _GradMode, watch

__all__ = ["JitError", "JitWarning", "jit", "watch"]


class JitError(RuntimeError):
    """A step that a tape cannot replay faithfully (see the module docstring)."""


class JitWarning(UserWarning):
    """A capture saw something its replays will not repeat (a value read by Python)."""


# --- tracing: every array the step computes is marked while it is captured -------------------

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))


def _caller() -> str:
    """'file:line in function' of the innermost frame outside tinygrad_nn and numpy."""
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith((_PACKAGE_DIR, _NUMPY_DIR)):
            return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return "an unknown place"


def _plain(x: Any) -> Any:
    """x with every traced array (inside tuples, lists and dicts too) as a plain ndarray view."""
    if isinstance(x, _Traced):
        return x.view(np.ndarray)
    if isinstance(x, (tuple, list)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def _derived(result: Any, how: str) -> Any:
    """Mark a numpy result computed from traced arrays outside the primitives."""
    if isinstance(result, tuple):
        return tuple(_derived(r, how) for r in result)
    if type(result) is np.ndarray:
        result = result.view(_Derived)
        result.made_by = f"{how} at {_caller()}"
    return result


# numpy functions whose result depends on shapes and dtypes only, never on the values.
_SHAPE_ONLY = {np.shape, np.ndim, np.size, np.result_type, np.may_share_memory,
               np.shares_memory, np.empty_like, np.zeros_like, np.ones_like, np.copyto}


class _Traced(np.ndarray):
    """An array of the step being captured: one of its inputs or a primitive's result.

    While a step is captured, the tape's arrays are of this class, so numpy tells it about
    every function applied to them. A primitive's forward runs on them too, and the tape
    takes its result as its own (`Tape.record`). Anything else computed from them with numpy
    directly (``~mask``, ``h.data > 0``, ``np.where(...)``, ``x + noise``, a ``.copy()``) comes
    back as a `_Derived` array: if one is then given to a primitive, the capture is refused
    at once, since a replay would keep its first value. When the capture ends, every array
    of the plan is turned back into a plain ndarray (a view of the same memory), so a replay
    pays nothing for this.
    """

    _traced = True  # (how `tensor.to_array` knows to keep the class)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out")
        if out is not None:
            _outside_write(f"np.{ufunc.__name__}(..., out=)", out, inputs)
            kwargs["out"] = _plain(out)
        elif method == "at":  # np.add.at(a, index, b) writes into a
            _outside_write(f"np.{ufunc.__name__}.at", inputs[:1], inputs[1:])
        result = getattr(ufunc, method)(*_plain(inputs), **kwargs)
        if out is not None:  # written in place: numpy's protocol returns the given arrays
            return out[0] if len(out) == 1 else out
        name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        return _derived(result, f"np.{name}")

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func is np.copyto:
            _outside_write("np.copyto", args[:1], (*args[1:], *kwargs.values()))
        elif kwargs.get("out") is not None:
            _outside_write(f"np.{func.__name__}(..., out=)", (kwargs["out"],), args)
        result = func(*_plain(args), **_plain(kwargs))
        return result if func in _SHAPE_ONLY else _derived(result, f"np.{func.__name__}")

    def __array_finalize__(self, obj: Any) -> None:
        # A view keeps the class; a new array made by a method (.copy(), .astype(), x[idx])
        # holds values computed outside the primitives.
        if self.base is None:
            self.__class__ = _Derived
            self.made_by = f"a copy of the step's data (.copy(), .astype(), indexing) at " \
                           f"{_caller()}"

    def __setitem__(self, index: Any, value: Any) -> None:
        _outside_write("an assignment x[...] = ...", (self,), (value,))
        super().__setitem__(index, value)


def _outside_write(how: str, outs: Any, inputs: Any) -> None:
    """Refuse, while a step is captured, a numpy write outside the primitives into one of
    the step's arrays, or of values computed from them into any array: a replay would not
    repeat it (a running statistic, a clamp in place, a counter)."""
    tape = _GradMode.tape
    if tape is None or tape.inside:  # (a primitive's forward writes its own result)
        return
    outs = _arrays_in(outs)
    into_step = any(type(a) is _Traced for a in outs)
    if not into_step and any(isinstance(a, _Derived) for a in outs):
        return  # numpy's own temporary (np.mean divides its sum in place): derived already
    if into_step or any(isinstance(a, _Traced) for a in _arrays_in(inputs)):
        raise JitError(f"{tape.who}: {how} at {_caller()} writes in place, outside "
                       f"tinygrad_nn's operations, into the step's arrays or with values "
                       f"computed from them; a replay would not repeat it. Compute it with "
                       f"tinygrad_nn operations (for state kept from call to call: "
                       f"tinygrad_nn.ops with out=)")


class _Derived(_Traced):
    """An array computed from the step's data with numpy, outside the primitives."""

    made_by = "numpy"


@dataclass
class Entry:
    """One primitive as it ran: `op.forward(*inputs, **params)` gave `out` (and filled
    ``params["saved"]``, if there is one: what the forward keeps for its VJP)."""

    op: Any
    inputs: tuple
    params: dict
    out: np.ndarray
    inplace: bool  # out= was given: `out` is an existing array (a parameter, a buffer)
    phase: str  # "forward", "backward" or "update"


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


def _with_bases(array: np.ndarray) -> list[np.ndarray]:
    """`array` and the arrays it is a view of."""
    chain = [array]
    while isinstance(chain[-1].base, np.ndarray):
        chain.append(chain[-1].base)
    return chain


class Tape:
    """What a capture records, and the journal that undoes it if the step is refused.

    `entries` is the list of primitive calls; `leaves` the tensors made outside the step
    that it read (parameters, data held by modules), each with its array and its `.grad`
    when first read; `watches` the Python values baked in. The journal (`written`,
    `generators`, `grads`) keeps what the step changed, as it was before, so a refused
    capture leaves everything exactly as before the call.
    """

    def __init__(self, who: str) -> None:
        self.who = who
        self.entries: list[Entry] = []
        self.phase = "forward"
        self.leaves: dict[int, tuple[Tensor, np.ndarray, bool]] = {}
        self.watches: list[tuple[Callable[[], Any], Any]] = []
        self.value_reads: list[str] = []
        self.tensors: list[weakref.ref] = []  # every tensor a primitive made
        self.old_grads: dict[int, Tensor] = {}  # id(.grad array from before) -> its tensor
        self.written: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.generators: dict[int, tuple[np.random.Generator, Mapping[str, Any]]] = {}
        self.grads: dict[int, tuple[Tensor, Tensor | None, np.ndarray]] = {}
        self.undo: list[Callable[[], None]] = []  # e.g. an optimizer's new state entries
        self.cleared: set[int] = set()  # tensors whose .grad the step set to None
        self.inside = False  # a primitive's forward is running
        self.unset: set[int] = set()  # tensors whose .grad was None when first read

    # hooks the core calls (see tinygrad_nn.ops.Primitive.__call__ and tensor.watch)

    def before(self, op: Any, params: dict, out: np.ndarray | None) -> None:
        """Journal what this call may change: the array it writes in place, a generator.
        Until `record`, numpy calls are the primitive's own (`inside`)."""
        self.inside = True
        for value in params.values():
            if isinstance(value, np.random.Generator) and id(value) not in self.generators:
                self.generators[id(value)] = (value, value.bit_generator.state)
        if out is not None and not isinstance(out, _Traced) and id(out) not in self.written:
            self.written[id(out)] = (out, out.copy())

    def record(self, op: Any, given: Any, arrays: Any, params: dict, out: Any,
               inplace: bool) -> np.ndarray:
        """Note one call: `given` are the inputs as passed (Tensors among them), `arrays`
        the values the forward read, `out` what it wrote. Returns `out`, traced."""
        self.inside = False
        for x in given:
            if isinstance(x, Tensor) and x._op is None and not isinstance(x.data, _Traced):
                self._leaf(x)
        for x in (*arrays, *_arrays_in(params.values())):
            if isinstance(x, _Derived):
                raise JitError(f"{self.who}: {op.name} was given an array computed from the "
                               f"step's data outside tinygrad_nn's operations ({x.made_by}); "
                               f"a replay would keep its first value. Compute it with "
                               f"tinygrad_nn operations (Tensor methods, tinygrad_nn.ops, "
                               f"tinygrad_nn.functional)")
        if op.name == "getitem" and any(a.dtype == bool and isinstance(a, _Traced)
                                        for a in _arrays_in(params.values())):
            raise JitError(f"{self.who}: indexing with a boolean mask computed in the step "
                           f"(x[x > 0]) gives as many entries as the mask holds, a shape "
                           f"that depends on the values, which a replay cannot follow. Use "
                           f"functional.where (or multiply by the mask) instead")
        if type(out) is not _Traced and not inplace:
            if isinstance(out, _Derived):
                out.__class__ = _Traced  # type: ignore[assignment]  # the tape's own array from now on
            else:  # a scalar, or a result computed from untraced arrays only
                out = np.asarray(out).view(_Traced)
        self.entries.append(Entry(op, tuple(arrays), params, out, inplace, self.phase))
        return out

    def made(self, tensor: Tensor) -> None:
        self.tensors.append(weakref.ref(tensor))

    def watch(self, value: Callable[[], Any]) -> None:
        """Capture again whenever `value()` differs from what it is now (`tensor.watch`)."""
        self.watches.append((value, value()))

    def read_value(self, tensor: Tensor, how: str) -> None:
        where = anomaly.user_frame()
        self.value_reads.append(f"{how} of a tensor of shape {tensor.shape} at {where}")

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Call `undo()` if the capture is refused (for changes the journal cannot see)."""
        self.undo.append(undo)

    def note_grads(self, tensors: Any, clearing: bool = False) -> None:
        """Journal the `.grad` of `tensors` before the step sets it; `clearing`: the step is
        setting them to None (zero_grad), so what they held before does not matter."""
        for t in tensors:
            if id(t) not in self.grads:
                self.grads[id(t)] = (t, t.grad, t.data)
            if clearing:
                self.cleared.add(id(t))
                if self.phase == "forward":  # cleared before any backward could add to it
                    self.unset.discard(id(t))

    def fresh_grads(self) -> list[Tensor]:
        """The tensors whose `.grad` was None when the step first read them, and before the
        call, with nothing in the step clearing it first: a backward made their `.grad`
        anew, where with a `.grad` left by the last call it would have added to it. A
        replay is right only if their `.grad` is None again."""
        return [t for t, *_ in self.leaves.values()
                if id(t) in self.unset and self.grads[id(t)][1] is None]

    def _leaf(self, x: Tensor) -> None:
        if id(x) in self.leaves:
            return
        self.leaves[id(x)] = (x, x.data, x.requires_grad)
        if x.grad is None and id(x) not in self.cleared:
            self.unset.add(id(x))
        self.note_grads((x,))
        grad = self.grads[id(x)][1]
        if grad is not None and not isinstance(grad.data, _Traced):
            self.old_grads[id(grad.data)] = x

    def rollback(self) -> None:
        """Put back everything the step changed: arrays written in place, generators, the
        `.grad` and `.data` of the tensors it read."""
        for array, before in self.written.values():
            np.copyto(array, before)
        for generator, state in self.generators.values():
            generator.bit_generator.state = state
        for tensor, grad, data in self.grads.values():
            tensor.grad, tensor.data = grad, data
        for undo in reversed(self.undo):
            undo()

    def untrace(self, tensors: list[Tensor]) -> Callable[[Any], Any]:
        """Turn every traced array of the tape (and of `tensors`) into a plain ndarray; returns
        the mapping, for the other arrays the capture holds (its inputs and outputs)."""
        plain: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def untraced(x: Any) -> Any:
            if isinstance(x, _Traced):
                if id(x) not in plain:
                    plain[id(x)] = (x, x.view(np.ndarray))
                return plain[id(x)][1]
            if isinstance(x, (tuple, list)):
                return type(x)(untraced(v) for v in x)
            return x

        for e in self.entries:
            e.inputs = untraced(e.inputs)
            e.params = {k: untraced(v) for k, v in e.params.items()}
            e.out = untraced(e.out)
        for t in tensors:
            t.data = untraced(t.data)
            if t.grad is not None:
                t.grad.data = untraced(t.grad.data)
        return untraced


def _module_assignments() -> int:
    return Module._assignments


# --- a captured step ---------------------------------------------------------------------


def _copy_into(out: np.ndarray, forward: Callable, inputs: tuple, params: dict) -> None:
    # For forwards that cannot write into `out` (the rarer ops): one temporary per call.
    result = forward(*inputs, **params)
    if np.shape(result) != out.shape:  # e.g. x[mask]: as many entries as the mask holds
        raise JitError(f"an op gave shape {np.shape(result)} on replay but {out.shape} when "
                       f"captured: its shape depends on the values, which a replay cannot "
                       f"follow")
    np.copyto(out, result)


def _as_operand(x: Any, arrays: list[np.ndarray]) -> Any:
    """A Python number as a 0-d array of the dtype numpy would give it here, converted once
    rather than on every call (numpy's rules for Python numbers: they take the array's type)."""
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(x, dtype=np.result_type(x, *arrays) if arrays else None)


_OUT_BY_KEYWORD = (np.maximum, np.minimum)


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
        # `out` by position when every operand is there: a keyword out= costs numpy ~0.13 µs
        # of parsing per call, a tenth of a small op's time
        # (not for maximum and minimum: numpy 2.5 deprecates their third positional argument)
        positional = len(operands) == op.forward.nin and op.forward not in _OUT_BY_KEYWORD
        last = (functools.partial(op.forward, *operands, out) if positional
                else functools.partial(op.forward, *operands, out=out))
        return [*calls, last], False
    if op.takes_out:
        params = dict(e.params, out=out)
        if op.work is not None:
            params["work"] = op.work(*inputs, **e.params)
        return [functools.partial(op.forward, *inputs, **params)], False
    return [functools.partial(_copy_into, out, op.forward, inputs, e.params)], True


def _without_arrays(value: Any) -> Any:
    """A parameter with each array replaced by its shape: what a tape bakes in by value."""
    if isinstance(value, np.ndarray):
        return ("array", value.shape)
    if isinstance(value, (tuple, list)):
        return tuple(_without_arrays(v) for v in value)
    return value


def _live(entries: list[Entry], seen: list[np.ndarray]) -> list[bool]:
    """Which entries a replay must run: those whose result is seen after the step.

    Seen: what the step returns, the tensors it keeps (a cost stored for logging), every
    parameter's `.grad`, every array written in place (parameters, optimizer state), and
    whatever those were computed from. The cost a training step computes but neither returns
    nor keeps is not (backward needs a and y, not C). Arrays are matched with the arrays
    they are views of, so a view made outside the primitives keeps its source alive.
    """
    needed = {id(b) for a in seen for b in _with_bases(a)}
    live = [False] * len(entries)
    for k in range(len(entries) - 1, -1, -1):
        e = entries[k]
        draws = any(isinstance(p, np.random.Generator) for p in e.params.values())
        if e.inplace or draws or any(id(b) in needed for b in _with_bases(e.out)):
            live[k] = True  # (a draw advances its generator, so it always runs)
            for x in _arrays_in((*e.inputs, *e.params.values())):
                needed.update(id(b) for b in _with_bases(x))
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
    need none); `inputs` the arrays each call's arguments are copied into; `stored` the
    tensors the step made and stored outside its result (they hold each call's values);
    `kept` the tensors it read whose values persist from call to call (parameters).
    `allocating` counts the calls that make a temporary (ops whose forward cannot write
    into `out=`).
    """

    def __init__(self, tape: Tape, inputs: list[np.ndarray], result_shape: Any,
                 outputs: list[np.ndarray], stored: list[Tensor], who: str) -> None:
        self.who = who
        self.result_shape, self.outputs = result_shape, outputs
        self.entries, self.inputs = tape.entries, inputs
        self.leaves = list(tape.leaves.values())
        self.watches = tape.watches
        self.stored = stored
        self.fresh: list[Tensor] = []  # see Tape.fresh_grads
        self.switches_modes = False  # the step calls train()/eval(): never replayed
        self.calls: list[Callable[[], Any]] = []
        self.allocating = 0
        seen = [*outputs, *(t.data for t in stored),
                *(t.grad.data for t, *_ in self.leaves if t.grad is not None)]
        self.live = _live(self.entries, seen)
        for e, live in zip(self.entries, self.live):
            old = [tape.old_grads[id(x)] for x in e.inputs if id(x) in tape.old_grads]
            if live and old:
                raise JitError(f"{who}: the step reads the .grad that the previous call "
                               f"left on a tensor of shape {old[0].shape} (backward adds to "
                               f"it without zero_grad(), or the step reads it first): a "
                               f"replay cannot carry gradients from one call to the next. "
                               f"Call zero_grad() on the optimizer (or the model) in the "
                               f"step, before backward() and before reading any .grad")
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
        for tensor in self.fresh:  # eager would add to a .grad left by the last call
            if tensor.grad is not None:
                return False
        return not self.switches_modes

    def replay(self, arrays: list[np.ndarray]) -> Any:
        for buffer, array in zip(self.inputs, arrays):
            if buffer is not array:
                np.copyto(buffer, array)
        try:
            for call in self.calls:
                call()
        except JitError as err:
            raise JitError(f"{self.who}: {err}") from None
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
        """Where each array of the tape comes from, by id: an input, an op (its result, or
        what its forward saved for its VJP), or outside. A view comes from where the array
        it views comes from."""
        found: dict[int, str] = {}

        def mark(array: np.ndarray, origin: str) -> None:
            for b in _with_bases(array):
                found.setdefault(id(b), origin)

        def resolve(array: np.ndarray) -> None:
            known = [found[id(b)] for b in _with_bases(array) if id(b) in found]
            found[id(array)] = known[0] if known else "outside"

        for i, a in enumerate(self.inputs):
            mark(a, f"input {i + 1}")
        for _, array, requires_grad in self.leaves:
            if requires_grad:
                found[id(array)] = "parameter"
        for array in self.state:
            found.setdefault(id(array), "state")
        for k, e in enumerate(self.entries):
            if isinstance(e.params.get("saved"), np.ndarray):  # written by this op's forward
                mark(e.params["saved"], f"op {k + 1}")
            for x in _arrays_in((*e.inputs, *e.params.values())):
                if id(x) not in found:
                    resolve(x)
            mark(e.out, f"op {k + 1}")
        for _, array, _ in self.leaves:
            if id(array) not in found:
                resolve(array)
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
        for x, y in read:  # (`origins` resolves a view by the array it views)
            outside = not isinstance(x, np.ndarray) or origins.get(id(x)) == "outside"
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
                    f"Python value (computed from the data, or changed from call to call) "
                    f"is baked into a replay; pass it as an argument of the step")
        return (f"op {k + 1}, {_shapes(a)}, gave different numbers when replayed than when "
                f"run again from the same state: it reads state the tape cannot see (an "
                f"array or object made anew on every call, such as an optimizer or a "
                f"generator created inside the step; make it once, outside)")
    for tensor, value in zip(first.kept, after):
        if value.tobytes() != tensor.data.tobytes():
            return (f"a tensor of shape {tensor.shape} read by the step has other values after "
                    f"a replay than after the step run again: the step changes it outside "
                    f"tinygrad_nn's operations (e.g. `w.data -= ...` with numpy), which a "
                    f"replay does not repeat. Update it with an optimizer, or with "
                    f"tinygrad_nn.ops and out=")
    return None


# --- the decorator -------------------------------------------------------------------------


def _key_part(x: Any, who: str, where: str) -> tuple[Any, ...]:
    if isinstance(x, np.ndarray):  # (a subclass; `_split` keys plain arrays the same way)
        return (x.shape, x.dtype, x.flags.c_contiguous, x.flags.f_contiguous)
    if isinstance(x, Tensor):
        if x.requires_grad:
            raise TypeError(f"{who}: {where} is a Tensor that requires grad; a jitted step "
                            f"takes its data as arguments and reaches its parameters "
                            f"through a module or optimizer")
        return ("tensor", *_key_part(x.data, who, where))
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
        if isinstance(cache_size, bool) or not isinstance(cache_size, (int, np.integer)) \
                or cache_size < 1:
            raise ValueError(f"jit: cache_size is the number of plans kept and must be an "
                             f"integer >= 1, got {cache_size!r}")
        functools.update_wrapper(self, fn)
        self.fn, self.cache_size, self.captures = fn, int(cache_size), 0
        self.plans: OrderedDict[Hashable, Plan] = OrderedDict()
        self._who = f"jit({getattr(fn, '__qualname__', repr(fn))})"

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return self if obj is None else types.MethodType(self, obj)

    def _split(self, args: tuple, kwargs: dict) -> tuple[Hashable, list[np.ndarray]]:
        """The cache key and the array arguments, in order."""
        key: list[Hashable] = []
        arrays: list[np.ndarray] = []
        for i, x in enumerate(args if not kwargs else (*args, *sorted(kwargs.items()))):
            if i >= len(args):
                name, x = x
                where = f"argument {name}="
            else:
                where = f"argument {i + 1}"  # only formatted into an error message
            if type(x) is np.ndarray:  # the common case first: this runs on every call
                # (the memory order too: numpy's sums go in memory order, so C and Fortran
                # arrays may round differently; a replay must see the layout eager sees)
                flags = x.flags
                key.append((x.shape, x.dtype, flags.c_contiguous, flags.f_contiguous))
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
        """Run the step eagerly, recording it; keep the plan, or undo the step and refuse."""
        # The step runs on traced copies of its array arguments: those copies are the arrays
        # a replay copies each new mini-batch into.
        inputs: list[np.ndarray] = []

        def own(x: Any) -> Any:
            if isinstance(x, (np.ndarray, Tensor)):
                inputs.append(np.array(x.data if isinstance(x, Tensor) else x).view(_Traced))
                return Tensor._make(inputs[-1]) if isinstance(x, Tensor) else inputs[-1]
            return x

        own_args = [own(a) for a in args]
        own_kwargs = {k: own(kwargs[k]) for k in sorted(kwargs)}
        del args, kwargs  # (the caller's arrays are not the step's)
        tape = self._last_tape = Tape(self._who)
        tape.watch(_module_assignments)
        switches = Module._mode_switches
        for known in self.plans.values():  # their .grad as the call found them
            tape.note_grads(t for t, *_ in known.leaves)
        _GradMode.tape = tape
        try:
            try:
                result = self.fn(*own_args, **own_kwargs)
            finally:
                _GradMode.tape = None
            del own_args, own_kwargs
            outputs: list[np.ndarray] = []
            shape = _flatten(result, outputs, self._who)
            del result  # what the step returned is copied out; what it kept is still alive
            stored = [t for t in (ref() for ref in tape.tensors) if t is not None]
            fresh = tape.fresh_grads()
            untraced = tape.untrace([*stored, *(t for t, *_ in tape.leaves.values())])
            plan = Plan(tape, [untraced(a) for a in inputs], shape,
                        [untraced(a) for a in outputs], stored, self._who)
            plan.fresh = fresh
        except JitError:
            tape.rollback()  # a refused step leaves everything as it was before the call
            raise  # (an error of the step's own leaves what the step did, as eagerly)
        plan.switches_modes = Module._mode_switches != switches
        self._warn(tape, warn, plan.switches_modes)
        self.plans[key] = plan
        self.plans.move_to_end(key)
        while len(self.plans) > self.cache_size:
            self.plans.popitem(last=False)
        return _rebuild(plan.result_shape, plan.outputs)

    def _warn(self, tape: Tape, warn: bool, switches_modes: bool) -> None:
        if not warn:  # (the check's rerun: the capture warned already)
            return
        if switches_modes:
            warnings.warn(f"{self._who}: the step switches modules between train() and "
                          f"eval(), so every call captures it again and none is replayed; "
                          f"switch outside the step", JitWarning, stacklevel=4)
        for read in tape.value_reads:
            warnings.warn(f"{self._who}: the step read a value during its capture ({read}); "
                          f"a replay does not run Python, so whatever was decided from that "
                          f"value stays as it was decided at capture", JitWarning, stacklevel=4)
        if _module_assignments() != tape.watches[0][1]:
            warnings.warn(f"{self._who}: the step assigns attributes of a module, so every "
                          f"call captures it again and none is replayed; keep state that "
                          f"changes in arrays updated in place", JitWarning, stacklevel=4)

    def _check(self, plan: Plan, key: Hashable, args: tuple, kwargs: dict,
               arrays: list[np.ndarray]) -> Any:
        """Replay, then rerun eagerly from the same state: the two must agree bit for bit."""
        saved = plan.save()
        # What the first call left in the tensors it stored, and in what their nodes saved
        # for their VJPs (the sigmoid's e^{-z}): a graph the step kept stays whole.
        held = [a for t in plan.stored for a in (t.data, t._params.get("saved"))
                if isinstance(a, np.ndarray)]
        shown = [a.copy() for a in held]
        try:
            plan.replay(arrays)
        except BaseException:
            plan.restore(saved)
            del self.plans[key]
            raise
        replayed = [e.out.copy() for e in plan.entries]
        after = [t.data.copy() for t in plan.kept]
        plan.restore(saved)
        for array, values in zip(held, shown):
            np.copyto(array, values)
        try:
            result = self._capture(key, args, kwargs, warn=False)
        except BaseException:
            self.plans.pop(key, None)
            raise
        problem = _difference(plan, replayed, self.plans[key], after)
        if problem is not None:
            self._last_tape.rollback()  # the rerun's journal: the state before this call,
            plan.restore(saved)  # and what it cannot see (a parameter changed with numpy)
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

    Arrays are named ``t<k>`` (made by entry k), ``t<k>.saved`` (what entry k's forward
    saved for its VJP: the sigmoid's e^{-z}), ``p<n>`` (parameters), ``s<n>`` (state written
    in place: optimizer buffers), ``c<n>`` (constants), the step's inputs by `input_names`
    (default ``in1, in2, ...``) and any array in `names` (by id) by its name. A 0-d constant
    is shown as its value.
    """
    label = dict(names or {})
    for k, e in enumerate(plan.entries):
        if isinstance(e.params.get("saved"), np.ndarray):
            label.setdefault(id(e.params["saved"]), f"t{k + 1}.saved")
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
