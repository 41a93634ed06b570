"""Choosing the torch device: `--device auto|cpu|cuda|mps` for every command that computes.

Shared by every stage (CLIP scoring as much as the GAN), so it sits at the top of the
package rather than under `gan/`.
"""

from __future__ import annotations

import torch

from ganscapes.errors import UserError

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
        raise UserError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu or auto.")
    if kind == "mps" and not _mps_available():
        raise UserError("--device mps was asked for, but PyTorch sees no Apple GPU (MPS); use --device cpu or auto.")
    if kind not in ("cpu", "cuda", "mps"):
        raise UserError(f"Unknown device {name!r}; choose one of {', '.join(DEVICES)}.")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"Unknown device {name!r}; choose one of {', '.join(DEVICES)}.") from None


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
