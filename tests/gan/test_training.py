"""The training loop on the tiny preset: run folders, exact resume, transfer, faults, torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
from ganscapes.errors import UserError
from ganscapes.gan.train_config import TrainConfig
from ganscapes.gan.train_state import list_snapshots, load_state
from ganscapes.gan.training import resolve_training, train

pytestmark = pytest.mark.slow  # training runs and torchrun


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_samples(root / "raw", n=24, seed=1, min_side=32, max_side=48, progress=False)
    out = root / "paintings.zip"
    prepare_dataset(root / "raw", out, PrepareConfig(res=16, workers=1), log=lambda _: None, progress=False)
    return out


@pytest.fixture(scope="module")
def other_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    make_samples(root / "raw", n=12, seed=7, min_side=32, max_side=48, progress=False)
    out = root / "photos"
    prepare_dataset(root / "raw", out, PrepareConfig(res=16, workers=1), log=lambda _: None, progress=False)
    return out


def config(dataset: Path, outdir: Path, **changes) -> TrainConfig:
    base = dict(
        data=str(dataset),
        outdir=str(outdir),
        cfg="tiny",
        batch=4,
        kimg=0.024,
        kimg_per_tick=0.008,
        snap=1,
        metrics=[],
        workers=0,
        device="cpu",
        keep=20,
    )
    base.update(changes)
    return TrainConfig(**base)


def run(cfg: TrainConfig):
    return train(cfg, log=lambda _: None, progress=False)


def final_tensors(result) -> dict[str, torch.Tensor]:
    return load_file(str(result.snapshot))


def test_cpu_training_keeps_its_freed_memory(dataset, tmp_path, monkeypatch):
    # Every iteration allocates the same activations; on CPUs they reuse the process's memory
    # (ganscapes.cpu_heap) instead of arriving as new pages from the kernel.
    import ganscapes.gan.training as training

    calls = []
    monkeypatch.setattr(training, "keep_freed_memory", lambda: calls.append("kept") or True)
    trainer = training.Trainer(config(dataset, tmp_path), log=lambda _: None, progress=False)
    trainer.close()
    assert calls == ["kept"]


def test_dry_run_resolves_the_preset(dataset, tmp_path):
    cfg = resolve_training(config(dataset, tmp_path, batch=None, kimg=None))
    assert cfg.batch == 8 and cfg.preset == "tiny" and cfg.G_kwargs["z_dim"] == 32
    assert cfg.r1_gamma == pytest.approx(0.0002 * 16**2 / 8)
    assert cfg.D_kwargs["epilogue_kwargs"]["mbstd_group_size"] == 4
    assert not (tmp_path / "runs").exists() and not any(tmp_path.iterdir())


def test_a_short_run_writes_a_self_describing_run_folder(dataset, tmp_path):
    result = run(config(dataset, tmp_path, metrics=["swd"], metric_images=16))
    assert result.run_dir.name == "00000-paintings-tiny-ada"
    assert result.kimg == pytest.approx(0.024) and result.stopped_by == "done"
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"config.json", "log.jsonl", "reals.png", "metrics.jsonl"} <= names
    assert any(n.startswith("fakes") and n.endswith(".png") for n in names)
    rows = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in rows] == list(range(len(rows)))
    for key in ("kimg", "sec_per_kimg", "sec_per_iter", "augment_p", "loss/G", "loss/D_real", "peak_mem_mb"):
        assert key in rows[-1], key
    metrics = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert "SWDx1e3_avg" in metrics[-1]
    # the snapshot is an ordinary model file with G, D and G_ema
    tensors = final_tensors(result)
    assert any(k.startswith("G_ema.") for k in tensors) and any(k.startswith("D.") for k in tensors)
    # a second run gets the next number
    assert run(config(dataset, tmp_path, kimg=0.004)).run_dir.name == "00001-paintings-tiny-ada"


def test_train_then_resume_equals_one_long_run_bit_for_bit(dataset, tmp_path):
    long = run(config(dataset, tmp_path / "a", kimg=0.048, p=0.2))
    first = run(config(dataset, tmp_path / "b", kimg=0.024, p=0.2))
    resumed = run(config(dataset, tmp_path / "b", kimg=0.048, p=0.2, resume="latest"))
    assert resumed.run_dir == first.run_dir
    a, b = final_tensors(long), final_tensors(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert long.augment_p == resumed.augment_p
    sa = load_state(list_snapshots(long.run_dir)[-1][2])
    sb = load_state(list_snapshots(resumed.run_dir)[-1][2])
    assert sa["cur_nimg"] == sb["cur_nimg"] == 48 and sa["batch_idx"] == sb["batch_idx"]
    for name in ("G", "D"):
        for ka, kb in zip(sa["optimizers"][name]["state"].values(), sb["optimizers"][name]["state"].values()):
            assert torch.equal(ka["exp_avg_sq"], kb["exp_avg_sq"])


def test_resume_keeps_the_augmentation_probability(dataset, tmp_path):
    first = run(config(dataset, tmp_path, kimg=0.016, aug="fixed", p=0.35))
    assert first.augment_p == pytest.approx(0.35)
    resumed = run(config(dataset, tmp_path, kimg=0.024, aug="fixed", p=0.0, resume="latest"))
    assert resumed.augment_p == pytest.approx(0.35)


def test_transfer_learning_loads_networks_and_starts_fresh_counters(dataset, other_dataset, tmp_path):
    source = run(config(other_dataset, tmp_path / "src", kimg=0.016, p=0.3))
    messages = []
    result = train(
        config(dataset, tmp_path / "dst", kimg=0.008, resume=str(source.snapshot), desc="other"),
        log=messages.append,
        progress=False,
    )
    assert result.run_dir.parent == tmp_path / "dst"
    assert any("Transfer learning" in m for m in messages)
    state = load_state(list_snapshots(result.run_dir)[-1][2])
    assert state["cur_nimg"] == 8  # counted from zero
    assert result.augment_p < 0.05  # p starts again from --p (0), not from the source's 0.3


def test_a_non_finite_loss_is_survived(dataset, tmp_path, monkeypatch):
    import ganscapes.gan.loss as loss_mod

    original = loss_mod.StyleGAN2Loss.accumulate_gradients
    calls = {"n": 0}

    def flaky(self, phase, *args, **kwargs):
        calls["n"] += 1
        stats = original(self, phase, *args, **kwargs)
        if calls["n"] == 3:
            stats = {**stats, "loss/G": float("nan")}
        return stats

    monkeypatch.setattr(loss_mod.StyleGAN2Loss, "accumulate_gradients", flaky)
    messages = []
    result = train(config(dataset, tmp_path, kimg=0.016), log=messages.append, progress=False)
    assert result.stopped_by == "done"
    assert any("non-finite" in m for m in messages)
    for value in final_tensors(result).values():
        assert torch.isfinite(value).all()


def test_bad_options_are_one_sentence(dataset, tmp_path):
    with pytest.raises(UserError, match="^aug must be one of ada, fixed, noaug"):
        resolve_training(config(dataset, tmp_path, aug="sometimes"))
    with pytest.raises(UserError, match="needs labels"):
        resolve_training(config(dataset, tmp_path, cond=True))
    with pytest.raises(UserError, match="split evenly"):
        resolve_training(config(dataset, tmp_path, batch=6, batch_gpu=4))
    with pytest.raises(UserError, match="no snapshot"):
        train(config(dataset, tmp_path / "empty", resume="latest"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_cmd(dataset: Path, outdir: Path, *extra: str) -> list[str]:
    return [
        "-m",
        "ganscapes",
        "train",
        "--data",
        str(dataset),
        "--outdir",
        str(outdir),
        "--cfg",
        "tiny",
        "--batch",
        "8",
        "--kimg",
        "0.04",
        "--aug",
        "ada",
        "--metrics",
        "",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--snap",
        "1000",
        *extra,
    ]


@pytest.mark.parametrize("batch_gpu", [4, 2])
def test_two_gloo_processes_match_one_process(dataset, tmp_path, batch_gpu):
    """The same rounds split over two processes train what one process does with all of
    them: same draws per global round, gradients summed, the path-length mean chained in
    the global order of rounds (5 iterations: Greg twice, Dreg once, ADA once)."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, *_train_cmd(dataset, tmp_path / "one", "--batch-gpu", str(batch_gpu))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={env['MASTER_PORT']}",
        *_train_cmd(dataset, tmp_path / "two", "--batch-gpu", str(batch_gpu)),
    ]
    two = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    (_, model_a, state_a), (_, model_b, state_b) = (
        list_snapshots(next((tmp_path / d).iterdir()))[-1] for d in ("one", "two")
    )
    a, b = load_file(str(model_a)), load_file(str(model_b))
    assert a.keys() == b.keys()
    for key in a:  # relative to the tensor's norm: only the order of summing the rounds differs
        assert (a[key] - b[key]).norm() <= 1e-5 * a[key].norm().clamp(min=1e-6), key
    sa, sb = load_state(state_a), load_state(state_b)
    assert sa["loss"]["pl_mean"].item() > 0
    assert sa["loss"]["pl_mean"].item() == pytest.approx(sb["loss"]["pl_mean"].item(), rel=1e-6)
    assert sa["augment_p"] == sb["augment_p"]


