"""Unpickling NVIDIA's snapshot pickles without running the code inside them.

Every network object in a stylegan2-ada-pytorch snapshot is pickled as a call to
`torch_utils.persistence._reconstruct_persistent_obj(meta)`, and `meta` carries the
*Python source* of NVIDIA's `training/networks.py` (`module_src`). The official loader
(`legacy.py` `load_network_pkl`) `exec`s that source; a pickle from the internet can
therefore run anything. This reader never imports or executes it.

How: a restricted `pickle.Unpickler` whose `find_class` knows a short allow-list of
globals (`_ALLOWED`) and hands back harmless substitutes: a `PersistentStub` that keeps
only `class_name` and `state` for persistent objects, plain dict subclasses, and guarded
tensor/numpy rebuilders. Any other global (`os.system`, `builtins.eval`,
`subprocess.Popen`, `copyreg._reconstructor`, …) stops the load with `UnsafePickleError`
before it is ever called. Tensor storages arrive as bytes of a legacy `torch.save`; they
are read with `torch.load(weights_only=True)`, which has its own allow-list, so they
cannot smuggle code either.

`safe_unpickle` returns the raw object tree; `ganscapes.gan.official` turns it into
plain data. `_Corrupt` and `_describe` are shared with that module, which reports
damaged contents the same way.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganscapes.errors import UserError, first_line

__all__ = ["PersistentStub", "UnsafePickleError", "safe_unpickle"]


class UnsafePickleError(UserError):
    """The pickle asks for something a StyleGAN snapshot never needs (code, not data)."""


# ---------------------------------------------------------------------------------------
# Substitutes for the allowed globals


class PersistentStub:
    """What `_reconstruct_persistent_obj(meta)` becomes here: the class name and the
    module `__dict__` (`state`), never the class itself. `module_src` is dropped unread."""

    __slots__ = ("class_name", "state", "version")

    def __init__(self, class_name: str, state: dict, version: int | None):
        self.class_name = class_name
        self.state = state
        self.version = version

    def __setstate__(self, state):  # a BUILD opcode aimed at a stub is not a snapshot
        raise _Corrupt("a persistent object modified after it was built")

    def __repr__(self) -> str:
        return f"PersistentStub({self.class_name})"


class _EasyDict(dict):
    """Stands in for `dnnlib.util.EasyDict` (a dict with attribute access); plain dict here."""


class _Unsafe(Exception):
    """Internal: carries what the pickle asked for; turned into `UnsafePickleError` with the file name."""

    def __init__(self, what: str, sentence: str | None = None):
        super().__init__(what)
        self.what = what
        self.sentence = sentence  # a full sentence with a {file} slot, when the default wording does not fit


class _Corrupt(Exception):
    """Internal: the pickle is well-formed but its contents are not what a snapshot holds."""


def _reconstruct_persistent_obj(meta):
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise _Corrupt("a persistent object without class metadata")
    class_name = meta.get("class_name")
    state = meta.get("state")
    if not isinstance(class_name, str) or not isinstance(state, dict):
        raise _Corrupt("a persistent object without class_name or state")
    version = meta.get("version")
    # meta["module_src"] is deliberately not looked at beyond this point.
    return PersistentStub(class_name, state, version if isinstance(version, int) else None)


def _load_from_bytes(data):
    """`torch.storage._load_from_bytes`: a legacy single-storage `torch.save`, read weights-only."""
    if not isinstance(data, (bytes, bytearray)):
        raise _Corrupt("tensor data that is not bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TypedStorage deprecation notices
            storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            found = re.search(r"WeightsUnpickler error: ([^\n]*?)(?:\.\s|\.?$)", str(e), re.MULTILINE)
            reason = found.group(1).strip() if found else first_line(e, 120)
            raise _Unsafe(
                "tensor data",
                "{file} holds tensor data that is not a plain weights-only torch storage "
                + f"(torch says: {reason})".replace("{", "{{").replace("}", "}}")
                + "; refusing to load it.",
            ) from None
        raise _Corrupt(f"unreadable tensor data ({first_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - whatever torch raises on damaged bytes is a damaged file
        raise _Corrupt(f"unreadable tensor data ({first_line(e)})") from None
    if isinstance(storage, torch.storage.TypedStorage):
        return _Storage(storage.dtype, storage._untyped_storage)
    if isinstance(storage, torch.UntypedStorage):
        return _Storage(torch.uint8, storage)
    raise _Corrupt(f"tensor data that holds a {type(storage).__name__}, not a storage")


class _Storage:
    """A loaded storage as the pickle sees it: nothing a BUILD opcode can change."""

    __slots__ = ("dtype", "untyped")

    def __init__(self, dtype: torch.dtype, untyped: torch.UntypedStorage):
        self.dtype, self.untyped = dtype, untyped

    def __setstate__(self, state):
        raise _Corrupt("tensor data modified after it was loaded")


class _Tensor(torch.Tensor):
    """Tensors as the pickle sees them. `Tensor.__setstate__` would let a later BUILD
    opcode re-point the tensor at any storage, shape and strides without a bounds check
    (and attach hooks), so this one refuses; the reader turns it back into a plain tensor."""

    def __setstate__(self, state):
        raise _Corrupt("a tensor modified after it was built")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    """`torch._utils._rebuild_tensor_v2` with its arguments checked; hooks and metadata are
    ignored (a snapshot's tensors have none), so nothing callable is attached to a tensor."""
    if not isinstance(storage, _Storage):
        raise _Corrupt(f"a tensor built on {_describe(storage)} instead of a storage")
    dtype, untyped = storage.dtype, storage.untyped
    if not (_is_int(storage_offset) and storage_offset >= 0):
        raise _Corrupt("a tensor with a bad storage offset")
    if not (
        isinstance(size, tuple)
        and isinstance(stride, tuple)
        and len(size) == len(stride)
        and all(_is_int(s) and s >= 0 for s in size)
        and all(_is_int(s) and s >= 0 for s in stride)
    ):
        raise _Corrupt("a tensor with a bad shape or stride")
    if backward_hooks is not None and not isinstance(backward_hooks, dict):
        raise _Corrupt("a tensor with bad hooks")
    if metadata is not None and not isinstance(metadata, dict):
        raise _Corrupt("a tensor with bad metadata")
    # Tensor.set_ does not check that the view stays inside the storage, and reading past
    # it would read arbitrary memory; so check here.
    numel = untyped.nbytes() // torch.empty((), dtype=dtype).element_size()
    if all(s > 0 for s in size):
        last = storage_offset + sum((s - 1) * st for s, st in zip(size, stride))
        if last >= numel:
            raise _Corrupt(f"a tensor of shape {list(size)} that reaches past the end of its {numel} values")
    elif storage_offset > numel:
        raise _Corrupt("a tensor that starts past the end of its data")
    t = torch.empty((0,), dtype=dtype)
    try:
        return t.set_(untyped, storage_offset, size, stride).as_subclass(_Tensor)
    except RuntimeError as e:
        raise _Corrupt(f"a tensor that does not fit its data ({first_line(e)})") from None


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    """`torch._utils._rebuild_parameter`: a snapshot only needs the data."""
    if not isinstance(data, torch.Tensor):
        raise _Corrupt("a parameter without tensor data")
    return data


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None):
    return _rebuild_parameter(data)


