"""Configuration presets of StyleGAN2-ADA (`--cfg`), with the published values.

The table is `cfg_specs` of NVIDIA's `train.py` (`setup_training_loop_kwargs`); `auto`
derives its numbers from the resolution and GPU count. `tiny` is ours: a network small enough to
train and test on a laptop CPU in seconds, with the same architecture otherwise.
`network_kwargs` turns a preset into the init kwargs of G and D in the official
structure, which is also what our checkpoints record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ganscapes.errors import UserError


@dataclass(frozen=True)
class Preset:
    """One row of the preset table. Training fields are used by `train`; the rest shape G and D."""

    name: str
    ref_gpus: int | None  # None: as many as are used (auto)
    kimg: int
    mb: int  # total batch
    mbstd: int  # minibatch-stddev group size
    fmaps: float  # channel_base = fmaps · 32768
    lrate: float
    gamma: float  # R1 weight
    ema: float  # G_ema half-life in kimg
    ramp: float | None  # G_ema ramp-up
    map: int  # mapping layers
    z_dim: int = 512
    w_dim: int = 512
    channel_max: int = 512
    num_fp16_res: int = 4
    conv_clamp: int | None = 256
    pl_weight: float = 2.0
    style_mixing: float = 0.9
    d_architecture: str = "resnet"

    @property
    def channel_base(self) -> int:
        return int(self.fmaps * 32768)

    @property
    def batch_gpu(self) -> int:
        return self.mb // (self.ref_gpus or 1)


# One row per preset, in the order and with the values of `cfg_specs` in NVIDIA's train.py.
# fmt: off
PRESETS: dict[str, Preset] = {
    "stylegan2": Preset("stylegan2", ref_gpus=8, kimg=25000,  mb=32, mbstd=4,  fmaps=1,   lrate=0.002,  gamma=10,   ema=10,  ramp=None, map=8),
    "paper256":  Preset("paper256",  ref_gpus=8, kimg=25000,  mb=64, mbstd=8,  fmaps=0.5, lrate=0.0025, gamma=1,    ema=20,  ramp=None, map=8),
    "paper512":  Preset("paper512",  ref_gpus=8, kimg=25000,  mb=64, mbstd=8,  fmaps=1,   lrate=0.0025, gamma=0.5,  ema=20,  ramp=None, map=8),
    "paper1024": Preset("paper1024", ref_gpus=8, kimg=25000,  mb=32, mbstd=4,  fmaps=1,   lrate=0.002,  gamma=2,    ema=10,  ramp=None, map=8),
    "cifar":     Preset("cifar",     ref_gpus=2, kimg=100000, mb=64, mbstd=32, fmaps=1,   lrate=0.0025, gamma=0.01, ema=500, ramp=0.05, map=2,
                        pl_weight=0, style_mixing=0, d_architecture="orig"),
    # Ours, for CPUs: 32-d latents, no fp16; channel_base 2048 gives 64 channels up to 32²,
    # then 32 at 64², 16 at 128². γ follows the resolution (0.0002·res²/mb, as `auto`).
    "tiny":      Preset("tiny",      ref_gpus=1, kimg=100,    mb=8,  mbstd=4,  fmaps=2048 / 32768, lrate=0.0025, gamma=0.1, ema=1, ramp=0.05, map=2,
                        z_dim=32, w_dim=32, channel_max=64, num_fp16_res=0),
}
# fmt: on
PRESET_NAMES = ("auto", *PRESETS)


def resolve_preset(name: str, resolution: int, gpus: int = 1) -> Preset:
    """The preset `name` for this resolution; `auto` is computed as `train.py` does for `--cfg=auto`."""
    if name == "auto":
        res = resolution
        mb = max(min(gpus * min(4096 // res, 32), 64), gpus)
        return Preset(
            "auto",
            ref_gpus=gpus,
            kimg=25000,
            mb=mb,
            mbstd=min(mb // gpus, 4),
            fmaps=1 if res >= 512 else 0.5,
            lrate=0.002 if res >= 1024 else 0.0025,
            gamma=0.0002 * res**2 / mb,
            ema=mb * 10 / 32,
            ramp=0.05,
            map=2,
        )
    if name == "tiny":
        return dataclasses.replace(PRESETS["tiny"], ref_gpus=gpus, gamma=0.0002 * resolution**2 / PRESETS["tiny"].mb)
    if name not in PRESETS:
        raise UserError(f"Unknown preset {name!r}; choose one of {', '.join(PRESET_NAMES)}.")
    return PRESETS[name]


def check_resolution(resolution: int, img_channels: int = 3) -> None:
    if not (4 <= resolution <= 1024 and resolution & (resolution - 1) == 0):
        raise UserError(f"The resolution must be a power of two from 4 to 1024, not {resolution}.")
    if not 1 <= img_channels <= 4:
        raise UserError(f"Images must have 1 to 4 channels, not {img_channels}.")


def network_kwargs(
    preset: Preset, resolution: int, img_channels: int = 3, c_dim: int = 0, fp32: bool = False
) -> tuple[dict, dict]:
    """Init kwargs of G and D, in the structure of the official pickles' `_init_kwargs`.

    `fp32` is train.py's `--fp32`: no fp16 blocks and no clamping.
    """
    check_resolution(resolution, img_channels)
    num_fp16_res = 0 if fp32 else preset.num_fp16_res
    conv_clamp = None if fp32 else preset.conv_clamp
    G = {
        "z_dim": preset.z_dim,
        "c_dim": c_dim,
        "w_dim": preset.w_dim,
        "img_resolution": resolution,
        "img_channels": img_channels,
        "mapping_kwargs": {"num_layers": preset.map},
        "synthesis_kwargs": {
            "channel_base": preset.channel_base,
            "channel_max": preset.channel_max,
            "num_fp16_res": num_fp16_res,
            "conv_clamp": conv_clamp,
            "architecture": "skip",
        },
    }
    D = {
        "c_dim": c_dim,
        "img_resolution": resolution,
        "img_channels": img_channels,
        "architecture": preset.d_architecture,
        "channel_base": preset.channel_base,
        "channel_max": preset.channel_max,
        "num_fp16_res": num_fp16_res,
        "conv_clamp": conv_clamp,
        "cmap_dim": None,
        "block_kwargs": {},
        "mapping_kwargs": {},
        "epilogue_kwargs": {"mbstd_group_size": preset.mbstd},
    }
    return G, D
