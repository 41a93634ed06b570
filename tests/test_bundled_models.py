"""The models that ship with ganscapes: found by name by every command, refused clearly when absent."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ganscapes import cli, models
from ganscapes.errors import UserError
from ganscapes.gan.checkpoint import load_model
from ganscapes.gan.model_ref import resolve_model
from ganscapes.models import bundled_model


def test_the_starter_model_is_a_64px_generator_with_its_discriminator():
    model = load_model(bundled_model("starter"))
    assert model.resolution == 64 and model.networks == ["G_ema", "D"]
    assert model.meta["source"] == "ganscapes-bundled" and model.meta["preset"] == "tiny"
    assert model.meta["aspect"] == pytest.approx(1.33, abs=0.05)  # the procedural paintings' mean aspect


def test_every_model_option_takes_the_name():
    choice = resolve_model("starter")
    assert choice.path == bundled_model("starter") and "starter" in choice.describe()


def test_generate_with_the_starter_model(tmp_path):
    result = CliRunner().invoke(
        cli.app, ["generate", "--model", "starter", "--seeds", "0-1", "--out", str(tmp_path), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["seed0000.png", "seed0001.png"]


def test_a_missing_bundled_file_is_one_sentence(monkeypatch):
    monkeypatch.setitem(models.BUNDLED, "starter", "not-shipped.safetensors")
    with pytest.raises(UserError, match=r"^This installation of ganscapes lacks the bundled starter model"):
        bundled_model("starter")
    with pytest.raises(UserError, match=r"^There is no bundled model called 'sunset'"):
        bundled_model("sunset")
