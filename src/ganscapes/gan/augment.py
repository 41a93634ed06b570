"""The ADA augmentation pipeline: what D sees, reals and fakes alike, is augmented.

As NVIDIA's `training/augment.py` `AugmentPipe`, with its parameters and buffers.

Why: with little data D memorises the training images and G's gradients turn to noise.
ADA (Karras et al. 2020) augments *every* image that D sees, reals and generated ones,
in the loss and in the R1 penalty alike, so D only ever learns about augmented images and
G is never rewarded for producing augmented-looking ones. Such an augmentation does not
"leak" into the generated distribution as long as each transform is applied with a
probability p < 1 (roughly p < 0.8): the un-augmented distribution is then still the only
one that, after augmentation, matches the augmented reals. One scalar p controls the
strength of everything; the ADA controller (`ganscapes.gan.ada`) raises it while D
overfits and lowers it otherwise, so small datasets get strong augmentation and large
ones almost none.

The pipeline, per sample, in the order of the official release: integer blits (x-flip,
90° rotations, integer translation) → general geometric transforms (isotropic and
anisotropic scaling, rotations, fractional translation), all composed into one inverse
affine matrix and applied by one resampling → colour transforms composed into one 4×4
matrix → image-space filtering with a 4-band filter bank → additive noise → cutout.
Each transform fires for each sample independently with probability `multiplier·p`,
p being read from the buffer `p` at call time (the controller writes it there and
checkpoints carry it).

Everything is differentiable w.r.t. the input images: G's gradients flow through the
augmented fakes and R1 differentiates D(A(x)) w.r.t. x twice. The small matrix products
are done elementwise, so that no TF32 matmul setting can round the transforms.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F

from ganscapes.errors import UserError
from ganscapes.gan.ops import grid_sample_bilinear, setup_filter, upsample2d

# Wavelet taps (`wavelets` in `training/augment.py`). sym6 gives an orthogonal 2× up/down
# pair, so the geometric resampling is an identity when the transform is; sym2 seeds the
# filter bank.
SYM6 = (
    0.015404109327027373,
    0.0034907120842174702,
    -0.11799011114819057,
    -0.048311742585633,
    0.4910559419267466,
    0.787641141030194,
    0.3379294217276218,
    -0.07263752278646252,
    -0.021060292512300564,
    0.04472490177066578,
    0.0017677118642428036,
    -0.007800708325034148,
)
SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)

# Expected power of the four filter-bank bands, lowest first: the gains are renormalised
# so that an image with this spectrum keeps its total power.
_BAND_POWER = (10 / 13, 1 / 13, 1 / 13, 1 / 13)

_BLIT = {"xflip": 1, "rotate90": 1, "xint": 1}
_GEOM = {"scale": 1, "rotate": 1, "aniso": 1, "xfrac": 1}
_COLOR = {"brightness": 1, "contrast": 1, "lumaflip": 1, "hue": 1, "saturation": 1}
_FILTER = {"imgfilter": 1}
_NOISE = {"noise": 1}
_CUTOUT = {"cutout": 1}

# The named pipes of the official `--augpipe` (`augpipe_specs` in `train.py`): multipliers set to 1.
AUGPIPE_SPECS: dict[str, dict[str, float]] = {
    "blit": dict(_BLIT),
    "geom": dict(_GEOM),
    "color": dict(_COLOR),
    "filter": dict(_FILTER),
    "noise": dict(_NOISE),
    "cutout": dict(_CUTOUT),
    "bg": dict(_BLIT, **_GEOM),
    "bgc": dict(_BLIT, **_GEOM, **_COLOR),
    "bgcf": dict(_BLIT, **_GEOM, **_COLOR, **_FILTER),
    "bgcfn": dict(_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE),
    "bgcfnc": dict(_BLIT, **_GEOM, **_COLOR, **_FILTER, **_NOISE, **_CUTOUT),
}
DEFAULT_AUGPIPE = "bgc"


def make_augment_pipe(name: str = DEFAULT_AUGPIPE) -> AugmentPipe:
    """The named pipe of `AUGPIPE_SPECS` (p = 0; the caller or the controller sets it)."""
    if name not in AUGPIPE_SPECS:
        raise UserError(f"Unknown augmentation pipe {name!r}: choose one of {', '.join(AUGPIPE_SPECS)}.")
    return AugmentPipe(**AUGPIPE_SPECS[name])


# ---------------------------------------------------------------------------------------
# Filters


def geom_filter() -> torch.Tensor:
    """sym6 normalised to sum 1, 1-D (12 taps): the buffer `Hz_geom`."""
    return setup_filter(SYM6)


def filter_bank() -> torch.Tensor:
    """The [4, 43] bank of `Hz_fbank` (`AugmentPipe.__init__`), built in float64, returned as float32.

    Zero-phase (symmetric) filters splitting the spectrum into octaves: row 0 is the
    low-pass [0, π/8] with DC gain 1, rows 1–3 are band-passes [π/8, π/4], [π/4, π/2] and
    [π/2, π] with DC gain 0 (the band added first is stretched most). The rows sum to a
    unit impulse, so equal gains on all bands leave the image alone; changing one band's
    gain boosts or damps that octave.
    """
    lo = np.asarray(SYM2, dtype=np.float64)
    hi = lo * (-1.0) ** np.arange(lo.size)
    lo2 = np.convolve(lo, lo[::-1]) / 2  # half autocorrelations: 7 taps, sums 1 and 0
    hi2 = np.convolve(hi, hi[::-1]) / 2
    bank = np.zeros((4, 1))
    bank[0, 0] = 1.0
    for k in range(1, 4):
        stretched = np.zeros((4, 2 * bank.shape[1] - 1))
        stretched[:, ::2] = bank  # zero-interleave: the filter moves down one octave
        bank = np.stack([np.convolve(row, lo2) for row in stretched])
        start = (bank.shape[1] - hi2.size) // 2
        bank[k, start : start + hi2.size] += hi2
    return torch.as_tensor(bank, dtype=torch.float32)


def upsample_geom(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Step 4 of §7.3: `upfirdn2d(x, f, up=2, padding=(6,5,6,5), gain=4)` for the 12-tap f."""
    return upsample2d(x, f.to(x.device))


