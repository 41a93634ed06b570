"""Writes pickles with the byte structure of NVIDIA's `network-snapshot-*.pkl` (test fixture).

NVIDIA's files cannot be downloaded here, so the tests make their own from our torch
modules, following the format that NVIDIA's `training/training_loop.py` and
`torch_utils/persistence.py` write: a plain pickle of a dict whose networks are each a
call to `torch_utils.persistence._reconstruct_persistent_obj(meta)`,
`meta` holding `module_src`, `class_name` and the module `__dict__` as `state`, nested
kwargs as `dnnlib.util.EasyDict`, and tensors pickled by torch's own reducers
(`_rebuild_parameter` / `_rebuild_tensor_v2` around `torch.storage._load_from_bytes`).

The fake `torch_utils` and `dnnlib` modules exist in `sys.modules` only while pickling.
The `module_src` written here creates a marker file and then raises, so a test can prove
that a reader never ran it.

`Global(module, name)` and `Call(func, *args)` put an arbitrary global, or a call of one,
anywhere in the tree: that is how the tests build hostile pickles (`os.system`,
`builtins.eval`, …) without the writer ever being able to run them.
"""

from __future__ import annotations

import contextlib
import copy
import io
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn


def module_source(marker: str | Path) -> str:
    """Stand-in for NVIDIA's `training/networks.py` text: proves it never runs."""
    return (
        "# If a reader executes module_src, this file tells on it.\n"
        f"open({str(marker)!r}, 'w').close()\n"
        "raise RuntimeError('module_src must never run')\n"
    )


class Global:
    """A reference to `module.name`, pickled as GLOBAL/STACK_GLOBAL without importing it."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle insists that a REDUCE target is callable
        raise RuntimeError("a Global is only ever pickled")


class Call:
    """Pickles as `func(*args)`: REDUCE of `func` (a Global or a real function) on `args`,
    followed by a BUILD opcode with `state` when one is given."""

    _NO_STATE = object()

    def __init__(self, func, *args, state=_NO_STATE):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        if self.state is Call._NO_STATE:
            return (self.func, self.args)
        return (self.func, self.args, self.state)

    def __call__(self, *args):  # a Call can itself be called by an outer Call in the pickle
        raise RuntimeError("a Call is only ever pickled")

    # copy.deepcopy goes through __reduce__, which would *call* func: copies share instead.
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


class _OfficialPickler(pickle._Pickler):
    """The pure-Python pickler, so that `Global` can write any module and name."""

    dispatch = pickle._Pickler.dispatch.copy()

    def __init__(self, file, protocol, module_src, persistence):
        super().__init__(file, protocol=protocol)
        self.module_src = module_src
        self.persistence = persistence

    def save_fake_global(self, obj: Global):
        if self.proto >= 4:
            self.save(obj.module)
            self.save(obj.name)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[Global] = save_fake_global

    def reducer_override(self, obj):
        if isinstance(obj, nn.Module):
            return (self.persistence._reconstruct_persistent_obj, (_meta(obj, self.module_src),))
        return NotImplemented


def _make_easydict_class():
    class EasyDict(dict):
        """dnnlib.util.EasyDict: a dict whose items are also attributes."""

        def __getattr__(self, name):
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

        def __setattr__(self, name, value):
            self[name] = value

        def __delattr__(self, name):
            del self[name]

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    return EasyDict


@contextlib.contextmanager
def fake_official_modules():
    """`torch_utils.persistence` and `dnnlib.util` in `sys.modules`, for this block only."""
    names = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")
    saved = {name: sys.modules.get(name) for name in names}
    torch_utils = types.ModuleType("torch_utils")
    persistence = types.ModuleType("torch_utils.persistence")
    dnnlib = types.ModuleType("dnnlib")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):
        raise RuntimeError("the fake torch_utils.persistence only writes pickles")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    torch_utils.persistence = persistence
    util.EasyDict = _make_easydict_class()
    dnnlib.util = util
    sys.modules.update(
        {"torch_utils": torch_utils, "torch_utils.persistence": persistence, "dnnlib": dnnlib, "dnnlib.util": util}
    )
    try:
        yield persistence, util
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


_PLAIN = (bool, int, float, str, type(None), np.generic)


def _is_plain(value) -> bool:
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return False


def _easy(value, EasyDict, top=True):
    """Nested dicts become EasyDict, as in train.py's `*_kwargs`; the top stays a dict."""
    if isinstance(value, dict):
        items = {k: _easy(v, EasyDict, top=False) for k, v in value.items()}
        return dict(items) if top else EasyDict(items)
    if isinstance(value, (list, tuple)):
        return type(value)(_easy(v, EasyDict, top=False) for v in value)
    return value


