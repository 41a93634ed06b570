"""Our model files (safetensors) and `load_model`, which also reads official NVIDIA pickles.

A model file holds the tensors of `G_ema` (always) and of `G` and `D` (when kept for
resuming training) under the keys `G_ema.<name>`, `G.<name>`, `D.<name>`, with the
official parameter names. Its string metadata makes it self-describing: the network init
kwargs, the preset, the package version, the facts later stages need from the training
data, where the weights came from, and the **model hash**.

The model hash is a SHA-256 over the `G_ema` tensors only: they alone make the pictures,
so the same picture-making weights have the same hash whether they were read from an
official pickle or from our file, and whether or not `G` and `D` travel with them.
Provenance records refer to it.

Nothing here unpickles anything: safetensors holds raw tensors only, and official
pickles go through the restricted reader of `ganscapes.gan.official`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from ganscapes import __version__
from ganscapes.data.aspect import ASPECT_RANGE, is_aspect
from ganscapes.errors import UserError, first_line
from ganscapes.fileio import atomic_path

FORMAT = "ganscapes-model"
FORMAT_VERSION = "1"
NETWORKS = ("G_ema", "G", "D")  # the order in the file
SUFFIX = ".safetensors"
OFFICIAL_SUFFIX = ".pkl"

# Metadata entries stored as JSON (everything else is a plain string).
_JSON_FIELDS = (
    "G_kwargs",
    "D_kwargs",
    "training_set_kwargs",
    "preset",
    "resolution",
    "c_dim",
    "img_channels",
    "prepare_format",
    "aspect",
    "augment_p",
)
_TEXT_FIELDS = ("format", "format_version", "ganscapes_version", "model_hash", "source")
TENSORS_HASH = "tensors_hash"  # SHA-256 of all tensors, as model_hash computes it; absent in older files

# What the caller may put in `Model.meta`; the rest is derived from the networks on save.
DATA_FIELDS = ("preset", "training_set_kwargs", "prepare_format", "aspect", "source", "augment_p")


@dataclass
class Model:
    """A generator ready to make pictures, with what travels with it.

    `G_ema` is in eval mode with gradients off. `G` and `D` (present when the file kept
    them, for resuming training) are returned as constructed: training mode, gradients on.
    `meta` holds the decoded metadata (see `metadata_fields`); `model_hash` is the hash of
    the `G_ema` tensors; `path` is where the model was read from (None if built in memory).
    """

    G_ema: torch.nn.Module
    G: torch.nn.Module | None = None
    D: torch.nn.Module | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    model_hash: str = ""
    path: Path | None = None

    @property
    def resolution(self) -> int:
        return int(self.G_ema.img_resolution)

    @property
    def c_dim(self) -> int:
        return int(self.G_ema.c_dim)

    @property
    def img_channels(self) -> int:
        return int(self.G_ema.img_channels)

    @property
    def num_ws(self) -> int:
        return int(self.G_ema.num_ws)

    @property
    def networks(self) -> list[str]:
        return [name for name in NETWORKS if getattr(self, name) is not None]


# ---------------------------------------------------------------------------------------
# The model hash


def model_hash(G_ema: torch.nn.Module | dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of a generator's tensors: for each name in sorted order, the name, the
    dtype, the shape and the raw little-endian bytes.

    Accepts the module or its state dict; the module's persistent parameters and buffers
    (`w_avg`, `noise_const`, filters) are what is hashed.
    """
    state = G_ema.state_dict() if isinstance(G_ema, torch.nn.Module) else G_ema
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        dtype = str(t.dtype).removeprefix("torch.")
        shape = ",".join(str(s) for s in t.shape)
        h.update(f"{name}\0{dtype}\0{shape}\0".encode())
        h.update(_le_bytes(t))
    return h.hexdigest()


def _le_bytes(t: torch.Tensor) -> bytes:
    if sys.byteorder == "little" or t.element_size() == 1:
        return t.reshape(-1).view(torch.uint8).numpy().tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()  # pragma: no cover


