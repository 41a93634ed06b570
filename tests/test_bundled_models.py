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


@pytest.mark.slow
def test_the_cards_swd_holds_on_a_fresh_set_of_paintings():
    """The card's quick SWD, re-measured against paintings drawn with a seed it never saw."""
    import json

    from ganscapes.models import model_card
    from ganscapes.models.card import QUICK, RECORD, fresh_swd

    record = json.loads(model_card("starter").with_name(RECORD).read_text())
    path = bundled_model("starter")
    assert record["model_hash"] == load_model(path).model_hash  # the card describes the shipped weights
    quick = record["swd_quick"]
    assert quick["protocol"]["images"] == QUICK.images and len(quick["values"]) >= 5
    fresh = fresh_swd(path, QUICK, seed=2027)
    assert abs(fresh - quick["mean"]) <= max(4 * quick["sd"], 0.05 * quick["mean"]), (fresh, quick)


def test_auto_layers_mix_visibly_at_64px_where_fine_barely_does():
    """A 64² cell's style should show: `auto` changes cells at least twice as much as `fine` (its last two layers)."""
    import numpy as np
    import torch

    from ganscapes.make.mix import layer_range, mix_ws

    G = load_model(bundled_model("starter")).G_ema
    z = torch.from_numpy(np.random.RandomState(0).randn(8, G.z_dim)).float()
    with torch.no_grad():
        ws = G.mapping(z, None, truncation_psi=0.7).numpy()

    def style_change(spec: str) -> float:
        """Mean |difference| (of 255) between cells of one form painted with different styles."""
        layers = layer_range(spec, G.num_ws)
        diffs = []
        for form in ws[:5]:
            cells = np.stack([mix_ws(form, style, layers) for style in ws[5:]])
            with torch.no_grad():
                img = G.synthesis(torch.from_numpy(cells), noise_mode="const", force_fp32=True) * 127.5
            diffs += [(img[i] - img[j]).abs().mean().item() for i in range(3) for j in range(i + 1, 3)]
        return float(np.mean(diffs))

    fine, auto = style_change("fine"), style_change("auto")
    assert auto >= 2 * fine and auto >= 5, (fine, auto)  # trained starter: about 3 and 7 of 255


def test_the_cards_fresh_set_is_built_once_and_reused(tmp_path, monkeypatch):
    """The full protocol's hour is mostly drawing paintings; a kept folder must not draw them twice."""
    from ganscapes.models import card

    tiny = card.SwdProtocol("tiny", images=6, min_side=64, max_side=72)
    drawn = []
    original = card.make_samples
    monkeypatch.setattr(card, "make_samples", lambda *a, **k: drawn.append(k["n"]) or original(*a, **k))
    folder = card.kept_folder(tmp_path, tiny, 7)
    first = card.fresh_dataset(tiny, 7, 32, folder)
    stamp = first.stat().st_mtime_ns
    second = card.fresh_dataset(tiny, 7, 32, folder)
    assert first == second == tmp_path / "tiny-seed7" / "fresh-32.zip"
    assert drawn == [6] and second.stat().st_mtime_ns == stamp
    assert not list(folder.glob("*.partial.zip"))
