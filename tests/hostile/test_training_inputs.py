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
