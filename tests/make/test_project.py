"""make.project and make.lpips: fitting a latent to a picture, and the distances it uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganscapes.errors import SettingError, UserError
from ganscapes.make import lpips as lp
from ganscapes.make import project as pj
from ganscapes.make.paint import paint
from ganscapes.make.seeds import map_seeds

from helpers_models import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return tiny_model(res=16, seed=0)


def painted_target(model, seed: int = 5) -> np.ndarray:
    G = model.G_ema
    return paint(G, map_seeds(G, [seed], 1.0, None, None, "cpu"))[0]


FAST = dict(steps_w=60, steps_wplus=40, w_avg_samples=500, frames=6)


# ---------------------------------------------------------------------------------------
# The optimisation


def test_projection_comes_close_to_a_picture_the_model_can_paint(model):
    target = painted_target(model)
    G = model.G_ema
    start = paint(G, pj.w_statistics(G, 500, 0, "cpu")[0].expand(-1, G.num_ws, -1))[0]
    result = pj.project(G, target, pj.ProjectConfig(**FAST), "cpu")
    assert result.w.shape == (G.num_ws, G.w_dim)
    assert result.pixels.shape == target.shape and result.pixels.dtype == np.uint8
    # The result is far nearer the target than where the search started.
    assert pj.psnr(result.pixels, target) > pj.psnr(start, target) + 4
    # It is exactly what the model paints from the latent returned (constant noise).
    assert np.array_equal(paint(G, result.w[None])[0], result.pixels)
    # Phase W's result is one w repeated; W+ starts there and keeps its best, so is no worse.
    assert np.allclose(result.w_only, result.w_only[:1])
    goal = pj.to_network(target, "cpu")
    dist = pj.Distance(goal, result.weights)

    def loss(w: np.ndarray) -> float:
        with torch.no_grad():
            img = pj.synthesize(G.synthesis, torch.from_numpy(w[None]), "const")
            return float(dist.loss(dist.terms(img))[0])

    assert loss(result.w) <= loss(result.w_only)
    phases = [row["phase"] for row in result.history]
    assert phases == ["w"] * 60 + ["wplus"] * 40
    assert {"pixels", "laplacian", "loss", "lr"} <= set(result.history[0])
    assert 2 <= len(result.frames) <= 7 and result.frames[-1][0] == 100


def test_projection_is_repeatable_and_w_only_skips_wplus(model):
    target = painted_target(model, 9)
    cfg = pj.ProjectConfig(steps_w=20, steps_wplus=0, w_avg_samples=200, frames=4)
    a = pj.project(model.G_ema, target, cfg, "cpu")
    b = pj.project(model.G_ema, target, cfg, "cpu")
    assert np.array_equal(a.w, b.w)
    assert np.array_equal(a.w, a.w_only)
    assert [row["phase"] for row in a.history] == ["w"] * 20


def test_the_learning_rate_follows_nvidias_ramps(model):
    result = pj.project(model.G_ema, painted_target(model), pj.ProjectConfig(**FAST), "cpu")
    lrs = [row["lr"] for row in result.history if row["phase"] == "w"]
    assert lrs[0] == 0  # warm-up from zero over the first 5 %
    assert max(lrs) == pytest.approx(0.1)
    assert lrs[-1] < 0.01  # cosine ramp-down over the last 25 %
    wplus = [row["lr"] for row in result.history if row["phase"] == "wplus"]
    assert max(wplus) == pytest.approx(0.01)


def test_a_target_of_the_wrong_size_is_refused(model):
    with pytest.raises(UserError, match="this model paints 16x16x3"):
        pj.project(model.G_ema, np.zeros([32, 32, 3], np.uint8), pj.ProjectConfig(**FAST), "cpu")


@pytest.mark.parametrize(
    "settings, name",
    [
        ({"steps_w": -1}, "steps_w"),
        ({"lr": 0}, "lr"),
        ({"clip_weight": -1}, "clip_weight"),
        ({"pixel_weight": float("nan")}, "pixel_weight"),
        ({"noise_ramp": 0}, "noise_ramp"),
        ({"w_avg_samples": 0}, "w_avg_samples"),
        ({"frames": 1}, "frames"),
    ],
)
def test_bad_settings_are_refused_by_name(settings, name):
    with pytest.raises(SettingError) as info:
        pj.ProjectConfig(**settings)
    assert info.value.setting == name


def test_nothing_to_optimise_is_refused(model):
    with pytest.raises(UserError, match="steps_w and steps_wplus are both 0"):
        pj.ProjectConfig(steps_w=0, steps_wplus=0)


def test_every_term_at_zero_is_refused(model):
    cfg = pj.ProjectConfig(**FAST, pixel_weight=0, laplacian_weight=0)
    with pytest.raises(UserError, match="Every term of the distance weighs 0"):
        pj.project(model.G_ema, painted_target(model), cfg, "cpu")


def test_weights_default_to_pixels_or_to_lpips_alone():
    cfg = pj.ProjectConfig()
    assert cfg.weights(lpips=False) == {"pixels": 1.0, "laplacian": 1.0, "lpips": 0.0, "clip": 0.1}
    assert cfg.weights(lpips=True) == {"pixels": 0.0, "laplacian": 0.0, "lpips": 1.0, "clip": 0.1}
    assert pj.ProjectConfig(pixel_weight=0.5).weights(lpips=True)["pixels"] == 0.5


# ---------------------------------------------------------------------------------------
# The distances


def test_laplacian_pyramid_holds_the_whole_picture():
    x = torch.randn(2, 3, 32, 32)
    levels = pj.laplacian_pyramid(x)
    assert [lv.shape[-1] for lv in levels] == [32, 16, 8]
    rebuilt = levels[-1]
    for band in reversed(levels[:-1]):
        rebuilt = band + torch.nn.functional.interpolate(rebuilt, scale_factor=2, mode="nearest")
    assert torch.allclose(rebuilt, x, atol=1e-6)
    assert torch.equal(pj.laplacian_distance(x, x), torch.zeros(2))
    y = x.clone()
    y[1] += 0.5
    d = pj.laplacian_distance(x, y)
    assert d[0] == 0 and d[1] == pytest.approx(0.5, rel=1e-5)  # a flat shift lives in the residual only


def test_noise_regularisation_is_small_for_white_noise_and_large_for_smooth_maps():
    gen = torch.Generator().manual_seed(0)
    white = [torch.randn(64, 64, generator=gen)]
    smooth = [torch.ones(64, 64)]
    assert float(pj.noise_regularisation(white)) < 1e-3
    assert float(pj.noise_regularisation(smooth)) == pytest.approx(2 * 4)  # 2 terms × 4 scales, 64² … 8²


def test_psnr():
    a = np.zeros([4, 4, 3], np.uint8)
    b = a.copy()
    assert pj.psnr(a, b) == float("inf")
    b[:] = 255
    assert pj.psnr(a, b) == pytest.approx(0.0)
    b[:] = 1
    assert pj.psnr(a, b) == pytest.approx(48.13, abs=0.01)


# ---------------------------------------------------------------------------------------
# The target


def test_the_target_is_made_square_as_prepare_does(tmp_path):
    img = np.zeros([100, 254, 3], np.uint8)
    img[:, :27] = 255  # a white band that center-rect at 2.0 cuts off, center-crop too
    img[:, 27:] = (10, 200, 30)
    Image.fromarray(img).save(tmp_path / "wide.png")
    t = pj.load_target(tmp_path / "wide.png", 16, 3, "center-rect", 2.0)
    assert t.pixels.shape == (16, 16, 3) and t.fmt == "center-rect" and t.aspect == 2.0
    assert t.pixels[:, 0].min() < 40  # the band is gone
    kept = pj.load_target(tmp_path / "wide.png", 16, 3, "squeeze")
    assert kept.pixels[:, 0].min() > 200 and kept.aspect is None  # squeeze keeps it
    grey = pj.load_target(tmp_path / "wide.png", 16, 1, "squeeze")
    assert grey.pixels.shape == (16, 16, 1)
    assert len(t.sha256) == 64 and t.name == "wide.png"


def test_bad_targets_are_one_sentence(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        pj.load_target(tmp_path / "none.png", 16, 3, "squeeze")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(UserError, match=r"Cannot use .*bad\.png as the target"):
        pj.load_target(tmp_path / "bad.png", 16, 3, "squeeze")
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    with pytest.raises(UserError, match="4 channels"):
        pj.load_target(tmp_path / "ok.png", 16, 4, "squeeze")


def test_a_picture_beyond_sixteen_megapixels_is_refused_before_decoding(tmp_path):
    Image.new("L", (5000, 4000)).save(tmp_path / "huge.png")
    with pytest.raises(UserError, match="too many pixels"):
        pj.load_target(tmp_path / "huge.png", 16, 3, "squeeze")


# ---------------------------------------------------------------------------------------
# LPIPS from local files


@pytest.fixture(scope="module")
def lpips_files(tmp_path_factory):
    """VGG16-shaped random weights as torchvision names them (.pth) and LPIPS heads (.safetensors)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("lpips")
    torch.manual_seed(0)
    vgg = {f"features.{k}": v for k, v in lp._vgg16_features().state_dict().items()}
    vgg["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision's file holds the classifier too: ignored
    torch.save(vgg, folder / "vgg16.pth")
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(lp.TAP_CHANNELS)}
    save_file(heads, str(folder / "vgg.safetensors"))
    return folder / "vgg16.pth", folder / "vgg.safetensors"