# ---------------------------------------------------------------------------------------
# Saving


def metadata_fields(model: Model) -> dict[str, Any]:
    """The metadata `save_model` records for `model`, as Python values."""
    G = model.G_ema
    extra = {k: model.meta.get(k) for k in DATA_FIELDS}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ganscapes_version": __version__,
        "G_kwargs": G.init_kwargs,
        "D_kwargs": model.D.init_kwargs if model.D is not None else None,
        "training_set_kwargs": extra["training_set_kwargs"],
        "preset": extra["preset"],
        "resolution": int(G.img_resolution),
        "c_dim": int(G.c_dim),
        "img_channels": int(G.img_channels),
        "prepare_format": extra["prepare_format"],
        "aspect": extra["aspect"],
        "source": extra["source"] or "ganscapes-train",
        "augment_p": extra["augment_p"],
        "model_hash": model_hash(G),
    }


def save_model(path: str | Path, model: Model) -> str:
    """Write `model` to `path` (a `.safetensors` file) atomically; returns the model hash.

    The file is written beside its destination under a temporary name and renamed into
    place, so an interrupted save never leaves a half-written model. `model.meta` and
    `model.model_hash` are updated to what was written.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != SUFFIX:
        raise UserError(f"A ganscapes model file must end in {SUFFIX}, not {path.name!r}.")
    if model.G is not None and model.G.init_kwargs != model.G_ema.init_kwargs:
        raise ValueError("G and G_ema must have the same init kwargs")
    meta = metadata_fields(model)
    tensors: dict[str, torch.Tensor] = {}
    for name in model.networks:
        for key, t in getattr(model, name).state_dict().items():
            # clone: safetensors refuses tensors that share storage.
            tensors[f"{name}.{key}"] = t.detach().to("cpu", copy=True).contiguous()
    strings = {k: (json.dumps(meta[k]) if k in _JSON_FIELDS else str(meta[k])) for k in (*_TEXT_FIELDS, *_JSON_FIELDS)}
    # Every tensor, not only G_ema's: flipped bytes in D or G must not resume silently.
    strings[TENSORS_HASH] = model_hash(tensors)

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=strings)
        except SafetensorError as e:
            raise _os_error(e, tmp) from None
    model.meta = meta
    model.model_hash = meta["model_hash"]
    return meta["model_hash"]


def _os_error(error: Exception, path: Path) -> Exception:
    """safetensors reports a failed write ("… I/O error: No space left on device (os error 28)") as its own
    error type; as an OSError it becomes the one-sentence `WriteError` every other write gives."""
    m = re.search(r"os error (\d+)", str(error))
    return OSError(int(m.group(1)), os.strerror(int(m.group(1))), str(path)) if m else error


# ---------------------------------------------------------------------------------------
# Loading


def load_model(path: str | Path, device: str | torch.device = "cpu", *, generator_only: bool = False) -> Model:
    """Read a ganscapes model (`.safetensors`) or an official NVIDIA snapshot (`.pkl`).

    Official pickles are read without running the code embedded in them. Anything that
    is not one of these, or does not fit its own recorded network settings, is refused
    with a `UserError`. With `generator_only` the model holds G_ema alone (G and D stay
    None, whatever the file keeps): all that painting needs, in a third of the memory.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"Model file {path} does not exist.")
    if not path.is_file():
        raise UserError(f"Model {path} is not a file.")
    suffix = path.suffix.lower()
    wanted = ("G_ema",) if generator_only else NETWORKS
    if suffix == SUFFIX:
        model = _load_safetensors(path, wanted)
    elif suffix == OFFICIAL_SUFFIX:
        model = _load_official(path, wanted)
    else:
        raise UserError(
            f"{path} is neither a ganscapes model ({SUFFIX}) nor an official NVIDIA snapshot ({OFFICIAL_SUFFIX})."
        )
    bad = next((name for name, t in model.G_ema.state_dict().items() if not torch.isfinite(t).all()), None)
    if bad is not None:  # it would paint black (or NaN) pictures
        raise UserError(f"{path} has non-finite weights in its generator ({bad}); it cannot make pictures.")
    return _to_device(model, device)


