"""Generator and discriminator: shapes, parameter counts, and the behaviour of NVIDIA's `training/networks.py`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganscapes.errors import UserError
from ganscapes.gan.config import PRESET_NAMES, network_kwargs, resolve_preset
from ganscapes.gan.networks import (
    Discriminator,
    Generator,
    MinibatchStdLayer,
    build_discriminator,
    build_generator,
    modulated_conv2d,
    num_parameters,
)


def tiny(resolution=16, img_channels=3, c_dim=0):
    return network_kwargs(resolve_preset("tiny", resolution), resolution, img_channels, c_dim)


def expected_counts(G_kwargs: dict, D_kwargs: dict) -> tuple[int, int]:
    """Parameter counts from the official shapes of `training/networks.py`, computed independently of the code."""
    w, z, c, R, ic = (G_kwargs[k] for k in ("w_dim", "z_dim", "c_dim", "img_resolution", "img_channels"))
    syn = G_kwargs["synthesis_kwargs"]
    C = lambda r: min(syn["channel_base"] // r, syn["channel_max"])  # noqa: E731
    layers = G_kwargs["mapping_kwargs"]["num_layers"]
    g = 0
    if c:
        g += w * c + w
    g += w * (z + (w if c else 0)) + w + (layers - 1) * (w * w + w)

    def modconv(cin, cout, k):
        return cout * cin * k * k + cout + cin * w + cin  # weight, bias, affine

    res = [2**i for i in range(2, int(np.log2(R)) + 1)]
    for r in res:
        if r == 4:
            g += C(4) * 16 + modconv(C(4), C(4), 3) + 1
        else:
            g += modconv(C(r // 2), C(r), 3) + 1 + modconv(C(r), C(r), 3) + 1
        g += modconv(C(r), ic, 1)
    d = 0
    for r in reversed(res[1:]):
        if r == R:
            d += C(R) * ic + C(R)
        d += C(r) * C(r) * 9 + C(r) + C(r // 2) * C(r) * 9 + C(r // 2) + C(r // 2) * C(r)
    if R == 4:  # no blocks: the epilogue reads the image itself
        d += C(4) * ic + C(4)
    cmap = C(4) if c else 0
    d += C(4) * (C(4) + 1) * 9 + C(4) + C(4) * 16 * C(4) + C(4) + (cmap or 1) * C(4) + (cmap or 1)
    if c:
        d += cmap * c + cmap + 8 * (cmap * cmap + cmap)
    return g, d


@pytest.mark.parametrize(
    "cfg,res,c_dim",
    [
        ("tiny", 4, 0),
        ("tiny", 8, 0),
        ("tiny", 32, 5),
        ("tiny", 64, 0),
        ("auto", 64, 0),
        ("auto", 256, 0),
        ("paper256", 256, 0),
        ("stylegan2", 512, 0),
        ("paper1024", 1024, 0),
        ("auto", 128, 10),
    ],
)
def test_parameter_counts_follow_the_official_shapes(cfg, res, c_dim):
    G_kwargs, D_kwargs = network_kwargs(resolve_preset(cfg, res), res, 3, c_dim)
    G, D = build_generator(G_kwargs), build_discriminator(D_kwargs)
    assert (num_parameters(G), num_parameters(D)) == expected_counts(G_kwargs, D_kwargs)


def test_paper1024_sizes_are_the_published_ones():
    G_kwargs, D_kwargs = network_kwargs(resolve_preset("paper1024", 1024), 1024)
    assert num_parameters(build_generator(G_kwargs)) == 30_370_060
    assert num_parameters(build_discriminator(D_kwargs)) == 29_012_513
    assert build_generator(G_kwargs).num_ws == 18


@pytest.mark.parametrize("res,num_ws", [(4, 2), (8, 4), (32, 8), (64, 10), (256, 14), (1024, 18)])
def test_num_ws(res, num_ws):
    G_kwargs, _ = network_kwargs(resolve_preset("tiny", res), res)
    assert Generator(**G_kwargs).num_ws == num_ws


@pytest.mark.parametrize("res", [4, 8, 16, 32])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_shapes_at_every_resolution_and_channel_count(res, channels):
    G_kwargs, D_kwargs = tiny(res, channels)
    G, D = Generator(**G_kwargs).eval(), Discriminator(**D_kwargs)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        img = G(z, None, noise_mode="const")
        logits = D(img, None)
    assert img.shape == (2, channels, res, res) and img.dtype == torch.float32
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()


def test_state_dict_names_are_the_official_ones():
    G_kwargs, D_kwargs = tiny(16, c_dim=3)
    g = set(Generator(**G_kwargs).state_dict())
    d = set(Discriminator(**D_kwargs).state_dict())
    for name in [
        "mapping.embed.weight",
        "mapping.fc0.weight",
        "mapping.fc1.bias",
        "mapping.w_avg",
        "synthesis.b4.const",
        "synthesis.b4.resample_filter",
        "synthesis.b4.conv1.noise_const",
        "synthesis.b8.conv0.weight",
        "synthesis.b8.conv0.affine.bias",
        "synthesis.b8.conv0.noise_strength",
        "synthesis.b16.torgb.weight",
        "synthesis.b16.torgb.affine.weight",
    ]:
        assert name in g, name
    assert "synthesis.b4.conv0.weight" not in g and not any(k.startswith("synthesis.b8.torgb.resample") for k in g)
    for name in [
        "b16.fromrgb.weight",
        "b16.conv0.weight",
        "b16.conv1.weight",
        "b16.skip.weight",
        "b8.skip.weight",
        "b4.conv.weight",
        "b4.fc.weight",
        "b4.out.weight",
        "mapping.fc7.weight",
        "b16.resample_filter",
    ]:
        assert name in d, name
    assert "b8.fromrgb.weight" not in d and "b16.skip.bias" not in d and "mapping.w_avg" not in d


def test_grouped_modulated_convolution_equals_a_per_sample_loop():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 6, 6, generator=gen)
    weight = torch.randn(5, 4, 3, 3, generator=gen)
    styles = torch.randn(3, 4, generator=gen)
    expected = []
    for n in range(3):
        wn = weight * styles[n].reshape(1, -1, 1, 1)
        wn = wn / wn.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
        expected.append(F.conv2d(x[n : n + 1], wn, padding=1))
    expected = torch.cat(expected)
    fused = modulated_conv2d(x, weight, styles, padding=1, fused_modconv=True)
    unfused = modulated_conv2d(x, weight, styles, padding=1, fused_modconv=False)
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(unfused, expected, atol=1e-5, rtol=1e-5)


def test_demodulation_gives_unit_norm_output_weights():
    """Read the effective kernel back through impulses: each output filter has norm 1."""
    gen = torch.Generator().manual_seed(1)
    weight = torch.randn(6, 4, 3, 3, generator=gen) * 3
    styles = torch.rand(2, 4, generator=gen) * 5 + 0.1
    sq = torch.zeros(2, 6)
    for i in range(4):
        impulse = torch.zeros(2, 4, 5, 5)
        impulse[:, i, 2, 2] = 1
        out = modulated_conv2d(impulse, weight, styles, padding=1)
        sq += out[:, :, 1:4, 1:4].square().sum(dim=[2, 3])
    torch.testing.assert_close(sq.sqrt(), torch.ones(2, 6), atol=1e-5, rtol=1e-5)


def test_fused_and_unfused_generators_agree():
    G = Generator(**tiny(32)[0]).eval()
    z = torch.randn(4, G.z_dim)
    with torch.no_grad():
        a = G(z, None, noise_mode="const", fused_modconv=True)
        b = G(z, None, noise_mode="const", fused_modconv=False)
    assert (a - b).abs().max() < 1e-4


def test_psi_zero_returns_w_avg_and_the_cutoff_limits_truncation():
    G = Generator(**tiny(16)[0]).eval()
    G.mapping.w_avg.copy_(torch.randn(G.w_dim))
    z = torch.randn(3, G.z_dim)
    ws = G.mapping(z, None, truncation_psi=0)
    assert torch.allclose(ws, G.mapping.w_avg.expand_as(ws))
    plain = G.mapping(z, None)
    cut = G.mapping(z, None, truncation_psi=0, truncation_cutoff=2)
    assert torch.allclose(cut[:, :2], G.mapping.w_avg.expand(3, 2, -1))
    assert torch.equal(cut[:, 2:], plain[:, 2:])
    half = G.mapping(z, None, truncation_psi=0.5)
    torch.testing.assert_close(half, G.mapping.w_avg + 0.5 * (plain - G.mapping.w_avg))


def test_w_avg_tracks_the_mapping_output_in_training_only():
    G = Generator(**tiny(16)[0])
    z = torch.randn(8, G.z_dim)
    G.eval()
    G.mapping(z, None)
    assert torch.count_nonzero(G.mapping.w_avg) == 0
    G.train()
    w = G.mapping(z, None)[:, 0]
    torch.testing.assert_close(G.mapping.w_avg, 0.005 * w.mean(dim=0), atol=1e-6, rtol=1e-5)
    before = G.mapping.w_avg.clone()
    G.mapping(z, None, skip_w_avg_update=True)
    assert torch.equal(G.mapping.w_avg, before)


def test_noise_modes():
    G = Generator(**tiny(16)[0]).eval()
    for name, p in G.named_parameters():
        if name.endswith("noise_strength"):
            p.data.fill_(0.5)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        c1, c2 = G(z, None, noise_mode="const"), G(z, None, noise_mode="const")
        r1, r2 = G(z, None, noise_mode="random"), G(z, None, noise_mode="random")
        n = G(z, None, noise_mode="none")
    assert torch.equal(c1, c2)
    assert not torch.equal(r1, r2)
    assert not torch.allclose(n, c1)
    for name, p in G.named_parameters():
        if name.endswith("noise_strength"):
            p.data.zero_()
    with torch.no_grad():
        assert torch.allclose(G(z, None, noise_mode="const"), G(z, None, noise_mode="none"))
    with pytest.raises(ValueError):
        G(z, None, noise_mode="loud")


def test_fp16_blocks_run_in_float32_on_cpu():
    G_kwargs, D_kwargs = network_kwargs(resolve_preset("tiny", 32), 32)
    G_kwargs["synthesis_kwargs"]["num_fp16_res"] = 4
    D_kwargs["num_fp16_res"] = 4
    G, D = Generator(**G_kwargs).eval(), Discriminator(**D_kwargs)
    assert G.synthesis.b32.use_fp16 and G.synthesis.b8.use_fp16 and not G.synthesis.b4.use_fp16
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        img = G(z, None, noise_mode="const")
        ref = G(z, None, noise_mode="const", force_fp32=True)
    assert img.dtype == torch.float32 and torch.equal(img, ref)
    assert D(img, None).dtype == torch.float32


def test_conv_clamp_bounds_every_layer_output():
    G_kwargs, _ = tiny(16)
    G_kwargs["synthesis_kwargs"]["conv_clamp"] = 0.05
    G = Generator(**G_kwargs).eval()
    seen = []
    for module in G.synthesis.modules():
        if type(module).__name__ in ("SynthesisLayer", "ToRGBLayer"):
            module.register_forward_hook(lambda m, i, o: seen.append(o.abs().max().item()))
    # With autograd each layer returns its clamped activation; generating without it,
    # conv0 hands conv1 its output already multiplied by conv1's styles (the same pixels,
    # tested in test_ops), so the clamp is observed on the plain path.
    with torch.enable_grad():
        G(torch.randn(2, G.z_dim) * 10, None, noise_mode="const")
    assert seen and max(seen) <= 0.05 + 1e-7


def test_minibatch_std_groups_are_strided():
    x = torch.randn(4, 2, 3, 3)
    out = MinibatchStdLayer(group_size=2)(x)
    assert out.shape == (4, 3, 3, 3)
    for j in range(2):  # group members are samples j and j + N/G
        pair = x[[j, j + 2]]
        std = (pair.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(out[j, 2], std.expand(3, 3), atol=1e-6)
        assert torch.allclose(out[j + 2, 2], std.expand(3, 3), atol=1e-6)


def test_discriminator_on_a_batch_smaller_than_the_group():
    D = Discriminator(**tiny(16)[1])  # mbstd group 4
    assert D(torch.randn(2, 3, 16, 16), None).shape == (2, 1)
    assert D(torch.randn(1, 3, 16, 16), None).shape == (1, 1)
    with pytest.raises(ValueError, match="divisible"):
        D(torch.randn(6, 3, 16, 16), None)


def test_conditional_networks_use_the_label():
    G_kwargs, D_kwargs = tiny(16, c_dim=4)
    G, D = Generator(**G_kwargs).eval(), Discriminator(**D_kwargs)
    z = torch.randn(2, G.z_dim)
    c0, c1 = F.one_hot(torch.tensor([0, 0]), 4).float(), F.one_hot(torch.tensor([1, 1]), 4).float()
    with torch.no_grad():
        a, b = G(z, c0, noise_mode="const"), G(z, c1, noise_mode="const")
        assert not torch.allclose(a, b)
        assert not torch.allclose(D(a, c0), D(a, c1))
    assert D.cmap_dim == 64  # C(4) of the tiny preset


def test_freeze_d_stores_the_first_layers_as_buffers():
    _, D_kwargs = tiny(16)
    D_kwargs["block_kwargs"] = {"freeze_layers": 5}
    D = Discriminator(**D_kwargs)
    params = dict(D.named_parameters())
    buffers = dict(D.named_buffers())
    # b16: fromrgb, conv0, conv1, skip (4 layers); b8: conv0 is the fifth
    for name in ["b16.fromrgb.weight", "b16.conv0.weight", "b16.conv1.bias", "b16.skip.weight", "b8.conv0.weight"]:
        assert name in buffers and name not in params
    assert "b8.conv1.weight" in params
    assert set(D.state_dict()) == set(Discriminator(**tiny(16)[1]).state_dict())


def test_orig_discriminator_has_no_skips():
    _, D_kwargs = network_kwargs(resolve_preset("cifar", 32), 32)
    D = build_discriminator(D_kwargs)
    assert not any(".skip." in k for k in D.state_dict())
    assert D(torch.randn(2, 3, 32, 32), None).shape == (2, 1)


def test_every_preset_resolves():
    for name in PRESET_NAMES:
        p = resolve_preset(name, 256)
        G_kwargs, D_kwargs = network_kwargs(p, 256)
        assert G_kwargs["img_resolution"] == 256 and D_kwargs["epilogue_kwargs"]["mbstd_group_size"] == p.mbstd


def test_auto_preset_formulas():
    for res, mb, gamma, ema in [
        (128, 32, 0.1024, 10),
        (256, 16, 0.8192, 5),
        (512, 8, 6.5536, 2.5),
        (1024, 4, 52.4288, 1.25),
    ]:
        p = resolve_preset("auto", res)
        assert (p.mb, p.ema) == (mb, ema) and p.gamma == pytest.approx(gamma)
    assert resolve_preset("auto", 512).fmaps == 1 and resolve_preset("auto", 256).fmaps == 0.5


def test_bad_settings_are_user_errors_and_bad_construction_a_value_error():
    with pytest.raises(UserError):
        resolve_preset("huge", 256)
    with pytest.raises(UserError):
        network_kwargs(resolve_preset("tiny", 48), 48)
    # Networks are library objects: their constructors raise ValueError, and the
    # layer that read the settings from a user (a model file, an option) words it.
    with pytest.raises(ValueError, match="settings do not fit"):
        build_generator({"z_dim": 8, "unknown": 1})
    with pytest.raises(ValueError, match="img_resolution must be a power of two"):
        build_generator(dict(network_kwargs(resolve_preset("tiny", 16), 16)[0], img_resolution=48))


@pytest.mark.slow
@pytest.mark.skipif(
    not (__import__("shutil").which("cc") or __import__("shutil").which("gcc")),
    reason="torch.compile needs a C compiler on CPU",
)
def test_synthesis_works_under_torch_compile():
    G = Generator(**tiny(8)[0]).eval().requires_grad_(False)
    ws = torch.randn(4, G.num_ws, G.w_dim)
    compiled = torch.compile(G.synthesis)
    with torch.no_grad():
        got = compiled(ws, noise_mode="const")
        ref = G.synthesis(ws, noise_mode="const")
    assert got.shape == ref.shape and (got - ref).abs().max() < 1e-4
