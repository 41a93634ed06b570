"""The ADA augment pipe (NVIDIA's `training/augment.py` `AugmentPipe`): identities at p = 0,
what each group changes at p = 1, filters, gradients, per-sample randomness and the named
pipes."""

from __future__ import annotations

import math

import pytest
import torch

from ganscapes.errors import UserError
from ganscapes.gan.augment import (
    AUGPIPE_SPECS,
    SYM6,
    AugmentPipe,
    downsample_geom,
    filter_bank,
    geom_filter,
    make_augment_pipe,
    upsample_geom,
)
from ganscapes.gan.ops import upfirdn2d

RES = 32
GEOM_ATOL = 1e-4  # the geometric resampling is an identity only up to float rounding


def images(n=16, c=3, res=RES, seed=0, lo=-1.0, hi=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand([n, c, res, res], generator=g) * (hi - lo) + lo


def pipe_at(p: float, **kwargs) -> AugmentPipe:
    pipe = AugmentPipe(**kwargs)
    pipe.p.fill_(p)
    return pipe


def run(pipe, x, seed=1):
    torch.manual_seed(seed)
    return pipe(x)


def close(a, b, atol=GEOM_ATOL):
    return (a - b).abs().amax().item() <= atol


# ---------------------------------------------------------------------------------------
# Buffers and filters


def test_buffers_names_shapes_and_sums():
    pipe = make_augment_pipe()
    assert set(dict(pipe.named_buffers())) == {"p", "Hz_geom", "Hz_fbank"}
    assert list(dict(pipe.named_parameters())) == []
    assert pipe.p.shape == () and float(pipe.p) == 0
    assert pipe.Hz_geom.shape == (12,) and pipe.Hz_fbank.shape == (4, 43)
    assert pipe.Hz_geom.dtype == pipe.Hz_fbank.dtype == torch.float32
    assert abs(pipe.Hz_geom.sum().item() - 1) < 1e-6
    assert torch.allclose(pipe.Hz_geom, torch.tensor(SYM6) / sum(SYM6))
    assert torch.allclose(pipe.Hz_fbank.sum(1), torch.tensor([1.0, 0, 0, 0]), atol=1e-6)


def test_filter_bank_structure():
    bank = filter_bank().double()
    # Equal gains on every band leave the image alone: the rows add up to a unit impulse.
    impulse = torch.zeros(43, dtype=torch.float64)
    impulse[21] = 1
    assert torch.allclose(bank.sum(0), impulse, atol=1e-6)
    # Zero-phase filters (autocorrelations): every row is symmetric about the centre.
    assert torch.allclose(bank, bank.flip(1), atol=1e-7)
    # Row 0 is a low-pass (DC gain 1, nothing at Nyquist); rows 1–3 are band-passes, each
    # an octave higher than the one before, row 3 reaching Nyquist.
    w = torch.linspace(0, math.pi, 257, dtype=torch.float64)
    n = torch.arange(43, dtype=torch.float64) - 21
    response = (bank[:, None, :] * torch.cos(w[None, :, None] * n)).sum(-1).abs()  # zero-phase
    assert abs(response[0, 0].item() - 1) < 1e-6 and response[0, -1] < 1e-6
    assert (response[1:, 0] < 1e-6).all()
    peaks = [w[response[k].argmax()].item() for k in (1, 2, 3)]
    assert 0 < peaks[0] < peaks[1] < peaks[2] == w[-1].item()


def test_sym6_is_orthogonal_and_resampling_helpers_match_upfirdn2d():
    f = geom_filter().double()
    # Shifts by two samples are orthogonal: Σ f[k] f[k+2m] = δ_m / 2 (f has sum 1, not norm 1).
    for m in range(6):
        dot = (f[: 12 - 2 * m] * f[2 * m :]).sum().item()
        assert abs(dot - (0.5 if m == 0 else 0.0)) < 1e-7
    x = images(2, 3, 24, seed=3)
    fl = geom_filter()
    assert close(upsample_geom(x, fl), upfirdn2d(x, fl, up=2, padding=(6, 5, 6, 5), gain=4), 1e-5)
    y = images(2, 3, 60, seed=4)
    assert close(downsample_geom(y, fl), upfirdn2d(y, fl, down=2, padding=(-1, -1, -1, -1), flip_filter=True), 1e-5)
    # 2× up then down with the orthogonal pair is the identity (on a reflect-padded image,
    # cropping the filter's reach as the pipe does).
    padded = torch.nn.functional.pad(x, [6] * 4, mode="reflect")
    back = downsample_geom(upsample_geom(padded, fl)[:, :, 6:-6, 6:-6], fl)
    assert back.shape == x.shape and close(back, x, 1e-5)


# ---------------------------------------------------------------------------------------
# p = 0


@pytest.mark.parametrize("name", ["color", "filter", "noise", "cutout"])
def test_p0_is_exact_identity_without_geometry(name):
    x = images(8)
    assert torch.equal(run(make_augment_pipe(name), x), x)


@pytest.mark.parametrize("name", ["blit", "geom", "bgc", "bgcfnc"])
def test_p0_geometric_resampling_is_near_identity(name):
    x = images(8)
    out = run(make_augment_pipe(name), x)
    assert out.shape == x.shape and not torch.equal(out, x)  # the resampling did run
    assert close(out, x, 1e-4)


# ---------------------------------------------------------------------------------------
# Blit


def smooth_images(n=32, c=3, seed=0):
    """Band-limited images (bicubic from 8×8): see `test_xflip_mirrors_or_keeps_each_sample`."""
    return torch.nn.functional.interpolate(images(n, c, 8, seed), size=RES, mode="bicubic", align_corners=False)


def best_match(out, candidates):
    """Index of the candidate nearest to out (max abs error), that error, and the runner-up's."""
    errs = sorted(((o - out).abs().amax().item(), i) for i, o in enumerate(candidates))
    return errs[0][1], errs[0][0], errs[1][0]


def test_xflip_mirrors_or_keeps_each_sample():
    # The mirror happens inside the one 2×-oversampled resampling, and sym6 is not
    # symmetric (centroid 5.10, not 5.5), so a mirrored sample is the mirror image only up
    # to a sub-pixel shift and high-frequency error (≈0.06 here, ≈0.3 on white noise);
    # the official pipeline does the same. Samples left alone are exact to rounding.
    x = smooth_images()
    out = run(pipe_at(1, xflip=1), x)
    picks = []
    for o, xi in zip(out, x):
        k, err, other = best_match(o, [xi, xi.flip(-1)])
        assert err < (GEOM_ATOL if k == 0 else 0.1) and other > 0.3
        picks.append(k)
    assert set(picks) == {0, 1}


def test_rotate90_gives_one_of_the_four_rotations():
    x = smooth_images()
    out = run(pipe_at(1, rotate90=1), x)
    picks = []
    for o, xi in zip(out, x):
        k, err, other = best_match(o, [torch.rot90(xi, k, dims=(1, 2)) for k in range(4)])
        assert err < (GEOM_ATOL if k == 0 else 0.1) and other > 0.3
        picks.append(k)
    assert set(picks) == {0, 1, 2, 3}


def test_xint_is_an_integer_translation_within_an_eighth():
    x = images(32)
    out = run(pipe_at(1, xint=1), x)
    m = 5  # max shift 0.125·32 = 4 px; stay clear of the reflected border
    shifts = []
    for o, xi in zip(out, x):
        found = [
            (dy, dx)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            if close(o[:, m:-m, m:-m], torch.roll(xi, (dy, dx), dims=(1, 2))[:, m:-m, m:-m])
        ]
        assert len(found) == 1
        shifts.append(found[0])
    assert len(set(shifts)) > 5 and any(dx != 0 and dy != 0 for dy, dx in shifts)


# ---------------------------------------------------------------------------------------
# General geometry


def test_geom_changes_images_but_keeps_constants_and_means():
    flat = torch.linspace(-0.8, 0.8, 16).reshape(16, 1, 1, 1).expand(16, 3, RES, RES).contiguous()
    pipe = pipe_at(1, **AUGPIPE_SPECS["geom"])
    # Constants stay constant: reflect padding and the margins leave no black border.
    assert close(run(pipe, flat), flat, 1e-4)
    x = flat + 0.1 * images(16, seed=5)
    out = run(pipe, x)
    assert (out - x).abs().amax(dim=(1, 2, 3)).min() > 0.05  # every sample moved
    assert (out.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))).abs().max() < 0.02


