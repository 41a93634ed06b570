"""Reading NVIDIA's `network-snapshot-*.pkl` files without running the code inside them.

An official snapshot (written by NVIDIA's `training/training_loop.py`, read by `legacy.py`
`load_network_pkl`) is a plain pickle of a dict with `G`, `D`, `G_ema`, `augment_pipe` and
`training_set_kwargs`. Every network object in it is pickled
as a call to `torch_utils.persistence._reconstruct_persistent_obj(meta)`, and `meta`
carries the *Python source* of NVIDIA's `training/networks.py` (`module_src`). The
official loader `exec`s that source; a pickle from the internet can therefore run
anything. This reader never imports or executes it.

How: a restricted `pickle.Unpickler` whose `find_class` knows a short allow-list of
globals (`_ALLOWED`) and hands back harmless substitutes: a `PersistentStub` that keeps
only `class_name` and `state` for persistent objects, plain dict subclasses, and guarded
tensor/numpy rebuilders. Any other global (`os.system`, `builtins.eval`,
`subprocess.Popen`, `copyreg._reconstructor`, …) stops the load with `UnsafePickleError`
before it is ever called. Tensor storages arrive as bytes of a legacy `torch.save`; they
are read with `torch.load(weights_only=True)`, which has its own allow-list, so they
cannot smuggle code either.

The result, an `OfficialSnapshot`, holds plain data only: for each network its class
name, its constructor kwargs (JSON-serialisable) and its state dict, built by walking
the stubs the way `Module.state_dict()` walks modules. `STATE_DICT_TABLE` documents and
checks every official parameter name; `official_kwargs_to_ours` turns the recorded
kwargs into ones `networks.build_generator` / `build_discriminator` accept.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import re
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ganscapes.errors import UserError, first_line

__all__ = [
    "DROPPED_KWARGS",
    "STATE_DICT_TABLE",
    "NameRule",
    "OfficialNetwork",
    "OfficialSnapshot",
    "PersistentStub",
    "UnsafePickleError",
    "map_official_state_dict",
    "official_kwargs_to_ours",
    "read_official_pickle",
    "safe_unpickle",
]


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


# ---------------------------------------------------------------------------------------
# The snapshot


@dataclass
class OfficialNetwork:
    """One network of a snapshot, as plain data."""

    class_name: str  # "Generator" or "Discriminator"
    init_kwargs: dict  # JSON-serialisable constructor kwargs, as recorded (EasyDicts → dicts)
    state_dict: OrderedDict  # official name → float32 contiguous CPU tensor


@dataclass
class OfficialSnapshot:
    """What `read_official_pickle` gives: `G_ema` always, `G` and `D` when the pickle has them."""

    path: Path
    G_ema: OfficialNetwork
    G: OfficialNetwork | None = None
    D: OfficialNetwork | None = None
    training_set_kwargs: dict | None = None  # the dataset options of the training run
    augment_p: float | None = None  # the ADA probability when the snapshot was taken
    networks: dict[str, OfficialNetwork] = field(default_factory=dict)  # the present ones, by name

    def __post_init__(self):
        if not self.networks:
            self.networks = {k: v for k, v in (("G_ema", self.G_ema), ("G", self.G), ("D", self.D)) if v is not None}


_EXPECTED_CLASS = {"G_ema": "Generator", "G": "Generator", "D": "Discriminator"}
_MAX_DEPTH = 32  # official trees are 4 levels deep; deeper means damaged or hostile

# Constructor argument order, for snapshots whose networks were built with positional args.
_POSITIONAL = {
    "Generator": ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"),
    "Discriminator": (
        "c_dim",
        "img_resolution",
        "img_channels",
        "architecture",
        "channel_base",
        "channel_max",
        "num_fp16_res",
        "conv_clamp",
        "cmap_dim",
        "block_kwargs",
        "mapping_kwargs",
        "epilogue_kwargs",
    ),
}


def read_official_pickle(path: str | Path) -> OfficialSnapshot:
    """Read an official `network-snapshot-*.pkl` safely (see the module docstring)."""
    path = Path(path)
    data = safe_unpickle(path)

    def refuse(why: str):
        return UserError(f"{path} is not a StyleGAN2-ADA network snapshot ({why}).")

    if not isinstance(data, dict):
        raise refuse(f"it holds {_describe(data)}, not a dict with G, D and G_ema")
    if "G_ema" not in data:
        raise refuse(f"it has no G_ema; its keys are {_list_keys(data)}")
    nets: dict[str, OfficialNetwork | None] = {}
    for name in ("G_ema", "G", "D"):
        stub = data.get(name)
        expected = _EXPECTED_CLASS[name]
        if stub is None and name != "G_ema":
            nets[name] = None
            continue
        if not isinstance(stub, PersistentStub) or stub.class_name != expected:
            raise refuse(f"its {name} is {_describe(stub)}, not a {expected}")
        try:
            nets[name] = OfficialNetwork(
                class_name=stub.class_name,
                init_kwargs=_init_kwargs(stub),
                state_dict=_state_dict(stub),
            )
        except _Corrupt as e:
            raise refuse(f"its {name} holds {e}") from None

    try:
        training_set_kwargs = data.get("training_set_kwargs")
        if training_set_kwargs is not None:
            if not isinstance(training_set_kwargs, dict):
                raise _Corrupt(f"training_set_kwargs that are {_describe(training_set_kwargs)}")
            training_set_kwargs = _plain(training_set_kwargs, "training_set_kwargs")
        augment_p = _augment_p(data.get("augment_pipe"))
    except _Corrupt as e:
        raise refuse(f"it holds {e}") from None
    return OfficialSnapshot(
        path=path,
        G_ema=nets["G_ema"],
        G=nets["G"],
        D=nets["D"],
        training_set_kwargs=training_set_kwargs,
        augment_p=augment_p,
    )


def _init_kwargs(stub: PersistentStub) -> dict:
    args = stub.state.get("_init_args", ())
    kwargs = stub.state.get("_init_kwargs", {})
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise _Corrupt("constructor arguments that are not a tuple and a dict")
    kwargs = _plain(kwargs, "_init_kwargs")
    if args:
        names = _POSITIONAL[stub.class_name]
        if len(args) > len(names):
            raise _Corrupt(f"{len(args)} positional constructor arguments, more than {stub.class_name} takes")
        for key, value in zip(names, args):
            if key in kwargs:
                raise _Corrupt(f"the constructor argument {key} twice")
            kwargs[key] = _plain(value, f"_init_args[{key}]")
    json.dumps(kwargs)  # guaranteed by _plain; a cheap assertion of the promise
    return kwargs


def _state_dict(stub: PersistentStub) -> OrderedDict:
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    _collect(stub, "", out, 0)
    return out


def _collect(stub: PersistentStub, prefix: str, out: OrderedDict, depth: int) -> None:
    """Module.state_dict(), on stubs: parameters, persistent buffers, then children."""
    if depth > _MAX_DEPTH:
        raise _Corrupt("modules nested too deeply")
    state = stub.state
    where = prefix.rstrip(".") or stub.class_name
    params = state.get("_parameters", {})
    buffers = state.get("_buffers", {})
    non_persistent = state.get("_non_persistent_buffers_set", set())
    modules = state.get("_modules", {})
    if not (
        isinstance(params, dict)
        and isinstance(buffers, dict)
        and isinstance(modules, dict)
        and isinstance(non_persistent, (set, frozenset))
    ):
        raise _Corrupt(f"a module ({where}) whose parameters, buffers or children are not dicts")
    for kind, entries in (("parameter", params), ("buffer", buffers)):
        for name, value in entries.items():
            _check_name(name, where)
            if value is None or (kind == "buffer" and name in non_persistent):
                continue
            if not isinstance(value, torch.Tensor):
                raise _Corrupt(f"a {kind} {prefix + name} that is {_describe(value)}, not a tensor")
            key = prefix + name
            if key in out:
                raise _Corrupt(f"the name {key} twice")
            value = value.as_subclass(torch.Tensor).detach()
            if value.is_floating_point():
                value = value.to(torch.float32)
            out[key] = value.to(memory_format=torch.contiguous_format, copy=True)
    for name, child in modules.items():
        _check_name(name, where)
        if child is None:
            continue
        if not isinstance(child, PersistentStub):
            raise _Corrupt(f"a submodule {prefix + name} that is {_describe(child)}")
        _collect(child, f"{prefix}{name}.", out, depth + 1)


def _check_name(name, where: str) -> None:
    if not isinstance(name, str) or not name or "." in name:
        raise _Corrupt(f"a bad attribute name {name!r} in {where}")


def _augment_p(pipe) -> float | None:
    if pipe is None:
        return None
    if not isinstance(pipe, PersistentStub) or pipe.class_name != "AugmentPipe":
        raise _Corrupt(f"an augment_pipe that is {_describe(pipe)}, not an AugmentPipe")
    buffers = pipe.state.get("_buffers", {})
    p = buffers.get("p") if isinstance(buffers, dict) else None
    if p is None:
        return None
    if not isinstance(p, torch.Tensor) or p.numel() != 1:
        raise _Corrupt("an augment probability p that is not a single number")
    return float(p.as_subclass(torch.Tensor).detach().reshape(()).to(torch.float64))


def _plain(value, where: str):
    """EasyDict → dict, tuple → list, numpy numbers → Python numbers; anything else is refused."""
    if isinstance(value, np.generic):  # before the Python types: np.float64 is a float subclass
        item = value.item()
        if isinstance(item, (bool, int, float, str)):
            return item
        raise _Corrupt(f"a {type(value).__name__} in {where}")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.ndarray):
        return _plain(value.tolist(), where)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Corrupt(f"a non-text key {k!r} in {where}")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise _Corrupt(f"{_describe(value)} in {where}, where plain settings belong")


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


def _list_keys(d: dict) -> str:
    keys = [repr(k) for k in list(d)[:8]]
    if len(d) > 8:
        keys.append("…")
    return ", ".join(keys) if keys else "none"


# ---------------------------------------------------------------------------------------
# Official parameter names → ours


class NameRule(NamedTuple):
    """One row of `STATE_DICT_TABLE`: official names of `network` that fully match
    `pattern` become `re.sub(pattern, replacement, name)` in our state dict."""

    network: str  # "G" or "D"
    pattern: str
    replacement: str
    note: str


_R = r"b(?:4|8|16|32|64|128|256|512|1024)"  # any block
_R8 = r"b(?:8|16|32|64|128|256|512|1024)"  # blocks above 4×4
_SYN_CONV = rf"synthesis\.(?:b4\.conv1|{_R8}\.conv[01])"  # b4 has conv1 only

# Our networks use the official names (networks.py mirrors NVIDIA's structure), so every
# replacement is the identity. The table is still the single place that says which
# names exist: a key matching no row is refused instead of being silently dropped.
STATE_DICT_TABLE: tuple[NameRule, ...] = (
    # Generator: mapping network (`training/networks.py` `MappingNetwork`)
    NameRule("G", r"mapping\.embed\.(?:weight|bias)", r"\g<0>", "label embedding c → w (conditional G only)"),
    NameRule("G", r"mapping\.fc\d+\.(?:weight|bias)", r"\g<0>", "mapping FC layers; weights stored ×1/lr_mul (×100)"),
    NameRule("G", r"mapping\.w_avg", r"\g<0>", "buffer: running mean of w, the truncation centre"),
    # Generator: synthesis network (`training/networks.py` `SynthesisNetwork`, `SynthesisBlock`)
    NameRule("G", r"synthesis\.b4\.const", r"\g<0>", "the learned 4×4 input [C4, 4, 4]"),
    NameRule("G", rf"synthesis\.{_R}\.resample_filter", r"\g<0>", "buffer: block FIR [4,4] for the img upsampling"),
    NameRule(
        "G",
        rf"{_SYN_CONV}\.(?:weight|bias|noise_strength)",
        r"\g<0>",
        "modulated 3×3 conv (conv0 upsamples); noise_strength is a scalar",
    ),
    NameRule(
        "G",
        rf"{_SYN_CONV}\.(?:noise_const|resample_filter)",
        r"\g<0>",
        "buffers: const-mode noise [r, r] and the layer's FIR [4,4]",
    ),
    NameRule("G", rf"{_SYN_CONV}\.affine\.(?:weight|bias)", r"\g<0>", "w → styles FC (bias init 1)"),
    NameRule("G", rf"synthesis\.{_R}\.torgb\.(?:weight|bias)", r"\g<0>", "modulated 1×1 conv to image channels"),
    NameRule("G", rf"synthesis\.{_R}\.torgb\.affine\.(?:weight|bias)", r"\g<0>", "torgb's w → styles FC"),
    NameRule(
        "G",
        rf"synthesis\.{_R8}\.skip\.(?:weight|resample_filter)",
        r"\g<0>",
        "1×1 up skip without bias ('resnet' G architecture only)",
    ),
    # Discriminator (`training/networks.py` `Discriminator`); Freeze-D keeps frozen weights
    # as buffers under the same names
    NameRule(
        "D",
        rf"{_R}\.fromrgb\.(?:weight|bias|resample_filter)",
        r"\g<0>",
        "1×1 image → features: top block; every block and b4 in 'skip'",
    ),
    NameRule("D", rf"{_R8}\.conv[01]\.(?:weight|bias|resample_filter)", r"\g<0>", "3×3 convs; conv1 downsamples"),
    NameRule("D", rf"{_R8}\.skip\.(?:weight|resample_filter)", r"\g<0>", "1×1 down skip without bias ('resnet')"),
    NameRule("D", rf"{_R8}\.resample_filter", r"\g<0>", "buffer: block FIR [4,4] for the img downsampling"),
    NameRule("D", r"b4\.conv\.(?:weight|bias|resample_filter)", r"\g<0>", "epilogue 3×3 conv after minibatch std"),
    NameRule("D", r"b4\.fc\.(?:weight|bias)", r"\g<0>", "epilogue FC [C4, 16·C4]"),
    NameRule("D", r"b4\.out\.(?:weight|bias)", r"\g<0>", "output FC → 1, or → cmap_dim when conditional"),
    NameRule("D", r"mapping\.embed\.(?:weight|bias)", r"\g<0>", "label embedding of the conditional D"),
    NameRule("D", r"mapping\.fc\d+\.(?:weight|bias)", r"\g<0>", "conditional D mapping FC layers (8, lr 0.01)"),
)

_COMPILED = {
    net: [(re.compile(rule.pattern), rule.replacement) for rule in STATE_DICT_TABLE if rule.network == net]
    for net in ("G", "D")
}


def _table_network(network: str) -> str:
    if network in ("G", "G_ema"):
        return "G"
    if network == "D":
        return "D"
    raise ValueError(f"network must be 'G', 'G_ema' or 'D', not {network!r}")


def map_official_state_dict(state: dict[str, torch.Tensor], network: str) -> OrderedDict:
    """Rename an official state dict of `network` ("G", "G_ema" or "D") to our names.

    Every key must match a row of `STATE_DICT_TABLE`; the first that does not is named
    in a `UserError`. The tensors themselves are passed through.
    """
    rules = _COMPILED[_table_network(network)]
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        for pattern, replacement in rules:
            if pattern.fullmatch(key):
                ours = pattern.sub(replacement, key)
                break
        else:
            raise UserError(
                f"The official {network} holds a tensor named {key!r}, which is not a StyleGAN2-ADA "
                f"{'generator' if network != 'D' else 'discriminator'} parameter that ganscapes knows."
            )
        if ours in out:
            raise UserError(f"The official {network} holds two tensors that both map to {ours!r}.")
        out[ours] = value
    return out


# ---------------------------------------------------------------------------------------
# Official constructor kwargs → ours

# Defaults of the official classes (`training/networks.py`), in constructor order, filled
# in when a pickle does not record a key, so that our records never depend on our own class defaults.
_G_DEFAULTS = {
    "z_dim": 512,
    "c_dim": 0,
    "w_dim": 512,
    "img_resolution": None,
    "img_channels": 3,
    "mapping_kwargs": {},
    "synthesis_kwargs": {},
}
_G_MAPPING_DEFAULTS = {"num_layers": 8}
_G_SYNTHESIS_DEFAULTS = {
    "channel_base": 32768,
    "channel_max": 512,
    "num_fp16_res": 0,
    "conv_clamp": None,
    "architecture": "skip",
}
_D_DEFAULTS = {
    "c_dim": 0,
    "img_resolution": None,
    "img_channels": 3,
    "architecture": "resnet",
    "channel_base": 32768,
    "channel_max": 512,
    "num_fp16_res": 0,
    "conv_clamp": None,
    "cmap_dim": None,
    "block_kwargs": {},
    "mapping_kwargs": {},
    "epilogue_kwargs": {},
}
_D_EPILOGUE_DEFAULTS = {"mbstd_group_size": 4}

# Keys that official-format pickles may record but our constructors do not take, with the
# reason each can be dropped: none of them changes what the network computes. (Every
# constructor argument of stylegan2-ada-pytorch's networks is accepted by ours, including
# fp16_channels_last and Freeze-D's freeze_layers, so ADA pickles lose nothing.)
DROPPED_KWARGS: dict[str, str] = {
    # Later copies of these networks (NVIDIA's stylegan3 repository) choose fused or
    # unfused modulated convolution with this; both forms compute the same function
    # (`modulated_conv2d` in `training/networks.py`) and ours chooses per call.
    "fused_modconv_default": "a speed choice between two equal forms of the modulated convolution",
}


def official_kwargs_to_ours(class_name: str, init_kwargs: dict) -> dict:
    """Constructor kwargs for our `Generator` / `Discriminator` from an official record.

    Missing keys take the class defaults of `training/networks.py`; `conv_clamp` and
    `num_fp16_res` are kept as recorded (train.py sets 256 and 4), so the imported network
    computes exactly what the official one did. Keys in `DROPPED_KWARGS` are removed at
    any depth; any other key is kept, so that `build_generator` refuses what it does not
    know instead of this function guessing.
    """
    kwargs = _drop_known(copy.deepcopy(dict(init_kwargs)))
    if class_name == "Generator":
        what, defaults, nested = (
            "generator",
            _G_DEFAULTS,
            {"mapping_kwargs": _G_MAPPING_DEFAULTS, "synthesis_kwargs": _G_SYNTHESIS_DEFAULTS},
        )
    elif class_name == "Discriminator":
        what, defaults, nested = "discriminator", _D_DEFAULTS, {"epilogue_kwargs": _D_EPILOGUE_DEFAULTS}
    else:
        raise UserError(f"An official network of class {class_name!r} is neither a Generator nor a Discriminator.")
    if kwargs.get("img_resolution") is None:
        raise UserError(f"The official {what} does not record its img_resolution, so it cannot be rebuilt.")
    out = {key: kwargs.pop(key, copy.deepcopy(default)) for key, default in defaults.items()}
    out.update(kwargs)  # unknown keys stay, for the constructor to judge
    for key, value in out.items():
        if key.endswith("_kwargs"):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise UserError(f"The official {what} records {key} as {_describe(value)}, not a dict.")
            out[key] = {**copy.deepcopy(nested.get(key, {})), **value}
    return out


def _drop_known(value):
    if isinstance(value, dict):
        return {k: _drop_known(v) for k, v in value.items() if k not in DROPPED_KWARGS}
    return value
