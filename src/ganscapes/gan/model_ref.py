"""What `--model` names: a model file, a training run's folder, or a model known by name.

Every command that takes a model resolves it here (`resolve_model`) before loading it,
so they all accept the same things:

- a model file (`.safetensors`, or an official `.pkl`): that file, as given;
- a run folder of `ganscapes train`: its best snapshot by the metric (`best.json`),
  or, without one, its latest complete snapshot, since "the model this run made" is
  what a user means by naming the run;
- a name in `NAMED_MODELS`: the file it stands for. Names are looked up before paths,
  so a file or folder called like a name is reached as `./name`.

Loading itself (`checkpoint.load_model`) checks the file; a path that does not exist
is passed on unchanged so that the refusal names it as the user wrote it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ganscapes.errors import UserError
from ganscapes.gan.train_config import existing_runs
from ganscapes.gan.train_state import SNAPSHOT_RE, list_snapshots
from ganscapes.models import BUNDLED, bundled_model

# Models known by name → a function returning the file: the models bundled with the package.
NAMED_MODELS: dict[str, Callable[[], Path]] = {name: partial(bundled_model, name) for name in BUNDLED}


@dataclass(frozen=True)
class ModelChoice:
    path: Path  # the model file to load
    given: str  # what the user wrote
    why: str | None = None  # how `path` was chosen; None when it is the file the user named

    def describe(self) -> str:
        """One line for the user: which file, and why that one."""
        return f"{self.path} ({self.why})" if self.why else str(self.path)


def resolve_model(ref: str | Path) -> ModelChoice:
    """The model file `ref` stands for (see the module docstring)."""
    given = str(ref)
    if given in NAMED_MODELS:
        return ModelChoice(Path(NAMED_MODELS[given]()), given, f"the model called {given!r}")
    path = Path(ref)
    if path.is_dir():
        return _from_run_folder(path, given)
    return ModelChoice(path, given)


def _from_run_folder(run_dir: Path, given: str) -> ModelChoice:
    best = _best_snapshot(run_dir)
    if best is not None:
        model, why = best
        return ModelChoice(model, given, why)
    snaps = list_snapshots(run_dir)
    if snaps:
        kimg, model, _ = snaps[-1]
        return ModelChoice(model, given, f"the run's latest snapshot, {kimg:g} kimg; it has no best.json")
    runs = [run for run in existing_runs(run_dir) if list_snapshots(run)]
    hint = f"; it holds training runs, name one, e.g. --model {runs[-1]}" if runs else ""
    raise UserError(
        f"--model {given} is a folder without a training snapshot (network-snapshot-*.safetensors with its "
        f"training state){hint}."
    )


def _best_snapshot(run_dir: Path) -> tuple[Path, str] | None:
    """The snapshot `best.json` names, and why it was chosen; None without a usable one.

    Read only: a damaged best.json is rebuilt by the next `train --resume`, not here, and
    a snapshot it names that is gone (deleted by hand) gives way to the latest.
    """
    try:
        best = json.loads((run_dir / "best.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    name = best.get("snapshot") if isinstance(best, dict) else None
    if not isinstance(name, str) or not SNAPSHOT_RE.match(name):  # a bare file name of this folder, nothing else
        return None
    model = run_dir / name
    if not model.is_file():
        return None
    metric, score, kimg = best.get("metric"), best.get("score"), best.get("kimg")
    facts = []
    if isinstance(metric, str) and _finite(score):
        facts.append(f"{metric} {score:.4f}")
    if _finite(kimg):
        facts.append(f"{kimg:g} kimg")
    return model, "the run's best snapshot" + (f", {' at '.join(facts)}" if facts else "")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
