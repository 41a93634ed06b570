"""What a training run shows a person: one line per tick, and a progress bar with a true ETA.

`log.jsonl` is for programs. Someone watching a run wants what NVIDIA's
`training/training_loop.py` prints at every tick (kimg, time, seconds per tick and per
kimg, augment p, memory), plus the losses and the overfitting heuristic r_t that tell
whether training is healthy. The bar answers "when will it end": a run with a time
budget (`--max-hours`, the demo's minutes) ends at the budget or at its kimg target,
whichever comes first, so its ETA is the sooner of the two — never the time to a
nominal 10,000 kimg.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from tqdm import tqdm


def format_duration(seconds: float) -> str:
    """`42s`, `3m 05s`, `2h 03m 05s`, `3d 04h 05m`: the form of NVIDIA's `dnnlib.util.format_time`."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s // 60 % 60:02d}m {s % 60:02d}s"
    return f"{s // 86400}d {s // 3600 % 24:02d}h {s // 60 % 60:02d}m"


def tick_line(row: dict, session_seconds: float, memory: str = "cpumem") -> str:
    """One tick of `log.jsonl` as a console line; the losses and r_t appear once they have been measured."""
    parts = [
        f"tick {row['tick']:<5d}",
        f"kimg {row['kimg']:<8.2f}",
        f"time {format_duration(session_seconds):<12s}",
        f"sec/tick {row['sec_per_tick']:<7.1f}",
        f"sec/kimg {row['sec_per_kimg']:<8.1f}",
    ]
    for label, key in (("loss/G", "loss/G"), ("loss/D", "loss/D"), ("augment", "augment_p"), ("r_t", "ada/r_t")):
        if key in row and row[key] is not None and math.isfinite(row[key]):
            parts.append(f"{label} {row[key]:<7.3f}")
    if row.get("peak_mem_mb"):
        parts.append(f"{memory} {row['peak_mem_mb'] / 1024:.2f} GB")
    return " ".join(parts).rstrip()


class TrainingBar:
    """A bar over kimg, or over the time budget when there is one, with an ETA that is the sooner end.

    The bar is drawn only on a terminal (tqdm's `disable=None`): in a log file, carriage
    returns would bury the tick lines, which say everything the bar does.
    """

    def __init__(self, start_kimg: float, total_kimg: float, budget_seconds: float | None, enabled: bool):
        self.start_kimg, self.total_kimg, self.budget = start_kimg, total_kimg, budget_seconds
        self.start = time.time()
        self._bar = tqdm(
            total=1000,
            unit="‰",
            disable=None if enabled else True,
            bar_format="{l_bar}{bar}| {postfix}",
            dynamic_ncols=True,
        )
        self._extra = ""

    def eta_seconds(self, kimg: float, now: float | None = None) -> float | None:
        """Seconds left: to the kimg target at this session's speed, capped by the time budget."""
        elapsed = (now or time.time()) - self.start
        done = kimg - self.start_kimg
        to_target = (self.total_kimg - kimg) * elapsed / done if done > 0 else None
        budget_left = self.budget - elapsed if self.budget is not None else None
        left = [t for t in (to_target, budget_left) if t is not None]
        return max(0.0, min(left)) if left else None

    def fraction(self, kimg: float, now: float | None = None) -> float:
        """How far the run is to its end: the larger of the kimg and the time fractions."""
        kimg_part = (kimg - self.start_kimg) / max(self.total_kimg - self.start_kimg, 1e-9)
        time_part = ((now or time.time()) - self.start) / self.budget if self.budget else 0.0
        return min(1.0, max(kimg_part, time_part))

    def update(self, kimg: float, extra: str | None = None) -> None:
        if self._bar.disable:
            return
        now = time.time()
        if extra is not None:
            self._extra = extra
        eta = self.eta_seconds(kimg, now)
        target = f"{kimg:.2f}/{self.total_kimg:g} kimg" if self.budget is None else f"{kimg:.2f} kimg"
        when = f"{format_duration(now - self.start)} elapsed, ETA {format_duration(eta) if eta is not None else '?'}"
        if self.budget is not None:
            when += f" (budget {format_duration(self.budget)})"
        self._bar.set_postfix_str(" ".join(s for s in (target, when, self._extra) if s), refresh=False)
        self._bar.update(int(self.fraction(kimg, now) * 1000) - self._bar.n)

    def write(self, log: Callable[[str], None], line: str) -> None:
        """Say `line` through `log` without tearing the bar."""
        if self._bar.disable:
            log(line)
            return
        with tqdm.external_write_mode():
            log(line)

    def close(self) -> None:
        self._bar.close()