_OBJECT_ARRAY_SENTENCE = (
    "{file} holds numpy data of Python objects, which a StyleGAN snapshot never needs; refusing to load it."
)


def _check_dtype(dtype) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise _Corrupt("a numpy value without a dtype")
    if dtype.hasobject:
        raise _Unsafe("numpy objects", _OBJECT_ARRAY_SENTENCE)
    return dtype


def _numpy_dtype(spec, align=False, copy=False):
    """`numpy.dtype`, for simple type codes such as 'f8' only; object dtypes are refused."""
    if not isinstance(spec, str):
        raise _Corrupt("a numpy dtype that is not a simple type code")
    try:
        dtype = np.dtype(spec, align=bool(align), copy=bool(copy))
    except (TypeError, ValueError) as e:
        raise _Corrupt(f"an unknown numpy dtype {spec!r} ({e})") from None
    return _check_dtype(dtype)


def _numpy_scalar(dtype, data=None):
    """`numpy.core.multiarray.scalar`: a numpy number from its raw bytes."""
    _check_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _Corrupt("a numpy scalar with bad data")
    return np.frombuffer(data, dtype=dtype)[0].copy()


class _GuardedArray(np.ndarray):
    """Stands in for `numpy.ndarray` while unpickling: refuses object dtypes at every entry."""

    def __array_finalize__(self, obj):
        if self.dtype.hasobject:
            raise _Unsafe("numpy objects", _OBJECT_ARRAY_SENTENCE)

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise _Corrupt("a numpy array with bad state")
        _check_dtype(state[2])
        if not isinstance(state[4], bytes):
            raise _Corrupt("a numpy array with bad data")
        super().__setstate__(state)
        _check_dtype(self.dtype)


