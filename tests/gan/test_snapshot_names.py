"""Snapshot names: whole kimg where they can be, to the image where a kimg holds several,
and run folders named the old way (to the image throughout) still listed, resumed and pruned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
from ganscapes.gan import train_state, training
from ganscapes.gan.train_config import TrainConfig
from ganscapes.gan.train_state import list_snapshots, load_state, prune_snapshots, snapshot_paths, snapshot_tag


def snapshot(run: Path, tag: str, state: bool = True) -> Path:
    """A snapshot's two files, empty: naming, listing and pruning only look at the names."""
    run.mkdir(parents=True, exist_ok=True)
    model = run / f"network-snapshot-{tag}.safetensors"
    model.write_bytes(b"")
    if state:
        (run / f"training-state-{tag}.pt").write_bytes(b"")
    return model


def names(run: Path) -> list[str]:
    return [
        model.name.removeprefix("network-snapshot-").removesuffix(".safetensors") for _, model, _ in list_snapshots(run)
    ]


# ---------------------------------------------------------------------------------------
# The rule, on names alone


def test_a_tick_that_ends_past_a_kimg_is_named_by_the_kimg(tmp_path):
    assert snapshot_tag(12_000, tmp_path) == "000012"
    assert snapshot_tag(12_008, tmp_path) == "000012"  # a tick of 4 kimg at batch 12 ends 8 images late
    model, state = snapshot_paths(tmp_path, 12_008)
    assert (model.name, state.name) == ("network-snapshot-000012.safetensors", "training-state-000012.pt")
    assert snapshot_tag(12_008) == "000012.008"  # without a folder: the exact tag


def test_a_second_snapshot_within_a_kimg_keeps_its_images(tmp_path):
    snapshot(tmp_path, "000012")  # 12,008 images
    assert snapshot_tag(12_500, tmp_path) == "000012.500"
    assert snapshot_tag(13_004, tmp_path) == "000013"
    assert snapshot_tag(12_000, tmp_path) == "000012"  # exactly whole is always whole
    snapshot(tmp_path, "000012.500")
    assert snapshot_tag(12_750, tmp_path) == "000012.750"  # never back to the whole name: order stays
    assert names(tmp_path) == ["000012", "000012.500"]


def test_an_unfinished_snapshot_does_not_take_its_kimg(tmp_path):
    """A kill before the training state: the resumed run writes the same snapshot under the same name."""
    snapshot(tmp_path, "000012", state=False)
    assert snapshot_tag(12_008, tmp_path) == "000012"
    assert names(tmp_path) == []


def test_old_names_are_listed_in_training_order_with_new_ones(tmp_path):
    for tag in ("000004.008", "000008.016", "000012.024"):  # a run folder written before whole names
        snapshot(tmp_path, tag)
    assert snapshot_tag(12_500, tmp_path) == "000012.500"  # kimg 12 is taken by an old name
    snapshot(tmp_path, "000012.500")
    assert snapshot_tag(16_032, tmp_path) == "000016"
    snapshot(tmp_path, "000016")
    assert names(tmp_path) == ["000004.008", "000008.016", "000012.024", "000012.500", "000016"]
    assert [k for k, _, _ in list_snapshots(tmp_path)] == [4.008, 8.016, 12.024, 12.5, 16.0]


def test_pruning_keeps_the_newest_and_the_best_by_name_old_or_new(tmp_path):
    for tag in ("000004.008", "000008.016", "000012.024", "000016", "000020"):
        snapshot(tmp_path, tag)
    deleted = prune_snapshots(tmp_path, keep=2, protect={"network-snapshot-000008.016.safetensors"})
    assert deleted == [4.008, 12.024]
    assert names(tmp_path) == ["000008.016", "000016", "000020"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{kind}-{tag}.{ext}"
        for tag in ("000008.016", "000016", "000020")
        for kind, ext in (("network-snapshot", "safetensors"), ("training-state", "pt"))
    )
    prune_snapshots(tmp_path, keep=1, protect={"network-snapshot-000016.safetensors"})
    assert names(tmp_path) == ["000016", "000020"]


# ---------------------------------------------------------------------------------------
# The trainer


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_samples(root / "raw", n=16, seed=2, min_side=32, max_side=48, progress=False)
    out = root / "paintings.zip"
    prepare_dataset(root / "raw", out, PrepareConfig(res=16, workers=1), log=lambda _: None, progress=False)
    return out


def config(dataset: Path, outdir: Path, **changes) -> TrainConfig:
    base = dict(
        data=str(dataset),
        outdir=str(outdir),
        cfg="tiny",
        batch=4,
        kimg=0.032,
        kimg_per_tick=0.008,
        snap=1,
        metrics=["swd"],
        metric_images=8,
        workers=0,
        device="cpu",
        keep=20,
        p=0.2,
    )
    base.update(changes)
    return TrainConfig(**base)


def run(cfg: TrainConfig):
    return training.train(cfg, log=lambda _: None, progress=False)


def old_tag(cur_nimg: int, run_dir: Path | None = None) -> str:
    """How snapshots were named before whole kimg: to the image unless exactly whole."""
    kimg, rest = divmod(cur_nimg, 1000)
    return f"{kimg:06d}" if rest == 0 else f"{kimg:06d}.{rest:03d}"


@pytest.mark.slow
def test_the_trainer_names_prunes_and_resumes_an_old_run_folder(dataset, tmp_path, monkeypatch):
    # A run written the new way: the first snapshot of kimg 0 has the whole name, the rest
    # their images; the fakes grids are named alike.
    fresh = run(config(dataset, tmp_path / "new", metrics=[]))
    # (ticks end at 4, 12, 20 and 28 images, and the run at 32)
    assert names(fresh.run_dir) == ["000000", "000000.012", "000000.020", "000000.028", "000000.032"]
    assert sorted(p.name for p in fresh.run_dir.glob("fakes*.png")) == [
        f"fakes{tag}.png" for tag in ("000000.012", "000000.020", "000000.028", "000000.032", "000000")
    ]

    # The same run, first half written the old way, then resumed and pruned the new way.
    with monkeypatch.context() as old:
        old.setattr(train_state, "snapshot_tag", old_tag)
        old.setattr(training, "snapshot_tag", old_tag)
        first = run(config(dataset, tmp_path / "old", kimg=0.016, keep=2))
    best = json.loads((first.run_dir / "best.json").read_text())["snapshot"]
    assert names(first.run_dir) == (["000000.004"] if best.endswith("000000.004.safetensors") else []) + [
        "000000.012",
        "000000.016",
    ]

    resumed = run(config(dataset, tmp_path / "old", resume="latest", keep=2))
    assert resumed.run_dir == first.run_dir
    assert load_state(list_snapshots(resumed.run_dir)[-1][2])["cur_nimg"] == 32
    best = json.loads((resumed.run_dir / "best.json").read_text())["snapshot"]
    kept = [model.name for _, model, _ in list_snapshots(resumed.run_dir)]
    newest = ["network-snapshot-000000.024.safetensors", "network-snapshot-000000.032.safetensors"]
    assert kept[-2:] == newest  # kimg 0 was taken by the old names: these keep their images
    assert set(kept) == {best, *newest}  # the old names pruned, all but the best

    # resumed from the old names exactly where it left off: the same weights as the run never split
    a, b = load_file(str(fresh.snapshot)), load_file(str(resumed.snapshot))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
