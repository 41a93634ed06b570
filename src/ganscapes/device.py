"""The torch device: which one a command computes on, and how the synthesis network runs there.

`resolve_device` reads the `device` setting (auto|cpu|cuda|mps) of every stage that
computes (CLIP scoring as much as the GAN), and `synthesis_options` says how the
synthesis network runs on the device chosen; both sit at the top of the package, below
every stage, rather than under `gan/`.
"""

from __future__ import annotations

import torch

from ganscapes.errors import SettingError, UserError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str | torch.device) -> torch.device:
    """'auto' → CUDA if present, else MPS, else CPU; an unavailable device is a UserError."""
    if isinstance(name, torch.device):
        return name
    name = str(name).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise SettingError("device", "cuda was asked for, but PyTorch sees no CUDA GPU; use cpu or auto.")
    if kind == "mps" and not _mps_available():
        raise SettingError("device", "mps was asked for, but PyTorch sees no Apple GPU (MPS); use cpu or auto.")
    if kind not in ("cpu", "cuda", "mps"):
        raise UserError(f"Unknown device {name!r}; choose one of {', '.join(DEVICES)}.")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"Unknown device {name!r}; choose one of {', '.join(DEVICES)}.") from None


def synthesis_options(device: torch.device) -> dict:
    """How generate and the metrics run the synthesis network on `device`.

    float32 everywhere but CUDA (float16 blocks are slow or unsupported elsewhere; the
    networks' `force_fp32`, as in NVIDIA's `training/networks.py`). On CPU the unfused
    modulated convolution: the same function as the fused one (both forms are in
    `modulated_conv2d` of `training/networks.py`) but about twice as fast there; elsewhere
    the network's own choice, as in the official code.
    """
    return {"force_fp32": device.type != "cuda", "fused_modconv": False if device.type == "cpu" else None}


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