def _load_safetensors(path: Path, wanted: tuple[str, ...] = NETWORKS) -> Model:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            strings = f.metadata() or {}
            if strings.get("format") != FORMAT:
                raise UserError(f"{path} is a safetensors file but not a ganscapes model (no 'format: {FORMAT}').")
            keys = list(f.keys())
            tensors = {key: f.get_tensor(key) for key in keys if key.partition(".")[0] in wanted}
    except UserError:
        raise
    except Exception as e:  # safetensors raises its own error types, OSError, ValueError …
        raise UserError(f"{path} is not a readable safetensors file ({first_line(e)}).") from None
    version = strings.get("format_version")
    if version != FORMAT_VERSION:
        raise UserError(
            f"{path} is a ganscapes model of format version {version}, which ganscapes {__version__} cannot read."
        )
    meta: dict[str, Any] = {}
    for key in _TEXT_FIELDS:
        meta[key] = strings.get(key)
    for key in _JSON_FIELDS:
        try:
            meta[key] = json.loads(strings[key]) if key in strings else None
        except (ValueError, RecursionError):  # also a number of thousands of digits, or nesting past the stack
            raise UserError(f"{path} is damaged: its metadata entry {key!r} is not valid JSON.") from None
    if not isinstance(meta["G_kwargs"], dict):
        raise UserError(f"{path} is damaged: it does not record the generator's settings (G_kwargs).")
    if meta["aspect"] is not None and not is_aspect(meta["aspect"]):
        lo, hi = ASPECT_RANGE
        raise UserError(
            f"{path} is damaged: its aspect {str(meta['aspect'])[:40]} is not a width / height from {lo:g} to {hi:g}."
        )

    states: dict[str, OrderedDict] = {name: OrderedDict() for name in NETWORKS}
    for key in keys:
        name, _, rest = key.partition(".")
        if name not in states or not rest:
            raise UserError(f"{path} is damaged: unexpected tensor {key!r}.")
        if key in tensors:
            states[name][rest] = tensors[key]
    if not states["G_ema"]:
        raise UserError(f"{path} holds no G_ema tensors, so it cannot make pictures.")

    nets = {}
    for name in NETWORKS:
        if not states[name]:
            nets[name] = None
            continue
        kwargs = meta["D_kwargs"] if name == "D" else meta["G_kwargs"]
        if not isinstance(kwargs, dict):
            raise UserError(f"{path} is damaged: it holds {name} tensors but no {name} settings.")
        nets[name] = _build(name, kwargs, states[name], path)

    model = Model(G_ema=nets["G_ema"], G=nets["G"], D=nets["D"], meta=meta, path=path)
    model.model_hash = model_hash(model.G_ema)
    if meta["model_hash"] != model.model_hash:
        raise UserError(f"{path} is damaged: its G_ema weights do not match the model hash it records.")
    if TENSORS_HASH in strings and wanted == NETWORKS and model_hash(tensors) != strings[TENSORS_HASH]:
        raise UserError(f"{path} is damaged: its G or D weights do not match the hash it records.")
    return model