def test_lpips_from_two_local_files_is_a_distance(lpips_files):
    metric = lp.load_lpips(list(lpips_files))
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    b = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    assert torch.allclose(metric(a, a), torch.zeros(2))
    d = metric(a, b)
    assert d.shape == (2,) and bool((d > 0).all())
    assert torch.allclose(d, metric(b, a))
    x = a.clone().requires_grad_(True)
    metric(x, b).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_projection_with_lpips_uses_it_alone(model, lpips_files):
    metric = lp.load_lpips(list(lpips_files))
    cfg = pj.ProjectConfig(steps_w=5, steps_wplus=3, w_avg_samples=100, frames=3)
    result = pj.project(model.G_ema, painted_target(model), cfg, "cpu", lpips=metric)
    assert result.weights == {"pixels": 0.0, "laplacian": 0.0, "lpips": 1.0, "clip": 0.0}
    assert "lpips" in result.history[0] and "pixels" not in result.history[0]
    errors = pj.reconstruction_errors(result.pixels, painted_target(model), metric)
    assert set(errors) == {"psnr_db", "mae_levels", "lpips"}


def test_lpips_files_lacking_a_part_are_named(lpips_files):
    vgg, heads = lpips_files
    with pytest.raises(UserError, match=r"lack the LPIPS heads \(vgg\.pth\)"):
        lp.load_lpips([vgg])
    with pytest.raises(UserError, match=r"lack VGG16's features"):
        lp.load_lpips([heads])
    with pytest.raises(UserError, match="does not exist; ganscapes does not download them"):
        lp.load_lpips([vgg.parent / "missing.pth"])


def test_lpips_tensors_of_the_wrong_shape_or_code_in_a_pickle_are_refused(lpips_files, tmp_path):
    from safetensors.torch import save_file

    vgg, _ = lpips_files
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(lp.TAP_CHANNELS)}
    heads["lin4.model.1.weight"] = torch.rand(1, 7, 1, 1)
    save_file(heads, str(tmp_path / "bad.safetensors"))
    with pytest.raises(UserError, match=r"lin4\.model\.1\.weight has shape \[1, 7, 1, 1\]"):
        lp.load_lpips([vgg, tmp_path / "bad.safetensors"])

    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    import pickle

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"x": Boom()}))
    with pytest.raises(UserError, match=r"Cannot read .*evil\.pth as a weights file"):
        lp.load_lpips([tmp_path / "evil.pth"])
