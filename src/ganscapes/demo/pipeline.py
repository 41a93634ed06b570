"""`ganscapes demo`: the whole GANscapes pipeline, offline, on a CPU, in minutes.

sample → prepare → curate (with CLIP weights) → train (tiny preset, a time budget) →
generate → rank (with CLIP) → mix → post → report.html.

Every step calls the same library function as its command and records the equivalent
command line, which the report lists so that any step can be rerun by hand. The demo
is resumable: `demo-state.json` records the finished steps, and a rerun skips them,
continues training while the time budget lasts, and redoes the later steps only if the
model changed.

The pieces: `config` (the options), `state` (the record and every path), `steps` (the
ordered list of steps), `report` (report.html); this module runs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ganscapes.demo.config import PROMPT, DemoConfig
from ganscapes.demo.state import STATE_FILE, DemoState
from ganscapes.demo.steps import STEPS, Step, StepRun, clip_or_none

__all__ = ["PROMPT", "STATE_FILE", "DemoConfig", "run_demo", "run_steps"]


def run_steps(demo: DemoState, steps: tuple[Step, ...] = STEPS, clip=None) -> None:
    """Run `steps` in order, each numbered by its place; a step that changed its output redoes the later ones."""
    for number, step in enumerate(steps, 1):
        if step.run(StepRun(step.name, number, len(steps), demo, clip)):
            demo.forget(*(later.name for later in steps[number:]))


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> Path:
    """Run (or continue) the demo; returns the path of report.html."""
    from ganscapes.demo.report import write_report

    demo = DemoState(cfg, log)
    started = time.time()
    run_steps(demo, STEPS, clip_or_none(demo))
    report = write_report(demo)
    log(f"Demo finished in {time.time() - started:.0f} s; open {report} in a browser.")
    return report