def test_rotation_probability_is_rotate_times_p_overall():
    # Two rotations each with p_rot = 1 − sqrt(1 − p): P(neither) = 1 − p.
    x = images(256, 1, 16, seed=6)
    out = run(pipe_at(0.5, rotate=1), x)
    untouched = sum(close(o, xi) for o, xi in zip(out, x))
    assert 128 - 5 * 8 <= untouched <= 128 + 5 * 8  # binomial(256, 0.5): σ = 8


# ---------------------------------------------------------------------------------------
# Colour


def luma(x):
    return x.mean(dim=1, keepdim=True)


def test_brightness_shifts_each_image_by_one_constant():
    x = images(32)
    out = run(pipe_at(1, brightness=1), x)
    delta = out - x
    per_sample = delta.mean(dim=(1, 2, 3))
    assert (delta - per_sample.reshape(-1, 1, 1, 1)).abs().max() < 1e-6  # same offset everywhere
    assert torch.allclose(out.std(dim=(1, 2, 3)), x.std(dim=(1, 2, 3)), atol=1e-5)
    assert 0.1 < per_sample.std() < 0.35  # N(0, 0.2²)


def test_contrast_scales_around_zero():
    x = images(32)
    out = run(pipe_at(1, contrast=1), x)
    ratio = out.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert torch.allclose(out, x * ratio.reshape(-1, 1, 1, 1), atol=1e-5)
    assert torch.equal(out.sign(), x.sign())
    assert 0.25 < ratio.log2().std() < 0.8  # log2 c ~ N(0, 0.5²)


