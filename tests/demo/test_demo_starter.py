"""The default demo: it fine-tunes the bundled starter model and shows what fine-tuning did."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from ganscapes.demo.pipeline import STATE_FILE, DemoConfig, run_demo
from ganscapes.models import bundled_model

from helpers_clip import go_offline

pytestmark = pytest.mark.slow  # a whole (short) demo at 64²


@pytest.fixture(scope="module")
def starter_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-starter") / "out"
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        go_offline(mp, out.parent)
        config = DemoConfig(out=out, minutes=0.05, images=20, generate=12, device="cpu")
        report = run_demo(config, log=lines.append)
    return out, report, lines


def test_the_demo_fine_tunes_the_starter_with_nvidias_transfer_settings(starter_demo):
    from typer.testing import CliRunner

    from ganscapes import cli

    out, _, lines = starter_demo
    facts = json.loads((out / STATE_FILE).read_text())["steps"]["train"]["facts"]
    assert facts["from_starter"] is True and facts["stopped_by"] == "time budget"
    assert any(line.startswith("Transfer learning from ") and "starter-64.safetensors" in line for line in lines)
    argv = shlex.split(facts["commands"][0])
    assert argv[argv.index("--resume") + 1] == "starter"
    result = CliRunner().invoke(cli.app, [*argv[1:], "--dry-run"])
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.output[result.output.index("{") :])
    assert resolved["transfer"] is True and resolved["ada_kimg"] == 100 and resolved["ema_rampup"] is None


def test_the_report_shows_reals_the_starter_and_the_fine_tuned_model_side_by_side(starter_demo):
    out, report, _ = starter_demo
    text = report.read_text(encoding="utf-8")
    assert "What training did" in text
    for kind in ("reals", "starter", "trained"):
        assert f'src="compare-{kind}.png"' in text
        assert (out / f"compare-{kind}.png").is_file()
    assert text.index("compare-reals.png") < text.index("compare-starter.png") < text.index("compare-trained.png")
    starter_pictures = sorted((out / "starter-pictures").glob("seed*.png"))
    assert len(starter_pictures) == 8
    assert "ganscapes generate --model starter --seeds 0-7" in text  # the command that made them


def test_the_report_ends_with_next_steps_that_name_this_model(starter_demo):
    out, report, _ = starter_demo
    text = report.read_text(encoding="utf-8")
    facts = json.loads((out / STATE_FILE).read_text())["steps"]["train"]["facts"]
    next_steps = text[text.index("<h2>Next steps</h2>") :]
    assert f"ganscapes studio --model {facts['snapshot']}" in next_steps
    assert f"ganscapes demo --out {out} --minutes" in next_steps
    assert "ganscapes gather" in next_steps


def test_the_bundled_starter_model_is_found_by_name():
    path = bundled_model("starter")
    assert path.name == "starter-64.safetensors" and path.is_file()
    assert Path(path).stat().st_size < 8 * 2**20  # a few MB: G_ema and D only
