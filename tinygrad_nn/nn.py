"""Layers of neurons made of autograd primitives: `Module`, `Linear`, `Conv2d`, pooling, batch
norm, activations, `Sequential`, with PyTorch's names, arguments and defaults.

A layer of sigmoid neurons computes a^l = σ(z^l) with z^l = w^l a^{l-1} + b^l (eq. 1.7 for
every neuron of the layer at once). Here that is `Sequential(Linear(n_in, n_out), Sigmoid())`.
The tutorial's convention holds throughout: the weight of a layer has shape (n_out, n_in), so
w_jk joins input k to neuron j, and examples are *rows*: a mini-batch x of shape (m, n_in)
gives z = x wᵀ + b of shape (m, n_out), one fused `ops.linear` call.

Nothing here computes a derivative by hand: `backward()` on a cost differentiates these
layers through the primitives' VJPs.

Also here: weight initialisation by name (`init_weights`; `Linear` and `Conv2d` default to
PyTorch's uniform U(-1/√fan_in, 1/√fan_in), the tutorial's `Network` keeps its N(0, 1)),
training and evaluation modes (`Module.train` / `Module.eval`, which `Dropout` and batch norm
look at), and a module's parameters and buffers as named arrays (`Module.state_dict`). The
file format (`save_state`, `load_state`, `save_checkpoint`, `load_checkpoint`) lives in
`checkpoint` and is re-exported here.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from . import _checks, ops
from . import functional as F
from .checkpoint import (  # noqa: F401  (the file format, re-exported: nn.save_state, ...)
    BUILT_BY,
    ModelFile,
    load_checkpoint,
    load_state,
    open_model_file,
    read_checkpoint,
    save_checkpoint,
    save_state,
    write_atomically,
)
from .tensor import Tensor, TensorLike, _GradMode, as_tensor, watch

__all__ = ["DEFAULT_INIT", "ELU", "GELU", "INITS", "AvgPool2d", "BatchNorm1d", "BatchNorm2d",
           "Conv2d", "Dropout", "Flatten", "LeakyReLU", "Linear", "MaxPool2d", "Module", "ReLU",
           "Sequential", "SiLU", "Sigmoid", "Softmax", "Tanh", "init_weights", "load_checkpoint",
           "load_state", "save_checkpoint", "save_state"]

RNG = np.random.Generator | int | None

# --- weight initialisation ------------------------------------------------------------------

#: Each normal scheme draws w ~ N(0, 1/d): standard normals divided by √d (a division rather
#: than a product, so "scaled" weights are bit-identical to those of earlier versions).
_WEIGHT_DIVISOR: dict[str, Callable[[int, int], float]] = {
    "standard": lambda n_in, n_out: 1.0,               # the tutorial: N(0, 1)
    "scaled": lambda n_in, n_out: n_in,                # the sequel: N(0, 1/n_in)
    "xavier": lambda n_in, n_out: (n_in + n_out) / 2,  # Glorot & Bengio: N(0, 2/(n_in + n_out))
    "he": lambda n_in, n_out: n_in / 2,                # He et al.: N(0, 2/n_in)
}
_ALIASES = {"glorot": "xavier", "kaiming": "he"}
#: "pytorch" (the default of `Linear` and `Conv2d`) first, then the normal schemes.
INITS = ("pytorch", "standard", "scaled", "xavier", "glorot", "he", "kaiming")
#: The default of `Linear` and `Conv2d`: PyTorch's, so that a model written the PyTorch way
#: trains as it does there. The tutorial's `Network` passes "standard" (N(0, 1)) itself.
DEFAULT_INIT = "pytorch"


def _generator(rng: RNG) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (n_out, n_in, *kernel), as PyTorch computes them.

    A convolution's weight (c_out, c_in, kh, kw) feeds each output from c_in·kh·kw inputs
    (fan_in) and sends each input to c_out·kh·kw outputs (fan_out):
    torch.nn.init._calculate_fan_in_and_fan_out.
    """
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def init_weights(shape: tuple[int, ...], scheme: str = "standard",
                 rng: RNG = None) -> np.ndarray:
    """Initial weights of shape (n_out, n_in) (or (c_out, c_in, kh, kw)), float64.

    fan_in is n_in (c_in·kh·kw for a convolution), fan_out n_out (c_out·kh·kw):

    - ``"pytorch"``: the *uniform* U(-1/√fan_in, 1/√fan_in), PyTorch's default for
      ``nn.Linear`` and ``nn.Conv2d`` (``kaiming_uniform_(w, a=√5)``: gain √(2/(1 + 5)) times
      the bound √(3/fan_in)). The default of `Linear` and `Conv2d`, not of this function.
    - ``"standard"``: N(0, 1), the tutorial's network.
    - ``"scaled"``: N(0, 1/fan_in), the sequel's: Var z ≈ 1 for inputs of variance 1, so
      sigmoid neurons do not start saturated.
    - ``"xavier"`` (alias ``"glorot"``): N(0, 2/(fan_in + fan_out)), Glorot and Bengio
      (2010); PyTorch's ``xavier_normal_`` (gain 1), not the uniform variant.
    - ``"he"`` (alias ``"kaiming"``): N(0, 2/fan_in), He et al. (2015), for ReLU layers;
      PyTorch's ``kaiming_normal_`` (fan_in, relu gain).

    `rng` is a `np.random.Generator` (consumed), a seed, or None for a fresh generator.

    >>> init_weights((3, 4), "he", rng=0).shape
    (3, 4)
    >>> bool(abs(init_weights((3, 4), "pytorch", rng=0)).max() <= 1 / 4 ** 0.5)
    True
    """
    if scheme not in INITS:
        raise ValueError(f"init_weights: scheme must be one of {', '.join(INITS)}, "
                         f"got {scheme!r}")
    if (not isinstance(shape, tuple) or len(shape) < 2
            or not all(isinstance(n, (int, np.integer)) and n >= 1 for n in shape)):
        raise ValueError(f"init_weights: shape must be (n_out, n_in) or (c_out, c_in, kh, kw), "
                         f"positive integers; got {shape!r}")
    fan_in, fan_out = _fans(shape)
    rng = _generator(rng)
    if scheme == "pytorch":
        bound = 1 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape)
    weight = rng.standard_normal(shape)
    weight /= np.sqrt(_WEIGHT_DIVISOR[_ALIASES.get(scheme, scheme)](fan_in, fan_out))
    return weight