def test_lumaflip_negates_luma_and_keeps_chroma():
    x = images(32)
    out = run(pipe_at(1, lumaflip=1), x)
    assert torch.allclose(out - luma(out), x - luma(x), atol=1e-5)
    flipped = [close(lo, -lx, 1e-5) for lo, lx in zip(luma(out), luma(x))]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(f != k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def chroma_norm(x):
    return (x - luma(x)).norm(dim=1)


def test_hue_rotates_chroma_about_the_luma_axis():
    x = images(32)
    out = run(pipe_at(1, hue=1), x)
    assert torch.allclose(luma(out), luma(x), atol=1e-5)
    assert torch.allclose(chroma_norm(out), chroma_norm(x), atol=1e-5)
    assert (out - x).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # θ = 0 has probability 0


def test_saturation_scales_chroma_per_sample():
    x = images(32)
    out = run(pipe_at(1, saturation=1), x)
    assert torch.allclose(luma(out), luma(x), atol=1e-5)
    s = chroma_norm(out) / chroma_norm(x)
    per_sample = s.mean(dim=(1, 2))
    assert torch.allclose(s, per_sample.reshape(-1, 1, 1), rtol=1e-4)
    assert 0.5 < per_sample.log2().std() < 1.6  # log2 s ~ N(0, 1)


def test_gray_images_stay_gray_under_hue_and_saturation():
    gray = images(16, 1).expand(16, 3, RES, RES).contiguous()
    out = run(pipe_at(1, hue=1, saturation=1), gray)
    assert torch.allclose(out, gray, atol=1e-5)


def test_color_on_grayscale_is_a_per_sample_affine_map():
    x = images(16, 1, lo=-0.9, hi=0.9)
    out = run(pipe_at(1, **AUGPIPE_SPECS["color"]), x)
    assert out.shape == x.shape
    for o, xi in zip(out, x):
        a = ((o - o.mean()) * (xi - xi.mean())).sum() / (xi - xi.mean()).square().sum()
        b = o.mean() - a * xi.mean()
        assert close(o, a * xi + b, 1e-5)


# ---------------------------------------------------------------------------------------
# Filter, noise, cutout


def test_filter_scales_constants_and_keeps_zero_means():
    const = torch.full([64, 3, RES, RES], 0.5)
    out = run(pipe_at(1, imgfilter=1), const)
    dc = out[:, 0, 0, 0] / 0.5  # the lowest band's gain, squared (the filter is separable)
    assert torch.allclose(out, (0.5 * dc).reshape(-1, 1, 1, 1).expand_as(out), atol=1e-5)
    assert (dc > 0).all() and 0.5 < dc.mean() < 1.0 and dc.std() > 0.1
    x = images(64)
    x = x - x.mean(dim=(2, 3), keepdim=True)
    out = run(pipe_at(1, imgfilter=1), x)
    assert out.mean(dim=(2, 3)).abs().max() < 0.05  # band-pass rows have DC gain 0
    assert (out - x).abs().amax(dim=(1, 2, 3)).min() > 0.01  # every sample filtered at p = 1


def test_filter_needs_22_pixels():
    with pytest.raises(ValueError, match="22"):
        make_augment_pipe("filter")(images(2, 3, 16))


def test_noise_is_zero_mean_with_per_sample_sigma():
    x = images(64)
    out = run(pipe_at(1, noise=1), x)
    d = out - x
    sigma = d.std(dim=(1, 2, 3))
    assert sigma.max() < 0.45 and sigma.median() > 0.02  # |N(0,1)|·0.1
    assert (d.mean(dim=(1, 2, 3)).abs() <= 5 * sigma / math.sqrt(3 * RES * RES) + 1e-6).all()
    assert not torch.equal(d[:, 0], d[:, 1])  # independent per channel


def test_cutout_zeroes_one_clipped_16px_square():
    x = images(64, lo=0.1, hi=1.0)  # no zeros of its own
    out = run(pipe_at(1, cutout=1), x)
    for o, xi in zip(out, x):
        zero = o == 0
        assert (zero[0] == zero[1]).all() and (zero[0] == zero[2]).all()
        rows = zero[0].any(dim=1).nonzero().flatten()
        cols = zero[0].any(dim=0).nonzero().flatten()
        assert len(rows) >= 8 and len(cols) >= 8
        box = torch.zeros_like(zero[0])
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        assert torch.equal(zero[0], box)  # one axis-aligned rectangle
        for idx in (rows, cols):  # 16 wide unless clipped by the border
            assert len(idx) == 16 or idx.min() == 0 or idx.max() == RES - 1
            assert len(idx) <= 16
        assert torch.equal(o[~zero], xi[~zero])
    sizes = [(o[0] == 0).sum().item() for o in out]
    assert sizes.count(256) > 10


# ---------------------------------------------------------------------------------------
# Gradients, randomness, channels, names


@pytest.mark.parametrize("name", ["bgc", "bgcfnc"])
def test_gradients_flow_to_the_images(name):
    pipe = make_augment_pipe(name)
    pipe.p.fill_(1)
    x = images(8).requires_grad_()
    torch.manual_seed(2)
    pipe(x).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_double_backward_for_r1():
    """R1 differentiates D(A(x)) w.r.t. x with create_graph, then backpropagates to D."""
    pipe = make_augment_pipe("bgcfnc")
    pipe.p.fill_(1)
    w = torch.randn(3, requires_grad=True)
    x = images(4).requires_grad_()
    torch.manual_seed(3)
    logits = (pipe(x) * w.reshape(1, 3, 1, 1)).square().sum()
    (grad,) = torch.autograd.grad(logits, x, create_graph=True)
    grad.square().sum().backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


def test_decisions_are_independent_per_sample():
    # p = 0.5: the flip transform fires for half the samples, and i ∈ {0, 1} then picks
    # the mirror for half of those, so about a quarter come out mirrored.
    x = images(256, 1, 8, seed=7)
    out = run(pipe_at(0.5, xflip=1), x)
    mirrored = sum(not close(o, xi) for o, xi in zip(out, x))
    assert 64 - 5 * 7 <= mirrored <= 64 + 5 * 7  # binomial(256, 0.25): σ ≈ 6.9


def test_p_above_one_always_fires():
    x = images(64)
    out = run(pipe_at(2.0, contrast=1), x)
    assert ((out - x).abs().amax(dim=(1, 2, 3)) > 0).all()


def test_p_is_read_at_call_time():
    pipe = make_augment_pipe("color")
    x = images(8)
    assert torch.equal(run(pipe, x), x)
    pipe.p.fill_(1)
    assert not torch.equal(run(pipe, x), x)


def test_deterministic_given_the_seed():
    pipe = make_augment_pipe("bgcfnc")
    pipe.p.fill_(0.7)
    x = images(8)
    assert torch.equal(run(pipe, x, seed=5), run(pipe, x, seed=5))
    assert not torch.equal(run(pipe, x, seed=5), run(pipe, x, seed=6))


def test_grayscale_bgc_and_two_channels_rejected():
    pipe = make_augment_pipe("bgc")
    pipe.p.fill_(1)
    gray = images(8, 1)
    out = run(pipe, gray)
    assert out.shape == gray.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="1 \\(grayscale\\) or 3 \\(RGB\\) channels, not 2"):
        pipe(images(8, 2))
    two = images(4, 2)
    assert run(pipe_at(1, **AUGPIPE_SPECS["bg"]), two).shape == two.shape  # geometry alone is fine


