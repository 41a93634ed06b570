"""Reading NVIDIA's `network-snapshot-*.pkl` files without running the code inside them.

An official snapshot (written by NVIDIA's `training/training_loop.py`, read by `legacy.py`
`load_network_pkl`) is a plain pickle of a dict with `G`, `D`, `G_ema`, `augment_pipe` and
`training_set_kwargs`, whose networks carry the Python source of NVIDIA's
`training/networks.py`. `ganscapes.gan.safe_pickle` unpickles it without running that
source (its docstring says how); this module takes what it returns apart.

The result, an `OfficialSnapshot`, holds plain data only: for each network its class
name, its constructor kwargs (JSON-serialisable) and its state dict, built by walking
the stubs the way `Module.state_dict()` walks modules. `STATE_DICT_TABLE` documents and
checks every official parameter name; `official_kwargs_to_ours` turns the recorded
kwargs into ones `networks.build_generator` / `build_discriminator` accept.
"""

from __future__ import annotations

import copy
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ganscapes.errors import UserError
from ganscapes.gan.safe_pickle import PersistentStub, UnsafePickleError, _Corrupt, _describe, safe_unpickle

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
