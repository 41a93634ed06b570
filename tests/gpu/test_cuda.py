"""The CUDA paths: fp16 layers with clamping, fused modulated convolution, training, generate, SWD.

Skipped without a CUDA device (CI has none); `benchmarks/gpu_check.sh` runs them on a GPU.
"""

from __future__ import annotations

import pytest
import torch

from ganscapes.gan.config import network_kwargs, resolve_preset
from ganscapes.gan.networks import build_discriminator, build_generator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def paper256_nets(res: int = 256):
    G_kwargs, D_kwargs = network_kwargs(resolve_preset("paper256", res), res)  # fp16 on 4 resolutions, clamp 256
    torch.manual_seed(0)
    G = build_generator(G_kwargs).eval().requires_grad_(False).cuda()
    D = build_discriminator(D_kwargs).eval().requires_grad_(False).cuda()
    return G, D


def test_fp16_generator_matches_fp32_within_half_precision():
    G, _ = paper256_nets()
    z = torch.randn([8, G.z_dim], device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    c = torch.zeros([8, 0], device="cuda")
    half = G(z, c, noise_mode="const")
    full = G(z, c, noise_mode="const", force_fp32=True)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert (half - full).abs().mean() < 0.02 and (half - full).abs().max() < 0.5


def test_fp16_discriminator_matches_fp32():
    G, D = paper256_nets()
    img = torch.rand([8, 3, 256, 256], device="cuda") * 2 - 1
    c = torch.zeros([8, 0], device="cuda")
    half, full = D(img, c), D(img, c, force_fp32=True)
    assert torch.isfinite(half).all()
    assert (half - full).abs().max() < 0.05 * full.abs().max().clamp(min=1)


def test_fused_and_unfused_modulated_convolution_agree(monkeypatch):
    # cuDNN convolutions default to TF32 on Ampere and later (10-bit mantissas): the two
    # orders of summation then differ by ~5e-3. Training turns TF32 off, as NVIDIA's does.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    G, _ = paper256_nets(64)
    ws = G.mapping(torch.randn([4, G.z_dim], device="cuda"), torch.zeros([4, 0], device="cuda"))
    fused = G.synthesis(ws, noise_mode="const", force_fp32=True, fused_modconv=True)
    unfused = G.synthesis(ws, noise_mode="const", force_fp32=True, fused_modconv=False)
    torch.testing.assert_close(fused, unfused, rtol=1e-4, atol=1e-4)


def test_a_few_training_iterations_with_fp16_and_clamping(tmp_path):
    from ganscapes.data.prepare import PrepareConfig, prepare_dataset
    from ganscapes.data.sample import make_samples
    from ganscapes.fileio import read_jsonl
    from ganscapes.gan.train_config import TrainConfig
    from ganscapes.gan.train_state import list_snapshots, load_state
    from ganscapes.gan.training import train

    make_samples(tmp_path / "raw", n=32, seed=0, min_side=64, max_side=96, progress=False)
    data = tmp_path / "data.zip"
    prepare_dataset(tmp_path / "raw", data, PrepareConfig(res=64, workers=1), log=lambda _: None, progress=False)
    before = torch.empty(2**30, device="cuda")  # 4 GiB held and freed before training: in tick 0's peak only
    del before
    result = train(
        TrainConfig(
            data=str(data),
            outdir=str(tmp_path / "runs"),
            cfg="auto",
            batch=8,
            kimg=0.064,
            kimg_per_tick=0.032,
            snap=1,
            metrics=["swd"],
            metric_images=32,
            workers=0,
            device="cuda",
        ),
        log=lambda _: None,
        progress=False,
    )
    assert result.stopped_by == "done"
    ticks = read_jsonl(result.run_dir / "log.jsonl")
    # Each tick reports its own peak (as NVIDIA's loop does), not the process's since start-up.
    assert ticks[0]["peak_mem_mb"] >= 4096 > ticks[1]["peak_mem_mb"] > 0
    cfg = load_state(list_snapshots(result.run_dir)[-1][2])["config"]
    assert cfg["G_kwargs"]["synthesis_kwargs"]["num_fp16_res"] == 4
    assert cfg["G_kwargs"]["synthesis_kwargs"]["conv_clamp"] == 256


def test_generate_on_cuda_is_repeatable(tmp_path):
    from ganscapes.make.generate import generate_images

    from helpers_models import tiny_model

    model = tiny_model(32)
    generate_images(model, [0, 1, 2], device="cuda", out=tmp_path / "a", progress=False)
    generate_images(model, [0, 1, 2], batch=2, device="cuda", out=tmp_path / "b", progress=False)
    a = sorted((tmp_path / "a").glob("*.png"))
    b = sorted((tmp_path / "b").glob("*.png"))
    assert len(a) == 3 and [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