def _init_bias(n: int, fan_in: int, scheme: str, rng: np.random.Generator) -> np.ndarray:
    """The bias that goes with `init_weights`' scheme, drawn after the weights (as PyTorch).

    "pytorch": U(-1/√fan_in, 1/√fan_in), PyTorch's ``reset_parameters``; "standard" and
    "scaled": N(0, 1), the tutorial's and the sequel's; "xavier" and "he": zeros, as in
    those papers.
    """
    if scheme == "pytorch":
        bound = 1 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, n)
    return rng.standard_normal(n) if scheme in ("standard", "scaled") else np.zeros(n)


_UNSET = object()


class Module:
    """A piece of a network: `forward` computes, `parameters` lists what learning adjusts.

    `parameters()` walks the attributes in the order they were assigned and collects, without
    duplicates, every Tensor that requires grad, the parameters of every sub-`Module`, and those
    of the Modules (or Tensors) held in a list or tuple attribute. The order is therefore
    deterministic: the same class builds the same list every time.

    Each parameter is named by its attribute path, as in PyTorch: ``weight``, ``head.bias``,
    ``layers.1.weight`` (item 1 of the list ``layers``); a `Sequential` names its layers
    ``0``, ``1``, ... A tensor reachable by two paths keeps the first name.

    `training` is True until `eval()` (or `train(False)`) switches this module and every
    sub-module to evaluation mode; only modules that behave differently (`Dropout`,
    `BatchNorm1d`/`BatchNorm2d`) read it.

    *Buffers* are state that is saved but not learned, as PyTorch's ``register_buffer``:
    batch norm's ``running_mean`` and ``running_var``. `register_buffer` names them; they are
    in `state_dict` (after the parameters of their module, PyTorch's order) and not in
    `parameters`.

    ``repr(module)`` is PyTorch's tree: ``Name(settings)`` for a module without sub-modules
    (the settings come from `extra_repr`), and for one with sub-modules a line
    ``(name): child`` for each, indented, so a custom Module prints its layers too.
    """

    training: bool = True  # a class default, so subclasses need not call an __init__
    _buffer_names: frozenset[str] = frozenset()  # set by register_buffer, per instance
    _assignments = 0  # counts assignments to any module's attributes
    _mode_switches = 0  # counts assignments of any module's training flag (train(), eval())

    def __setattr__(self, name: str, value: Any) -> None:
        # `jit` watches the count: a layer or parameter replaced makes it capture again,
        # since a captured step has those baked in. The training flag is watched apart, per
        # module called (see __call__), so evaluating between epochs keeps the capture.
        if name == "training":  # (train() or eval() inside a step: never replayed)
            Module._mode_switches += 1
        elif vars(self).get(name, _UNSET) is not value:
            Module._assignments += 1
        object.__setattr__(self, name, value)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _GradMode.tape is not None:  # `jit` capturing: a replay depends on the mode
            watch(self._training_flag)
        return self.forward(*args, **kwargs)

    def _training_flag(self) -> bool:
        return self.training

    def _members(self) -> Iterator[tuple[str, Any]]:
        """(name, value) for every attribute; a list's or tuple's items as name.0, name.1, ..."""
        for name, value in vars(self).items():
            if isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    yield f"{name}.{i}", item
            else:
                yield name, value

    def _walk(self, prefix: str) -> Iterator[tuple[str, Any]]:
        """Depth first: every sub-module, parameter and buffer, with its path from the root."""
        buffers = self._buffer_names
        for name, value in self._members():
            if isinstance(value, Module):
                yield prefix + name, value
                yield from value._walk(f"{prefix}{name}.")
            elif isinstance(value, Tensor) and (value.requires_grad or name in buffers):
                yield prefix + name, value

    def register_buffer(self, name: str, tensor: Tensor) -> None:
        """Keep `tensor` as the attribute `name`, saved in `state_dict` but not a parameter.

        PyTorch's ``register_buffer``: state a module updates itself (batch norm's running
        statistics), never by an optimizer. Update it in place with `ops` and ``out=`` (the
        jit replays only primitives), not by assigning a new tensor at every step.
        """
        if not isinstance(tensor, Tensor) or tensor.requires_grad:
            raise TypeError(f"register_buffer: {name!r} must be a Tensor that does not require "
                            f"grad (a parameter is an attribute that requires grad)")
        self._buffer_names = self._buffer_names | {name}
        setattr(self, name, tensor)

    def named_buffers(self) -> list[tuple[str, Tensor]]:
        """(path, tensor) for every buffer of this module and its sub-modules, each once."""
        return [(name, t) for name, t in self._named_tensors() if not t.requires_grad]

    def buffers(self) -> list[Tensor]:
        """Every buffer (see `register_buffer`), each once, in `state_dict` order."""
        return [t for _, t in self.named_buffers()]

    def _named_tensors(self) -> list[tuple[str, Tensor]]:
        """Parameters and buffers by path, each tensor once: the order of `state_dict`."""
        seen: set[int] = set()
        named = []
        for name, value in self._walk(""):
            if isinstance(value, Tensor) and id(value) not in seen:
                seen.add(id(value))
                named.append((name, value))
        return named

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        """(path, tensor) for every parameter, each tensor once, in `parameters()` order."""
        return [(name, t) for name, t in self._named_tensors() if t.requires_grad]

    def parameters(self) -> list[Tensor]:
        """Every trainable tensor of this module and its sub-modules, each once, in order."""
        return [p for _, p in self.named_parameters()]

    def modules(self) -> list[Module]:
        """This module and every sub-module, each once, depth first."""
        found = {id(self): self}
        for _, value in self._walk(""):
            if isinstance(value, Module):
                found.setdefault(id(value), value)
        return list(found.values())

    def train(self, mode: bool = True) -> Module:
        """Set `training` on this module and every sub-module; returns self."""
        mode = _checks.flag("train", "mode", mode)
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode (`train(False)`): dropout off. Returns self."""
        return self.train(False)

    def extra_repr(self) -> str:
        """The settings shown inside ``Name(...)`` by `repr` (PyTorch's hook); "" here."""
        return ""

    def _children(self) -> list[tuple[str, Module]]:
        """The direct sub-modules, by name (a list's items as name.0, name.1, ...)."""
        return [(name, value) for name, value in self._members() if isinstance(value, Module)]

    def __repr__(self) -> str:
        # PyTorch's Module.__repr__: the settings alone on one line; with sub-modules, the
        # settings and then "(name): child" each on a line of its own, indented by two.
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        children = [f"({name}): " + repr(child).replace("\n", "\n  ")
                    for name, child in self._children()]
        if len(lines) == 1 and not children:
            return f"{type(self).__name__}({lines[0]})"
        if not lines and not children:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines + children) + "\n)"

    def zero_grad(self) -> None:
        """Forget the gradients of every parameter (set `.grad` to None, as PyTorch does)."""
        params = self.parameters()
        if _GradMode.tape is not None:  # `jit` capturing: it may have to put them back
            _GradMode.tape.note_grads(params, clearing=True)
        for p in params:
            p.grad = None

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """A copy of every parameter's and buffer's array, by path (see the class docstring).

        PyTorch's order: depth first, each module's tensors in the order they were assigned
        (batch norm: ``weight``, ``bias``, ``running_mean``, ``running_var``,
        ``num_batches_tracked``).
        """
        return OrderedDict((name, t.data.copy()) for name, t in self._named_tensors())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy the arrays of `state` into this module's parameters and buffers, in place.

        The names must be exactly those of `state_dict()` and every shape must match; otherwise
        a ValueError lists the missing and unexpected names and the shape mismatches, and no
        parameter is changed. Each tensor keeps its dtype (values are cast into it) and its
        identity, so an optimizer holding the parameters sees the new values.

        A finite value beyond the range of a parameter's dtype (1e39 into float32) is refused,
        naming the parameter, the value and its index: torch's ``load_state_dict`` stores inf
        there silently, a wrong result we would rather not give. An inf or NaN in the state
        is kept as it is; a value that merely rounds (to float32's largest, say) is loaded.
        """
        own = dict(self._named_tensors())
        problems = []
        missing = [name for name in own if name not in state]
        unexpected = [name for name in state if name not in own]
        if missing:
            problems.append(f"missing keys {missing}")
        if unexpected:
            problems.append(f"unexpected keys {unexpected}")
        arrays = {}
        for name, p in own.items():
            if name not in state:
                continue
            value = state[name]
            value = np.asarray(value.data if isinstance(value, Tensor) else value)
            if value.shape != p.shape:
                problems.append(f"{name!r} has shape {value.shape} in the state but {p.shape} "
                                f"in the module")
            elif value.dtype.kind not in "fiu":
                problems.append(f"{name!r} holds {value.dtype}, not numbers")
            else:
                value, problem = _cast_into(value, p.dtype, name)
                if problem:
                    problems.append(problem)
            arrays[name] = value
        if problems:
            raise ValueError(f"load_state_dict: the state does not fit this "
                             f"{type(self).__name__}: {'; '.join(problems)}")
        for name, p in own.items():
            p.data[...] = arrays[name]


def _cast_into(value: np.ndarray, dtype: np.dtype, name: str) -> tuple[np.ndarray, str | None]:
    """`value` cast to `dtype`, and a problem if a finite value became inf in the cast."""
    with np.errstate(over="ignore"):  # overflow is checked just below, and named
        cast = value.astype(dtype)
    if dtype.kind == "f" and value.dtype.kind in "fiu":
        overflowed = np.isinf(cast) & ~np.isinf(value)
        if overflowed.any():
            where = tuple(int(i) for i in np.argwhere(overflowed)[0])
            return cast, (f"{name!r} holds {value[where]!s} at index {where}, beyond "
                          f"the range of its dtype {dtype} (largest {np.finfo(dtype).max:.6g})")
    return cast, None


class Linear(Module):
    """z = x wᵀ + b: the weighted inputs of a layer of n_out neurons with n_in inputs each.

    PyTorch's ``nn.Linear(in_features, out_features)``, named as in the tutorial. `weight` has
    shape (n_out, n_in) (w_jk joins input k to neuron j) and `bias` shape (n_out,), both
    Tensors that require grad (``bias=False``: no bias, z = x wᵀ). Initialisation, from `rng`
    (a `np.random.Generator`, a seed, or None for a fresh generator), by the name `init` (see
    `init_weights` for the formulas):

    - ``"pytorch"``, **the default**: weights and biases from U(-1/√n_in, 1/√n_in), PyTorch's
      default, so that ``Sequential(Linear(64, 32), ReLU(), Linear(32, 10))`` trains as it
      does in PyTorch.
    - ``"standard"``: weights and biases from N(0, 1), the tutorial's network (`Network`
      passes it; it was this class's default in earlier versions). With it, z of a layer
      with n_in inputs starts with a standard deviation near √n_in: sigmoid neurons start
      saturated and a ReLU model trained with Adam's small steps learns slowly.
    - ``"scaled"``: weights from N(0, 1/n_in), biases from N(0, 1), so that z starts with a
      variance of about 1 whatever n_in is and sigmoid neurons do not start saturated.
    - ``"xavier"``/``"glorot"`` (N(0, 2/(n_in + n_out))) and ``"he"``/``"kaiming"``
      (N(0, 2/n_in)): biases start at 0, as in those papers.

    `forward` accepts one example of shape (n_in,) or a mini-batch of rows (m, n_in).

    >>> layer = Linear(3, 2, rng=0)
    >>> layer.weight.shape, layer.bias.shape, layer(np.ones((5, 3))).shape
    ((2, 3), (2,), (5, 2))
    >>> layer
    Linear(n_in=3, n_out=2, init='pytorch')
    """

    def __init__(self, n_in: int, n_out: int, init: str = DEFAULT_INIT,
                 rng: np.random.Generator | int | None = None, *, bias: bool = True) -> None:
        n_in = _checks.count("Linear", "n_in", n_in, 1)
        n_out = _checks.count("Linear", "n_out", n_out, 1)
        _checks.one_of("Linear", "init", init, INITS)
        rng = _generator(rng)
        self.weight = Tensor(init_weights((n_out, n_in), init, rng), requires_grad=True)
        self.bias = (Tensor(_init_bias(n_out, n_in, init, rng), requires_grad=True) if bias
                     else None)
        self.n_in, self.n_out, self.init = n_in, n_out, init

    def forward(self, x: TensorLike) -> Tensor:
        if self.bias is None:
            return ops.matmul(x, ops.transpose(self.weight, axes=None))
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"n_in={self.n_in}, n_out={self.n_out}, init={self.init!r}"
                + ("" if self.bias is not None else ", bias=False"))


class Conv2d(Module):
    """A 2-D convolution (cross-correlation, as in PyTorch): PyTorch's ``nn.Conv2d``.

    For x of shape (n, in_channels, h, w), out[i, o] = bias[o] + Σ_c Σ_{u,v}
    weight[o, c, u, v] · x_padded[i, c, s·y + u, s·x + v]: each output neuron is a neuron of
    eq. 1.7 that sees a kh × kw patch of every input channel, and every position of a
    channel shares the same weights (Nielsen's chapter 6, "local receptive fields" and
    "shared weights"). `kernel_size`, `stride` and `padding` (zeros) are ints or pairs.

    `weight` has shape (out_channels, in_channels, kh, kw) and `bias` (out_channels,).
    Initialisation as `Linear` with fan_in = in_channels · kh · kw: by default PyTorch's
    U(-1/√fan_in, 1/√fan_in) for both; `init` selects another scheme of `init_weights`.

    >>> conv = Conv2d(1, 4, 3, padding=1, rng=0)
    >>> conv.weight.shape, conv(np.zeros((2, 1, 8, 8))).shape
    ((4, 1, 3, 3), (2, 4, 8, 8))
    >>> conv
    Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 bias: bool = True, *, init: str = DEFAULT_INIT, rng: RNG = None) -> None:
        self.in_channels = _checks.count("Conv2d", "in_channels", in_channels, 1)
        self.out_channels = _checks.count("Conv2d", "out_channels", out_channels, 1)
        self.kernel_size = _checks.pair("Conv2d", "kernel_size", kernel_size)
        self.stride = _checks.pair("Conv2d", "stride", stride)
        self.padding = _checks.pair("Conv2d", "padding", padding, 0)
        _checks.one_of("Conv2d", "init", init, INITS)
        rng = _generator(rng)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self.weight = Tensor(init_weights(shape, init, rng), requires_grad=True)
        fan_in = self.in_channels * math.prod(self.kernel_size)
        self.bias = (Tensor(_init_bias(self.out_channels, fan_in, init, rng), requires_grad=True)
                     if bias else None)
        self.init = init

    def forward(self, x: TensorLike) -> Tensor:
        return F.conv2d(_tensor(x), self.weight, self.bias, stride=self.stride,
                        padding=self.padding)

    def extra_repr(self) -> str:
        # PyTorch's: positional channels, then the pairs; bias and init only when not default
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")
        if self.bias is None:
            text += ", bias=False"
        return text if self.init == DEFAULT_INIT else f"{text}, init={self.init!r}"


