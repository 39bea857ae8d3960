"""The Tensor: a numpy array that remembers how it was computed.

A Tensor made by a primitive keeps the primitive (`_op`), its input tensors
(`_parents`) and its non-tensor arguments (`_params`). Those three fields are the
whole computation graph; `autograd.py` walks it backwards.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

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

    def __new__(cls, func: Callable | None = None):
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
        def without_grad(*args, **kwargs):
            with no_grad():
                return func(*args, **kwargs)

        return without_grad


def is_grad_enabled() -> bool:
    """True unless inside `no_grad`."""
    return _GradMode.enabled


def to_array(data: Any, dtype: Any = None) -> np.ndarray:
    """The one place that turns user data into an ndarray.

    Python numbers and lists become float64 (unless `dtype` says otherwise);
    ndarrays keep their dtype. Strings, objects and ragged lists are refused.
    """
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (np.ndarray, np.generic)):
        array = np.asarray(data)
    else:
        try:
            array = np.asarray(data)
        except ValueError as err:  # numpy's message for ragged nesting
            raise ValueError(
                f"Tensor: cannot build a tensor from a ragged nested sequence "
                f"(sublists of different lengths): {err}"
            ) from None
        if array.dtype.kind in "iub":
            array = array.astype(np.float64)
    if array.dtype.kind not in "fiub":
        what = {"O": "objects", "U": "strings", "S": "bytes", "c": "complex numbers"}
        shown = what.get(array.dtype.kind, f"dtype {array.dtype}")
        raise TypeError(
            f"Tensor: cannot build a tensor from {type(data).__name__} data holding {shown} "
            f"(dtype {array.dtype}); expected numbers "
            f"(int, float, bool), a nested list of numbers or a numeric ndarray"
        )
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return array


class Tensor:
    """An n-dimensional array of numbers that records the computation graph.

    >>> x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    Tensor([2., 4., 6.])
    """

    __slots__ = ("data", "grad", "requires_grad", "_op", "_parents", "_arrays", "_params",
                 "_retain", "_origin", "__weakref__")
    # Make `ndarray + Tensor` return NotImplemented so Tensor.__radd__ runs.
    __array_ufunc__ = None

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        self.data = to_array(data, dtype)
        self.grad: Tensor | None = None
        self._op = None
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
              params: dict | None = None, arrays: tuple = ()) -> Tensor:
        """A primitive's output: skips validation, since data came from numpy.

        `parents` holds the input tensors (None for a constant such as a Python
        number) and `arrays` the input values the VJPs will need.
        """
        out = cls.__new__(cls)
        out.data, out.grad, out._retain, out._origin = data, None, False, None
        out._op, out._parents, out._arrays = op, parents, arrays
        out._params = _NO_PARAMS if params is None else params
        out.requires_grad = op is not None
        return out

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
        if _GradMode.tape is not None:
            _GradMode.tape.read_value(self, "item()")
        if self.data.size != 1:
            raise ValueError(
                f"item: only a tensor with exactly one element converts to a Python number, "
                f"this one has shape {self.shape}"
            )
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor._make(self.data)

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

        A scalar is seeded with 1; any other shape needs `gradient` of its shape,
        the vector in the vector–Jacobian product.
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

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

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

    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __pow__(self, other): return ops.pow(self, other)
    def __rpow__(self, other): return ops.pow(other, self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __neg__(self): return ops.neg(self)
    def __pos__(self): return self

    # Comparisons are not differentiable: primitives with no VJP, giving boolean tensors.
    def __lt__(self, other): return ops.less(self, other)
    def __le__(self, other): return ops.less_equal(self, other)
    def __gt__(self, other): return ops.greater(self, other)
    def __ge__(self, other): return ops.greater_equal(self, other)
    def __eq__(self, other): return ops.equal(self, other)  # type: ignore[override]
    def __ne__(self, other): return ops.not_equal(self, other)  # type: ignore[override]

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
    def leaky_relu(self, slope: float = 0.01) -> Tensor: return ops.leaky_relu(self, slope=slope)
    def clip(self, lo: Any = None, hi: Any = None) -> Tensor: return ops.clip(self, lo=lo, hi=hi)
    def maximum(self, other: Any) -> Tensor: return ops.maximum(self, other)
    def minimum(self, other: Any) -> Tensor: return ops.minimum(self, other)

    def sum(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return ops.sum(self, axis=axis, keepdims=keepdims)

    def max(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return ops.max(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return F.mean(self, axis=axis, keepdims=keepdims)

    def min(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return F.min(self, axis=axis, keepdims=keepdims)

    def var(self, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
        return F.var(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def std(self, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
        return F.std(self, axis=axis, keepdims=keepdims, ddof=ddof)

    def logsumexp(self, axis: Axis = None, keepdims: bool = False) -> Tensor:
        return ops.logsumexp(self, axis=axis, keepdims=keepdims)

    def softmax(self, axis: int = -1) -> Tensor: return F.softmax(self, axis=axis)
    def log_softmax(self, axis: int = -1) -> Tensor: return F.log_softmax(self, axis=axis)

    # Not differentiable: plain integer arrays, as in numpy.
    def argmax(self, axis: int | None = None) -> np.ndarray:
        """Index of the largest value (a plain integer array, not differentiable)."""
        return np.argmax(self.data, axis)

    def argmin(self, axis: int | None = None) -> np.ndarray:
        """Index of the smallest value (a plain integer array, not differentiable)."""
        return np.argmin(self.data, axis)

    def squeeze(self, axis: Axis = None) -> Tensor: return F.squeeze(self, axis)
    def unsqueeze(self, axis: int) -> Tensor: return F.unsqueeze(self, axis)
    def flatten(self, start_axis: int = 0) -> Tensor: return F.flatten(self, start_axis)

    def astype(self, dtype: Any) -> Tensor:
        """This tensor in another dtype (differentiable: the gradient is cast back)."""
        return ops.cast(self, dtype=np.dtype(dtype))

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


from . import functional as F  # noqa: E402  (both need Tensor defined first)
from . import ops  # noqa: E402
