"""Training refuses bad settings before it trains, and resumes the run that can be resumed."""

from __future__ import annotations

import pytest

from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
from ganscapes.errors import SettingError, UserError
from ganscapes.gan.metrics.fid import INCEPTION_ENV
from ganscapes.gan.train_config import TrainConfig
from ganscapes.gan.training import resolve_training, train


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_samples(root / "raw", n=8, seed=2, min_side=32, max_side=48, progress=False)
    out = root / "paintings.zip"
    prepare_dataset(root / "raw", out, PrepareConfig(res=16, workers=1), log=lambda _: None, progress=False)
    return out


def config(dataset, outdir, **changes) -> TrainConfig:
    base = dict(
        data=str(dataset), outdir=str(outdir), cfg="tiny", batch=4, kimg=0.004, metrics=[], workers=0, device="cpu"
    )
    base.update(changes)
    return TrainConfig(**base)


@pytest.mark.parametrize(
    "changes, text",
    [
        ({"kimg": float("nan")}, "^kimg must be positive, not nan"),
        ({"kimg": float("inf")}, "^kimg must be positive, not inf"),
        ({"gamma": float("nan")}, "^gamma must be 0 or more, not nan"),
        ({"p": float("inf")}, "^p must be at least 0, not inf"),
        ({"max_hours": float("nan")}, "^max_hours must be at least 0"),
        ({"metrics": ["swd", "fid"]}, "^metrics must be one of swd, fid50k_full, kid50k_full, not 'fid'"),
        ({"subset": 9}, "^subset must be at most the 8 images of"),
    ],
)
def test_bad_settings_are_refused_in_a_dry_run(dataset, tmp_path, changes, text):
    with pytest.raises(SettingError, match=text):
        resolve_training(config(dataset, tmp_path, **changes))
    assert not (tmp_path / "00000-paintings-tiny-ada").exists()


def test_fid_without_the_inception_file_is_refused_before_training(dataset, tmp_path, monkeypatch):
    monkeypatch.delenv(INCEPTION_ENV, raising=False)
    with pytest.raises(UserError, match="Inception"):
        train(config(dataset, tmp_path, metrics=["fid50k_full"]), log=lambda _: None, progress=False)
    assert not list(tmp_path.glob("*/network-snapshot-*"))


def test_resume_latest_skips_a_newer_run_that_never_made_a_snapshot(dataset, tmp_path):
    first = train(config(dataset, tmp_path), log=lambda _: None, progress=False)
    (tmp_path / "00001-paintings-tiny-ada").mkdir()  # a start that failed before its first snapshot
    messages = []
    resumed = train(config(dataset, tmp_path, kimg=0.008, resume="latest"), log=messages.append, progress=False)
    assert resumed.run_dir == first.run_dir and any("Resuming" in m for m in messages)


def _flip_a_byte_near_the_end(path):
    data = bytearray(path.read_bytes())
    data[-200] ^= 0xFF  # inside the last tensor's bytes, after the headers
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("victim", ["network-snapshot", "training-state"])
def test_a_damaged_newest_snapshot_is_named_and_the_previous_one_offered(dataset, tmp_path, victim):
    first = train(
        config(dataset, tmp_path, kimg=0.008, kimg_per_tick=0.004, snap=1), log=lambda _: None, progress=False
    )
    from ganscapes.gan.train_state import list_snapshots

    snaps = list_snapshots(first.run_dir)
    assert len(snaps) >= 2
    newest = snaps[-1][1] if victim == "network-snapshot" else snaps[-1][2]
    _flip_a_byte_near_the_end(newest)
    with pytest.raises(UserError) as err:
        train(config(dataset, tmp_path, kimg=0.012, resume="latest"), log=lambda _: None, progress=False)
    message = str(err.value)
    assert "damaged" in message and newest.name in message and f"--resume {snaps[-2][1]}" in message
    # and the offered snapshot resumes
    resumed = train(config(dataset, tmp_path, kimg=0.012, resume=str(snaps[-2][1])), log=lambda _: None, progress=False)
    assert resumed.run_dir == first.run_dir and resumed.kimg == pytest.approx(0.012)


def test_a_state_whose_tensors_changed_is_refused(tmp_path):
    """torch.load does not see flipped bytes inside a tensor; the state's content hash does."""
    import torch

    from ganscapes.gan.train_state import load_state, save_state

    path = tmp_path / "training-state-000001.pt"
    save_state(path, {"optimizers": {"G": {"state": {0: {"exp_avg": torch.ones(4)}}}}, "cur_nimg": 8})
    assert load_state(path)["cur_nimg"] == 8
    state = torch.load(path, weights_only=True)
    state["optimizers"]["G"]["state"][0]["exp_avg"][2] = 1.5  # as a flipped bit would
    torch.save(state, path)
    with pytest.raises(UserError, match="is damaged: its contents do not match"):
        load_state(path)