class _Pool2d(Module):
    """What `MaxPool2d` and `AvgPool2d` share: PyTorch's arguments (stride defaults to the
    kernel size, padding to 0, each an int or a pair)."""

    _pool: Callable[..., Tensor]

    def __init__(self, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        who = type(self).__name__
        self.kernel_size = _checks.pair(who, "kernel_size", kernel_size)
        self.stride = self.kernel_size if stride is None else _checks.pair(who, "stride", stride)
        self.padding = _checks.pair(who, "padding", padding, 0)
        for k, p in zip(self.kernel_size, self.padding):
            if p > k // 2:  # PyTorch's rule: a window must hold at least one input value
                raise ValueError(f"{who}: padding {self.padding} must be at most half the "
                                 f"kernel size {self.kernel_size}")

    def extra_repr(self) -> str:
        def show(pair: tuple[int, int]) -> Any:
            return pair[0] if pair[0] == pair[1] else pair
        return (f"kernel_size={show(self.kernel_size)}, stride={show(self.stride)}, "
                f"padding={show(self.padding)}")


class MaxPool2d(_Pool2d):
    """The largest value of each kernel_size window of each channel: PyTorch's ``nn.MaxPool2d``.

    For x of shape (n, c, h, w). The gradient goes to the first maximum of each window (in
    row-major order), as PyTorch's; padding is -inf, so it is never the maximum.

    >>> MaxPool2d(2)(np.arange(16.0).reshape(1, 1, 4, 4)).data[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """

    def forward(self, x: TensorLike) -> Tensor:
        return F.max_pool2d(_tensor(x), self.kernel_size, stride=self.stride,
                            padding=self.padding)


class AvgPool2d(_Pool2d):
    """The mean of each kernel_size window of each channel: PyTorch's ``nn.AvgPool2d``.

    For x of shape (n, c, h, w); the zeros of padding count in the mean (PyTorch's
    ``count_include_pad=True``).
    """

    def forward(self, x: TensorLike) -> Tensor:
        return F.avg_pool2d(_tensor(x), self.kernel_size, stride=self.stride,
                            padding=self.padding)


class _BatchNorm(Module):
    """Batch normalisation (Ioffe & Szegedy, 2015), as PyTorch's ``nn.BatchNorm1d/2d``.

    Each channel c (axis 1) is normalised over the batch and the spatial axes,
    y = (x - μ_c) / √(σ²_c + eps) · weight[c] + bias[c]:

    - in training mode μ and σ² are the batch's mean and *biased* variance, and the running
      estimates move towards the batch's by `momentum`: running ← (1 - momentum)·running +
      momentum·batch, with the *unbiased* variance (n/(n - 1)·σ²) for ``running_var``;
    - in evaluation mode (`eval()`) μ and σ² are ``running_mean`` and ``running_var``.

    `weight` (ones) and `bias` (zeros) are parameters of shape (num_features,);
    ``running_mean`` (zeros), ``running_var`` (ones) and ``num_batches_tracked`` are buffers:
    in `state_dict`, not in `parameters`. They are updated in place by primitives
    (`functional.batch_norm`), so a `jit` replay updates them too.
    """

    _ndims: tuple[int, ...] = ()
    running_mean: Tensor  # the buffers, set by `register_buffer`
    running_var: Tensor
    num_batches_tracked: Tensor

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        who = type(self).__name__
        self.num_features = _checks.count(who, "num_features", num_features, 1)
        if momentum is None:
            raise ValueError(f"{who}: momentum=None (PyTorch's cumulative average) is not "
                             f"supported; give a number in [0, 1]")
        self.eps = _checks.number(who, "eps", eps, positive=True)
        self.momentum = _checks.fraction(who, "momentum", momentum, closed=True)
        self.weight = Tensor(np.ones(self.num_features), requires_grad=True)
        self.bias = Tensor(np.zeros(self.num_features), requires_grad=True)
        self.register_buffer("running_mean", Tensor(np.zeros(self.num_features)))
        self.register_buffer("running_var", Tensor(np.ones(self.num_features)))
        self.register_buffer("num_batches_tracked", Tensor(np.zeros((), dtype=np.int64)))

    def forward(self, x: TensorLike) -> Tensor:
        x = _tensor(x)
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            want = " or ".join(f"{n}-D" for n in self._ndims)
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected a {want} "
                             f"input with {self.num_features} channels on axis 1, got shape "
                             f"{x.shape}")
        if self.training:  # a counter, through a primitive so that a replay counts too
            count = self.num_batches_tracked.data
            ops.add(count, 1, out=count)
        sequences = x.ndim == 3  # (n, c, length): normalised as images (n, c, length, 1)
        if sequences:
            x = ops.reshape(x, shape=(*x.shape, 1))
        y = F.batch_norm(x, self.running_mean.data, self.running_var.data, self.weight,
                         self.bias, training=self.training, momentum=self.momentum,
                         eps=self.eps)
        return ops.reshape(y, shape=y.shape[:3]) if sequences else y

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps!r}, momentum={self.momentum!r}"


