"""The demo end to end, shortened: every step runs, the report's links resolve, a rerun resumes.

One demo runs without CLIP (what CI and a fresh offline machine see), one with a tiny
random-weights CLIP architecture so that curate and rank run too; each runs once per
module and the tests look at what it left. A last test opens the report in headless
Chromium and checks that every picture rendered and nothing logged an error.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from ganscapes.demo.pipeline import STATE_FILE, DemoConfig, run_demo
from ganscapes.demo.report import REPORT
from ganscapes.demo.steps import MIN_TRAIN_SECONDS

from helpers_clip import go_offline
from helpers_tinyclip import TINY_CLIP, register_tiny_clip

pytestmark = pytest.mark.slow  # the whole demo and Chromium

SHORT = dict(minutes=0.05, res=32, images=20, generate=12, device="cpu", from_scratch=True)
STEPS = ["sample", "prepare", "curate", "train", "generate", "compare", "rank", "mix", "post"]
STEP_LINE = re.compile(r"^\d/9 (\w+): (?!skipped)")  # a step that ran (skipped ones say why)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"])
        if tag == "a" and "href" in a:
            self.links.append(a["href"])


def links_of(report: Path) -> _Links:
    parser = _Links()
    parser.feed(report.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def offline_demo(tmp_path_factory):
    """The demo as a fresh offline machine runs it: no CLIP weights anywhere."""
    out = tmp_path_factory.mktemp("demo") / "out"
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        go_offline(mp, out.parent)
        report = run_demo(DemoConfig(out=out, **SHORT), log=lines.append)
    return out, report, lines


@pytest.fixture(scope="module")
def clip_demo(tmp_path_factory):
    register_tiny_clip()
    out = tmp_path_factory.mktemp("demo-clip") / "out"
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANSCAPES_CACHE", str(out.parent / "cache"))
        report = run_demo(
            DemoConfig(out=out, clip_model=TINY_CLIP, clip_pretrained="random", **SHORT), log=lines.append
        )
    return out, report, lines


def test_offline_demo_runs_every_step_but_clip_and_says_so_once(offline_demo):
    out, report, lines = offline_demo
    assert report == out / REPORT and report.is_file()
    notes = [line for line in lines if "CLIP steps (curate, rank) are skipped" in line]
    assert len(notes) == 1
    assert "--clip-weights" in notes[0] and "open_clip_model.safetensors" in notes[0]
    state = json.loads((out / STATE_FILE).read_text())
    assert sorted(state["steps"]) == sorted(["sample", "prepare", "train", "generate", "compare", "mix", "post"])
    skipped = [line for line in lines if re.match(r"^\d/9 \w+: skipped", line)]
    assert [line.split(" ")[1] for line in skipped] == ["curate:", "rank:"]  # numbered by their place
    assert any("Mean aspect ratio" in line for line in lines)  # prepare prints what it found
    facts = state["steps"]["train"]["facts"]
    assert facts["kimg"] > 0 and facts["swd"] is not None and Path(facts["snapshot"]).is_file()
    assert len(list((out / "generated").glob("seed*.png"))) == 12
    assert sorted(p.name for p in (out / "mix" / "cells").iterdir())[:2] == ["F1-S1.png", "F1-S2.png"]
    assert len(list((out / "mix" / "cells").iterdir())) == 21  # 7 forms x 3 styles
    finals = sorted((out / "final").glob("*.png"))
    assert len(finals) == 6
    with Image.open(finals[0]) as im:  # post restored the dataset's aspect (width kept)
        aspect = state["steps"]["prepare"]["facts"]["aspect"]
        assert im.size == (32, round(32 / aspect))


def test_report_links_resolve_and_show_what_was_made(offline_demo):
    out, report, _ = offline_demo
    links = links_of(report)
    assert links.images, "the report shows no pictures"
    for src in links.images + links.links:
        assert not re.match(r"^[a-z]+:", src), f"{src} is not a relative link"
        assert (out / src).is_file(), f"{src} does not resolve"
    names = "\n".join(links.images)
    assert "mix/grid.png" in names and "dataset-sheet.png" in names
    for plot in ("losses", "ada", "swd", "speed"):
        assert f"report-plots/{plot}.png" in names
    assert sum(src.startswith("final/") for src in links.images) == 6
    text = report.read_text(encoding="utf-8")
    for command in (
        "ganscapes sample",
        "ganscapes prepare",
        "ganscapes train",
        "ganscapes generate",
        "ganscapes mix",
        "ganscapes post",
    ):
        assert command in text
    (note,) = re.findall(r'<p class="note">CLIP steps.*?</p>', text, flags=re.S)
    assert note.count("--clip-weights") == 1 and "--out" in note  # what to do, said once


def test_a_rerun_resumes_without_redoing_anything(offline_demo):
    out, report, _ = offline_demo
    state_before = json.loads((out / STATE_FILE).read_text())
    lines: list[str] = []
    run_demo(DemoConfig(out=out, **SHORT), log=lines.append)
    steps_run = [line for line in lines if STEP_LINE.match(line)]
    assert steps_run == [], steps_run  # the budget was spent and every output exists
    state_after = json.loads((out / STATE_FILE).read_text())
    assert state_after["steps"] == state_before["steps"]


def test_more_minutes_continue_training_and_redo_the_later_steps(offline_demo, tmp_path):
    out, _, _ = offline_demo
    before = json.loads((out / STATE_FILE).read_text())["steps"]
    lines: list[str] = []
    # More than the first run spent (which depends on the machine's load) by more than
    # the budget below which the demo counts its training as done
    minutes = (before["train"]["facts"]["train_seconds"] + MIN_TRAIN_SECONDS + 5) / 60
    run_demo(DemoConfig(out=out, **{**SHORT, "minutes": minutes}), log=lines.append)
    steps_run = [m.group(1) for line in lines if (m := STEP_LINE.match(line))]
    assert steps_run == ["train", "generate", "compare", "mix", "post"]
    after = json.loads((out / STATE_FILE).read_text())["steps"]
    assert after["train"]["facts"]["kimg"] > before["train"]["facts"]["kimg"]
    assert after["train"]["facts"]["run"] == before["train"]["facts"]["run"]  # the same run, resumed
    assert len(after["train"]["facts"]["commands"]) == 2 and "--resume latest" in after["train"]["facts"]["commands"][1]
    assert after["generate"]["facts"]["model_hash"] == after["train"]["facts"]["model_hash"]


def test_training_s_stop_is_told_without_its_resume_hint(offline_demo):
    _, _, lines = offline_demo
    assert any(line.strip().startswith("Stopped (its time budget of ") for line in lines)
    assert not any("--resume latest" in line for line in lines)  # rerunning the demo is what resumes


def test_the_recorded_train_command_resolves_to_the_run_s_settings(offline_demo):
    """`ganscapes train … --dry-run` from the report's first train line gives the settings the run saved."""
    import shlex

    from typer.testing import CliRunner

    from ganscapes import cli

    out, _, _ = offline_demo
    facts = json.loads((out / STATE_FILE).read_text())["steps"]["train"]["facts"]
    argv = shlex.split(facts["commands"][0])
    assert argv[:2] == ["ganscapes", "train"] and "--resume" not in argv
    result = CliRunner().invoke(cli.app, [*argv[1:], "--dry-run"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output[result.output.index("{") :])
    saved = json.loads((Path(facts["run"]) / "config.json").read_text())
    resumable = {"kimg", "max_hours", "snap_minutes", "workers", "device"}  # what a later session may change
    assert {k: v for k, v in printed.items() if k not in resumable} == {
        k: v for k, v in saved.items() if k not in resumable
    }


def test_with_clip_the_demo_curates_and_ranks(clip_demo):
    out, report, lines = clip_demo
    assert not any("are skipped" in line for line in lines)
    state = json.loads((out / STATE_FILE).read_text())
    assert sorted(state["steps"]) == sorted(STEPS)
    curate = state["steps"]["curate"]["facts"]
    assert curate["scored"] == 20 and curate["refused"] == round(0.06 * 20)
    picks = state["steps"]["rank"]["facts"]["picks"]
    assert len(picks) == 6 and picks == sorted(picks, key=lambda p: -p["score"])
    assert sorted(p.name for p in (out / "final").iterdir()) == [p["file"] for p in picks]
    links = links_of(report)
    for src in links.images:
        assert (out / src).is_file(), src
    assert "dataset-curation/top.png" in links.images and "dataset-curation/bottom.png" in links.images
    assert "ganscapes curate" in report.read_text() and "ganscapes rank" in report.read_text()


def test_bad_options_are_one_sentence(tmp_path):
    from ganscapes.errors import UserError

    for kwargs, message in [
        ({"minutes": 0}, "^minutes must be positive"),
        ({"res": 48}, "^res must be a power of two"),
        ({"res": 32, "from_scratch": False}, r"^res must be 64 to fine-tune the starter model \(64x64\), not 32; "),
        ({"images": 3}, "^images must be at least 10"),
        ({"generate": 4}, r"^generate must be at least 10 and at least the number of top picks \(6\), not 4\.$"),
    ]:
        with pytest.raises(UserError, match=message):
            run_demo(DemoConfig(out=tmp_path / "x", **{**SHORT, **kwargs}))
    assert not (tmp_path / "x").exists()


def test_bad_options_name_the_option_on_the_command_line(tmp_path, monkeypatch, capsys):
    """The library names DemoConfig's field; `ganscapes demo` says its option."""
    import sys

    from ganscapes import cli

    for args, message in [
        (["--minutes", "0"], "--minutes must be positive, not 0."),
        (["--res", "48", "--from-scratch"], "--res must be a power of two from 16 to 1024, not 48."),
        (
            ["--res", "32"],
            "--res must be 64 to fine-tune the starter model (64x64), not 32; "
            "train from random weights at another size with --from-scratch.",
        ),
        (["--images", "3"], "--images must be at least 10, not 3."),
        (["--generate", "4"], "--generate must be at least 10 and at least the number of top picks (6), not 4."),
    ]:
        monkeypatch.setattr(sys, "argv", ["ganscapes", "demo", "--out", str(tmp_path / "x"), *args])
        with pytest.raises(SystemExit) as info:
            cli.main()
        assert info.value.code == 1 and capsys.readouterr().err == f"ganscapes: error: {message}\n"
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------
# In a real browser

CHROMIUM = Path("/usr/bin/chromium")


def test_the_report_renders_in_chromium(clip_demo):
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
    )
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does) to run the browser test")
    out, report, _ = clip_demo
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            page.goto(report.resolve().as_uri())
            page.wait_for_load_state("load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth])"
            )
            assert page.title() == "ganscapes demo report"
        finally:
            browser.close()
    assert len(images) == len(links_of(report).images) > 10
    for src, complete, width in images:
        assert complete and width > 0, f"{src} did not render"
    assert errors == []
