"""How the synthesis network runs on a given device (precision, fused convolutions)."""

from __future__ import annotations

import torch


def synthesis_options(device: torch.device) -> dict:
    """How generate and the metrics run the synthesis network on `device`.

    float32 everywhere but CUDA (float16 blocks are slow or unsupported elsewhere; the
    networks' `force_fp32`, as in NVIDIA's `training/networks.py`). On CPU the unfused
    modulated convolution: the same function as the fused one (both forms are in
    `modulated_conv2d` of `training/networks.py`) but about twice as fast there; elsewhere
    the network's own choice, as in the official code.
    """
    return {"force_fp32": device.type != "cuda", "fused_modconv": False if device.type == "cpu" else None}