class BatchNorm1d(_BatchNorm):
    """`_BatchNorm` over rows (n, c) or sequences (n, c, length): PyTorch's ``nn.BatchNorm1d``.

    >>> bn = BatchNorm1d(3)
    >>> [name for name in bn.state_dict()]
    ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    """

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """`_BatchNorm` over images (n, c, h, w), per channel: PyTorch's ``nn.BatchNorm2d``."""

    _ndims = (4,)


class Sigmoid(Module):
    """σ(z) = 1/(1 + e^{-z}), eq. 1.6, element-wise: the tutorial's neuron."""

    def forward(self, z: TensorLike) -> Tensor:
        return ops.sigmoid(z)


class Tanh(Module):
    """tanh(z) = 2σ(2z) - 1, element-wise: a sigmoid stretched to (-1, 1)."""

    def forward(self, z: TensorLike) -> Tensor:
        return ops.tanh(z)


class ReLU(Module):
    """max(z, 0), element-wise; its derivative at 0 is taken as 0."""

    def forward(self, z: TensorLike) -> Tensor:
        return ops.relu(z)


class GELU(Module):
    """z·Φ(z) with Φ the standard normal's distribution function (Hendrycks & Gimpel, 2016):
    PyTorch's ``nn.GELU()`` (the exact form, approximate='none'), element-wise."""

    def forward(self, z: TensorLike) -> Tensor:
        return F.gelu(_tensor(z))


