"""The Tensor: a numpy array that remembers how it was computed.

A Tensor made by a primitive keeps the primitive (`_op`), its input tensors
(`_parents`) and its non-tensor arguments (`_params`). Those three fields are the
whole computation graph; `autograd.py` walks it backwards.

`Tensor(data)` copies `data` (as `torch.tensor`); `Tensor.from_numpy` and `as_tensor`
share it. A tensor changed in place after an op read it (an optimizer step between
forward and backward) is noticed by its version (`_bump_version`) and refused by the walk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Self, cast

import numpy as np

_FLOAT_KINDS = "f"
_NO_PARAMS: dict = {}
Axis = int | tuple[int, ...] | None


class _GradMode:
    """Whether primitives record the graph (`no_grad` switches it off),
    whether they check for NaN and inf (`detect_anomaly` switches it on) and
    the tape that `jit` is capturing a step on (None when it is not)."""

    enabled = True
    anomaly = False
    tape: Any = None


class no_grad:
    """Stop recording the graph, as a context manager or as a decorator.

    >>> x = Tensor([1.0, 2.0], requires_grad=True)
    >>> with no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    _saved: list[bool]

    def __new__(cls, func: Callable | None = None) -> Any:  # (a no_grad, or func wrapped)
        self = super().__new__(cls)
        self._saved = []
        return self if func is None else self(func)

    def __enter__(self) -> no_grad:
        # A stack, not one saved flag, so a decorated function may recurse.
        self._saved.append(_GradMode.enabled)
        _GradMode.enabled = False
        return self

    def __exit__(self, *exc: object) -> None:
        _GradMode.enabled = self._saved.pop()

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def without_grad(*args: Any, **kwargs: Any) -> Any:
            with no_grad():
                return func(*args, **kwargs)

        return without_grad


def watch(value: Callable[[], Any]) -> None:
    """While `jit` captures a step, capture again whenever `value()` changes.

    The hook the core exposes to the jit (which it never imports): a Python value a step
    bakes into its tape (an optimizer's learning rate, a module's training flag) is
    watched, so a replay never runs with a stale one. Outside a capture it does nothing.
    """
    tape = _GradMode.tape
    if tape is not None:
        tape.watch(value)


def is_grad_enabled() -> bool:
    """True unless inside `no_grad`."""
    return _GradMode.enabled


_KIND_NAMES = {"O": "objects", "U": "strings", "S": "bytes", "c": "complex numbers",
               "V": "structured records", "M": "dates", "m": "time deltas"}


def _refuse_dtype(dtype: np.dtype, what: str) -> TypeError:
    """The one message for a non-numeric dtype, whether it came with the data or was asked for."""
    shown = _KIND_NAMES.get(dtype.kind, f"dtype {dtype}")
    return TypeError(
        f"Tensor: cannot build a tensor from {what} holding {shown} (dtype {dtype}); expected "
        f"numbers (int, float, bool), a nested list of numbers or a numeric ndarray"
    )


def _numeric_dtype(dtype: Any) -> np.dtype:
    """`dtype` as a numpy dtype, refused (TypeError) unless it holds numbers or booleans."""
    try:
        dtype = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"Tensor: {dtype!r} is not a dtype: {err}") from None
    if dtype.kind not in "fiub":
        raise _refuse_dtype(dtype, f"dtype={dtype.name!r}, a dtype")
    return dtype


def to_array(data: TensorLike, dtype: Any = None) -> np.ndarray:
    """The one place that turns user data into an ndarray.

    Python numbers and lists become float64 (unless `dtype` says otherwise);
    ndarrays keep their dtype. Strings, objects, complex numbers and ragged lists
    are refused, and so is a `dtype` that holds them.

    An ndarray of the right dtype is returned as it is, shared, not copied (`Tensor()`
    copies it; `as_tensor` and the primitives' constant operands share it). A conversion
    of an ndarray goes through the `ops.cast` primitive, so that `jit` records it.
    """
    if isinstance(data, Tensor):
        data = data.data
    given = isinstance(data, np.ndarray)  # (an array the caller may hold and change)
    if given or isinstance(data, np.generic):
        # A subclass is seen as a plain ndarray, except the arrays `jit` traces while it
        # captures a step (`_traced`): they must reach the primitives as they are.
        array = cast(np.ndarray, data) if getattr(data, "_traced", False) else np.asarray(data)
    else:
        try:
            array = np.asarray(data)
        except ValueError as err:  # numpy's message for ragged nesting
            raise ValueError(
                f"Tensor: cannot build a tensor from a ragged nested sequence "
                f"(sublists of different lengths): {err}"
            ) from None
        if array.dtype.kind in "iub" and dtype is None:
            array = array.astype(np.float64)
    if array.dtype.kind not in "fiub":
        raise _refuse_dtype(array.dtype, f"{type(data).__name__} data")
    if dtype is not None:
        dtype = _numeric_dtype(dtype)
        if array.dtype != dtype:  # (a fresh array of Python numbers is no step data)
            # (through the cast primitive's forward: beyond a narrower float's range is inf)
            array = ops.cast(array, dtype=dtype) if given else ops._cast(array, dtype)
    return array


