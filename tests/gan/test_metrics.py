"""Metrics: SWD (pyramid, descriptors, distance), FID and KID arithmetic, compute_metrics, the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ganscapes.cli as cli
from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.errors import SettingError, UserError
from ganscapes.gan.checkpoint import save_model
from ganscapes.gan.metrics import (
    INCEPTION_ENV,
    compute_metrics,
    fid_from_features,
    kid_from_features,
    load_inception,
    parse_metrics,
    run_metrics,
)
from ganscapes.gan.metrics.fid import feature_stats, trace_sqrt_product
from ganscapes.gan.metrics.swd import (
    SWDAccumulator,
    _binomial,
    _blur,
    laplacian_pyramid,
    level_resolutions,
    swd,
)

from helpers_images import noise, png_bytes, write
from helpers_models import tiny_model


def smooth_images(n: int, res: int = 32, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """Blocky random pictures: structure at several scales, like the tests' paintings."""
    g = torch.Generator().manual_seed(seed)
    small = torch.randint(0, 256, [n, channels, res // 4, res // 4], generator=g, dtype=torch.uint8)
    return F.interpolate(small.float(), scale_factor=4, mode="nearest").to(torch.uint8)


def add_noise(images: torch.Tensor, std: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (images.float() + torch.randn(images.shape, generator=g) * std).round().clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------------------
# SWD


def test_swd_levels_and_keys():
    assert level_resolutions(1024) == [1024, 512, 256, 128, 64, 32, 16]
    assert level_resolutions(16) == [16]
    assert level_resolutions(8) == [8]
    with pytest.raises(ValueError, match="at least 8x8"):
        level_resolutions(4)
    reals = smooth_images(8)
    assert list(swd(reals, reals)) == ["SWDx1e3_32", "SWDx1e3_16", "SWDx1e3_avg"]


def test_swd_of_identical_sets_is_zero():
    reals = smooth_images(16)
    assert all(v == 0 for v in swd(reals, reals.clone(), seed=3).values())


def test_swd_is_deterministic_for_a_seed():
    reals, fakes = smooth_images(16), add_noise(smooth_images(16), 20)
    a, b = swd(reals, fakes, seed=7), swd(reals, fakes, seed=7)
    assert a == b
    assert swd(reals, fakes, seed=8) != a


def test_swd_orders_good_and_bad_fakes():
    reals = smooth_images(32, seed=0)
    close = add_noise(reals, 4)
    blurred = F.avg_pool2d(reals.float(), 3, stride=1, padding=1, count_include_pad=False).round().to(torch.uint8)
    shifted = torch.roll(reals, shifts=(2, 2), dims=(2, 3))
    garbage = torch.randint(0, 256, reals.shape, generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    d_close = swd(reals, close)["SWDx1e3_avg"]
    d_blur = swd(reals, blurred)["SWDx1e3_avg"]
    d_shift = swd(reals, shifted)["SWDx1e3_avg"]
    d_garbage = swd(reals, garbage)["SWDx1e3_avg"]
    assert 0 < d_close < d_garbage
    assert 0 < d_blur and 0 < d_shift
    assert d_blur > d_close and d_garbage > 2 * d_close
    # Blurring removes the finest detail: the full-resolution level notices most.
    blur = swd(reals, blurred)
    assert blur["SWDx1e3_32"] > blur["SWDx1e3_16"]


def test_swd_of_tiny_and_grayscale_images():
    small = smooth_images(16, res=8)
    result = swd(small, add_noise(small, 30))
    assert list(result) == ["SWDx1e3_8", "SWDx1e3_avg"] and result["SWDx1e3_8"] > 0
    gray = smooth_images(8, res=16, channels=1)
    assert list(swd(gray, gray)) == ["SWDx1e3_16", "SWDx1e3_avg"]
    with pytest.raises(ValueError, match="at least 8x8"):
        swd(torch.zeros([4, 3, 4, 4], dtype=torch.uint8), torch.zeros([4, 3, 4, 4], dtype=torch.uint8))


def test_swd_needs_equal_sets():
    with pytest.raises(ValueError, match="equal size"):
        swd(smooth_images(8), smooth_images(6))


def test_swd_in_batches_equals_all_at_once():
    reals, fakes = smooth_images(12), add_noise(smooth_images(12), 10)
    acc = SWDAccumulator(32, 3, 12, seed=2)
    for part in reals.split(5):
        acc.add_reals(part)
    for part in fakes.split(7):
        acc.add_fakes(part)
    assert acc.result() == swd(reals, fakes, seed=2)


def test_laplacian_pyramid_reconstructs_and_flattens_constants():
    images = smooth_images(2).float()
    bands = laplacian_pyramid(images, 2)
    assert [b.shape[-1] for b in bands] == [32, 16]
    kernel = _binomial(3, "cpu")
    up = torch.zeros([2, 3, 32, 32])
    up[:, :, ::2, ::2] = bands[1]
    assert torch.allclose(bands[0] + _blur(up, kernel * 4), images, atol=1e-3)
    flat = laplacian_pyramid(torch.full([1, 3, 32, 32], 77.0), 2)
    assert flat[0].abs().max() < 1e-4 and torch.allclose(flat[1], torch.full_like(flat[1], 77.0))


def test_blur_uses_a_mirror_boundary():
    x = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8) ** 1.5
    k1 = np.array([1, 4, 6, 4, 1]) / 16
    padded = np.pad(x[0, 0].numpy().astype(np.float64), 2, mode="reflect")  # d c b | a b c d: edge not repeated
    expected = np.zeros([8, 8])
    for dy in range(5):
        for dx in range(5):
            expected += k1[dy] * k1[dx] * padded[dy : dy + 8, dx : dx + 8]
    assert np.allclose(_blur(x, _binomial(1, "cpu"))[0, 0].numpy(), expected, atol=1e-3)


# ---------------------------------------------------------------------------------------
# FID and KID


def exact_gaussian_features(mu: np.ndarray, std: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n features whose sample mean is exactly mu and biased covariance exactly diag(std²)."""
    z = np.random.RandomState(seed).randn(n, len(mu))
    z -= z.mean(axis=0)
    cov = z.T @ z / n
    z = z @ np.linalg.inv(np.linalg.cholesky(cov)).T
    return z * std + mu


def test_feature_stats_are_float64_and_biased():
    x = np.random.RandomState(0).randn(10, 3).astype(np.float32)
    mu, sigma = feature_stats(x)
    assert mu.dtype == sigma.dtype == np.float64
    assert np.allclose(sigma, np.cov(x.astype(np.float64), rowvar=False, bias=True))


def test_fid_of_identical_features_is_zero():
    feats = np.random.RandomState(1).randn(300, 32) * 5 + 2
    scale = float(np.trace(np.cov(feats, rowvar=False)))
    assert abs(fid_from_features(feats, feats.copy())) < 1e-6 * scale
    assert abs(fid_from_features(torch.from_numpy(feats), torch.from_numpy(feats))) < 1e-6 * scale


def test_fid_matches_the_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1, 2, 3, -1, 0]), np.array([0.5, 1, 0, 3, 1, 2])
    s1, s2 = np.array([1.0, 2, 0.5, 1, 3, 1]), np.array([2.0, 2, 1, 0.25, 1, 1])
    real = exact_gaussian_features(mu1, s1, 200, seed=0)
    fake = exact_gaussian_features(mu2, s2, 150, seed=1)
    expected = np.square(mu1 - mu2).sum() + np.square(s1 - s2).sum()
    assert fid_from_features(real, fake) == pytest.approx(expected, rel=1e-9)
    assert fid_from_features(real, fake, method="eigh") == pytest.approx(expected, rel=1e-9)


def test_trace_of_the_root_matches_the_eigenvalues_of_the_product():
    rng = np.random.RandomState(2)
    a, b = rng.randn(40, 12), rng.randn(30, 12)
    sa, sb = a.T @ a / 40, b.T @ b / 30
    expected = np.sqrt(np.linalg.eigvals(sa @ sb).real.clip(0)).sum()
    assert trace_sqrt_product(sa, sb, "eigh") == pytest.approx(expected, rel=1e-8)
    # Singular covariances (fewer samples than dimensions) stay finite and real.
    c = rng.randn(5, 12)
    assert np.isfinite(trace_sqrt_product(c.T @ c / 5, sb, "eigh"))


def test_fid_with_scipy_agrees_with_the_eigen_route():
    pytest.importorskip("scipy")
    rng = np.random.RandomState(3)
    real, fake = rng.randn(100, 8), rng.randn(120, 8) * 1.5 + 0.3
    assert fid_from_features(real, fake, method="scipy") == pytest.approx(fid_from_features(real, fake, method="eigh"))


def test_kid_is_near_zero_for_the_same_distribution_and_positive_for_another():
    rng = np.random.RandomState(4)
    real = rng.randn(400, 16)
    same = rng.randn(400, 16)
    other = rng.randn(400, 16) * 1.5 + 0.5
    kid_same = kid_from_features(real, same, num_subsets=20, max_subset_size=200)
    kid_other = kid_from_features(real, other, num_subsets=20, max_subset_size=200)
    kid_self = kid_from_features(real, real, num_subsets=20, max_subset_size=200)
    assert kid_other > 0.1
    assert abs(kid_same) < 0.01 * kid_other
    # The same features on both sides: subsets share points, which biases KID slightly
    # below 0 (as in the official code), still small against a real difference.
    assert abs(kid_self) < 0.05 * kid_other
    assert kid_from_features(real, other, num_subsets=5, seed=1) == kid_from_features(
        real, other, num_subsets=5, seed=1
    )


def test_missing_inception_is_one_clear_sentence(monkeypatch, tmp_path):
    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    with pytest.raises(UserError) as info:
        load_inception(None)
    message = str(info.value)
    assert message == (
        "FID and KID need NVIDIA's Inception-v3 weights (the TorchScript file inception-2015-12-05.pt): download "
        "inception-2015-12-05.pt from https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
        "inception-2015-12-05.pt and pass its path with --inception PATH or GANSCAPES_INCEPTION."
    )
    with pytest.raises(UserError, match="does not exist; download inception-2015-12-05.pt"):
        load_inception(tmp_path / "nope.pt")
    pkl = write(tmp_path / "inception-2015-12-05.pkl", b"\x80\x04.")
    with pytest.raises(UserError, match="is a pickle, which ganscapes does not load"):
        load_inception(pkl)
    junk = write(tmp_path / "junk.pt", b"not torchscript")
    with pytest.raises(UserError, match="is not a readable TorchScript Inception file"):
        load_inception(junk)


class StandInInception(torch.nn.Module):
    """A TorchScript module with the Inception file's calling convention."""

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = img.to(torch.float32)
        return torch.stack([x.mean(dim=(1, 2, 3)), x.std(dim=(1, 2, 3)), x[:, 0].mean(dim=(1, 2))], dim=1)


def test_load_inception_runs_a_torchscript_file_from_the_environment(monkeypatch, tmp_path):
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.script(StandInInception()).save(str(path))
    monkeypatch.setenv(INCEPTION_ENV, str(path))
    fn = load_inception()
    gray = torch.full([2, 1, 8, 8], 10, dtype=torch.uint8)
    assert fn(gray).tolist() == [[10.0, 0.0, 10.0]] * 2  # grayscale tiled to 3 channels
    assert load_inception(path) is fn


# ---------------------------------------------------------------------------------------
# compute_metrics and the command


@pytest.fixture(scope="module")
def data16(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("m")
    for i in range(10):
        write(root / "raw" / f"p{i}.png", png_bytes(noise(24, 20, seed=i)))
    out = root / "paint.zip"
    prepare_dataset(root / "raw", out, PrepareConfig(res=16, workers=1), log=lambda _: None, progress=False)
    return out


@pytest.fixture(scope="module")
def model16(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(path, tiny_model(16))
    return path


class ConvFeatures(torch.nn.Module):
    """A small random conv net standing in for Inception."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.conv(images.float() / 127.5 - 1).relu().mean(dim=(2, 3))


def test_parse_metrics():
    assert parse_metrics("swd, fid50k_full,swd") == ["swd", "fid50k_full"]
    with pytest.raises(UserError, match="Unknown metric 'fid'; the metrics are swd, fid50k_full, kid50k_full."):
        parse_metrics("swd,fid")
    with pytest.raises(UserError, match="No metric"):
        parse_metrics(" , ")


def test_compute_metrics_swd_on_a_tiny_model(data16):
    model = tiny_model(16)
    hash_before = model.model_hash
    a = compute_metrics(model, data16, metrics=("swd",), num_images=8, batch=4, device="cpu", seed=0)
    assert list(a) == ["SWDx1e3_16", "SWDx1e3_avg"] and a["SWDx1e3_avg"] > 0
    assert compute_metrics(model, data16, metrics=("swd",), num_images=8, batch=4, device="cpu", seed=0) == a
    assert compute_metrics(model, data16, metrics=("swd",), num_images=8, batch=4, device="cpu", seed=1) != a
    from ganscapes.gan.checkpoint import model_hash

    assert model_hash(model.G_ema) == hash_before  # w_avg untouched
    run = run_metrics(model, data16, "swd", num_images=100, device="cpu")
    assert run.counts == {"swd": {"reals": 10, "fakes": 10}}  # capped by the dataset


def test_metrics_on_the_cpu_reuse_freed_memory(data16, monkeypatch):
    # Thousands of batches of the same activations: on CPUs they reuse the process's memory.
    import ganscapes.gan.metrics as metrics

    calls = []
    monkeypatch.setattr(metrics, "keep_freed_memory", lambda: calls.append("kept") or True)
    compute_metrics(tiny_model(16), data16, metrics=("swd",), num_images=8, batch=4, device="cpu", seed=0)
    assert calls == ["kept"]


def test_compute_metrics_fid_and_kid_with_a_stand_in_network(data16):
    model = tiny_model(16)
    run = run_metrics(
        model,
        data16,
        ("fid50k_full", "kid50k_full", "swd"),
        num_images=12,
        batch=5,
        device="cpu",
        feature_fn=ConvFeatures(),
    )
    assert set(run.results) == {"fid50k_full", "kid50k_full", "SWDx1e3_16", "SWDx1e3_avg"}
    assert run.results["fid50k_full"] > 0 and np.isfinite(run.results["kid50k_full"])
    assert run.counts["fid50k_full"] == {"reals": 10, "fakes": 12}


def test_compute_metrics_conditional(tmp_path):
    images = [noise(16, 16, seed=i) for i in range(6)]
    for i, img in enumerate(images):
        write(tmp_path / "c" / "00000" / f"img{i:08d}.png", png_bytes(img))
    labels = [[f"00000/img{i:08d}.png", i % 3] for i in range(6)]
    (tmp_path / "c" / "dataset.json").write_text(json.dumps({"labels": labels}))
    result = compute_metrics(tiny_model(16, c_dim=3), tmp_path / "c", num_images=6, device="cpu")
    assert result["SWDx1e3_avg"] > 0
    with pytest.raises(UserError, match="is conditional on 2 classes, but dataset .* has 3-dimensional labels"):
        compute_metrics(tiny_model(16, c_dim=2), tmp_path / "c", num_images=6, device="cpu")
    (tmp_path / "c" / "dataset.json").unlink()
    with pytest.raises(UserError, match="needs labels"):
        compute_metrics(tiny_model(16, c_dim=3), tmp_path / "c", num_images=6, device="cpu")


def test_compute_metrics_refuses_a_dataset_of_another_size(data16):
    with pytest.raises(UserError, match="makes 32x32 images"):
        compute_metrics(tiny_model(32), data16, num_images=4, device="cpu")


def run_main(monkeypatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["ganscapes", *args])
    try:
        cli.main()
    except SystemExit as e:
        return e.code or 0
    return 0


def test_cli_metrics_swd(monkeypatch, capsys, data16, model16, tmp_path):
    out = tmp_path / "res" / "metrics.jsonl"
    args = [
        "metrics",
        "--model",
        str(model16),
        "--data",
        str(data16),
        "--num",
        "8",
        "--batch",
        "4",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert run_main(monkeypatch, *args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("swd  ") and "SWDx1e3_avg" in lines[0]
    assert "8 reals, 8 fakes" in lines[0]
    assert run_main(monkeypatch, *args) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 and records[0]["results"] == records[1]["results"]
    assert records[0]["counts"] == {"swd": {"reals": 8, "fakes": 8}} and len(records[0]["model_hash"]) == 64


def test_cli_metrics_errors(monkeypatch, capsys, data16, model16):
    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    base = ["metrics", "--model", str(model16), "--data", str(data16), "--device", "cpu"]
    assert run_main(monkeypatch, *base, "--metrics", "swd,is50k") == 1
    assert capsys.readouterr().err == (
        "ganscapes: error: Unknown metric 'is50k'; the metrics are swd, fid50k_full, kid50k_full.\n"
    )
    assert run_main(monkeypatch, *base, "--metrics", "fid50k_full") == 1
    err = capsys.readouterr().err
    assert err.startswith("ganscapes: error: FID and KID need NVIDIA's Inception-v3 weights") and err.count("\n") == 1


def test_bad_counts_name_the_setting_in_the_library_and_the_option_on_the_command_line(
    monkeypatch, capsys, data16, model16
):
    for kwargs, message in [
        ({"num_images": 1}, "num_images must be at least 2, not 1."),
        ({"batch": 0}, "batch must be at least 1, not 0."),
    ]:
        with pytest.raises(SettingError) as info:
            run_metrics(model16, data16, "swd", device="cpu", **kwargs)
        assert (info.value.setting, str(info.value)) == (next(iter(kwargs)), message)
    base = ["metrics", "--model", str(model16), "--data", str(data16), "--device", "cpu"]
    for args, message in [
        (["--num", "1"], "--num must be at least 2, not 1."),
        (["--batch", "0"], "--batch must be at least 1, not 0."),
    ]:
        assert run_main(monkeypatch, *base, *args) == 1
        assert capsys.readouterr().err == f"ganscapes: error: {message}\n"