def downsample_geom(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Step 7 of §7.3: `upfirdn2d(x, f, down=2, padding=-1, flip_filter=True)` for a 1-D f.

    Computed as a strided depthwise correlation (one pass per axis) on the image cropped
    by one pixel, rather than filtering at full rate and then decimating.
    """
    x = x[:, :, 1:-1, 1:-1]
    C = x.shape[1]
    f = f.to(device=x.device, dtype=x.dtype)
    x = F.conv2d(x, f.reshape(1, 1, 1, -1).expand(C, 1, 1, -1), stride=(1, 2), groups=C)
    return F.conv2d(x, f.reshape(1, 1, -1, 1).expand(C, 1, -1, 1), stride=(2, 1), groups=C)


# ---------------------------------------------------------------------------------------
# Small batched matrices (kept in float32, multiplied elementwise: no TF32 rounding)


def _matrix(rows, n: int, device) -> torch.Tensor:
    """[n, r, c] matrices from rows of entries, each a number or an [n] tensor."""
    entries = [torch.as_tensor(e, dtype=torch.float32, device=device).expand(n) for row in rows for e in row]
    return torch.stack(entries, dim=-1).reshape(n, len(rows), len(rows[0]))


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched a @ b as an exact-float32 broadcast sum (3×3 and 4×4 only, so it is cheap)."""
    return (a.unsqueeze(-1) * b.unsqueeze(-3)).sum(dim=-2)


def _translate2d(tx, ty, n, device):
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]], n, device)


def _scale2d(sx, sy, n, device):
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], n, device)


def _rotate2d(theta, n, device):
    c, s = torch.cos(theta), torch.sin(theta)
    return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]], n, device)


def _translate3d(t, n, device):
    return _matrix([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]], n, device)


def _scale3d(s, n, device):
    return _matrix([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]], n, device)


