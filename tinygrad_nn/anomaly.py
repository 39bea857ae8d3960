"""Anomaly mode: stop at the first op whose forward or backward makes NaN or inf.

A NaN in a cost usually appeared many ops earlier; inside `detect_anomaly()`
every primitive checks its output and every VJP its gradient, and the error
names the op and the line of user code that created the tensor.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import numpy as np

from .tensor import Tensor, _GradMode

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class AnomalyError(FloatingPointError):
    """An op produced NaN or inf while `detect_anomaly()` was on."""


class detect_anomaly:
    """Context manager: check every forward and backward result for NaN and inf.

    >>> from tinygrad_nn import Tensor
    >>> x = Tensor([0.0, 1.0], requires_grad=True)
    >>> with detect_anomaly():
    ...     y = x.log()                                  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    tinygrad_nn.anomaly.AnomalyError: log forward produced -inf ... created at ...
    """

    def __init__(self) -> None:
        self._saved: list[bool] = []

    def __enter__(self) -> detect_anomaly:
        self._saved.append(_GradMode.anomaly)
        _GradMode.anomaly = True
        return self

    def __exit__(self, *exc: object) -> None:
        _GradMode.anomaly = self._saved.pop()


def user_frame() -> str:
    """'file:line in function' of the innermost caller outside this package."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno} in {frame.name}"
    return "an unknown place"


def _what(values: np.ndarray) -> str:
    if np.isnan(values).any():
        return "nan"
    return "-inf" if np.isneginf(values).any() else "inf"


def forward(op: Any, arrays: list, params: dict) -> np.ndarray:
    """Run op's forward; raise AnomalyError if it is not finite."""
    with np.errstate(all="ignore"):  # report it here, with the op's name
        data = np.asarray(op.forward(*arrays, **params))
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise AnomalyError(f"{op.name} forward produced {_what(data)} (output shape "
                           f"{data.shape}); the tensor was created at {user_frame()}")
    return data


def check_backward(node: Tensor, input_index: int, g: Any) -> None:
    """Raise AnomalyError if the VJP for input `input_index` of node gave NaN or inf."""
    values = g.data if isinstance(g, Tensor) else np.asarray(g)
    if not np.isfinite(values).all():
        raise AnomalyError(
            f"{node._op.name} backward produced {_what(values)} in the gradient of its input "  # type: ignore[union-attr]  # (an op's node)
            f"{input_index}; its output was created at {node._origin or 'an unknown place'}")
