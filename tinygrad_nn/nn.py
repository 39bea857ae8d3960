"""Layers of neurons made of autograd primitives: `Module`, `Linear`, activations, `Sequential`.

A layer of sigmoid neurons computes a^l = σ(z^l) with z^l = w^l a^{l-1} + b^l (eq. 1.7 for
every neuron of the layer at once). Here that is `Sequential(Linear(n_in, n_out), Sigmoid())`.
The tutorial's convention holds throughout: the weight of a layer has shape (n_out, n_in), so
w_jk joins input k to neuron j, and examples are *rows*: a mini-batch x of shape (m, n_in)
gives z = x wᵀ + b of shape (m, n_out), one fused `ops.linear` call.

Nothing here computes a derivative by hand: `backward()` on a cost differentiates these
layers through the primitives' VJPs.

Also here: weight initialisation by name (`init_weights`), training and evaluation modes
(`Module.train` / `Module.eval`, which only `Dropout` looks at), and a module's parameters as
named arrays (`Module.state_dict`, `save_state`, `load_state`).
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
import tempfile
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from numbers import Real
from typing import IO, Any

import numpy as np

try:  # zipfile reads LZMA members when the module exists; its errors are damage too
    import lzma
except ImportError:  # pragma: no cover (a Python built without liblzma)
    lzma = None  # type: ignore[assignment]

from . import functional as F
from . import ops
from .tensor import Tensor, _GradMode, as_tensor, watch

__all__ = ["INITS", "Dropout", "Flatten", "LeakyReLU", "Linear", "Module", "ReLU", "Sequential",
           "Sigmoid", "Softmax", "Tanh", "init_weights", "load_state", "save_state"]

RNG = np.random.Generator | int | None

# --- weight initialisation ------------------------------------------------------------------

#: Each scheme draws w ~ N(0, 1/d): standard normals divided by √d (a division rather than a
#: product, so "scaled" weights are bit-identical to those of earlier versions).
_WEIGHT_DIVISOR: dict[str, Callable[[int, int], float]] = {
    "standard": lambda n_in, n_out: 1.0,               # the tutorial: N(0, 1)
    "scaled": lambda n_in, n_out: n_in,                # the sequel: N(0, 1/n_in)
    "xavier": lambda n_in, n_out: (n_in + n_out) / 2,  # Glorot & Bengio: N(0, 2/(n_in + n_out))
    "he": lambda n_in, n_out: n_in / 2,                # He et al.: N(0, 2/n_in)
}
_ALIASES = {"glorot": "xavier", "kaiming": "he"}
INITS = ("standard", "scaled", "xavier", "glorot", "he", "kaiming")


def _generator(rng: RNG) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def init_weights(shape: tuple[int, int], scheme: str = "standard",
                 rng: RNG = None) -> np.ndarray:
    """Initial weights of shape (n_out, n_in), float64, drawn from a *normal* N(0, σ²):

    - ``"standard"``: σ² = 1, the tutorial's network.
    - ``"scaled"``: σ² = 1/n_in, the sequel's: Var z ≈ 1 for inputs of variance 1, so
      sigmoid neurons do not start saturated.
    - ``"xavier"`` (alias ``"glorot"``): σ² = 2/(n_in + n_out), Glorot and Bengio (2010);
      PyTorch's ``xavier_normal_`` (gain 1), not the uniform variant.
    - ``"he"`` (alias ``"kaiming"``): σ² = 2/n_in, He et al. (2015), for ReLU layers; PyTorch's
      ``kaiming_normal_`` (fan_in, relu gain).

    `rng` is a `np.random.Generator` (consumed), a seed, or None for a fresh generator.

    >>> init_weights((3, 4), "he", rng=0).shape
    (3, 4)
    """
    if scheme not in INITS:
        raise ValueError(f"init_weights: scheme must be one of {', '.join(INITS)}, "
                         f"got {scheme!r}")
    if (not isinstance(shape, tuple) or len(shape) != 2
            or not all(isinstance(n, (int, np.integer)) and n >= 1 for n in shape)):
        raise ValueError(f"init_weights: shape must be (n_out, n_in), two positive integers; "
                         f"got {shape!r}")
    n_out, n_in = shape
    weight = _generator(rng).standard_normal(shape)
    weight /= np.sqrt(_WEIGHT_DIVISOR[_ALIASES.get(scheme, scheme)](n_in, n_out))
    return weight


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
    sub-module to evaluation mode; only modules that behave differently (`Dropout`) read it.
    """

    training: bool = True  # a class default, so subclasses need not call an __init__
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
        watch(self._training_flag)  # (a no-op unless `jit` is capturing)
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
        """Depth first: every sub-module and every parameter, with its path from the root."""
        for name, value in self._members():
            if isinstance(value, Module):
                yield prefix + name, value
                yield from value._walk(f"{prefix}{name}.")
            elif isinstance(value, Tensor) and value.requires_grad:
                yield prefix + name, value

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        """(path, tensor) for every parameter, each tensor once, in `parameters()` order."""
        seen: set[int] = set()
        named = []
        for name, value in self._walk(""):
            if isinstance(value, Tensor) and id(value) not in seen:
                seen.add(id(value))
                named.append((name, value))
        return named

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
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode must be True or False, got {mode!r}")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode (`train(False)`): dropout off. Returns self."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget the gradients of every parameter (set `.grad` to None, as PyTorch does)."""
        params = self.parameters()
        if _GradMode.tape is not None:  # `jit` capturing: it may have to put them back
            _GradMode.tape.note_grads(params, clearing=True)
        for p in params:
            p.grad = None

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """A copy of every parameter's array, by path (see the class docstring), in order."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Copy the arrays of `state` into this module's parameters, in place.

        The names must be exactly those of `state_dict()` and every shape must match; otherwise
        a ValueError lists the missing and unexpected names and the shape mismatches, and no
        parameter is changed. Each tensor keeps its dtype (values are cast into it) and its
        identity, so an optimizer holding the parameters sees the new values.

        A finite value beyond the range of a parameter's dtype (1e39 into float32) is refused,
        naming the parameter, the value and its index: torch's ``load_state_dict`` stores inf
        there silently, a wrong result we would rather not give. An inf or NaN in the state
        is kept as it is; a value that merely rounds (to float32's largest, say) is loaded.
        """
        own = dict(self.named_parameters())
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


def _positive_int(value: Any, name: str, who: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer, got {value!r}")
    return int(value)


class Linear(Module):
    """z = x wᵀ + b: the weighted inputs of a layer of n_out neurons with n_in inputs each.

    `weight` has shape (n_out, n_in) (w_jk joins input k to neuron j) and `bias` shape (n_out,),
    both Tensors that require grad. Initialisation, from `rng` (a `np.random.Generator`, a seed,
    or None for a fresh generator), by the name `init` (see `init_weights` for the formulas):

    - ``"standard"``: weights and biases drawn from N(0, 1), as in the tutorial's network.
    - ``"scaled"``: weights from N(0, 1/n_in), biases from N(0, 1), so that z starts with a
      variance of about 1 whatever n_in is and sigmoid neurons do not start saturated.
    - ``"xavier"``/``"glorot"`` (N(0, 2/(n_in + n_out))) and ``"he"``/``"kaiming"``
      (N(0, 2/n_in)): biases start at 0, as in those papers.

    `forward` accepts one example of shape (n_in,) or a mini-batch of rows (m, n_in).

    >>> layer = Linear(3, 2, rng=0)
    >>> layer.weight.shape, layer.bias.shape, layer(np.ones((5, 3))).shape
    ((2, 3), (2,), (5, 2))
    """

    def __init__(self, n_in: int, n_out: int, init: str = "standard",
                 rng: np.random.Generator | int | None = None) -> None:
        n_in = _positive_int(n_in, "n_in", "Linear")
        n_out = _positive_int(n_out, "n_out", "Linear")
        if init not in INITS:
            raise ValueError(f"Linear: init must be one of {', '.join(INITS)}, got {init!r}")
        rng = _generator(rng)
        weight = init_weights((n_out, n_in), init, rng)
        bias = rng.standard_normal(n_out) if init in ("standard", "scaled") else np.zeros(n_out)
        self.weight = Tensor(weight, requires_grad=True)
        self.bias = Tensor(bias, requires_grad=True)
        self.n_in, self.n_out, self.init = n_in, n_out, init

    def forward(self, x: Any) -> Tensor:
        return ops.linear(x, self.weight, self.bias)

    def __repr__(self) -> str:
        return f"Linear(n_in={self.n_in}, n_out={self.n_out}, init={self.init!r})"


class Sigmoid(Module):
    """σ(z) = 1/(1 + e^{-z}), eq. 1.6, element-wise: the tutorial's neuron."""

    def forward(self, z: Any) -> Tensor:
        return ops.sigmoid(z)

    def __repr__(self) -> str:
        return "Sigmoid()"


class Tanh(Module):
    """tanh(z) = 2σ(2z) - 1, element-wise: a sigmoid stretched to (-1, 1)."""

    def forward(self, z: Any) -> Tensor:
        return ops.tanh(z)

    def __repr__(self) -> str:
        return "Tanh()"


class ReLU(Module):
    """max(z, 0), element-wise; its derivative at 0 is taken as 0."""

    def forward(self, z: Any) -> Tensor:
        return ops.relu(z)

    def __repr__(self) -> str:
        return "ReLU()"


def _tensor(x: Any) -> Tensor:
    # A layer's input is data, not a parameter: shared, not copied (as torch.as_tensor),
    # so a mini-batch is not copied once more at every layer.
    return as_tensor(x)


class LeakyReLU(Module):
    """z for z > 0, slope·z otherwise, element-wise; its derivative at 0 is taken as `slope`."""

    def __init__(self, slope: float = 0.01) -> None:
        self.slope = float(slope)

    def forward(self, z: Any) -> Tensor:
        return ops.leaky_relu(_tensor(z), slope=self.slope)

    def __repr__(self) -> str:
        return f"LeakyReLU(slope={self.slope!r})"


class Softmax(Module):
    """softmax(z)_j = e^{z_j} / Σ_k e^{z_k} along `axis` (each row of a mini-batch by default).

    For training, prefer raw logits with `costs.cross_entropy`, which folds the softmax into
    the loss through `log_softmax` and never takes log 0.
    """

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def forward(self, z: Any) -> Tensor:
        return F.softmax(_tensor(z), axis=self.axis)

    def __repr__(self) -> str:
        return f"Softmax(axis={self.axis})"


class Flatten(Module):
    """Merge the axes from `start_axis` on into one: (m, 8, 8) images become (m, 64) rows."""

    def __init__(self, start_axis: int = 1) -> None:
        self.start_axis = start_axis

    def forward(self, x: Any) -> Tensor:
        return F.flatten(_tensor(x), self.start_axis)

    def __repr__(self) -> str:
        return f"Flatten(start_axis={self.start_axis})"


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
        if isinstance(p, bool) or not isinstance(p, Real) or not 0 <= p < 1:
            raise ValueError(f"Dropout: p is the probability of dropping an element and must "
                             f"be in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = _generator(rng)

    def forward(self, x: Any) -> Tensor:
        x = _tensor(x)
        if not self.training or self.p == 0:
            return x
        # Drawn and scaled through primitives, so a `jit` replay draws a fresh mask too.
        keep = ops.greater_equal(ops.uniform(shape=x.shape, rng=self.rng), self.p)
        dtype = x.dtype if x.dtype.kind == "f" else np.float64
        return ops.mul(x, ops.cast(ops.div(keep, 1 - self.p), dtype=dtype))  # a constant

    def __repr__(self) -> str:
        return f"Dropout(p={self.p!r})"


class Sequential(Module):
    """Modules applied one after another: the output of each is the input of the next.

    >>> net = Sequential(Linear(2, 3, rng=0), Sigmoid(), Linear(3, 1, rng=1), Sigmoid())
    >>> [tuple(p.shape) for p in net.parameters()]
    [(3, 2), (3,), (1, 3), (1,)]
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

    def forward(self, x: Any) -> Any:
        for layer in self.layers:
            x = layer(x)
        return x

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential({inner})"


# --- parameters in a file -------------------------------------------------------------------


def write_atomically(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Write a file by `write(f)` into a temporary file beside `path`, then rename it over `path`.

    A reader never sees half a file, and on any failure the temporary file is removed and a
    previous file at `path` is left as it was. Errors of the file system name `path`, not the
    temporary file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                                   suffix=".tmp")
    except OSError as err:  # e.g. the folder does not exist
        raise OSError(err.errno, err.strerror, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it normal rights
        try:
            os.replace(tmp, path)
        except OSError as err:  # e.g. path is a directory
            raise OSError(err.errno, err.strerror, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_state(module: Module, path: str | os.PathLike[str]) -> None:
    """Write `module.state_dict()` to an .npz file at `path` (used as given: no ``.npz`` added).

    One array per parameter, named by its path (``0.weight``, ``layers.1.bias``). Written
    atomically: to a temporary file in the same folder, then renamed over `path`.
    """
    state = module.state_dict()
    write_atomically(path, lambda f: np.savez(f, **state))


# What zipfile, zlib and numpy's .npy header parser raise on damaged bytes (none of it is
# documented as a closed set, so the fuzz tests of tests/test_model_files.py keep it honest):
# a broken directory or a failed CRC-32 (BadZipFile), a bad deflate stream (zlib.error), a
# flag or method bit that zipfile does not support (NotImplementedError) or reads as
# "encrypted" (RuntimeError), a short read (EOFError), an unparsable header (ValueError).
_DAMAGE: tuple[type[BaseException], ...] = (
    ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
    RuntimeError, struct.error, *([lzma.LZMAError] if lzma is not None else []))
_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


class _NeedsPickle(Exception):
    """An array of Python objects: refused, never unpickled."""


class ModelFile:
    """An .npz model file opened by `open_model_file`: its array names and a checked reader.

    Nothing is read until asked for: `read(key)` parses that array's .npy header, refuses
    object dtypes (which would need pickle), checks that the bytes present are exactly what
    the header declares before allocating anything, and lets zipfile verify the CRC-32, so a
    damaged array is refused rather than returned with wrong values.
    """

    def __init__(self, archive: zipfile.ZipFile, where: str) -> None:
        self._archive, self._where = archive, where
        self._members = {(n[:-4] if n.endswith(".npy") else n): n for n in archive.namelist()}
        #: The names of the arrays, as `np.savez` was given them (without ``.npy``).
        self.files = list(self._members)

    def read(self, key: str) -> np.ndarray:
        """The array `key` (a KeyError if there is none), or ValueError naming the file."""
        member = self._members[key]
        try:
            return self._read(member)
        except _NeedsPickle:
            raise ValueError(f"{self._where} holds object arrays: {key!r} would need pickle "
                             f"to load; refused (allow_pickle=False)") from None
        except _DAMAGE as err:
            why = str(err) if type(err) is ValueError else f"{type(err).__name__}: {err}"
            raise ValueError(f"{self._where} is damaged (array {key!r}: {why})") from None

    def _read(self, member: str) -> np.ndarray:
        if not member.endswith(".npy"):
            raise ValueError(f"{member!r} is not an .npy array")
        info = self._archive.getinfo(member)
        with self._archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):  # np.savez writes 1.0, or 2.0 for huge headers
                raise ValueError(f"unsupported .npy format version {version}")
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran_order, dtype = read_header(f)
            if dtype.hasobject:
                raise _NeedsPickle
            # Python ints: a damaged shape cannot overflow, and nothing is allocated from it
            # until the archive is seen to hold exactly that many bytes.
            nbytes = math.prod(shape) * dtype.itemsize
            declared = info.file_size - f.tell()
            if nbytes != declared:
                raise ValueError(f"the header declares shape {shape} of {dtype} "
                                 f"({nbytes} bytes) but {declared} bytes follow it")
            data = f.read(nbytes)
            if len(data) != nbytes or f.read(1):  # reading to the end checks the CRC-32
                raise ValueError(f"{len(data)} bytes of data where {nbytes} were declared")
        flat = np.frombuffer(data, dtype=dtype, count=math.prod(shape))
        array = flat.reshape(shape[::-1]).T if fortran_order else flat.reshape(shape)
        return np.array(array, order="C")  # a writable copy, not a view of the bytes


def _not_an_archive(head: bytes, err: BaseException) -> str:
    """Why the first bytes `head` of a file are not an .npz archive, for a person."""
    if head.startswith(_ZIP_MAGIC):
        return f"a damaged zip archive: {type(err).__name__}: {err}"
    if head[:1] == b"\x80":
        return "it is a Python pickle, never loaded here since unpickling can run code"
    text = head[:16].decode("utf-8", errors="replace")
    if all(c.isprintable() or c.isspace() for c in text):
        return f"it begins with the text {text!r}"
    return f"it begins with the bytes {head[:8].hex(' ')}"


@contextlib.contextmanager
def open_model_file(path: str | os.PathLike[str], who: str = "") -> Iterator[ModelFile]:
    """Open an .npz model file (`save_state`'s, `Network.save`'s) for checked reading.

    The one hardened reader behind `load_state` and `Network.load`: never unpickles, never
    allocates from sizes the file only declares, closes the file whatever happens. Raises
    FileNotFoundError if there is no file, and ValueError, beginning with `who` and the file
    name, for a directory, an unreadable or empty file, a single .npy array, anything that is
    not a zip archive (a pickle, text) and any damage (see `ModelFile.read`).
    """
    name = os.fspath(path)
    where = f"{who}{name}"
    if os.path.isdir(name):
        raise ValueError(f"{where} is a directory, not a tinygrad_nn model file (.npz)")
    try:
        f = open(name, "rb")  # noqa: SIM115 (closed by the `with f` below, whatever happens)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise ValueError(f"{where} cannot be read ({err.strerror})") from None
    # Opened here, not by np.load: it leaves the file open when it refuses a damaged zip,
    # and it falls back to unpickling whatever is neither .npz nor .npy.
    with f:
        head = f.read(len(_NPY_MAGIC) + 10)
        if not head:
            raise ValueError(f"{where} is empty, not a tinygrad_nn model file (.npz)")
        if head.startswith(_NPY_MAGIC):
            raise ValueError(f"{where} holds a single array (.npy), not an .npz archive of "
                             f"a model")
        try:
            archive = zipfile.ZipFile(f)
        except _DAMAGE as err:
            raise ValueError(f"{where} is not an .npz archive, so not a tinygrad_nn model file "
                             f"({_not_an_archive(head, err)})") from None
        with archive:
            yield ModelFile(archive, where)


def load_state(module: Module, path: str | os.PathLike[str]) -> None:
    """Load parameters written by `save_state` into `module`, in place (`load_state_dict`).

    Read by `open_model_file`, which never unpickles. Raises FileNotFoundError if there is no
    file, and ValueError naming the file if it is a directory, empty, not an .npz archive (a
    text file, a pickle), damaged (a flipped bit, a truncation), holds object arrays, or does
    not fit the module (missing or unexpected names, other shapes, values out of the range of
    a parameter's dtype). Every array is read and checked before any parameter changes.
    """
    with open_model_file(path, "load_state: ") as archive:
        state = {key: archive.read(key) for key in archive.files}
    try:
        module.load_state_dict(state)
    except ValueError as err:
        raise ValueError(f"load_state: {os.fspath(path)}: {err}") from None
