"""Sliced Wasserstein distance between two image sets (ProGAN's SWD: Karras et al. 2018, §5).

Needs no pretrained weights, which makes it the metric training runs at every snapshot.
Each image is split into a Laplacian pyramid from its own resolution down to 16²; from
every level random 7×7 patches are cut (128 per image), normalised per level and per
colour channel with the statistics of their own set, and the two sets of patches are
compared along random directions: project, sort, take the mean absolute difference of
the sorted projections. Reported ×1e3 per level (`SWDx1e3_{res}`) and averaged over the
levels (`SWDx1e3_avg`); lower is better.

The patch positions come from `seed` and are the same for both sets, so two identical
sets score exactly 0; the directions come from `seed` as well, so a seed gives one
number. Everything is vectorised with torch and works in bounded memory chunks.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

PATCH = 7  # descriptor side
LOWEST = 16  # the last (low-pass) level of the pyramid
_CHUNK_PIXELS = 1 << 26  # image values per pyramid pass (256 MiB of float32)
_CHUNK_ELEMENTS = 1 << 24  # projection values per matmul chunk (64 MiB of float32 per set)


def _binomial(channels: int, device) -> torch.Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device)
    k = torch.outer(k, k) / 256
    return k.expand(channels, 1, 5, 5).contiguous()


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """5×5 binomial filter with a mirror boundary (reflect without repeating the edge)."""
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def _down(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return _blur(x, kernel)[:, :, ::2, ::2]


def _up(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    y = torch.zeros([n, c, h * 2, w * 2], dtype=x.dtype, device=x.device)
    y[:, :, ::2, ::2] = x
    return _blur(y, kernel * 4)


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """`levels` bands, finest first: band k = G_k − up(G_{k+1}); the last is the low-pass G."""
    kernel = _binomial(images.shape[1], images.device).to(images.dtype)
    bands = []
    g = images
    for _ in range(levels - 1):
        smaller = _down(g, kernel)
        bands.append(g - _up(smaller, kernel))
        g = smaller
    bands.append(g)
    return bands


def level_resolutions(resolution: int) -> list[int]:
    """The pyramid levels SWD uses for square images of side `resolution`."""
    if resolution < 8:
        raise ValueError(f"SWD needs images of at least 8x8 pixels (7x7 patches), not {resolution}x{resolution}")
    if resolution & (resolution - 1):
        raise ValueError(f"SWD needs a power-of-two image side, not {resolution}")
    if resolution <= LOWEST:
        return [resolution]  # tiny nets: one level at the native resolution
    return [resolution >> k for k in range(int(math.log2(resolution // LOWEST)) + 1)]


def _patch_centres(n: int, per_image: int, side: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    half = PATCH // 2
    ys = torch.randint(half, side - half, [n, per_image], generator=generator)
    xs = torch.randint(half, side - half, [n, per_image], generator=generator)
    return ys, xs


def _cut_patches(band: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """[n, C, H, W] band, centres [n, P] → descriptors [n·P, C, 7, 7]."""
    n, c = band.shape[:2]
    half = PATCH // 2
    offsets = torch.arange(-half, half + 1, device=band.device)
    rows = (ys.to(band.device)[:, :, None] + offsets)[:, :, :, None]  # [n, P, 7, 1]
    cols = (xs.to(band.device)[:, :, None] + offsets)[:, :, None, :]  # [n, P, 1, 7]
    img = torch.arange(n, device=band.device)[:, None, None, None]
    patches = band.permute(0, 2, 3, 1)[img, rows, cols]  # [n, P, 7, 7, C]
    return patches.permute(0, 1, 4, 2, 3).reshape(-1, c, PATCH, PATCH)


def _normalise(desc: torch.Tensor) -> torch.Tensor:
    """Per channel over all descriptors and positions: zero mean, unit population std
    (statistics accumulated in float64); [M, C, 7, 7] → [M, C·49], in place."""
    for ch in range(desc.shape[1]):
        x = desc[:, ch]
        count = x.numel()
        mean = x.sum(dtype=torch.float64) / count
        var = (x - mean.to(x.dtype)).square().sum(dtype=torch.float64) / count
        x.sub_(mean.to(x.dtype)).div_(var.sqrt().clamp_min(1e-12).to(x.dtype))
    return desc.reshape(desc.shape[0], -1)


def sliced_wasserstein(
    a: torch.Tensor, b: torch.Tensor, generator: torch.Generator, repeats: int = 4, dirs_per_repeat: int = 128
) -> float:
    """Mean over `repeats` of the mean |sorted(a·d) − sorted(b·d)| over `dirs_per_repeat`
    random unit directions d; `a` and `b` are [M, D] with the same M."""
    if a.shape != b.shape:
        raise ValueError(f"SWD compares sets of equal size, not {tuple(a.shape)} and {tuple(b.shape)}")
    m, d = a.shape
    per_chunk = max(1, min(dirs_per_repeat, _CHUNK_ELEMENTS // max(m, 1)))
    results = []
    for _ in range(repeats):
        dirs = torch.randn([d, dirs_per_repeat], generator=generator, dtype=torch.float64)
        dirs = (dirs / dirs.square().sum(dim=0, keepdim=True).sqrt()).to(torch.float32).to(a.device)
        total = 0.0
        for k in range(0, dirs_per_repeat, per_chunk):
            sub = dirs[:, k : k + per_chunk].T.contiguous()
            pa, pb = sub @ a.T, sub @ b.T  # [dirs, M]: one direction per row
            if pa.device.type == "cpu":  # numpy sorts rows about twice as fast on the CPU
                da = np.sort(pa.numpy(), axis=1) - np.sort(pb.numpy(), axis=1)
                total += float(np.abs(da).sum(dtype=np.float64))
            else:
                da = torch.sort(pa, dim=1).values - torch.sort(pb, dim=1).values
                total += float(da.abs().sum(dtype=torch.float64))
        results.append(total / (m * dirs_per_repeat))
    return sum(results) / len(results)


class SWDAccumulator:
    """SWD over image sets that arrive in batches (so neither set has to fit in memory).

    Patch positions are drawn up front for `num_images` images per set, from `seed`; the
    i-th real and the i-th fake image get the same positions. Feed each set with
    `add_reals` / `add_fakes` (in any batch sizes, `num_images` in all), then `result()`.
    Memory: the descriptors of both sets, n · 128 · 49·C · 4 bytes per level and set
    (about 150 kB per RGB image and level for both sets together).
    """

    def __init__(
        self,
        resolution: int,
        channels: int,
        num_images: int,
        seed: int = 0,
        descriptors_per_image: int = 128,
        device: str | torch.device | None = None,
    ):
        if num_images < 1:
            raise ValueError("SWD needs at least one image per set")
        self.resolutions = level_resolutions(resolution)
        self.resolution, self.channels, self.num_images = resolution, channels, int(num_images)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._gen = torch.Generator().manual_seed(int(seed))
        self._centres = [_patch_centres(self.num_images, descriptors_per_image, r, self._gen) for r in self.resolutions]
        self._parts: dict[str, list[list[torch.Tensor]]] = {
            k: [[] for _ in self.resolutions] for k in ("reals", "fakes")
        }
        self._count = {"reals": 0, "fakes": 0}

    def add_reals(self, images_uint8: torch.Tensor) -> None:
        self._add("reals", images_uint8)

    def add_fakes(self, images_uint8: torch.Tensor) -> None:
        self._add("fakes", images_uint8)

    def _add(self, which: str, images: torch.Tensor) -> None:
        if images.ndim != 4 or tuple(images.shape[1:]) != (self.channels, self.resolution, self.resolution):
            raise ValueError(
                f"SWD expects images [N, {self.channels}, {self.resolution}, {self.resolution}], "
                f"not {list(images.shape)}"
            )
        start = self._count[which]
        if start + images.shape[0] > self.num_images:
            raise ValueError(f"more than {self.num_images} {which} images given to SWD")
        step = max(1, min(1024, _CHUNK_PIXELS // max(images[0].numel(), 1)))
        levels = len(self.resolutions)
        with torch.no_grad():
            for k in range(0, images.shape[0], step):
                chunk = images[k : k + step].to(device=self.device, dtype=torch.float32)
                lo, hi = start + k, start + k + chunk.shape[0]
                for lvl, band in enumerate(laplacian_pyramid(chunk, levels)):
                    ys, xs = self._centres[lvl]
                    self._parts[which][lvl].append(_cut_patches(band, ys[lo:hi], xs[lo:hi]))
        self._count[which] += images.shape[0]

    def result(self, dirs_per_repeat: int = 128, repeats: int = 4) -> dict[str, float]:
        for which, count in self._count.items():
            if count != self.num_images:
                raise ValueError(f"SWD was given {count} {which} images, not the {self.num_images} it was set up for")
        results = {}
        with torch.no_grad():
            for lvl, r in enumerate(self.resolutions):
                a = _normalise(torch.cat(self._parts["reals"][lvl]))
                b = _normalise(torch.cat(self._parts["fakes"][lvl]))
                self._parts["reals"][lvl] = self._parts["fakes"][lvl] = []
                results[f"SWDx1e3_{r}"] = sliced_wasserstein(a, b, self._gen, repeats, dirs_per_repeat) * 1e3
                del a, b
        results["SWDx1e3_avg"] = sum(results.values()) / len(self.resolutions)
        return results


def swd(
    reals_uint8: torch.Tensor,
    fakes_uint8: torch.Tensor,
    seed: int = 0,
    descriptors_per_image: int = 128,
    dirs_per_repeat: int = 128,
    repeats: int = 4,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """SWD between two sets of uint8 images [N, C, R, R] (equal N, C and R).

    Returns `{"SWDx1e3_{res}": …, "SWDx1e3_avg": …}` for the levels from R down to 16 (a
    single level at R for images smaller than 16²; images below 8² raise ValueError).
    Computed on `device` (default: where `reals_uint8` is); deterministic for a seed, and
    exactly 0 for two identical sets.
    """
    if reals_uint8.ndim != 4 or fakes_uint8.ndim != 4:
        raise ValueError("SWD takes image batches [N, C, H, W]")
    if tuple(reals_uint8.shape) != tuple(fakes_uint8.shape):
        raise ValueError(
            f"SWD compares sets of equal size and shape, not {tuple(reals_uint8.shape)} and {tuple(fakes_uint8.shape)}"
        )
    n, c, h, w = reals_uint8.shape
    if h != w:
        raise ValueError(f"SWD needs square images, not {w}x{h}")
    acc = SWDAccumulator(
        h,
        c,
        n,
        seed=seed,
        descriptors_per_image=descriptors_per_image,
        device=device if device is not None else reals_uint8.device,
    )
    acc.add_reals(reals_uint8)
    acc.add_fakes(fakes_uint8)
    return acc.result(dirs_per_repeat=dirs_per_repeat, repeats=repeats)