def test_a_short_run_lowers_swd_against_its_data(dataset, tmp_path):
    result = run(
        config(
            dataset, tmp_path, batch=8, kimg=0.16, kimg_per_tick=0.08, aug="noaug", metrics=["swd"], metric_images=24
        )
    )
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["kimg"] == pytest.approx(0.008)  # after the first iteration: still untrained
    assert rows[-1]["SWDx1e3_avg"] < 0.85 * rows[0]["SWDx1e3_avg"], rows


def test_sigterm_writes_a_snapshot_and_resume_continues(dataset, tmp_path):
    import signal
    import time

    outdir = tmp_path / "runs"
    cmd = [
        sys.executable,
        "-m",
        "ganscapes",
        "train",
        "--data",
        str(dataset),
        "--outdir",
        str(outdir),
        "--cfg",
        "tiny",
        "--batch",
        "4",
        "--kimg",
        "5",
        "--aug",
        "fixed",
        "--p",
        "0.25",
        "--metrics",
        "",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--snap",
        "1000",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(outdir.glob("*/log.jsonl")):
        time.sleep(0.2)  # the first tick (one iteration) has been logged: training is under way
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "Stopped (SIGTERM)" in out + err and "--resume latest" in out + err
    run_dir = next(outdir.iterdir())
    kimg, model, state_path = list_snapshots(run_dir)[-1]
    state = load_state(state_path)
    assert 0 < state["cur_nimg"] < 5000 and state["augment_p"] == pytest.approx(0.25)
    resumed = run(
        TrainConfig(
            data=str(dataset),
            outdir=str(outdir),
            cfg="tiny",
            batch=4,
            aug="fixed",
            p=0.0,
            kimg=state["cur_nimg"] / 1000 + 0.008,
            metrics=[],
            workers=0,
            device="cpu",
            resume="latest",
        )
    )
    assert resumed.run_dir == run_dir and resumed.augment_p == pytest.approx(0.25)


def test_max_hours_stops_with_a_snapshot(dataset, tmp_path):
    result = run(config(dataset, tmp_path, kimg=1, snap=1000, max_hours=1e-9))
    assert result.stopped_by == "max-hours"
    assert result.kimg == pytest.approx(0.004)  # stopped at the end of the first tick
    assert result.snapshot is not None and result.snapshot.exists()


def test_old_snapshots_are_pruned_but_the_best_is_kept(dataset, tmp_path):
    result = run(config(dataset, tmp_path, kimg=0.032, keep=2, metrics=["swd"], metric_images=8))
    kept = [k for k, _, _ in list_snapshots(result.run_dir)]
    best = json.loads((result.run_dir / "best.json").read_text())
    newest = [0.028, 0.032]  # ticks end at 4, 12, 20, 28 images, and the run at 32
    assert set(newest) <= set(kept) and (result.run_dir / best["snapshot"]).is_file()
    assert len(kept) <= 3
    rows = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    assert rows[-1]["lr/G"] == pytest.approx(0.0025 * 4 / 5) and rows[-1]["lr/D"] == pytest.approx(0.0025 * 16 / 17)