class SiLU(Module):
    """z·σ(z), element-wise ("swish"): PyTorch's ``nn.SiLU``."""

    def forward(self, z: TensorLike) -> Tensor:
        return F.silu(_tensor(z))


class ELU(Module):
    """z for z > 0, alpha·(e^z - 1) otherwise, element-wise: PyTorch's ``nn.ELU(alpha=1.0)``."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = float(alpha)

    def forward(self, z: TensorLike) -> Tensor:
        return F.elu(_tensor(z), alpha=self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha!r}"


def _tensor(x: Any) -> Tensor:
    # A layer's input is data, not a parameter: shared, not copied (as torch.as_tensor),
    # so a mini-batch is not copied once more at every layer.
    return as_tensor(x)


class LeakyReLU(Module):
    """z for z > 0, slope·z otherwise, element-wise; its derivative at 0 is taken as `slope`."""

    def __init__(self, slope: float = 0.01) -> None:
        self.slope = float(slope)

    def forward(self, z: TensorLike) -> Tensor:
        return ops.leaky_relu(_tensor(z), slope=self.slope)

    def extra_repr(self) -> str:
        return f"slope={self.slope!r}"


class Softmax(Module):
    """softmax(z)_j = e^{z_j} / Σ_k e^{z_k} along `axis` (each row of a mini-batch by default).

    For training, prefer raw logits with `costs.cross_entropy`, which folds the softmax into
    the loss through `log_softmax` and never takes log 0.
    """

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, z: TensorLike) -> Tensor:
        return F.softmax(_tensor(z), axis=self.axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class Flatten(Module):
    """Merge the axes from `start_axis` on into one: (m, 8, 8) images become (m, 64) rows."""

    def __init__(self, start_axis: int = 1) -> None:
        self.start_axis = start_axis

    def forward(self, x: TensorLike) -> Tensor:
        return F.flatten(_tensor(x), self.start_axis)

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}"


class Dropout(Module):
    """Inverted dropout (Srivastava et al. 2014): out = x ⊙ m / (1 - p) in training mode.

    Each mask entry m_i is 1 with probability 1 - p and 0 with probability p, drawn as
    ``rng.random(x.shape) >= p``, a fresh mask on every call; the survivors are scaled by
    1/(1 - p) so that E[out] = x and nothing needs rescaling at test time. In evaluation mode
    (`eval()`) the output is x itself. `rng` is a `np.random.Generator` or a seed (None for a
    fresh generator): the same seed gives the same sequence of masks.

    >>> drop = Dropout(0.5, rng=0)
    >>> drop(np.ones(6)).data                      # kept entries scaled by 1/(1 - 0.5)
    array([2., 0., 0., 0., 2., 2.])
    >>> drop.eval()(np.ones(6)).data
    array([1., 1., 1., 1., 1., 1.])
    """

    def __init__(self, p: float = 0.5, rng: RNG = None) -> None:
        self.p = _checks.fraction("Dropout", "p (the probability of dropping an element)", p)
        self.rng = _generator(rng)

    def forward(self, x: TensorLike) -> Tensor:
        x = _tensor(x)
        if not self.training or self.p == 0:
            return x
        # Drawn and scaled through primitives, so a `jit` replay draws a fresh mask too.
        keep = ops.greater_equal(ops.uniform(shape=x.shape, rng=self.rng), self.p)
        dtype = x.dtype if x.dtype.kind == "f" else np.float64
        return ops.mul(x, ops.cast(ops.div(keep, 1 - self.p), dtype=dtype))  # a constant

    def extra_repr(self) -> str:
        return f"p={self.p!r}"


class Sequential(Module):
    """Modules applied one after another: the output of each is the input of the next.

    >>> net = Sequential(Linear(2, 3, rng=0), Sigmoid(), Linear(3, 1, rng=1), Sigmoid())
    >>> [tuple(p.shape) for p in net.parameters()]
    [(3, 2), (3,), (1, 3), (1,)]
    >>> net
    Sequential(
      (0): Linear(n_in=2, n_out=3, init='pytorch')
      (1): Sigmoid()
      (2): Linear(n_in=3, n_out=1, init='pytorch')
      (3): Sigmoid()
    )
    """

    def __init__(self, *layers: Module) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} is a {type(layer).__name__}, "
                                f"not a Module")
        self.layers = tuple(layers)  # replace a layer by assigning `layers`: jit sees that

    def _members(self) -> Iterator[tuple[str, Any]]:
        # PyTorch's names: a Sequential's layers are "0", "1", ..., not "layers.0".
        for i, layer in enumerate(self.layers):
            yield str(i), layer
        for name, value in super()._members():
            if not name.startswith("layers."):
                yield name, value

    def forward(self, x: TensorLike) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

