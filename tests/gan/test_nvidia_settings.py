"""Training settings as NVIDIA's train.py resolves them: rounds per device, auto heuristics,
transfer learning, --subset, and Adam steps for every parameter."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
from ganscapes.errors import UserError
from ganscapes.gan.train_config import TrainConfig, resolve
from ganscapes.gan.train_state import list_snapshots, load_state
from ganscapes.gan.training import train
from ganscapes.gan.training_data import ImageDataset


def settings(cfg: str, res: int = 256, world: int = 1, **options) -> dict:
    return resolve(TrainConfig(data="unused", cfg=cfg, **options), res, 3, 0, world).to_dict()


@pytest.mark.parametrize(
    "cfg, res, world, batch, batch_gpu",
    [
        ("paper256", 256, 1, 64, 8),  # 8 rounds of 8 on one GPU, as train.py (mb // ref_gpus)
        ("paper256", 256, 2, 64, 8),
        ("paper512", 512, 1, 64, 8),
        ("paper1024", 1024, 1, 32, 4),
        ("stylegan2", 1024, 1, 32, 4),
        ("cifar", 32, 1, 64, 32),
        ("auto", 256, 1, 16, 16),
        ("auto", 256, 2, 32, 16),
        ("tiny", 64, 2, 8, 4),
    ],
)
def test_preset_rounds_per_device(cfg, res, world, batch, batch_gpu):
    s = settings(cfg, res, world)
    assert (s["batch"], s["batch_gpu"]) == (batch, batch_gpu)


def test_an_explicit_batch_is_one_round_per_device_unless_batch_gpu_is_given():
    assert (settings("paper256", batch=32)["batch_gpu"], settings("paper256", 256, 2, batch=32)["batch_gpu"]) == (
        32,
        16,
    )
    assert settings("paper256", batch=32, batch_gpu=4)["batch_gpu"] == 4


def test_auto_heuristics_come_from_the_auto_batch_not_from_batch():
    """train.py computes γ and the EMA from the auto batch (16 at 256² on one GPU), then --batch."""
    for s in (settings("auto"), settings("auto", batch=32)):
        assert s["r1_gamma"] == pytest.approx(0.8192) and s["ema_kimg"] == pytest.approx(5)
    assert settings("auto", batch=32)["batch"] == 32
    assert settings("auto", 128)["r1_gamma"] == pytest.approx(0.1024)
    assert settings("auto", 1024)["ema_kimg"] == pytest.approx(1.25)


def test_minibatch_std_group_is_the_presets_and_applies_per_round():
    # train.py stores spec.mbstd; D takes min(group, round size) when it runs.
    assert settings("paper256", batch=4, batch_gpu=2)["D_kwargs"]["epilogue_kwargs"]["mbstd_group_size"] == 8


def test_transfer_learning_settings_are_train_pys_resume_settings():
    fresh = settings("auto")
    transfer = settings("auto", resume="source.safetensors")
    assert (fresh["ada_kimg"], fresh["ema_rampup"], fresh["transfer"]) == (500, 0.05, False)
    assert (transfer["ada_kimg"], transfer["ema_rampup"], transfer["transfer"]) == (100, None, True)
    assert settings("auto", resume="x", ada_kimg=250)["ada_kimg"] == 250


@pytest.mark.parametrize(
    "options, text",
    [
        ({"subset": 0}, "^subset must"),
        ({"ada_kimg": 0}, "^ada_kimg must"),
        ({"kimg": float("nan")}, "^kimg must be positive, not nan"),
        ({"p": float("nan")}, "^p must be at least 0, not nan"),
    ],
)
def test_bad_settings_are_refused(options, text):
    with pytest.raises(UserError, match=text):
        settings("auto", **options)


# ---------------------------------------------------------------------------------------
# Short runs


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_samples(root / "raw", n=24, seed=5, min_side=32, max_side=48, progress=False)
    out = root / "paintings.zip"
    prepare_dataset(root / "raw", out, PrepareConfig(res=16, workers=1), log=lambda _: None, progress=False)
    return out


def config(dataset, outdir, **changes) -> TrainConfig:
    base = dict(
        data=str(dataset),
        outdir=str(outdir),
        cfg="tiny",
        batch=4,
        kimg=0.032,
        kimg_per_tick=0.016,
        snap=1,
        metrics=[],
        workers=0,
        device="cpu",
    )
    base.update(changes)
    return TrainConfig(**base)


def run(cfg: TrainConfig):
    return train(cfg, log=lambda _: None, progress=False)


def test_adam_steps_every_parameter_in_every_phase_that_ran(dataset, tmp_path):
    """NVIDIA's zero terms give toRGB biases (Greg) and D's output bias (Dreg) a gradient:
    after 8 iterations every G parameter took 8 + 2 steps and every D parameter 8 + 1."""
    result = run(config(dataset, tmp_path))
    state = load_state(list_snapshots(result.run_dir)[-1][2])
    for name, expected in (("G", 10), ("D", 9)):
        steps = {float(s["step"]) for s in state["optimizers"][name]["state"].values()}
        assert steps == {expected}, (name, steps)


def test_transfer_learning_starts_g_ema_from_the_source_g_ema(dataset, tmp_path):
    source = run(config(dataset, tmp_path / "src", kimg=0.008))
    model = tmp_path / "source.safetensors"  # a model without its training state: a start, not a resume
    model.write_bytes(source.snapshot.read_bytes())
    src = load_file(str(model))
    result = run(config(dataset, tmp_path / "dst", kimg=0.004, resume=str(model), aug="noaug"))
    assert result.run_dir.parent == tmp_path / "dst"
    cfg = json.loads((result.run_dir / "config.json").read_text())
    assert (cfg["ada_kimg"], cfg["ema_rampup"]) == (100, None)
    after = load_file(str(result.snapshot))
    beta = 0.5 ** (4 / (cfg["ema_kimg"] * 1000))  # no ramp-up: G_ema keeps most of the source's G_ema
    for key in (k for k in after if k.startswith("G_ema.") and "w_avg" not in k and "noise_const" not in k):
        g = after["G." + key[len("G_ema.") :]]
        torch.testing.assert_close(after[key], g + beta * (src[key] - g), rtol=1e-5, atol=1e-6)


def test_subset_is_train_pys_seeded_subset_and_resume_keeps_it(dataset, tmp_path):
    names = ImageDataset(dataset).image_names
    order = np.arange(len(names))
    np.random.RandomState(3).shuffle(order)
    expected = [names[i] for i in np.sort(order[:10])]
    assert ImageDataset(dataset, max_size=10, seed=3).image_names == expected

    first = run(config(dataset, tmp_path, subset=10, seed=3, kimg=0.008))
    assert json.loads((first.run_dir / "config.json").read_text())["subset"] == 10
    messages = []
    resumed = train(config(dataset, tmp_path, kimg=0.016, resume="latest"), log=messages.append, progress=False)
    assert resumed.run_dir == first.run_dir and any("Resuming" in m for m in messages)
