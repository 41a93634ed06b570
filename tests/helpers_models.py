"""Tiny generators and discriminators for tests: the `tiny` preset at 16² or 32², built in milliseconds.

Freshly initialised networks have noise_strength 0 and w_avg 0, which would hide noise
and truncation bugs; `tiny_model` gives them non-zero values.
"""

from __future__ import annotations

import torch

from ganscapes.gan.checkpoint import Model, model_hash
from ganscapes.gan.config import network_kwargs, resolve_preset
from ganscapes.gan.networks import build_discriminator, build_generator


def tiny_kwargs(res: int = 16, c_dim: int = 0, channels: int = 3) -> tuple[dict, dict]:
    return network_kwargs(resolve_preset("tiny", res), res, img_channels=channels, c_dim=c_dim)


def tiny_generator(res: int = 16, c_dim: int = 0, channels: int = 3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    G = build_generator(tiny_kwargs(res, c_dim, channels)[0])
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
        G.mapping.w_avg.normal_(0, 0.5)
    return G


def tiny_model(
    res: int = 16, c_dim: int = 0, channels: int = 3, seed: int = 0, with_training_nets: bool = False
) -> Model:
    G_ema = tiny_generator(res, c_dim, channels, seed).eval().requires_grad_(False)
    G = D = None
    if with_training_nets:
        G = tiny_generator(res, c_dim, channels, seed + 1)
        torch.manual_seed(seed + 2)
        D = build_discriminator(tiny_kwargs(res, c_dim, channels)[1])
    meta = {
        "preset": "tiny",
        "prepare_format": "center-rect",
        "aspect": 1.27,
        "augment_p": 0.125,
        "training_set_kwargs": {"path": "landscapes.zip", "resolution": res},
    }
    return Model(G_ema=G_ema, G=G, D=D, meta=meta, model_hash=model_hash(G_ema))