def _own_array(data: Any, dtype: Any) -> np.ndarray:
    """`to_array`, but never the caller's memory: `Tensor()` copies, as `torch.tensor` does.

    Lists and numbers give fresh arrays already; an ndarray (or a Tensor's) that `to_array`
    would share, or a view of one, is copied with the `ops.copy` primitive, so that a
    `jit` capture records the copy and replays it with each step's data.
    """
    source = data.data if isinstance(data, Tensor) else data
    array = to_array(source, dtype)
    if isinstance(source, np.ndarray) and (array is source or array.base is not None):
        array = ops.copy(array)
    return array


class _Clock:
    """Counts in-place modifications of tensors, all tensors together.

    A primitive's output notes the count when it is made (`Tensor._born`); a tensor
    modified in place notes the count after its modification (`Tensor._written`). A
    parent written after its child was born has changed under the graph: the walk
    refuses it. One counter read per op, rather than a tuple of the parents' versions.
    """

    now = 0


class Tensor:
    """An n-dimensional array of numbers that records the computation graph.

    >>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    Tensor([2., 4., 6.])

    `Tensor(data)` copies `data`, as `torch.tensor` does: changing the array afterwards
    changes neither the tensor nor any gradient computed from it. `Tensor.from_numpy` and
    `as_tensor` share the caller's array instead (no copy: for data read many times).
    """

    __slots__ = ("data", "grad", "requires_grad", "_op", "_parents", "_arrays", "_params",
                 "_retain", "_origin", "_writes", "_written", "_born", "__weakref__")
    # Make `ndarray + Tensor` return NotImplemented so Tensor.__radd__ runs.
    __array_ufunc__ = None

    def __init__(self, data: TensorLike, requires_grad: bool = False,
                 dtype: Any = None) -> None:
        self.data = _own_array(data, dtype)
        self._writes = self._written = self._born = 0
        self.grad: Tensor | None = None
        self._op: ops.Primitive | None = None
        self._parents: tuple[Tensor | None, ...] = ()
        self._arrays: tuple = ()
        self._params: dict = _NO_PARAMS
        self._retain = False
        self._origin: str | None = None  # where user code made it, in anomaly mode
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_()

    @classmethod
    def _make(cls, data: np.ndarray, op: Any = None, parents: tuple = (),
              params: dict | None = None, arrays: tuple = ()) -> Self:
        """A primitive's output: skips validation, since data came from numpy.

        `parents` holds the input tensors (None for a constant such as a Python
        number) and `arrays` the input values the VJPs will need.
        """
        out = cls.__new__(cls)
        out.data, out.grad, out._retain, out._origin = data, None, False, None
        out._op, out._parents, out._arrays = op, parents, arrays
        out._params = _NO_PARAMS if params is None else params
        out.requires_grad = op is not None
        out._writes, out._written, out._born = 0, 0, _Clock.now
        return out

    @classmethod
    def from_numpy(cls, array: np.ndarray) -> Tensor:
        """A tensor sharing `array`'s memory, as `torch.from_numpy`: no copy is made.

        Changes to the array show in the tensor and the other way round, so an array
        changed after a forward pass changes the gradients computed from it: change it
        only after `backward()`. The dtype is kept (numbers and booleans only).
        """
        if not isinstance(array, np.ndarray):
            raise TypeError(f"Tensor.from_numpy: expected an np.ndarray, got "
                            f"{type(array).__name__}; use Tensor(data) or as_tensor(data)")
        return cls._make(to_array(array))

    # --- versions: refusing a graph whose inputs changed under it -----------------

    @property
    def _version(self) -> int:
        """How many times this tensor was modified in place (`_bump_version`), as in PyTorch.

        Setting it (``p._version += 1``) counts as a modification too.
        """
        return self._writes

    @_version.setter
    def _version(self, value: int) -> None:
        _Clock.now += 1
        self._writes, self._written = value, _Clock.now

    def _bump_version(self) -> None:
        """Note an in-place modification of `data` (the optimizers call this after a step).

        A graph built from this tensor before the modification can no longer give right
        gradients; its `backward()` raises instead (see `autograd._walk`).
        """
        _Clock.now += 1
        self._writes += 1
        self._written = _Clock.now

    # --- what PyTorch users expect -------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape; a scalar has shape ()."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """The number of elements."""
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype (float64 unless asked otherwise)."""
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user rather than by a primitive."""
        return self._op is None

    @property
    def grad_fn(self) -> str | None:
        """The name of the primitive that made this tensor, or None for a leaf."""
        return None if self._op is None else self._op.name

    def numpy(self) -> np.ndarray:
        """The underlying ndarray (shared, not copied)."""
        return self.data

    def item(self) -> float:
        """The single element as a Python number."""
        return self._value("item", "item()")

    def _value(self, who: str, how: str) -> Any:
        """The one element as a Python number, for `item()`, `float()`, `int()` and `format`.

        While `jit` captures a step the read is reported: a replay does not run the Python
        that uses the value.
        """
        if _GradMode.tape is not None:
            _GradMode.tape.read_value(self, how)
        if self.data.size != 1:
            raise ValueError(
                f"{who}: only a tensor with exactly one element converts to a Python number, "
                f"this one has shape {self.shape}"
            )
        return self.data.item()

    def tolist(self) -> Any:
        """The values as (nested lists of) Python numbers, as numpy's tolist."""
        if _GradMode.tape is not None:
            _GradMode.tape.read_value(self, "tolist()")
        return self.data.tolist()

    def __float__(self) -> float:
        return float(self._value("float", "float()"))

    def __int__(self) -> int:
        return int(self._value("int", "int()"))  # truncates toward zero, as int(2.7) and PyTorch

    def __format__(self, spec: str) -> str:
        """`f"{t:.3f}"` formats the one element of a one-element tensor; `f"{t}"` is str(t)."""
        if not spec:
            return str(self)
        return format(self._value("format", f"format(..., {spec!r})"), spec)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """What `np.asarray(t)` and `np.array(t)` see: the values (numpy 2's protocol).

        Shared unless a copy is asked for (copy=True) or a dtype conversion makes one;
        copy=False with a conversion is refused, as numpy requires.
        """
        if _GradMode.tape is not None:
            _GradMode.tape.read_value(self, "np.asarray()")
        data = self.data
        if dtype is not None and np.dtype(dtype) != data.dtype:
            if copy is False:
                raise ValueError(f"np.asarray(tensor, copy=False): converting dtype "
                                 f"{data.dtype} to {np.dtype(dtype)} needs a copy")
            return data.astype(dtype)
        return data.copy() if copy else data

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._make(self.data)

    def clone(self) -> Tensor:
        """A copy in memory of its own that stays in the graph, as PyTorch's ``clone()``.

        The gradient flows back to this tensor unchanged (d clone(x)/dx = 1); writing to the
        copy's `.data` leaves this tensor alone. `detach()` is the opposite: shared memory,
        no graph. (`Tensor(t)` copies too, but as a new leaf cut from the graph.)
        """
        return ops.copy(self)

    def numel(self) -> int:
        """The number of elements, as PyTorch's ``numel()`` (numpy's name: `size`)."""
        return int(self.data.size)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Make this leaf record its gradient (floating-point tensors only)."""
        if requires_grad and self.data.dtype.kind not in _FLOAT_KINDS:
            raise RuntimeError(
                f"requires_grad: only floating-point tensors can require gradients, "
                f"this one has dtype {self.dtype}; build it with dtype=np.float64 or float32"
            )
        if not requires_grad and self._op is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use .detach() instead")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf after backward (e.g. to read a layer's δ^l)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad: this tensor does not require grad")
        self._retain = True

    def backward(self, gradient: Any = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` (reverse mode).

        A tensor of one element (shape (), (1,), (1, 1), ...) is seeded with 1; any
        other shape needs `gradient` of its shape, the vector in the vector–Jacobian
        product. Raises RuntimeError if a tensor the graph used was modified in place
        since (an optimizer step between the forward pass and backward).
        """
        from .autograd import backward

        backward(self, gradient, create_graph)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        extras = []
        if self.dtype != np.float64:
            extras.append(f"dtype={self.dtype}")
        if self._op is not None:
            extras.append(f"grad_fn=<{self._op.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"Tensor({', '.join([body, *extras])})"

    def _repr_html_(self) -> str:
        """Jupyter's view: the repr, then the gradient once ``backward()`` has filled it."""
        import html  # (only a notebook asks for this)

        text = repr(self)
        if self.grad is not None:
            text += "\ngrad " + np.array2string(self.grad.data, separator=", ", prefix="grad ")
        return f"<pre>{html.escape(text)}</pre>"

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        """The rows `t[0], t[1], ...` (differentiable), as iterating a numpy array."""
        if self.ndim == 0:  # (without this, Python's fallback on t[0] would give [])
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __bool__(self) -> bool:
        if _GradMode.tape is not None:
            _GradMode.tape.read_value(self, "bool()")
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                f"use .data.any() or .data.all()")
        return bool(self.data)

    __hash__ = object.__hash__

    # --- operators: every one is a primitive from ops.py ---------------------------

    def __add__(self, other: Any) -> Tensor: return ops.add(self, other)
    def __radd__(self, other: Any) -> Tensor: return ops.add(other, self)
    def __sub__(self, other: Any) -> Tensor: return ops.sub(self, other)
    def __rsub__(self, other: Any) -> Tensor: return ops.sub(other, self)
    def __mul__(self, other: Any) -> Tensor: return ops.mul(self, other)
    def __rmul__(self, other: Any) -> Tensor: return ops.mul(other, self)
    def __truediv__(self, other: Any) -> Tensor: return ops.div(self, other)
    def __rtruediv__(self, other: Any) -> Tensor: return ops.div(other, self)
    def __pow__(self, other: Any) -> Tensor: return ops.pow(self, other)
    def __rpow__(self, other: Any) -> Tensor: return ops.pow(other, self)
    def __matmul__(self, other: Any) -> Tensor: return ops.matmul(self, other)
    def __rmatmul__(self, other: Any) -> Tensor: return ops.matmul(other, self)
    def __neg__(self) -> Tensor: return ops.neg(self)
    def __pos__(self) -> Tensor: return self

    # Comparisons are not differentiable: primitives with no VJP, giving boolean tensors.
    def __lt__(self, other: Any) -> Tensor: return ops.less(self, other)
    def __le__(self, other: Any) -> Tensor: return ops.less_equal(self, other)
    def __gt__(self, other: Any) -> Tensor: return ops.greater(self, other)
    def __ge__(self, other: Any) -> Tensor: return ops.greater_equal(self, other)
    # `t == None` is False and `t != None` True, as in PyTorch (not a comparison of values).
    def __eq__(self, other: object) -> Any:  # (a Tensor; a bool for None)
        return False if other is None else ops.equal(self, other)

    def __ne__(self, other: object) -> Any:
        return True if other is None else ops.not_equal(self, other)

    def __abs__(self) -> Tensor: return ops.abs(self)

    # Python's (and PyTorch's) conventions: x // y rounds toward -inf, x % y has y's sign.
    def __floordiv__(self, other: Any) -> Tensor: return _floor_divide(self, other)
    def __rfloordiv__(self, other: Any) -> Tensor: return _floor_divide(other, self)
    def __mod__(self, other: Any) -> Tensor: return _remainder(self, other)
    def __rmod__(self, other: Any) -> Tensor: return _remainder(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return ops.getitem(self, index=_plain_index(index))

    # --- functions as methods -----------------------------------------------------

    def exp(self) -> Tensor: return ops.exp(self)
    def log(self) -> Tensor: return ops.log(self)
    def sigmoid(self) -> Tensor: return ops.sigmoid(self)
    def tanh(self) -> Tensor: return ops.tanh(self)
    def relu(self) -> Tensor: return ops.relu(self)
    def sqrt(self) -> Tensor: return ops.sqrt(self)
    def abs(self) -> Tensor: return ops.abs(self)
    def softplus(self) -> Tensor: return ops.softplus(self)
    def log_sigmoid(self) -> Tensor: return ops.log_sigmoid(self)
    def sign(self) -> Tensor: return ops.sign(self)
    def leaky_relu(self, slope: float = 0.01) -> Tensor: return ops.leaky_relu(self, slope=slope)
    def clip(self, lo: Any = None, hi: Any = None) -> Tensor: return ops.clip(self, lo=lo, hi=hi)
    def maximum(self, other: Any) -> Tensor: return ops.maximum(self, other)
    def minimum(self, other: Any) -> Tensor: return ops.minimum(self, other)

    # dtype= and out= are there for numpy: `np.sum(t)` calls `t.sum(axis=None, dtype=None,
    # out=None)`, so np.sum, np.mean, np.max and np.min give a (differentiable) Tensor.
    def sum(self, axis: Axis = None, keepdims: bool = False, *, dtype: Any = None,
            out: None = None) -> Tensor:
        """Σ over `axis` (None: all); `dtype` converts first, as `torch.sum(x, dtype=)`."""
        return ops.sum(self._reducible("sum", dtype, out), axis=axis, keepdims=keepdims)

    def max(self, axis: Axis = None, keepdims: bool = False, *, out: None = None) -> Tensor:
        """The largest value over `axis`; ties share the gradient."""
        return ops.max(self._reducible("max", None, out), axis=axis, keepdims=keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False, *, dtype: Any = None,
             out: None = None) -> Tensor:
        """The mean over `axis` (None: all); `dtype` converts first."""
        return F.mean(self._reducible("mean", dtype, out), axis=axis, keepdims=keepdims)

    def min(self, axis: Axis = None, keepdims: bool = False, *, out: None = None) -> Tensor:
        """The smallest value over `axis`; ties share the gradient."""
        return F.min(self._reducible("min", None, out), axis=axis, keepdims=keepdims)

    def _reducible(self, name: str, dtype: Any, out: Any) -> Tensor:
        if out is not None:
            raise TypeError(f"{name}: out= is not supported (a tensor's result is a new "
                            f"tensor); use t.{name}(...) and assign its result")
        return self if dtype is None else self.astype(dtype)

    def var(self, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
        return F.var(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def std(self, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
        return F.std(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def logsumexp(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return ops.logsumexp(self, axis=axis, keepdims=keepdims)

    def softmax(self, axis: int = -1) -> Tensor: return F.softmax(self, axis=axis)
    def log_softmax(self, axis: int = -1) -> Tensor: return F.log_softmax(self, axis=axis)

    # Not differentiable: plain integer arrays, as in numpy.
    def argmax(self, axis: int | None = None) -> np.ndarray | np.intp:
        """Index of the largest value (a plain integer array, not differentiable)."""
        return np.argmax(self.data, axis)

    def argmin(self, axis: int | None = None) -> np.ndarray | np.intp:
        """Index of the smallest value (a plain integer array, not differentiable)."""
        return np.argmin(self.data, axis)

    def squeeze(self, axis: Axis = None) -> Tensor: return F.squeeze(self, axis)
    def unsqueeze(self, axis: int) -> Tensor: return F.unsqueeze(self, axis)
    def flatten(self, start_axis: int = 0) -> Tensor: return F.flatten(self, start_axis)

    def ravel(self) -> Tensor:
        """The values as one axis (a reshape to (-1,), differentiable), as numpy's ravel."""
        return ops.reshape(self, shape=(-1,))

    def astype(self, dtype: Any) -> Tensor:
        """This tensor in another dtype.

        To a floating dtype it is differentiable (the gradient is cast back). To an integer
        or bool dtype the result is cut from the graph, as PyTorch's ``x.long()``: only
        floating tensors carry gradients, and rounding has none to pass on.
        """
        dtype = _numeric_dtype(dtype)
        if dtype.kind != "f" and self.requires_grad:
            return ops.cast(self.detach(), dtype=dtype)
        return ops.cast(self, dtype=dtype)

    def broadcast_to(self, shape: tuple[int, ...]) -> Tensor:
        return ops.broadcast_to(self, shape=tuple(shape))

    def reshape(self, *shape: Any) -> Tensor:
        """The same values in a new shape: `x.reshape(2, 3)` or `x.reshape((2, 3))`."""
        if not shape:
            raise TypeError(f"reshape: give the new shape, e.g. x.reshape{self.shape}")
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.reshape(self, shape=shape)

    def transpose(self, *axes: Any) -> Tensor:
        """numpy's transpose: no axes reverses them, else `axes` is a permutation."""
        if not axes or axes == (None,):
            return ops.transpose(self, axes=None)
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.transpose(self, axes=axes)

    def swapaxes(self, a: int, b: int) -> Tensor:
        """Exchange two axes (a transpose)."""
        for axis in (a, b):
            if not -self.ndim <= axis < self.ndim:
                raise F.AxisError(f"swapaxes: axis {axis} is out of range for a tensor of "
                                  f"shape {self.shape}")
        axes = list(range(self.ndim))
        axes[a], axes[b] = axes[b], axes[a]
        return ops.transpose(self, axes=tuple(axes))

    @property
    def T(self) -> Tensor:
        """The axes reversed: the matrix transpose for 2-D."""
        return ops.transpose(self, axes=None)


#: What becomes a Tensor wherever one is expected: a Tensor, a numpy array, a Python number,
#: or nested lists of numbers (converted by `to_array`, the one conversion of user data).
TensorLike = Tensor | np.ndarray | np.generic | float | int | Sequence[Any]


def as_tensor(data: TensorLike, dtype: Any = None) -> Tensor:
    """`data` as a Tensor, sharing memory where it can, as `torch.as_tensor`.

    A Tensor comes back unchanged (converted with `astype` if `dtype` differs); an ndarray
    of the right dtype is shared, not copied: writing to it afterwards changes the tensor,
    and, before `backward()`, the gradients computed from it. Anything else is converted as
    by `Tensor(data, dtype=dtype)`. The library converts its data arguments (inputs,
    targets) with this, so a training step does not copy every mini-batch.

    >>> a = np.zeros(2)
    >>> t = as_tensor(a)
    >>> a[0] = 5.0
    >>> t
    Tensor([5., 0.])
    """
    if isinstance(data, Tensor):
        return data if dtype is None or np.dtype(dtype) == data.dtype else data.astype(dtype)
    return Tensor._make(to_array(data, dtype))


def _floor_divide(x: Any, y: Any) -> Tensor:
    """x // y rounded toward -inf, exactly as Python and `torch.floor_divide`; no gradient.
    Integer operands give an integer result; an integer division by zero is refused."""
    _refuse_integer_division_by_zero(x, y)
    return ops.floor_divide(x, y)


def _remainder(x: Any, y: Any) -> Tensor:
    """x % y with the sign of y, exactly as Python and `torch.remainder`; d/dx = 1,
    d/dy = -(x // y), PyTorch's gradients."""
    _refuse_integer_division_by_zero(x, y)
    return ops.remainder(x, y)


def _refuse_integer_division_by_zero(x: Any, y: Any) -> None:
    kind = np.result_type(*(_dtype_of(v) for v in (x, y)))
    if kind.kind in "iub" and not np.all(y.data if isinstance(y, Tensor) else y):
        raise ZeroDivisionError("integer division or modulo by zero (a tensor's // or %)")


def _dtype_of(x: Any) -> Any:
    """The dtype numpy's promotion sees for an operand (a Python number stays weak)."""
    if isinstance(x, Tensor):
        return x.dtype
    return x if isinstance(x, (int, float, bool)) else np.asarray(x).dtype


def _plain_index(index: Any) -> Any:
    """Indices may hold tensors; numpy wants arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        index = np.asarray(index)
        return index.astype(np.intp) if index.size == 0 else index  # x[[]] selects nothing
    return index


def _bump_versions(tensors: Any) -> None:
    """`Tensor._bump_version` of each of `tensors` at one tick of the clock (an optimizer's
    step: one loop, no method call per parameter)."""
    _Clock.now += 1
    now = _Clock.now
    for t in tensors:
        t._writes += 1
        t._written = now


from . import functional as F  # noqa: E402  (both need Tensor defined first)
from . import ops  # noqa: E402
