"""The demo as data: the steps are a list that numbers itself, and every path is the state's."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from ganscapes.demo.config import DemoConfig
from ganscapes.demo.pipeline import run_steps
from ganscapes.demo.report import _commands
from ganscapes.demo.state import STATE_FILE, DemoState, StepRecord
from ganscapes.demo.steps import STEPS, TRAIN_RESUME_HINT, Step, StepRun, without_resume_hint

SMALL = dict(res=16, images=10, device="cpu", from_scratch=True)


def fake(name: str, changed: bool = False) -> Step:
    def run(r: StepRun) -> bool:
        r.announce(f"doing {name}")
        r.timed(f"ganscapes {name}", lambda: {"by": name})
        return changed

    return Step(name, run)


def test_the_demo_is_its_list_of_steps():
    assert [s.name for s in STEPS] == [
        "sample", "prepare", "curate", "train", "generate", "compare", "rank", "mix", "post"
    ]  # fmt: skip


def test_steps_are_numbered_by_their_place_in_the_list(tmp_path):
    lines: list[str] = []
    demo = DemoState(DemoConfig(out=tmp_path, **SMALL), log=lines.append)
    run_steps(demo, (fake("a"), fake("b"), fake("c")))
    assert lines == ["1/3 a: doing a", "2/3 b: doing b", "3/3 c: doing c"]
    lines.clear()
    run_steps(demo, (fake("c"), fake("a")))
    assert lines == ["1/2 c: doing c", "2/2 a: doing a"]
    recorded = json.loads((tmp_path / STATE_FILE).read_text())["steps"]
    assert recorded["b"]["command"] == "ganscapes b" and recorded["a"]["facts"] == {"by": "a"}


def test_a_step_that_changed_its_output_makes_every_later_step_redo(tmp_path):
    demo = DemoState(DemoConfig(out=tmp_path, **SMALL), log=lambda _: None)
    for name in "abcd":
        demo.record(StepRecord(name, facts={"old": True}))
    seen: list[str] = []

    def only_new(name: str) -> Step:  # runs only when its record is gone, as the real steps do
        def run(r: StepRun) -> None:
            if not r.done():
                seen.append(name)
                r.timed(None, lambda: {})

        return Step(name, run)

    run_steps(demo, (only_new("a"), fake("b", changed=True), only_new("c"), only_new("d")))
    assert seen == ["c", "d"]
    assert demo.facts("a") == {"old": True} and demo.facts("c") == {}


def test_the_report_lists_commands_in_the_order_of_the_steps():
    steps = {
        "post": {"command": "ganscapes post"},
        "train": {"command": "x", "facts": {"commands": ["ganscapes train 1", "ganscapes train 2"]}},
        "sample": {"command": "ganscapes sample"},
        "curate": {"skipped": "no CLIP"},
    }
    assert _commands(steps) == ["ganscapes sample", "ganscapes train 1", "ganscapes train 2", "ganscapes post"]


class Elsewhere(DemoState):
    """The same demo with its first folders renamed: the steps must follow."""

    @property
    def raw(self) -> Path:
        return self.out / "paintings"

    @property
    def dataset(self) -> Path:
        return self.out / "training.zip"

    @property
    def dataset_sheet(self) -> Path:
        return self.out / "sheet.png"


def test_the_steps_take_every_path_from_the_state(tmp_path):
    lines: list[str] = []
    demo = Elsewhere(DemoConfig(out=tmp_path, **SMALL), log=lines.append)
    run_steps(demo, STEPS[:2])
    assert len(list((tmp_path / "paintings").glob("sample_*"))) == 10
    assert (tmp_path / "training.zip").is_file() and (tmp_path / "sheet.png").is_file()
    assert not (tmp_path / "raw").exists() and not (tmp_path / "dataset.zip").exists()
    assert [line.split(":")[0] for line in lines if line[:1].isdigit()] == ["1/2 sample", "2/2 prepare"]
    assert f"--out {tmp_path / 'paintings'}" in demo.steps["sample"]["command"]
    assert demo.steps["prepare"]["command"].endswith(f"--out {tmp_path / 'training.zip'} --res 16")


def test_the_default_folders():
    demo = DemoState(DemoConfig(out=Path("d"), **SMALL), log=lambda _: None)
    assert {
        name: getattr(demo, name).as_posix()
        for name in ("path", "raw", "dataset", "dataset_sheet", "runs", "generated", "ranked_top", "mix_grid", "final")
    } == {
        "path": "d/demo-state.json",
        "raw": "d/raw",
        "dataset": "d/dataset.zip",
        "dataset_sheet": "d/dataset-sheet.png",
        "runs": "d/runs",
        "generated": "d/generated",
        "ranked_top": "d/generated/ranked/top",
        "mix_grid": "d/mix/grid.png",
        "final": "d/final",
    }
    assert (demo.report.as_posix(), demo.report_plots.as_posix()) == ("d/report.html", "d/report-plots")


def test_training_s_resume_hint_is_dropped_and_nothing_else():
    from ganscapes.gan.training import RESUME_HINT, Trainer

    # the demo drops training's own constant, which ends Trainer.run's stop message
    assert TRAIN_RESUME_HINT is RESUME_HINT and "RESUME_HINT" in inspect.getsource(Trainer.run)
    lines: list[str] = []
    log = without_resume_hint(lines.append)
    log("\nStopped (max-hours) at 0.4 kimg; snapshot in runs/00000-x." + TRAIN_RESUME_HINT)
    log("Resuming runs/00000-x at 0.4 kimg with augment p = 0.0000.")
    assert lines == [
        "\nStopped (max-hours) at 0.4 kimg; snapshot in runs/00000-x.",
        "Resuming runs/00000-x at 0.4 kimg with augment p = 0.0000.",
    ]


def test_ticks_come_about_every_half_minute_at_the_expected_speed():
    from ganscapes.demo.steps import expected_sec_per_kimg, tick_kimg

    for res in (32, 64, 128):
        seconds = tick_kimg(res) * expected_sec_per_kimg(res)
        assert 25 <= seconds <= 35, (res, seconds)
        assert round(tick_kimg(res) * 1000) % 8 == 0  # whole iterations of the tiny preset's batch


def test_a_slow_machine_is_told_what_that_means_for_the_pictures():
    from ganscapes.demo.steps import expected_sec_per_kimg, speed_warning

    expected = expected_sec_per_kimg(64)
    assert speed_warning(1.5 * expected, 600, 64, from_starter=True) is None
    slow = speed_warning(4 * expected, 600, 64, from_starter=True)
    assert f"{4 * expected:.0f} s/kimg, 4.0x slower" in slow
    assert f"about {600 / (4 * expected):.1f} kimg instead of {600 / expected:.1f}" in slow
    assert "stay close to the starter model's" in slow
    assert "soft colour fields" in speed_warning(4 * expected, 600, 64, from_starter=False)
    # Too slow to reach the tick where speed is judged: said after training, in the past tense.
    after = speed_warning(20 * expected, 600, 64, from_starter=True, done=True)
    assert f"the demo trained about {600 / (20 * expected):.1f} kimg instead of {600 / expected:.1f}" in after
    assert "are close to the starter model's" in after


def test_a_machine_busy_only_at_the_start_is_warned_early_and_cleared_at_the_end():
    from ganscapes.demo.steps import SPEED_TICK, SpeedWatch, expected_sec_per_kimg

    expected = expected_sec_per_kimg(64)
    lines = []
    watch = SpeedWatch(600, 64, from_starter=True, log=lines.append)
    for tick in range(SPEED_TICK + 1):  # tick 0 is start-up; the steady ticks are 3x too slow
        watch.tick({"tick": tick, "sec_per_kimg": 3 * expected}, elapsed=30.0 * tick)
    assert len(lines) == 1 and lines[0].startswith("warning: This machine trains at 150 s/kimg, 3.0x slower")
    assert "will train about" in lines[0]
    # The other program stopped: the session as a whole trained about as planned.
    assert watch.verdict(elapsed=600, trained_kimg=10.5) is None
    assert lines[1] == (
        "The machine caught up: the session trained 10.5 kimg in 10.0 minutes (57 s/kimg), "
        "so the slow-machine warning above no longer holds."
    )


def test_a_machine_slow_throughout_gets_the_verdict_the_report_keeps():
    from ganscapes.demo.steps import SPEED_TICK, SpeedWatch, expected_sec_per_kimg

    expected = expected_sec_per_kimg(64)
    lines = []
    watch = SpeedWatch(600, 64, from_starter=False, log=lines.append)
    for tick in range(SPEED_TICK + 1):
        watch.tick({"tick": tick, "sec_per_kimg": 4 * expected}, elapsed=30.0 * tick)
    verdict = watch.verdict(elapsed=600, trained_kimg=600 / (4 * expected))
    assert verdict is not None and "the demo trained about 3.0 kimg instead of 12.0" in verdict
    assert "are soft colour fields" in verdict
    assert lines == [lines[0], f"warning: {verdict}"]


def test_the_report_shows_the_newest_fakes_by_number_not_by_text():
    from ganscapes.demo.report import _kimg_of

    names = ["fakes000000.png", "fakes000000.012.png", "fakes000001.png", "fakes000000.008.png"]
    newest = sorted((Path(n) for n in names), key=_kimg_of)[-1]
    assert newest.name == "fakes000001.png"
    assert sorted(names)[-1] == "fakes000001.png" and sorted(names[:2])[-1] == "fakes000000.png"  # text: wrong
    assert [p.name for p in sorted((Path(n) for n in names[:2]), key=_kimg_of)][-1] == "fakes000000.012.png"