def test_named_pipes():
    assert set(AUGPIPE_SPECS) == {
        "blit",
        "geom",
        "color",
        "filter",
        "noise",
        "cutout",
        "bg",
        "bgc",
        "bgcf",
        "bgcfn",
        "bgcfnc",
    }
    assert AUGPIPE_SPECS["bgcfnc"] == {
        k: 1
        for k in [
            "xflip",
            "rotate90",
            "xint",
            "scale",
            "rotate",
            "aniso",
            "xfrac",
            "brightness",
            "contrast",
            "lumaflip",
            "hue",
            "saturation",
            "imgfilter",
            "noise",
            "cutout",
        ]
    }
    assert AUGPIPE_SPECS["bgc"] == {**AUGPIPE_SPECS["bg"], **AUGPIPE_SPECS["color"]}
    pipe = make_augment_pipe()
    assert pipe.init_kwargs["hue"] == 1 and pipe.init_kwargs["imgfilter"] == 0
    assert pipe.init_kwargs["imgfilter_bands"] == [1, 1, 1, 1] and pipe.init_kwargs["cutout_size"] == 0.5
    assert AugmentPipe(**pipe.init_kwargs).init_kwargs == pipe.init_kwargs
    with pytest.raises(UserError, match="bgcfnc"):
        make_augment_pipe("bgx")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_shapes_and_identity():
    pipe = make_augment_pipe("bgcfnc").cuda()
    x = images(8).cuda()
    assert close(run(pipe, x), x, 1e-4)
    pipe.p.fill_(1)
    out = run(pipe, x.requires_grad_())
    out.square().sum().backward()
    assert out.shape == x.shape and torch.isfinite(x.grad).all()
