"""The one model-file format: a module's arrays in an .npz, written atomically, read hardened.

`save_state` writes a module's `state_dict()` (and, for the tutorial's `Network`, the small
`BUILT_BY` arrays saying what built it); `save_checkpoint` adds an optimizer's and a schedule's
state and the epoch, described by JSON text stored as an array. Everything is read back by
`read_checkpoint`, the one reader (`load_state`, `load_checkpoint`, `Network.load` and
``tinygrad-nn evaluate`` all go through it): it never unpickles, never allocates from sizes a
file only declares, and refuses damaged files with a ValueError naming the file. `nn`
re-exports these names, so ``nn.save_state`` reads as PyTorch users expect.

This module knows modules only by their methods (``state_dict``, ``load_state_dict``): it
imports nothing else from the package.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

import numpy as np

try:  # zipfile reads LZMA members when the module exists; its errors are damage too
    import lzma
except ImportError:  # pragma: no cover (a Python built without liblzma)
    lzma = None  # type: ignore[assignment]

if TYPE_CHECKING:  # annotations only: this module imports nothing else from the package
    from .nn import Module

__all__ = ["BUILT_BY", "ModelFile", "built_by", "check_state", "load_checkpoint", "load_state",
           "model_part", "open_model_file", "read_built", "read_checkpoint", "save_checkpoint",
           "save_state", "write_atomically"]


def write_atomically(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
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


#: The small arrays a model file may hold beside the state dict, saying what built the model
#: (`Network.save` writes all four; a plain module none). `read_checkpoint` returns them as
#: the description's ``built_by``, never as parameters.
BUILT_BY = ("sizes", "cost", "activation", "init")


def save_state(module: Module, path: str | os.PathLike[str],
               built_by: Mapping[str, Any] | None = None) -> None:
    """Write `module.state_dict()` to an .npz file at `path` (used as given: no ``.npz`` added).

    One array per parameter, named by its path (``0.weight``, ``layers.1.bias``), and one
    small array per entry of `built_by` (keys from `BUILT_BY`: a list of ints, a string).
    Written atomically: to a temporary file in the same folder, then renamed over `path`; if
    anything fails, a previous file at `path` is left as it was.
    """
    arrays = dict(module.state_dict())
    for key, value in (built_by or {}).items():
        if key not in BUILT_BY or key in arrays:
            raise ValueError(f"save_state: built_by keys are {', '.join(BUILT_BY)} and must "
                             f"not name a parameter, got {key!r}")
        arrays[key] = np.array(value, dtype=np.int64 if key == "sizes" else None)
    write_atomically(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]  # (no key is allow_pickle)


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
    """Open an .npz model file (`save_state`'s, `save_checkpoint`'s) for checked reading.

    The hardened reader under `read_checkpoint`, hence `load_state`, `load_checkpoint` and
    `Network.load`: never unpickles, never allocates from sizes the file only declares,
    closes the file whatever happens. Raises
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

    A checkpoint of `save_checkpoint` works too: its model part is loaded.

    Read by `open_model_file`, which never unpickles. Raises FileNotFoundError if there is no
    file, and ValueError naming the file if it is a directory, empty, not an .npz archive (a
    text file, a pickle), damaged (a flipped bit, a truncation), holds object arrays, or does
    not fit the module (missing or unexpected names, other shapes, values out of the range of
    a parameter's dtype). Every array is read and checked before any parameter changes.
    """
    state = model_part(read_checkpoint(path, "load_state: ")[1])
    try:
        module.load_state_dict(state)
    except ValueError as err:
        raise ValueError(f"load_state: {os.fspath(path)}: {err}") from None


# --- training checkpoints: model, optimizer, schedule and epoch in one .npz -----------------

#: The member of a checkpoint that holds its description: JSON text as an array of bytes
#: (uint8), so the file stays arrays only and is read with allow_pickle=False like any other.
_META = "checkpoint.json"
_FORMAT = "tinygrad_nn checkpoint"


def save_checkpoint(path: str | os.PathLike[str], model: Module, optimizer: Any = None,
                    scheduler: Any = None, epoch: int | None = None,
                    extra: Mapping[str, Any] | None = None) -> None:
    """Write a training checkpoint to the .npz file `path`: everything needed to resume.

    PyTorch's habit is ``torch.save({"model": model.state_dict(), "optimizer":
    opt.state_dict(), ...}, path)``, a pickle; here the same content is one .npz archive of
    arrays (never a pickle, read back by the hardened `open_model_file`): the model's
    `state_dict` as ``model/<name>``, the optimizer's state arrays as
    ``optimizer/<index>/<name>``, and a JSON description (the epoch, the optimizer's and
    schedule's type and hyperparameters, `extra`, which must be JSON-serialisable: a seed, a
    generator's ``bit_generator.state``) in the member ``checkpoint.json``. Written
    atomically, as `save_state`.

    `load_checkpoint` restores it; `load_state` reads the model out of it too.
    """
    arrays = {f"model/{name}": array for name, array in model.state_dict().items()}
    meta: dict[str, Any] = {"format": _FORMAT, "version": 1, "epoch": epoch,
                            "model": list(model.state_dict()), "optimizer": None,
                            "scheduler": None, "extra": None if extra is None else dict(extra)}
    if optimizer is not None:
        state = optimizer.state_dict()
        groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in group.items()}
                  for group in state["param_groups"]]
        meta["optimizer"] = {"type": type(optimizer).__name__, "param_groups": groups,
                             "state": {str(i): list(entry) for i, entry in state["state"].items()}}
        for i, entry in state["state"].items():
            arrays.update({f"optimizer/{i}/{name}": value for name, value in entry.items()})
    if scheduler is not None:
        meta["scheduler"] = {"type": type(scheduler).__name__, "state": scheduler.state_dict()}
    try:
        text = json.dumps(meta)
    except TypeError as err:
        raise TypeError(f"save_checkpoint: extra must hold JSON values only ({err})") from None
    arrays[_META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    write_atomically(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]  # (no key is allow_pickle)


def read_checkpoint(path: str | os.PathLike[str], who: str = "",
                    keep: Callable[[str], object] | None = None,
                    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(description, arrays) of a model file: the one reader behind `load_state`,
    `load_checkpoint` and `Network.load`.

    Every array (only those whose name `keep` accepts, if given: the others are not even
    read) is read and checked by `open_model_file`; the JSON description of
    `save_checkpoint` is parsed and checked. A file without one (`save_state`'s, and
    `Network.save`'s, today's and older) is a model-only checkpoint: its `BUILT_BY` arrays
    become the description's ``built_by`` (None if it has none), the others ``model/<name>``.
    Errors begin with `who` and the file name.
    """
    with open_model_file(path, who) as archive:
        arrays = {key: archive.read(key) for key in archive.files
                  if keep is None or key == _META or keep(key)}
    if _META not in arrays:  # a file of save_state or Network.save: the model alone
        built = {key: arrays.pop(key) for key in BUILT_BY if key in arrays}
        return {"epoch": None, "extra": None, "optimizer": None, "scheduler": None,
                "built_by": built or None, "model": list(arrays)}, {f"model/{k}": v
                                                                    for k, v in arrays.items()}
    where = f"{who}{os.fspath(path)}"
    try:
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{where} is damaged (its {_META} is not JSON: {err})") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise ValueError(f"{where}: {_META} does not describe a {_FORMAT}")
    return meta, arrays


def load_checkpoint(path: str | os.PathLike[str], model: Module, optimizer: Any = None,
                    scheduler: Any = None) -> dict[str, Any]:
    """Restore what `save_checkpoint` wrote into `model` (and `optimizer`, `scheduler`).

    Returns ``{"epoch": ..., "extra": ...}`` as saved. Build the model, optimizer and
    schedule as for the first run, load, and continue from epoch + 1: the weights then
    follow the run that never stopped bit for bit (provided the data order and any random
    generator are restored too, e.g. from `extra`). A file of `save_state` loads as a
    model-only checkpoint (epoch None).

    All or nothing: if the optimizer's or schedule's state does not fit, or the file holds
    none while one is given, ValueError names the problem and the model, optimizer and
    schedule are left as they were. Reading errors are those of `load_state`.
    """
    who = "load_checkpoint: "
    meta, arrays = read_checkpoint(path, who)
    where = f"{who}{os.fspath(path)}"
    wanted = {"optimizer": optimizer, "scheduler": scheduler}
    for part, obj in wanted.items():
        if obj is None:
            continue
        saved = meta.get(part)
        if saved is None:
            raise ValueError(f"{where} holds no {part} state (saved without one); load the "
                             f"model with load_state, or pass {part}=None")
        if saved.get("type") != type(obj).__name__:
            raise ValueError(f"{where} holds the state of a {saved.get('type')}, not of a "
                             f"{type(obj).__name__}")
    model_state = model_part(arrays)
    before = [(obj, obj.state_dict()) for obj in (model, optimizer, scheduler) if obj is not None]
    try:
        model.load_state_dict(model_state)
        if optimizer is not None:
            optimizer.load_state_dict(_optimizer_state(meta["optimizer"], arrays))
        if scheduler is not None:
            scheduler.load_state_dict(meta["scheduler"]["state"])
    except (ValueError, TypeError, KeyError) as err:
        for obj, state in before:  # all or nothing: put back what was already loaded
            obj.load_state_dict(state)
        raise ValueError(f"{where}: {err}") from None
    return {"epoch": meta.get("epoch"), "extra": meta.get("extra")}


def model_part(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's state dict among a checkpoint's arrays (``model/<name>``)."""
    return {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}


def _optimizer_state(saved: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> dict:
    """An optimizer's `state_dict` rebuilt from a checkpoint's description and arrays."""
    state = {int(i): {name: arrays[f"optimizer/{i}/{name}"] for name in names}
             for i, names in saved["state"].items()}
    return {"state": state, "param_groups": saved["param_groups"]}


#: The arrays `read_built` reads: a network's state dict and `BUILT_BY`; any other is not read.
_NETWORK_ARRAYS = re.compile(r"(model/)?(sizes|cost|activation|init|(weight|bias)_\d+)")


def read_built(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(`built_by`, state) of a file written by `Network.save`, every array checked.

    The state's ``weight_i`` (n_{i+1}, n_i) and ``bias_i`` (n_{i+1},) are checked against
    ``sizes`` by `check_state` before the caller builds anything from them.
    """
    name = os.fspath(path)
    meta, arrays = read_checkpoint(name, keep=_NETWORK_ARRAYS.fullmatch)
    state = model_part(arrays)
    built = built_by(meta, state, name)
    pairs = list(zip(built["sizes"][:-1], built["sizes"][1:]))
    shapes = {**{f"weight_{i}": (n_out, n_in) for i, (n_in, n_out) in enumerate(pairs)},
              **{f"bias_{i}": (n_out,) for i, (n_in, n_out) in enumerate(pairs)}}
    check_state(state, shapes, name, f"sizes {built['sizes']}")
    return built, state


#: What `built_by` gives for an entry a file lacks (files saved before ``init`` existed).
_BUILT_BY_DEFAULTS = {"cost": "quadratic", "activation": "sigmoid", "init": "standard"}


def built_by(meta: Mapping[str, Any], state: Mapping[str, np.ndarray],
             name: str) -> dict[str, Any]:
    """The checked `BUILT_BY` description of a model file: ``sizes`` as a list of ints (at
    least 2, each >= 1) and ``cost``, ``activation``, ``init`` as strings (defaults when
    absent). Raises ValueError naming the file `name` for anything else."""
    arrays = {**state, **(meta.get("built_by") or {})}
    sizes = _present(arrays, "sizes", name)
    if sizes.ndim != 1 or sizes.dtype.kind not in "iu" or len(sizes) < 2 or (sizes < 1).any():
        raise ValueError(f"{name}: 'sizes' must be at least 2 integers >= 1, got "
                         f"{sizes.tolist()} (dtype {sizes.dtype})")
    built: dict[str, Any] = {"sizes": sizes.tolist()}
    for key, default in _BUILT_BY_DEFAULTS.items():
        value = arrays.get(key, np.array(default))
        if value.ndim != 0 or value.dtype.kind != "U":
            raise ValueError(f"{name}: {key!r} must be a 0-d unicode array, got dtype "
                             f"{value.dtype} and shape {value.shape}")
        built[key] = str(value)
    return built


def check_state(state: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]],
                name: str, why: str) -> None:
    """Check that `state` holds every array of `shapes`, each of that shape, of floats, finite.

    Called *before* a model is built from a file's description: building first would allocate
    whatever the file declares (sizes [4, 1e6, 1e6, 2] asked for 7.28 TiB), while an array
    read here is at most as big as the file. `why` says where the shapes come from.
    """
    for key, shape in shapes.items():
        value = _present(state, key, name)
        problem = (f"has shape {value.shape}, but {why} need {shape}" if value.shape != shape
                   else f"must hold floats, got {value.dtype}" if value.dtype.kind != "f"
                   else "holds NaN or inf" if not np.isfinite(value).all() else None)
        if problem:
            raise ValueError(f"{name}: {key!r} {problem}")


def _present(arrays: Mapping[str, np.ndarray], key: str, name: str) -> np.ndarray:
    if key not in arrays:
        raise ValueError(f"{name}: missing array {key!r} (the file has "
                         f"{', '.join(arrays) or 'no arrays'})")
    return arrays[key]