def _rotate3d(v, theta, n, device):
    """Rodrigues rotation by theta about the unit axis v (3 entries); exactly I at theta = 0."""
    x, y, z = (float(e) for e in v[:3])
    c, s = torch.cos(theta), torch.sin(theta)
    cc = 1 - c
    return _matrix(
        [
            [x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s, 0],
            [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s, 0],
            [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c, 0],
            [0, 0, 0, 1],
        ],
        n,
        device,
    )


# ---------------------------------------------------------------------------------------
# The pipe


class AugmentPipe(torch.nn.Module):
    """ADA's augmentations, each firing per sample with probability `multiplier · p`.

    Constructor arguments and buffer names are those of the official release, so an
    official pickle's `augment_pipe` maps onto this class by name: multipliers (0 = off,
    1 = the standard strength) and the spread of each random parameter. `p` is a buffer
    (scalar, starting at 0) rather than an argument because it changes during training
    and is saved with the pipe.
    """

    def __init__(
        self,
        xflip=0,
        rotate90=0,
        xint=0,
        xint_max=0.125,
        scale=0,
        rotate=0,
        aniso=0,
        xfrac=0,
        scale_std=0.2,
        rotate_max=1,
        aniso_std=0.2,
        xfrac_std=0.125,
        brightness=0,
        contrast=0,
        lumaflip=0,
        hue=0,
        saturation=0,
        brightness_std=0.2,
        contrast_std=0.5,
        hue_max=1,
        saturation_std=1,
        imgfilter=0,
        imgfilter_bands=(1, 1, 1, 1),
        imgfilter_std=1,
        noise=0,
        cutout=0,
        noise_std=0.1,
        cutout_size=0.5,
    ):
        super().__init__()
        imgfilter_bands = [float(b) for b in imgfilter_bands]
        if len(imgfilter_bands) != 4:
            raise ValueError(f"imgfilter_bands needs one strength per band (4), not {len(imgfilter_bands)}.")
        self.init_kwargs = copy.deepcopy(
            {
                "xflip": xflip,
                "rotate90": rotate90,
                "xint": xint,
                "xint_max": xint_max,
                "scale": scale,
                "rotate": rotate,
                "aniso": aniso,
                "xfrac": xfrac,
                "scale_std": scale_std,
                "rotate_max": rotate_max,
                "aniso_std": aniso_std,
                "xfrac_std": xfrac_std,
                "brightness": brightness,
                "contrast": contrast,
                "lumaflip": lumaflip,
                "hue": hue,
                "saturation": saturation,
                "brightness_std": brightness_std,
                "contrast_std": contrast_std,
                "hue_max": hue_max,
                "saturation_std": saturation_std,
                "imgfilter": imgfilter,
                "imgfilter_bands": imgfilter_bands,
                "imgfilter_std": imgfilter_std,
                "noise": noise,
                "cutout": cutout,
                "noise_std": noise_std,
                "cutout_size": cutout_size,
            }
        )
        for key, value in self.init_kwargs.items():
            setattr(self, key, value if key == "imgfilter_bands" else float(value))

        self.register_buffer("p", torch.zeros([]))
        self.register_buffer("Hz_geom", geom_filter())
        self.register_buffer("Hz_fbank", filter_bank())

    # Which groups are on, from the multipliers alone (not p): a group that is on draws its
    # random numbers, and the geometric resampling runs, even at p = 0.
    @property
    def geometric_enabled(self) -> bool:
        return any(getattr(self, k) > 0 for k in (*_BLIT, *_GEOM))

    @property
    def color_enabled(self) -> bool:
        return any(getattr(self, k) > 0 for k in _COLOR)

    def extra_repr(self) -> str:
        on = [k for k in (*_BLIT, *_GEOM, *_COLOR, *_FILTER, *_NOISE, *_CUTOUT) if getattr(self, k) > 0]
        return f"p={float(self.p):.4g}, on=[{', '.join(on)}]"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Augment a batch of [-1, 1] float images [N, C, H, W]; same shape out.

        C must be 1 or 3 when colour transforms are on (hue and saturation act on RGB
        only and are skipped for grayscale); the image filter needs H, W ≥ 22.
        """
        if images.ndim != 4 or not images.is_floating_point():
            raise ValueError(f"AugmentPipe expects float images [N, C, H, W], not {images.dtype} {list(images.shape)}.")
        N, C, H, W = images.shape
        if self.color_enabled and C not in (1, 3):
            raise ValueError(f"Colour augmentations need 1 (grayscale) or 3 (RGB) channels, not {C}.")
        pad = self.Hz_fbank.shape[1] // 2
        if self.imgfilter > 0 and min(H, W) <= pad:
            raise ValueError(f"The image filter needs images of at least {pad + 1}×{pad + 1} pixels, not {H}×{W}.")
        device = images.device
        p = self.p.detach().to(device=device, dtype=torch.float32)

        def rand(*shape):
            return torch.rand(shape, device=device)

        def randn(*shape):
            return torch.randn(shape, device=device)

        if self.geometric_enabled:
            images = self._geometric(images, p, rand, randn)
        if self.color_enabled:
            images = self._color(images, p, rand, randn)
        if self.imgfilter > 0:
            images = self._filter(images, p, rand, randn)
        if self.noise > 0:
            sigma = randn(N, 1, 1, 1).abs() * self.noise_std
            sigma = torch.where(rand(N, 1, 1, 1) < self.noise * p, sigma, 0.0)
            images = images + (randn(N, C, H, W) * sigma).to(images.dtype)
        if self.cutout > 0:
            # A square of side cutout_size·(W, H) at a uniform centre, clipped by the border.
            half = torch.where(rand(N, 1, 1, 1) < self.cutout * p, self.cutout_size / 2, 0.0)
            center = rand(N, 2, 1, 1)
            xs = (torch.arange(W, device=device, dtype=torch.float32) + 0.5) / W
            ys = (torch.arange(H, device=device, dtype=torch.float32) + 0.5) / H
            keep_x = (xs.reshape(1, 1, 1, W) - center[:, 0:1]).abs() >= half
            keep_y = (ys.reshape(1, 1, H, 1) - center[:, 1:2]).abs() >= half
            images = images * (keep_x | keep_y).to(images.dtype)
        return images

    # -- blit and geometric ---------------------------------------------------------

    def _geometric(self, images, p, rand, randn):
        """Compose the inverse transform G_inv (output → input pixel coordinates, centred)
        sample by sample, then resample once (as `AugmentPipe.forward`)."""
        N, _, H, W = images.shape
        device = images.device
        G_inv = torch.eye(3, device=device).expand(N, 3, 3)

        if self.xflip > 0:
            i = torch.floor(rand(N) * 2)
            i = torch.where(rand(N) < self.xflip * p, i, 0.0)
            G_inv = _mm(G_inv, _scale2d(1 - 2 * i, 1, N, device))
        if self.rotate90 > 0:
            i = torch.floor(rand(N) * 4)
            i = torch.where(rand(N) < self.rotate90 * p, i, 0.0)
            G_inv = _mm(G_inv, _rotate2d(math.pi / 2 * i, N, device))
        if self.xint > 0:
            t = (rand(N, 2) * 2 - 1) * self.xint_max
            t = torch.where(rand(N, 1) < self.xint * p, t, 0.0)
            G_inv = _mm(G_inv, _translate2d(-torch.round(t[:, 0] * W), -torch.round(t[:, 1] * H), N, device))

        if self.scale > 0:
            s = torch.exp2(randn(N) * self.scale_std)
            s = torch.where(rand(N) < self.scale * p, s, 1.0)
            G_inv = _mm(G_inv, _scale2d(1 / s, 1 / s, N, device))
        # Two independent rotations, each with p_rot, so that P(at least one) = rotate·p.
        p_rot = 1 - torch.sqrt((1 - self.rotate * p).clamp(0, 1))
        if self.rotate > 0:
            theta = (rand(N) * 2 - 1) * math.pi * self.rotate_max
            theta = torch.where(rand(N) < p_rot, theta, 0.0)
            G_inv = _mm(G_inv, _rotate2d(theta, N, device))
        if self.aniso > 0:
            s = torch.exp2(randn(N) * self.aniso_std)
            s = torch.where(rand(N) < self.aniso * p, s, 1.0)
            G_inv = _mm(G_inv, _scale2d(1 / s, s, N, device))
        if self.rotate > 0:
            theta = (rand(N) * 2 - 1) * math.pi * self.rotate_max
            theta = torch.where(rand(N) < p_rot, theta, 0.0)
            G_inv = _mm(G_inv, _rotate2d(theta, N, device))
        if self.xfrac > 0:
            t = randn(N, 2) * self.xfrac_std
            t = torch.where(rand(N, 1) < self.xfrac * p, t, 0.0)
            G_inv = _mm(G_inv, _translate2d(-t[:, 0] * W, -t[:, 1] * H, N, device))

        return self._resample(images, G_inv)

    def _resample(self, images, G_inv):
        """Apply G_inv with reflect padding and 2× oversampled bilinear sampling (§7.3).

        Reflection fills the area that rotations and shrinking bring into view with
        image-like content instead of black; sampling at twice the resolution between an
        orthogonal wavelet up/down pair keeps bilinear interpolation from blurring.
        """
        N, C, H, W = images.shape
        device = images.device
        fpad = self.Hz_geom.shape[0] // 4  # 3: the filter's reach, in output pixels, is 2·fpad
        cx, cy = (W - 1) / 2, (H - 1) / 2

        # 1–2. One margin for the whole batch: far enough to cover every sample's corners.
        corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], device=device)
        mapped = _mm(G_inv, corners.t().expand(N, 3, 4))[:, :2, :]  # [N, 2 (x, y), 4]
        xy = mapped.permute(1, 0, 2).reshape(2, -1)
        margin = torch.cat([-xy, xy]).amax(dim=1)  # max(-x), max(-y), max(x), max(y)
        margin = margin + torch.tensor([2 * fpad - cx, 2 * fpad - cy] * 2, device=device)
        limit = torch.tensor([W - 1, H - 1] * 2, device=device, dtype=torch.float32)
        margin = torch.minimum(margin.clamp(min=0), limit)
        mx0, my0, mx1, my1 = (int(m) for m in margin.ceil().tolist())

        # 3. Reflect-pad and recentre.
        images = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
        G_inv = _mm(_translate2d((mx0 - mx1) / 2, (my0 - my1) / 2, N, device), G_inv)

        # 4–5. Upsample 2× and express G_inv in the upsampled pixel grid.
        images = upsample_geom(images, self.Hz_geom)
        G_inv = _mm(_mm(_scale2d(2, 2, N, device), G_inv), _scale2d(0.5, 0.5, N, device))
        G_inv = _mm(_mm(_translate2d(-0.5, -0.5, N, device), G_inv), _translate2d(0.5, 0.5, N, device))

        # 6. Sample the image plus the filter's reach, at 2×: ((H+6)·2, (W+6)·2). affine_grid
        #    works in [-1, 1] coordinates, hence the scalings around G_inv.
        out_h, out_w = (H + 2 * fpad) * 2, (W + 2 * fpad) * 2
        in_h, in_w = images.shape[2], images.shape[3]
        G_inv = _mm(_mm(_scale2d(2 / in_w, 2 / in_h, N, device), G_inv), _scale2d(out_w / 2, out_h / 2, N, device))
        grid = F.affine_grid(G_inv[:, :2, :].to(images.dtype), [N, C, out_h, out_w], align_corners=False)
        images = grid_sample_bilinear(images, grid)  # differentiable twice on CUDA too (R1)

        # 7. Back to H×W.
        return downsample_geom(images, self.Hz_geom)

    # -- colour -----------------------------------------------------------------------

    def _color(self, images, p, rand, randn):
        """Compose one affine colour matrix per sample (left-multiplied) and apply it (§7.4).

        Each factor is exactly the identity when its transform does not fire, so samples
        that draw nothing come out bit-identical.
        """
        N, C, H, W = images.shape
        device = images.device
        I4 = torch.eye(4, device=device)
        M = I4.expand(N, 4, 4)
        v = torch.tensor([1, 1, 1, 0], dtype=torch.float32, device=device) / math.sqrt(3)  # luma axis
        vv = torch.outer(v, v)

        if self.brightness > 0:
            b = randn(N) * self.brightness_std
            b = torch.where(rand(N) < self.brightness * p, b, 0.0)
            M = _mm(_translate3d(b, N, device), M)
        if self.contrast > 0:
            c = torch.exp2(randn(N) * self.contrast_std)
            c = torch.where(rand(N) < self.contrast * p, c, 1.0)
            M = _mm(_scale3d(c, N, device), M)
        if self.lumaflip > 0:
            i = torch.floor(rand(N, 1, 1) * 2)
            i = torch.where(rand(N, 1, 1) < self.lumaflip * p, i, 0.0)
            M = _mm(I4 - 2 * vv * i, M)  # mirror the luma component
        if self.hue > 0 and C > 1:
            theta = (rand(N) * 2 - 1) * math.pi * self.hue_max
            theta = torch.where(rand(N) < self.hue * p, theta, 0.0)
            M = _mm(_rotate3d(v.tolist(), theta, N, device), M)
        if self.saturation > 0 and C > 1:
            s = torch.exp2(randn(N, 1, 1) * self.saturation_std)
            s = torch.where(rand(N, 1, 1) < self.saturation * p, s, 1.0)
            # vvᵀ + (I − vvᵀ)s, written so that s = 1 gives exactly I
            M = _mm(I4 + (I4 - vv) * (s - 1), M)

        M = M.to(images.dtype)
        x = images.reshape(N, C, H * W)
        if C == 3:
            A, t = M[:, :3, :3], M[:, :3, 3:]
            x = A[:, :, 0:1] * x[:, 0:1] + A[:, :, 1:2] * x[:, 1:2] + A[:, :, 2:3] * x[:, 2:3] + t
        else:
            # Grayscale is r = g = b = x; the output is the mean of the three output rows.
            gain = M[:, :3, :3].sum(dim=(1, 2)) / 3
            bias = M[:, :3, 3].mean(dim=1)
            x = x * gain.reshape(N, 1, 1) + bias.reshape(N, 1, 1)
        return x.reshape(N, C, H, W)

    # -- image-space filter -------------------------------------------------------------

    def _filter(self, images, p, rand, randn):
        """Random per-band gains → one 43-tap separable filter per sample (§7.5).

        Gains are renormalised after each band so that an image with the expected
        spectrum keeps its power. Samples where no band fired are passed through
        untouched (the bank's rows sum to an impulse, so filtering them would change them
        only by rounding).
        """
        N, C, H, W = images.shape
        device = images.device
        bank = self.Hz_fbank.to(device)
        num_bands = bank.shape[0]
        power = torch.tensor(_BAND_POWER, device=device)
        g = torch.ones([N, num_bands], device=device)
        fired = torch.zeros([N], dtype=torch.bool, device=device)
        band_ids = torch.arange(num_bands, device=device)
        for i, strength in enumerate(self.imgfilter_bands):
            t_i = torch.exp2(randn(N) * self.imgfilter_std)
            fire = rand(N) < self.imgfilter * p * strength
            fired = fired | fire
            t_i = torch.where(fire, t_i, 1.0)
            t = torch.where(band_ids == i, t_i[:, None], 1.0)
            t = t / (power * t.square()).sum(dim=1, keepdim=True).sqrt()
            g = g * t
        h = (g[:, :, None] * bank[None]).sum(dim=1)  # g @ bank: [N, 43]
        h = h.to(images.dtype).repeat_interleave(C, dim=0)  # same filter for every channel

        pad = bank.shape[1] // 2
        x = F.pad(images.reshape(1, N * C, H, W), [pad] * 4, mode="reflect")
        x = F.conv2d(x, h[:, None, None, :], groups=N * C)  # correlate along x, then y
        x = F.conv2d(x, h[:, None, :, None], groups=N * C)
        return torch.where(fired.reshape(N, 1, 1, 1), x.reshape(N, C, H, W), images)
