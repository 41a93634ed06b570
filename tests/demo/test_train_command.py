"""The train command the demo shows is rendered from the TrainConfig it trains with, and the CLI reads it back.

`train_command` lives beside `TrainConfig` (gan/train_config.py); the demo's report is
its reader, so its round trip through the real `ganscapes train` is checked here.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from ganscapes import cli
from ganscapes.demo.config import DemoConfig
from ganscapes.demo.state import DemoState
from ganscapes.demo.steps import train_config
from ganscapes.gan.train_config import TrainConfig, train_command

NOT_ON_THE_CLI = {"ada_kimg", "desc"}


def parsed_by_the_cli(monkeypatch, argv: list[str]) -> TrainConfig:
    """The TrainConfig `ganscapes train ARGV --dry-run` builds (caught before it reads any data)."""
    import ganscapes.gan.training as training

    seen: list[TrainConfig] = []

    def catch(config):
        seen.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(training, "resolve_training", catch)
    assert argv[:2] == ["ganscapes", "train"]
    result = CliRunner().invoke(cli.app, [*argv[1:], "--dry-run"])
    assert result.exit_code == 0, result.output
    assert len(seen) == 1
    return seen[0]


def demo_state(tmp_path: Path, **options) -> DemoState:
    return DemoState(DemoConfig(out=tmp_path / "demo", **options), log=lambda _: None)


CONFIGS = {
    "defaults": TrainConfig(data="data.zip"),
    "everything": TrainConfig(
        data="my data/paintings.zip",
        outdir="out runs",
        cfg="paper256",
        kimg=0.5,
        batch=16,
        batch_gpu=4,
        gamma=0.0,
        aug="fixed",
        p=0.25,
        target=0.7,
        augpipe="bgcfnc",
        subset=100,
        mirror=True,
        cond=True,
        freezed=4,
        fp32=True,
        snap=3,
        snap_minutes=7.5,
        kimg_per_tick=0.1,
        keep=2,
        metrics=[],
        metric_images=64,
        seed=-3,
        max_hours=1 / 3,
        workers=0,
        device="cpu",
        resume="models/landscapes.safetensors",
    ),
    "two metrics": TrainConfig(data="d", metrics=["swd", "fid50k"], kimg=25000.0, resume="latest"),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_the_cli_builds_the_config_the_command_came_from(monkeypatch, name):
    config = CONFIGS[name]
    assert parsed_by_the_cli(monkeypatch, train_command(config)) == config


@pytest.mark.parametrize("seconds,resume", [(600.0, None), (2.9876, "latest"), (0.05, None), (60.0, "starter")])
def test_the_demo_s_train_command_is_its_config(monkeypatch, tmp_path, seconds, resume):
    config = train_config(demo_state(tmp_path, minutes=1, device="cpu", seed=5), seconds, resume)
    line = shlex.join(train_command(config))
    assert line.startswith(f"ganscapes train --data {tmp_path / 'demo' / 'dataset.zip'} ")
    assert ("--resume" in line) == (resume is not None)
    if resume:
        assert line.endswith(f"--resume {resume}")
    assert parsed_by_the_cli(monkeypatch, shlex.split(line)) == config


def test_only_what_differs_from_the_defaults_is_written():
    assert train_command(TrainConfig(data="d")) == ["ganscapes", "train", "--data", "d"]
    assert train_command(TrainConfig(data="d", kimg=10000.0, max_hours=0.000833, mirror=True)) == [
        *("ganscapes", "train", "--data", "d", "--kimg", "10000", "--mirror", "--max-hours", "0.000833"),
    ]


def test_every_option_of_train_is_a_config_field_of_the_same_name():
    command = typer.main.get_command(cli.app).commands["train"]
    options = {p.name: p.opts for p in command.params if p.param_type_name == "option"}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(options) - {"dry_run"} == fields - NOT_ON_THE_CLI
    for name in fields - NOT_ON_THE_CLI:
        assert "--" + name.replace("_", "-") in options[name], name


@pytest.mark.parametrize("field", sorted(NOT_ON_THE_CLI))
def test_a_setting_the_cli_cannot_take_is_refused(field):
    with pytest.raises(ValueError, match=field):
        train_command(TrainConfig(data="d", **{field: 50}))


def test_the_dry_run_of_the_command_resolves_as_the_config_does(tmp_path):
    """The real `--dry-run` (a real dataset, no interception) prints what resolve_training(config) gives."""
    from ganscapes.data.prepare import PrepareConfig, prepare_dataset
    from ganscapes.data.sample import make_samples
    from ganscapes.gan.training import resolve_training

    demo = demo_state(tmp_path, minutes=0.05, res=16, images=10, device="cpu", from_scratch=True)
    make_samples(demo.raw, n=10, seed=0, min_side=32, max_side=48, progress=False)
    prepare_dataset(demo.raw, demo.dataset, PrepareConfig(res=16, workers=1), log=lambda _: None, progress=False)
    config = train_config(demo, 3.0, resume=None)
    result = CliRunner().invoke(cli.app, [*train_command(config)[1:], "--dry-run"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output[result.output.index("{") :])
    assert printed == json.loads(json.dumps(resolve_training(config).to_dict()))
    assert printed["max_hours"] == config.max_hours == 0.000833 and printed["preset"] == "tiny"
