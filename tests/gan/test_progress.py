"""What a training run shows a person: tick lines, the time-budget bar's ETA, the stop message."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
from ganscapes.fileio import read_jsonl
from ganscapes.gan.progress import TrainingBar, format_duration, tick_line
from ganscapes.gan.train_config import TrainConfig, default_workers
from ganscapes.gan.training import train


@pytest.mark.parametrize(
    "seconds, text",
    [(0, "0s"), (42.4, "42s"), (185, "3m 05s"), (7385, "2h 03m 05s"), (3 * 86400 + 4 * 3600 + 5 * 60, "3d 04h 05m")],
)
def test_durations_read_as_nvidia_prints_them(seconds, text):
    assert format_duration(seconds) == text


def test_a_tick_line_has_nvidias_fields_and_the_losses_once_measured():
    row = {"tick": 3, "kimg": 1.25, "sec_per_tick": 30.04, "sec_per_kimg": 75.1, "augment_p": 0.0123}
    line = tick_line(row, 95, "cpumem")
    assert re.match(r"tick 3 +kimg 1\.25 +time 1m 35s +sec/tick 30\.0 +sec/kimg 75\.1 +augment 0\.012$", line), line
    row.update({"loss/G": 1.5, "loss/D": 0.75, "ada/r_t": 0.61, "peak_mem_mb": 1536})
    line = tick_line(row, 95, "gpumem")
    for part in ("loss/G 1.500", "loss/D 0.750", "r_t 0.610", "gpumem 1.50 GB"):
        assert part in line, line


def test_with_a_time_budget_the_eta_is_the_budget_not_a_nominal_kimg_target():
    bar = TrainingBar(start_kimg=0, total_kimg=10000, budget_seconds=600, enabled=False)
    now = bar.start + 60
    assert bar.eta_seconds(1.0, now) == pytest.approx(540)  # 10,000 kimg at 60 s/kimg would be 7 days
    assert bar.fraction(1.0, now) == pytest.approx(0.1)


def test_without_a_budget_or_when_the_target_comes_first_the_eta_is_the_targets():
    bar = TrainingBar(start_kimg=2, total_kimg=4, budget_seconds=None, enabled=False)
    assert bar.eta_seconds(3.0, bar.start + 100) == pytest.approx(100)
    bar = TrainingBar(start_kimg=0, total_kimg=2, budget_seconds=3600, enabled=False)
    assert bar.eta_seconds(1.0, bar.start + 60) == pytest.approx(60)
    assert bar.eta_seconds(0.0, bar.start + 1) == pytest.approx(3599)  # no speed yet: the budget bounds it


def test_default_workers_never_exceed_the_usable_cores():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_workers(None) == min(3, cores)
    assert default_workers(5) == 5  # asked for: as asked


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_samples(root / "raw", n=12, seed=1, min_side=32, max_side=48, progress=False)
    out = root / "paintings.zip"
    prepare_dataset(root / "raw", out, PrepareConfig(res=16, workers=1), log=lambda _: None, progress=False)
    return out


@pytest.mark.slow
def test_training_prints_one_line_per_logged_tick_and_names_its_time_budget(dataset, tmp_path):
    lines, rows = [], []
    config = TrainConfig(
        data=str(dataset),
        outdir=str(tmp_path),
        cfg="tiny",
        batch=4,
        kimg=1,
        kimg_per_tick=0.008,
        snap=1000,
        metrics=[],
        workers=0,
        device="cpu",
        max_hours=1e-9,
    )
    result = train(config, log=lines.append, progress=False, on_tick=rows.append)
    ticks = [line for line in lines if line.startswith("tick ")]
    logged = read_jsonl(result.run_dir / "log.jsonl")
    assert len(ticks) == len(logged) == len(rows) == 1
    assert rows[0]["kimg"] == logged[0]["kimg"] == pytest.approx(0.004)
    assert re.match(r"tick 0 +kimg 0\.00 +time \d+s +sec/tick", ticks[0]) and "cpumem" in ticks[0]
    stop = [line for line in lines if line.startswith("Stopped")]
    assert stop and "time budget" in stop[0] and "max-hours" not in stop[0], lines
