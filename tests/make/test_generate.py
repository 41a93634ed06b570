"""generate: seeds, z, pixels, and pictures + latents from a tiny model (16², CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganscapes.device import resolve_device, synthesis_options
from ganscapes.errors import SettingError, UserError
from ganscapes.gan.checkpoint import save_model
from ganscapes.gan.ops import to_uint8
from ganscapes.make.generate import generate_images
from ganscapes.make.seeds import MAX_SEED, class_label, parse_seeds, seed_to_z

from helpers_models import tiny_model

# ---------------------------------------------------------------------------------------
# Seeds


@pytest.mark.parametrize(
    "text, seeds",
    [
        ("0", [0]),
        ("7", [7]),
        ("0-3", [0, 1, 2, 3]),
        ("0-99,200,300-310", [*range(100), 200, *range(300, 311)]),
        (" 1 , 5-6 ,2 ", [1, 5, 6, 2]),
        ("3 - 5", [3, 4, 5]),
        ("5,1-6,5", [5, 1, 2, 3, 4, 6]),  # dedupe, first occurrence wins
        ("4-4", [4]),
        (f"{MAX_SEED}", [MAX_SEED]),
        (f"{MAX_SEED - 1}-{MAX_SEED}", [MAX_SEED - 1, MAX_SEED]),
    ],
)
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "The seed list is empty"),
        ("  ", "The seed list is empty"),
        ("1,,2", "Cannot read '' in the seed list '1,,2'"),
        ("1,", "Cannot read ''"),
        ("a", "Cannot read 'a'"),
        ("1.5", "Cannot read '1.5'"),
        ("1-2-3", "Cannot read '1-2-3'"),
        ("0x10", "Cannot read '0x10'"),
        ("-3", "Seeds cannot be negative"),
        ("-3-5", "Seeds cannot be negative"),
        ("2--1", "Seeds cannot be negative"),
        ("9-3", "The seed range '9-3' runs backwards; write 3-9."),
        (f"{MAX_SEED + 1}", f"Seeds must be at most {MAX_SEED} (2**32 - 1), not {MAX_SEED + 1}."),
        (f"0-{MAX_SEED + 1}", "Seeds must be at most"),
        (f"0-{MAX_SEED}", "names more than 1,000,000 seeds"),
    ],
)
def test_parse_seeds_refuses(text, message):
    with pytest.raises(UserError) as info:
        parse_seeds(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value) and str(info.value).endswith(".")


def test_seed_to_z_is_the_official_z():
    for seed in (0, 1, 42, MAX_SEED):
        z = seed_to_z(seed, 512)
        assert z.dtype == np.float64 and z.shape == (1, 512)
        assert np.array_equal(z, np.random.RandomState(seed).randn(1, 512))
    assert np.array_equal(seed_to_z(3, 32), np.random.RandomState(3).randn(1, 32))


def test_to_uint8_rounds_and_clamps():
    # Values exact in float32. x·127.5 + 128 truncated = round-half-up of (x + 1)·127.5:
    # -1 → 0, 1 → 255, 0 → 127.5 → 128, 0.25 → 159.375 → 159, 2⁻⁶ → 129.49 → 129,
    # -2⁻⁷ → 127.004 → 127, -2⁻⁶ → 126.008 → 126, and clamping both ways.
    x = torch.tensor([-1.0, 1.0, 0.0, 0.25, 2**-6, -(2**-7), -(2**-6), -2.0, 5.0, -1.004, 1.004])
    assert to_uint8(x).dtype == torch.uint8
    assert to_uint8(x).tolist() == [0, 255, 128, 159, 129, 127, 126, 0, 255, 0, 255]


def test_class_label():
    assert class_label(0, None, 3).shape == (3, 0)
    c = class_label(5, 2, 2)
    assert c.tolist() == [[0, 0, 1, 0, 0]] * 2
    with pytest.raises(UserError, match="unconditional"):
        class_label(0, 1)
    with pytest.raises(
        UserError, match="^class_idx is needed: this model is conditional on 5 classes; choose one from 0 to 4.$"
    ):
        class_label(5, None)
    with pytest.raises(UserError, match="^class_idx 5 is out of range; this model has classes 0 to 4"):
        class_label(5, 5)
    with pytest.raises(UserError, match="out of range"):
        class_label(5, -1)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(UserError, match="Unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(
            SettingError, match="^device cuda was asked for, but PyTorch sees no CUDA GPU; use cpu or auto.$"
        ):
            resolve_device("cuda")


# ---------------------------------------------------------------------------------------
# Pictures


@pytest.fixture(scope="module")
def model():
    return tiny_model(res=16, seed=0)


def read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def test_generate_writes_pictures_and_latents(model, tmp_path):
    seeds = [0, 1, 2, 7, 12345]
    result = generate_images(model, seeds, psi=0.7, out=tmp_path / "out", progress=False)
    assert [p.name for p in result.images] == [
        "seed0000.png",
        "seed0001.png",
        "seed0002.png",
        "seed0007.png",
        "seed12345.png",
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [p.name for p in result.images] + ["latents.npz"]
    )
    for p in result.images:
        with Image.open(p) as im:
            assert im.size == (16, 16) and im.mode == "RGB"
            record = json.loads(im.text["ganscapes"])
        assert record["model_hash"] == model.model_hash and record["psi"] == 0.7 and record["noise_mode"] == "const"
    assert result.device == "cpu" and not result.compiled

    with np.load(result.latents) as npz:  # no pickle needed to read it
        assert npz["seeds"].dtype == np.int64 and npz["seeds"].tolist() == seeds
        assert npz["z"].dtype == np.float64 and npz["z"].shape == (5, 32)
        for i, s in enumerate(seeds):
            assert np.array_equal(npz["z"][i], np.random.RandomState(s).randn(32))
        assert npz["w"].dtype == np.float32 and npz["w"].shape == (5, model.num_ws, 32)
        assert float(npz["psi"]) == 0.7
        assert str(npz["noise_mode"]) == "const"
        assert int(npz["class_idx"]) == -1 and int(npz["truncation_cutoff"]) == -1
        assert str(npz["model_hash"]) == model.model_hash

        # the ws are the truncated ones: w_avg + psi (w - w_avg)
        z = torch.from_numpy(npz["z"]).float()
        w_plain = model.G_ema.mapping(z, torch.zeros(5, 0))
        w_avg = model.G_ema.mapping.w_avg
        assert torch.allclose(torch.from_numpy(npz["w"]), w_avg + 0.7 * (w_plain - w_avg), atol=1e-5)


def test_w_in_latents_reproduces_the_pictures(model, tmp_path):
    seeds = [3, 1, 4, 15]  # a multiple of 4: the same row grouping as generate (see ROW_GROUP)
    result = generate_images(model, seeds, psi=0.5, batch=2, out=tmp_path, progress=False)
    with np.load(result.latents) as npz:
        w = torch.from_numpy(npz["w"])
    with torch.inference_mode():
        exact = model.G_ema.synthesis(w, noise_mode="const", **synthesis_options(torch.device("cpu")))
        plain = model.G_ema.synthesis(w, noise_mode="const")
    exact = to_uint8(exact).permute(0, 2, 3, 1).numpy()
    plain = to_uint8(plain).permute(0, 2, 3, 1).numpy()
    for i, p in enumerate(result.images):
        assert np.array_equal(read_png(p), exact[i])
        # the network's default (fused) form is the same function, up to summation order
        assert np.abs(read_png(p).astype(int) - plain[i]).max() <= 1


def test_pictures_do_not_depend_on_the_batch_size(model, tmp_path):
    seeds = list(range(11))
    runs = {}
    for batch in (1, 3, 8):
        out = tmp_path / f"b{batch}"
        generate_images(model, seeds, psi=0.8, batch=batch, out=out, progress=False)
        runs[batch] = out
    for s in seeds:
        ref = (runs[1] / f"seed{s:04d}.png").read_bytes()
        for batch in (3, 8):
            assert (runs[batch] / f"seed{s:04d}.png").read_bytes() == ref, (s, batch)
    with np.load(runs[1] / "latents.npz") as a, np.load(runs[8] / "latents.npz") as b:
        assert np.array_equal(a["w"], b["w"]) and np.array_equal(a["z"], b["z"])


def test_psi_zero_gives_the_average_picture(model, tmp_path):
    result = generate_images(model, [0, 1, 2], psi=0, out=tmp_path, progress=False)
    first = read_png(result.images[0])
    for p in result.images[1:]:
        assert np.array_equal(read_png(p), first)
    with np.load(result.latents) as npz:
        w_avg = model.G_ema.mapping.w_avg.numpy()
        assert np.array_equal(npz["w"], np.broadcast_to(w_avg, npz["w"].shape))


def test_truncation_cutoff_truncates_only_the_first_layers(model, tmp_path):
    result = generate_images(model, [5], psi=0, truncation_cutoff=2, out=tmp_path, progress=False)
    with np.load(result.latents) as npz:
        w = npz["w"][0]
        assert int(npz["truncation_cutoff"]) == 2
    w_avg = model.G_ema.mapping.w_avg.numpy()
    assert np.array_equal(w[:2], np.stack([w_avg, w_avg]))
    assert not np.allclose(w[2:], w_avg)
    with pytest.raises(
        SettingError, match=rf"^truncation_cutoff must be from 0 to {model.num_ws} \(the model's num_ws\)"
    ):
        generate_images(model, [5], truncation_cutoff=model.num_ws + 1, out=tmp_path, progress=False)
    with pytest.raises(SettingError, match=r"must be from 0 to .*, not -1\.$"):
        generate_images(model, [5], truncation_cutoff=-1, out=tmp_path, progress=False)


def test_noise_modes(model, tmp_path):
    const = read_png(generate_images(model, [9], noise_mode="const", out=tmp_path / "c", progress=False).images[0])
    none = read_png(generate_images(model, [9], noise_mode="none", out=tmp_path / "n", progress=False).images[0])
    r1 = read_png(generate_images(model, [9], noise_mode="random", out=tmp_path / "r1", progress=False).images[0])
    r2 = read_png(generate_images(model, [9], noise_mode="random", out=tmp_path / "r2", progress=False).images[0])
    assert not np.array_equal(const, none) and not np.array_equal(const, r1)
    assert np.array_equal(r1, r2)  # repeatable: the noise generator is seeded from the seeds
    state = torch.get_rng_state()
    generate_images(model, [9], noise_mode="random", out=tmp_path / "r3", progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is left alone
    with pytest.raises(UserError, match="^noise_mode must be one of const, random, none"):
        generate_images(model, [9], noise_mode="fixed", out=tmp_path, progress=False)


def test_a_seed_gives_the_same_picture_as_the_official_recipe(model, tmp_path):
    """generate.py of NVIDIA: G(z from RandomState(seed), c, psi, noise_mode='const') one seed at a time."""
    result = generate_images(model, [42], psi=0.6, out=tmp_path, progress=False)
    z = torch.from_numpy(np.random.RandomState(42).randn(1, 32))
    with torch.inference_mode():
        img = model.G_ema(z, torch.zeros(1, 0), truncation_psi=0.6, noise_mode="const", force_fp32=True)
    official = to_uint8(img)[0].permute(1, 2, 0).numpy()
    ours = read_png(result.images[0])
    # The official tool runs 1 row per call and the fused convolution; we run 4 rows
    # (ROW_GROUP) and, on CPU, the unfused one: summation order may move a handful of
    # pixels by one level, never more.
    assert np.abs(ours.astype(int) - official).max() <= 1
    assert (ours != official).mean() < 0.01


def test_psi_outside_the_usual_range_warns(model, tmp_path):
    lines = []
    generate_images(model, [0], psi=2.5, out=tmp_path, progress=False, log=lines.append)
    assert lines == ["ganscapes: warning: psi 2.5 is outside [-1, 2]; expect broken pictures."]
    lines.clear()
    generate_images(model, [0], psi=-1, out=tmp_path, progress=False, log=lines.append)
    assert lines == []


def test_batch_and_seeds_are_checked(model, tmp_path):
    with pytest.raises(UserError, match="^batch must be at least 1, not 0.$"):
        generate_images(model, [0], batch=0, out=tmp_path, progress=False)
    with pytest.raises(UserError, match="Seeds must be from 0 to"):
        generate_images(model, [-1], out=tmp_path, progress=False)
    with pytest.raises(UserError, match="No seeds"):
        generate_images(model, [], out=tmp_path, progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(SettingError, match=f"^out {tmp_path / 'file'} exists and is not a folder.$"):
        generate_images(model, [0], out=tmp_path / "file", progress=False)


def test_conditional_model_needs_a_class(tmp_path):
    model = tiny_model(res=16, c_dim=3, seed=1)
    with pytest.raises(UserError, match="conditional on 3 classes"):
        generate_images(model, [0], out=tmp_path, progress=False)
    with pytest.raises(UserError, match="^class_idx 3 is out of range"):
        generate_images(model, [0], class_idx=3, out=tmp_path, progress=False)
    a = generate_images(model, [0, 1], class_idx=0, out=tmp_path / "c0", progress=False)
    b = generate_images(model, [0, 1], class_idx=2, out=tmp_path / "c2", progress=False)
    assert not np.array_equal(read_png(a.images[0]), read_png(b.images[0]))
    with np.load(b.latents) as npz:
        assert int(npz["class_idx"]) == 2
    # the label is one-hot for class 2 (rows padded as generate pads them: copies of the last)
    z = torch.from_numpy(np.stack([np.random.RandomState(s).randn(32) for s in (0, 1, 1, 1)])).float()
    c = torch.tensor([[0.0, 0.0, 1.0]] * 4)
    with torch.inference_mode():
        w = model.G_ema.mapping(z, c)
    with np.load(b.latents) as npz:
        assert np.array_equal(npz["w"], w[:2].numpy())


def test_unconditional_model_refuses_a_class(model, tmp_path):
    with pytest.raises(UserError, match="unconditional"):
        generate_images(model, [0], class_idx=0, out=tmp_path, progress=False)


@pytest.mark.parametrize("channels, mode", [(1, "L"), (4, "RGBA")])
def test_image_channels_decide_the_png_mode(channels, mode, tmp_path):
    model = tiny_model(res=16, channels=channels, seed=2)
    result = generate_images(model, [0, 1], out=tmp_path, progress=False)
    with Image.open(result.images[0]) as im:
        assert im.mode == mode and im.size == (16, 16)


def test_generate_from_a_model_file(model, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, model)
    a = generate_images(path, "0-2", out=tmp_path / "a", progress=False)
    b = generate_images(model, [0, 1, 2], out=tmp_path / "b", progress=False)
    for p, q in zip(a.images, b.images):
        assert p.read_bytes() == q.read_bytes()


def test_compile_falls_back_when_it_fails(model, tmp_path, monkeypatch):
    def broken(module, *args, **kwargs):
        def call(*a, **k):
            raise RuntimeError("no compiler here\nsecond line")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    lines = []
    result = generate_images(
        model, [0, 1, 2], compile=True, batch=2, out=tmp_path / "c", progress=False, log=lines.append
    )
    assert not result.compiled
    assert lines == ["ganscapes: warning: torch.compile failed (no compiler here); running without it."]
    eager = generate_images(model, [0, 1, 2], batch=2, out=tmp_path / "e", progress=False)
    for p, q in zip(result.images, eager.images):
        assert p.read_bytes() == q.read_bytes()


def test_on_batch_reports_the_pictures_painted_so_far(model, tmp_path):
    calls = []
    generate_images(model, range(10), batch=4, out=tmp_path, progress=False, on_batch=lambda *a: calls.append(a))
    assert calls == [(4, 10), (8, 10), (10, 10)]


def test_painting_on_the_cpu_reuses_freed_memory(monkeypatch):
    # Every batch allocates the same large activations; on CPUs the process keeps and reuses
    # them (ganscapes.cpu_heap) instead of taking fresh pages from the kernel each time.
    import ganscapes.make.paint as paint_module

    calls = []
    monkeypatch.setattr(paint_module, "keep_freed_memory", lambda: calls.append("kept") or True)
    model = tiny_model(res=16, seed=0)
    ws = model.G_ema.mapping(torch.zeros([1, model.G_ema.z_dim]), torch.zeros([1, 0]))
    pixels = paint_module.paint(model.G_ema, ws, "const", 4)
    assert pixels.shape == (1, 16, 16, 3) and pixels.dtype == np.uint8
    assert calls and set(calls) == {"kept"}