def _load_official(path: Path, wanted: tuple[str, ...] = NETWORKS) -> Model:
    from ganscapes.gan.official import (
        map_official_state_dict,
        official_kwargs_to_ours,
        read_official_pickle,
    )

    snapshot = read_official_pickle(path)  # refuses, with a UserError naming the file, what it cannot read
    nets, settings = {}, {}
    for name in NETWORKS:
        net = _official_network(snapshot, name)
        nets[name] = None
        if net is None:
            continue
        try:
            settings[name] = kwargs = official_kwargs_to_ours(net.class_name, net.init_kwargs)
            if name not in wanted:  # its settings still go into the metadata
                continue
            state = map_official_state_dict(net.state_dict, name)
        except UserError as e:
            raise UserError(f"{path} cannot be imported: {_lower_first(str(e))}") from None
        nets[name] = _build(name, kwargs, state, path)
    if nets["G_ema"] is None:
        raise UserError(f"{path} holds no G_ema, so it cannot make pictures.")
    G = nets["G_ema"]
    augment_p = snapshot.augment_p
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ganscapes_version": __version__,
        "G_kwargs": G.init_kwargs,
        "D_kwargs": nets["D"].init_kwargs if nets["D"] is not None else settings.get("D"),
        "training_set_kwargs": snapshot.training_set_kwargs,
        "preset": None,
        "resolution": int(G.img_resolution),
        "c_dim": int(G.c_dim),
        "img_channels": int(G.img_channels),
        "prepare_format": None,
        "aspect": None,
        "source": f"official-pickle:{path.name}",
        "augment_p": None if augment_p is None else float(augment_p),
    }
    model = Model(G_ema=G, G=nets["G"], D=nets["D"], meta=meta, path=path)
    model.model_hash = meta["model_hash"] = model_hash(G)
    return model


def _official_network(snapshot, name: str):
    """The snapshot's entry for `name`, or None."""
    networks = getattr(snapshot, "networks", None)
    if isinstance(networks, dict):
        return networks.get(name)
    return getattr(snapshot, name, None)


def _build(name: str, kwargs: dict, state: dict[str, torch.Tensor], path: Path) -> torch.nn.Module:
    """Construct network `name` from its kwargs and load `state` into it, strictly.

    The settings come from the file, so they are bounded and the network's shapes are
    worked out on the meta device (no memory) and compared with the stored tensors
    before the real network is built (`ganscapes.gan.limits`).
    """
    from ganscapes.gan.limits import check_network_kwargs, expected_state
    from ganscapes.gan.networks import build_discriminator, build_generator

    builder = build_discriminator if name == "D" else build_generator
    try:
        check_network_kwargs(kwargs, name)
        shapes = expected_state(builder, kwargs)
    except (TypeError, ValueError, KeyError, AssertionError, UserError) as e:
        why = first_line(e)
        raise UserError(f"{path} cannot be used: its {name} settings do not build a network ({why}).") from None
    problem = _state_mismatch(shapes, state)
    if problem:
        raise UserError(f"{path}: the {name} weights do not fit its recorded settings ({problem}).")
    net = builder(dict(kwargs))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise UserError(f"{path}: the {name} weights do not fit its recorded settings ({first_line(e)}).") from None
    return net


def _state_mismatch(expected: dict[str, torch.Size], given: dict[str, torch.Tensor]) -> str:
    """'' when names and shapes agree, else a short description of the first differences."""

    def listed(names: list[str]) -> str:
        shown = ", ".join(names[:3])
        return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    parts = []
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    if missing:
        parts.append(f"missing {listed(missing)}")
    if unexpected:
        parts.append(f"unexpected {listed(unexpected)}")
    for k, shape in expected.items():
        if k in given and tuple(given[k].shape) != tuple(shape):
            parts.append(f"{k} has shape {list(given[k].shape)} where the settings need {list(shape)}")
            break
    return "; ".join(parts)


def _lower_first(text: str) -> str:
    text = text.strip()
    text = text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text  # keep "G_ema", "CUDA"
    return text if text.endswith(".") else text + "."


def _to_device(model: Model, device: str | torch.device) -> Model:
    device = torch.device(device)
    model.G_ema = model.G_ema.to(device).eval().requires_grad_(False)
    if model.G is not None:
        model.G = model.G.to(device)
    if model.D is not None:
        model.D = model.D.to(device)
    return model
