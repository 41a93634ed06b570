"""`ganscapes demo`: the whole GANscapes pipeline, offline, on a CPU, in minutes.

sample → prepare → curate (with CLIP weights) → train (tiny preset, a time budget) →
generate → rank (with CLIP) → mix → post → report.html.

Every step calls the same library function as its command and records the equivalent
command line, which the report lists so that any step can be rerun by hand. The demo
is resumable: `demo-state.json` records the finished steps, and a rerun skips them,
continues training while the time budget lasts, and redoes the later steps only if the
model changed.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ganscapes.errors import UserError
from ganscapes.fileio import write_bytes_atomic

STATE_FILE = "demo-state.json"
PROMPT = "impressionist painting of autumn woods"
MIN_TRAIN_SECONDS = 20  # less budget left than this (or a quarter of a short budget): training is done


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("demo-output")
    minutes: float = 10.0  # training budget in total, across reruns
    res: int = 64
    images: int = 300  # procedural paintings to sample
    device: str = "auto"
    prompt: str = PROMPT
    generate: int = 64
    top: int = 6
    refuse_fraction: float = 0.06  # the article's 314 of 5,314
    metric_images: int = 256  # images per set for the SWD at the end of training
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    clip_weights: Path | None = None
    seed: int = 0

    def validate(self) -> None:
        if self.minutes <= 0:
            raise UserError(f"--minutes must be positive, not {self.minutes:g}.")
        if not (16 <= self.res <= 1024 and self.res & (self.res - 1) == 0):
            raise UserError(f"--res must be a power of two from 16 to 1024, not {self.res}.")
        if self.images < 10:
            raise UserError(f"--images must be at least 10, not {self.images}.")
        if self.generate < max(10, self.top):
            raise UserError(f"--generate must be at least 10 and at least --top ({self.top}), not {self.generate}.")


@dataclass
class Step:
    name: str
    command: str | None = None  # the equivalent command line
    facts: dict = field(default_factory=dict)
    seconds: float = 0.0
    skipped: str | None = None  # why it did not run


class Demo:
    def __init__(self, cfg: DemoConfig, log: Callable[[str], None] = print):
        cfg.validate()
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.log = log
        self.state_path = self.out / STATE_FILE
        self.state = self._load_state()

    # -- state -----------------------------------------------------------------------

    def _load_state(self) -> dict:
        if self.state_path.is_file():
            try:
                state = json.loads(self.state_path.read_text(encoding="utf-8"))
                if isinstance(state, dict) and isinstance(state.get("steps"), dict):
                    return state
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass
            self.log(
                f"ganscapes: warning: {self.state_path} is damaged; starting the record afresh (files are reused)."
            )
        return {"steps": {}, "config": None}

    def _save(self) -> None:
        self.state["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.cfg).items()}
        self.out.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.state_path, json.dumps(self.state, indent=1).encode())

    def done(self, name: str, **expect) -> dict | None:
        step = self.state["steps"].get(name)
        if step and all(step.get("facts", {}).get(k) == v for k, v in expect.items()):
            return step
        return None

    def record(self, step: Step) -> None:
        self.state["steps"][step.name] = asdict(step)
        self._save()

    def forget(self, *names: str) -> None:
        for n in names:
            self.state["steps"].pop(n, None)

    # -- paths -----------------------------------------------------------------------

    @property
    def raw(self) -> Path:
        return self.out / "raw"

    @property
    def dataset(self) -> Path:
        return self.out / "dataset.zip"

    @property
    def runs(self) -> Path:
        return self.out / "runs"

    def cmd(self, *args) -> str:
        return "ganscapes " + " ".join(shlex.quote(str(a)) for a in args)

    def clip_args(self) -> list[str]:
        c = self.cfg
        args = []
        if c.clip_model != "ViT-B-32":
            args += ["--clip-model", c.clip_model]
        if c.clip_pretrained != "openai":
            args += ["--clip-pretrained", c.clip_pretrained]
        if c.clip_weights:
            args += ["--clip-weights", str(c.clip_weights)]
        return args


def run_demo(cfg: DemoConfig, log: Callable[[str], None] = print) -> Path:
    """Run (or continue) the demo; returns the path of report.html."""
    from ganscapes.demo import steps
    from ganscapes.demo.report import write_report

    demo = Demo(cfg, log)
    started = time.time()
    clip = steps.clip_or_none(demo)
    for run_step in (steps.sample, steps.prepare):
        run_step(demo)
    steps.curate(demo, clip)
    model_changed = steps.train(demo)
    if model_changed:
        demo.forget("generate", "rank", "mix", "post")
    steps.generate(demo)
    steps.rank(demo, clip)
    steps.mix(demo)
    steps.post(demo)
    report = write_report(demo)
    log(f"Demo finished in {time.time() - started:.0f} s; open {report} in a browser.")
    return report