def _numpy_frombuffer(buffer, dtype, shape, order="C"):
    """`numpy.core.numeric._frombuffer`: how protocol 5 pickles arrays (Python 3.14's default)."""
    _check_dtype(dtype)
    if not (
        isinstance(buffer, (bytes, bytearray))
        and isinstance(shape, tuple)
        and all(_is_int(s) and s >= 0 for s in shape)
        and order in ("C", "F")
    ):
        raise _Corrupt("a numpy array with bad data")
    count = int(np.prod(shape, dtype=np.int64))
    if count * dtype.itemsize != len(buffer):
        raise _Corrupt("a numpy array whose data does not match its shape")
    return np.frombuffer(bytes(buffer), dtype=dtype).reshape(shape, order=order).copy()


def _numpy_reconstruct(subtype, shape, dtype_code):
    """`numpy.core.multiarray._reconstruct`: an empty array that BUILD then fills."""
    if subtype is not _GuardedArray:
        raise _Corrupt("a numpy array of an unknown type")
    return np.ndarray.__new__(_GuardedArray, (0,), np.uint8)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,  # numpy 1.x name
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,  # numpy 2.x name
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy", "ndarray"): _GuardedArray,
    ("numpy", "dtype"): _numpy_dtype,
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        found = _ALLOWED.get((module, name))
        if found is not None:
            return found
        if module.startswith("dnnlib.tflib"):
            raise _Unsafe(
                f"{module}.{name}",
                "{file} is a legacy TensorFlow StyleGAN pickle ("
                + f"{module}.{name}"
                + "); ganscapes reads only PyTorch snapshots from stylegan2-ada-pytorch and does not "
                "support TensorFlow pickles yet.",
            )
        raise _Unsafe(f"{module}.{name}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("a persistent id, which snapshot pickles do not use")


def safe_unpickle(path: str | Path) -> Any:
    """Unpickle `path` with the allow-list above; the raw object tree (stubs, dicts, tensors).

    Raises `UnsafePickleError` for anything outside the allow-list and `UserError` for a
    file that is missing, empty, truncated or not a pickle, each naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist.")
    if not path.is_file():
        raise UserError(f"{path} is not a file.")
    try:
        size = path.stat().st_size
        if size == 0:
            raise UserError(f"{path} is empty, so it is not a network snapshot.")
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f).load()
    except UserError:
        raise
    except _Unsafe as e:
        if e.sentence:
            raise UnsafePickleError(e.sentence.format(file=path)) from None
        raise UnsafePickleError(
            f"{path} asks to run {e.what}, which a StyleGAN snapshot never needs; refusing to load it."
        ) from None
    except _Corrupt as e:
        raise UserError(f"{path} is not a StyleGAN2-ADA network snapshot (it holds {e}).") from None
    except OSError as e:
        raise UserError(f"Cannot read {path} ({e.strerror or e}).") from None
    except MemoryError:
        raise UserError(f"{path} is damaged or too large to read: it asks for more memory than there is.") from None
    except RecursionError:
        raise UserError(f"{path} is damaged: it is nested too deeply to be a network snapshot.") from None
    except Exception as e:  # noqa: BLE001 - EOFError, UnpicklingError, ValueError, TypeError … from bad data
        raise UserError(
            f"{path} is not a readable pickle ({type(e).__name__}: {first_line(e)}); "
            "it may be truncated or not a network snapshot."
        ) from None
    return obj


def _describe(obj) -> str:
    if isinstance(obj, PersistentStub):
        return f"a {obj.class_name} object"
    if obj is None:
        return "nothing"
    name = type(obj).__name__
    if isinstance(obj, _EasyDict):
        name = "dict"
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{article} {name}"