def _meta(module: nn.Module, module_src: str) -> dict:
    """The `meta` of torch_utils.persistence for one module (snapshot form: eval, no grad)."""
    EasyDict = sys.modules["dnnlib.util"].EasyDict
    state: dict = {}
    for key, value in module.__dict__.items():
        if key == "training":
            state[key] = False  # snapshots are taken in eval mode
        elif key == "_parameters":
            state[key] = OrderedDict(
                (n, None if p is None else nn.Parameter(p.detach().clone(), requires_grad=False))
                for n, p in value.items()
            )
        elif key == "_buffers":
            state[key] = OrderedDict((n, None if b is None else b.detach().clone()) for n, b in value.items())
        elif key == "_modules":
            state[key] = OrderedDict(value)  # children pickle as nested persistent objects
        elif key == "_non_persistent_buffers_set":
            state[key] = set(value)
        elif key.startswith("_") and isinstance(value, dict):
            state[key] = OrderedDict()  # hook tables: empty in a snapshot
        elif key == "weight_gain":
            state[key] = np.float64(value)  # numpy float64 in the official code
        elif key in ("init_kwargs", "official_extra_state"):
            continue  # init_kwargs becomes _init_kwargs below; the extra state is merged last
        elif _is_plain(value):
            state[key] = value
        # anything else (callables, dtypes …) has no counterpart in an official pickle
    state["_init_args"] = ()
    state["_init_kwargs"] = _easy(copy.deepcopy(getattr(module, "init_kwargs", {})), EasyDict)
    # Tests put hostile or unusual entries into one module's state through this attribute.
    state.update(_resolve_easydicts(module.__dict__.get("official_extra_state", {}), EasyDict))
    return {
        "type": "class",
        "version": 6,
        "module_src": module_src,
        "class_name": type(module).__name__,
        "state": state,
    }


class _CPickler(pickle.Pickler):
    """The C pickler that NVIDIA's `pickle.dump` used, with the same module hook."""

    def __init__(self, file, protocol, module_src, persistence):
        super().__init__(file, protocol=protocol)
        self.module_src = module_src
        self.persistence = persistence

    def reducer_override(self, obj):
        if isinstance(obj, nn.Module):
            return (self.persistence._reconstruct_persistent_obj, (_meta(obj, self.module_src),))
        return NotImplemented


def dumps_official(obj, *, protocol: int = 4, marker: str | Path = "MODULE_SRC_RAN", c_pickler: bool = False) -> bytes:
    """Pickle any tree (modules, EasyDicts via `easydict()`, `Global`s, `Call`s) the official way.

    `c_pickler=True` uses the C pickler, as `pickle.dump` does; it cannot write `Global`s.
    """
    buf = io.BytesIO()
    with fake_official_modules() as (persistence, util):
        obj = _resolve_easydicts(obj, util.EasyDict)
        pickler = _CPickler if c_pickler else _OfficialPickler
        pickler(buf, protocol, module_source(marker), persistence).dump(obj)
    return buf.getvalue()


def persistent(class_name: str, state: dict, *, version: int = 6):
    """A hand-made persistent object: `_reconstruct_persistent_obj(meta)` with this state."""
    meta = {
        "type": "class",
        "version": version,
        "module_src": "raise RuntimeError('module_src ran')\n",
        "class_name": class_name,
        "state": state,
    }
    return Call(Global("torch_utils.persistence", "_reconstruct_persistent_obj"), meta)


class easydict(dict):
    """Marks a dict to be pickled as `dnnlib.util.EasyDict`."""


def _resolve_easydicts(obj, EasyDict):
    if isinstance(obj, easydict):
        return EasyDict({k: _resolve_easydicts(v, EasyDict) for k, v in obj.items()})
    if type(obj) is dict:
        return {k: _resolve_easydicts(v, EasyDict) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_resolve_easydicts(v, EasyDict) for v in obj)
    if isinstance(obj, Call):
        return Call(
            obj.func,
            *(_resolve_easydicts(a, EasyDict) for a in obj.args),
            state=_resolve_easydicts(obj.state, EasyDict),
        )
    return obj


class AugmentPipe(nn.Module):
    """Stand-in for the official AugmentPipe: its buffers (p, Hz_geom, Hz_fbank) and flags."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        names = (
            "xflip",
            "rotate90",
            "xint",
            "scale",
            "rotate",
            "aniso",
            "xfrac",
            "brightness",
            "contrast",
            "lumaflip",
            "hue",
            "saturation",
        )
        self.init_kwargs = {name: 1 for name in names}  # the 'bgc' augmentation preset
        for key, value in self.init_kwargs.items():
            setattr(self, key, float(value))
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("Hz_geom", torch.linspace(-0.1, 0.8, 12))
        self.register_buffer("Hz_fbank", torch.zeros([4, 43]))


def snapshot_dict(*, G, D=None, G_ema=None, training_set_kwargs=None, augment_p=None) -> dict:
    """The dict train.py pickles (`snapshot_data` in `training/training_loop.py`); G_ema defaults to a copy of G."""
    return {
        "training_set_kwargs": None if training_set_kwargs is None else dict(training_set_kwargs),
        "G": G,
        "D": D,
        "G_ema": G_ema if G_ema is not None else copy.deepcopy(G),
        "augment_pipe": None if augment_p is None else AugmentPipe(augment_p),
    }


def write_official_pickle(
    path: str | Path,
    *,
    G,
    D=None,
    G_ema=None,
    training_set_kwargs=None,
    augment_p=None,
    protocol: int = 4,
    marker: str | Path | None = None,
) -> Path:
    """Write an official-format snapshot of these modules to `path`; returns the marker path
    that `module_src` would create if anything ever ran it (default: beside the pickle)."""
    path = Path(path)
    marker = Path(marker) if marker is not None else path.with_name(path.name + ".module_src_ran")
    data = snapshot_dict(G=G, D=D, G_ema=G_ema, training_set_kwargs=training_set_kwargs, augment_p=augment_p)
    path.write_bytes(dumps_official(data, protocol=protocol, marker=marker, c_pickler=True))
    return marker


def legacy_storage_bytes(parts) -> bytes:
    """A legacy (non-zip) `torch.save` stream made of these pickled parts, in order."""
    buf = io.BytesIO()
    for part in parts:
        _OfficialPickler(buf, 2, "", None).dump(part)
    return buf.getvalue()


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
