"""Hard bounds on network settings read from files, checked before anything is allocated.

A model file (our safetensors metadata, or the constructor arguments inside an official
pickle) says how big its networks are. A crafted file can ask for a 16384² generator or
a million mapping layers, and building that would allocate tens of gigabytes before any
weight is compared. `check_network_kwargs` bounds every size first; `expected_state`
then builds the network on PyTorch's "meta" device, which allocates nothing, so the
stored tensors' names and shapes — and the total size — are checked before the real
network is built. The bounds are far above every published configuration (the largest,
paper1024, is 1024², 512 channels, 8 mapping layers, 30 million parameters per network).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

MAX_RESOLUTION = 2048
MAX_PARAMETERS = 250_000_000  # per network: about 8 times paper1024's

# (setting, lowest, highest); None allowed where the networks accept None.
_TOP = {
    "z_dim": (0, 4096),
    "w_dim": (1, 4096),
    "c_dim": (0, 100_000),
    "img_channels": (1, 4),
    "channel_base": (1, 1 << 22),
    "channel_max": (1, 4096),
    "num_fp16_res": (0, 12),
    "conv_clamp": (0, 1e6),
    "cmap_dim": (1, 4096),
}
_NESTED = {
    "mapping_kwargs": {
        "num_layers": (0, 32),
        "embed_features": (1, 4096),
        "layer_features": (1, 4096),
        "lr_multiplier": (0, 1e3),
        "w_avg_beta": (0, 1),
    },
    "synthesis_kwargs": {
        "channel_base": (1, 1 << 22),
        "channel_max": (1, 4096),
        "num_fp16_res": (0, 12),
        "conv_clamp": (0, 1e6),
    },
    "block_kwargs": {"freeze_layers": (0, 1000)},
    "epilogue_kwargs": {"mbstd_group_size": (1, 4096), "mbstd_num_channels": (0, 64)},
}


def check_network_kwargs(kwargs: dict, what: str = "network") -> None:
    """Raise ValueError naming the first setting outside its bounds (or of the wrong type)."""
    if not isinstance(kwargs, dict):
        raise ValueError(f"the {what} settings are not a mapping")
    resolution = kwargs.get("img_resolution")
    if not _is_int(resolution) or not 4 <= resolution <= MAX_RESOLUTION or resolution & (resolution - 1):
        raise ValueError(f"{what} img_resolution must be a power of two from 4 to {MAX_RESOLUTION}, not {resolution!r}")
    _check_values(kwargs, _TOP, what)
    for key, bounds in _NESTED.items():
        nested = kwargs.get(key)
        if nested is None:
            continue
        if not isinstance(nested, dict):
            raise ValueError(f"{what} {key} must be a mapping, not {type(nested).__name__}")
        _check_values(nested, bounds, f"{what} {key}")


def expected_state(builder: Callable[[dict], torch.nn.Module], kwargs: dict) -> dict[str, torch.Size]:
    """Names and shapes of the state a network of these settings has, computed without allocating it."""
    with torch.device("meta"):
        net = builder(dict(kwargs))
    shapes = {name: t.shape for name, t in net.state_dict().items()}
    total = sum(math.prod(shape) for shape in shapes.values())
    if total > MAX_PARAMETERS:
        raise ValueError(
            f"these settings make a network of {total:,} numbers, more than the {MAX_PARAMETERS:,} allowed"
        )
    return shapes


def _check_values(values: dict, bounds: dict[str, tuple[float, float]], what: str) -> None:
    for key, (low, high) in bounds.items():
        value = values.get(key)
        if value is None:  # absent or None: the network's default (a missing required one fails to build)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{what} {key} must be a number, not {value!r}")
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"{what} {key} must be from {low:g} to {high:g}, not {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
