"""What the demo has done and where everything it makes lives.

`demo-state.json` records each finished step (its command line, facts, time) so that a
rerun skips it. Every file and folder name the steps and the report share is a
property of `DemoState`, so that one name cannot be spelt two ways.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ganscapes.clip.rank import TOP_DIR
from ganscapes.demo.config import DemoConfig
from ganscapes.fileio import write_bytes_atomic

STATE_FILE = "demo-state.json"
REPORT = "report.html"


@dataclass
class StepRecord:
    """One finished (or deliberately skipped) step, as saved in the state file."""

    name: str
    command: str | None = None  # the equivalent command line
    facts: dict = field(default_factory=dict)
    seconds: float = 0.0
    skipped: str | None = None  # why it did not run


class DemoState:
    """The demo's folder: the record of finished steps and the paths of what they made."""

    def __init__(self, cfg: DemoConfig, log: Callable[[str], None] = print):
        cfg.validate()
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.log = log
        self._record = self._load()

    # -- the record ------------------------------------------------------------------

    def _load(self) -> dict:
        if self.path.is_file():
            try:
                record = json.loads(self.path.read_text(encoding="utf-8"))
                if isinstance(record, dict) and isinstance(record.get("steps"), dict):
                    return record
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass
            self.log(f"ganscapes: warning: {self.path} is damaged; starting the record afresh (files are reused).")
        return {"steps": {}, "config": None}

    def _save(self) -> None:
        self._record["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.cfg).items()}
        self.out.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self.path, json.dumps(self._record, indent=1).encode())

    @property
    def steps(self) -> dict[str, dict]:
        """The recorded steps by name, as saved (`StepRecord` fields)."""
        return self._record["steps"]

    def facts(self, name: str) -> dict:
        """What step `name` found or made; empty when it has not run."""
        return self.steps.get(name, {}).get("facts", {})

    @property
    def clip_skipped(self) -> str | None:
        """Why CLIP could not be loaded, when it could not (the report says so too)."""
        return self._record.get("clip_skipped")

    @clip_skipped.setter
    def clip_skipped(self, why: str | None) -> None:
        """Set when CLIP fails to load; cleared when a later run has it, so the report's banner goes."""
        if why is None:
            self._record.pop("clip_skipped", None)
        else:
            self._record["clip_skipped"] = why  # saved with the next step

    def done(self, name: str, **expect) -> dict | None:
        """Step `name`'s record if it ran with these facts (the model, the size…), else None."""
        step = self.steps.get(name)
        if step and all(step.get("facts", {}).get(k) == v for k, v in expect.items()):
            return step
        return None

    def record(self, step: StepRecord) -> None:
        self.steps[step.name] = asdict(step)
        self._save()

    def forget(self, *names: str) -> None:
        for n in names:
            self.steps.pop(n, None)

    # -- paths -----------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.out / STATE_FILE

    @property
    def raw(self) -> Path:
        """The procedural paintings (sample)."""
        return self.out / "raw"

    @property
    def dataset(self) -> Path:
        """The training images (prepare; curate moves some out)."""
        return self.out / "dataset.zip"

    @property
    def dataset_sheet(self) -> Path:
        return self.out / "dataset-sheet.png"

    @property
    def runs(self) -> Path:
        """Training's run folders (train)."""
        return self.out / "runs"

    @property
    def generated(self) -> Path:
        """The generated paintings and their latents (generate)."""
        return self.out / "generated"

    @property
    def starter_pictures(self) -> Path:
        """The starter model's pictures of the compared seeds (compare)."""
        return self.out / "starter-pictures"

    def compare_sheet(self, kind: str) -> Path:
        """One column of the before/after comparison: `reals`, `starter` or `trained` (compare)."""
        return self.out / f"compare-{kind}.png"

    @property
    def ranked(self) -> Path:
        """CLIP's ranking of the generated paintings (rank)."""
        from ganscapes.clip.rank import RANKED_DIR  # imports torch: only when asked

        return self.generated / RANKED_DIR

    @property
    def ranked_top(self) -> Path:
        """The picks: where `write_ranking` puts them."""

        return self.ranked / TOP_DIR

    @property
    def mix(self) -> Path:
        """The style-mixing cells and grid (mix)."""
        return self.out / "mix"

    @property
    def mix_grid(self) -> Path:
        return self.mix / "grid.png"

    @property
    def final(self) -> Path:
        """The finished paintings (post)."""
        return self.out / "final"

    @property
    def report(self) -> Path:
        return self.out / REPORT

    @property
    def report_plots(self) -> Path:
        """The report's training curves."""
        return self.out / "report-plots"
