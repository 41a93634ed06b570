"""The files of a run folder besides the snapshots: grids, metrics, best.json, the logs.

Every file is written atomically or appended so that a cut line is dropped
(`ganscapes.fileio`), and a resumed run first tidies what a killed one left, so that a
run folder always reads like the record of one uninterrupted run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganscapes.data.grid import image_grid
from ganscapes.fileio import (
    append_jsonl,
    atomic_path,
    read_jsonl,
    remove_stale_temporaries,
    write_bytes_atomic,
    write_json_atomic,
)
from ganscapes.gan.ops import to_uint8
from ganscapes.gan.training_data import DamagedImage


def tensorboard_writer(run_dir: Path):
    """A TensorBoard writer when the optional `tensorboard` package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir))


def grid_count(resolution: int) -> int:
    return 32 if resolution <= 256 else 16


def save_grid(images_uint8: torch.Tensor, path: Path, cols: int = 8) -> None:
    """uint8 pictures [N, C, H, W] as one PNG, `cols` to a row, black where a row is short."""

    n, c, h, w = images_uint8.shape
    arrays = images_uint8.permute(0, 2, 3, 1).numpy()
    tiles = (Image.fromarray(np.ascontiguousarray(a[..., 0] if c == 1 else a[..., :3])) for a in arrays)
    grid = image_grid(tiles, cols, (w, h), count=n, mode="L" if c == 1 else "RGB", background=0)
    with atomic_path(path) as tmp:
        grid.save(tmp, format="PNG")


def save_reals_grid(dataset, path: Path) -> None:
    """The first training images; a damaged one is left out (training reports it when it comes up)."""
    n = min(grid_count(dataset.resolution), len(dataset))
    imgs = []
    for i in range(len(dataset)):
        if len(imgs) == n:
            break
        try:
            imgs.append(torch.as_tensor(dataset[i][0]))
        except DamagedImage:
            continue
    save_grid(torch.stack(imgs), path)


def fakes(G_ema, z, c, device) -> torch.Tensor:
    with torch.no_grad():
        imgs = [
            G_ema(zz.to(device), cc, noise_mode="const", force_fp32=device.type != "cuda")
            for zz, cc in zip(z.split(8), c.split(8))
        ]
    return to_uint8(torch.cat(imgs)).cpu()


def read_best(run_dir: Path, say: Callable[[str], None]) -> dict:
    """The snapshot with the lowest SWD so far, which pruning must keep.

    metrics.jsonl is the record and best.json a summary of it, so a best.json that a kill
    left empty or half-written (or that is missing) is rebuilt from the record instead of
    stopping every later resume.
    """
    path = run_dir / "best.json"
    rows = [
        r
        for r in read_jsonl(run_dir / "metrics.jsonl")
        if isinstance(r.get("snapshot"), str) and finite(r.get("SWDx1e3_avg")) and finite(r.get("kimg"))
    ]
    rebuilt = {}
    if rows:
        top = min(rows, key=lambda r: r["SWDx1e3_avg"])
        rebuilt = {
            "kimg": top["kimg"],
            "score": top["SWDx1e3_avg"],
            "metric": "SWDx1e3_avg",
            "snapshot": top["snapshot"],
        }
    stored = None
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            stored = None
        if not (isinstance(stored, dict) and finite(stored.get("kimg")) and finite(stored.get("score"))):
            say(
                f"warning: {path} was damaged (an interrupted write?); "
                + ("rebuilt it from metrics.jsonl." if rebuilt else "starting a new one.")
            )
            stored = None
    if stored != rebuilt and (rebuilt or path.exists()):
        if rebuilt:
            write_json_atomic(path, rebuilt, indent=1)
        else:
            path.unlink()
    return rebuilt


def finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def tidy_interrupted_run(run_dir: Path, cur_nimg: int, say: Callable[[str], None]) -> None:
    """Undo what a killed run left behind, so the resumed folder reads like an uninterrupted one.

    Temporary files of unfinished atomic writes are deleted, and the log rows written after
    the snapshot being resumed (ticks that will now be trained again) are dropped.
    """
    removed = remove_stale_temporaries(run_dir)
    if removed:
        say(f"Removed {len(removed)} unfinished file(s) left by an interrupted run.")
    for name in ("log.jsonl", "metrics.jsonl"):
        path = run_dir / name
        if not path.exists():
            continue
        rows = read_jsonl(path)
        kept = [r for r in rows if finite(r.get("kimg")) and r["kimg"] <= cur_nimg / 1000 + 1e-9]
        if len(kept) != len(rows) or path.read_bytes()[-1:] not in (b"", b"\n"):
            write_bytes_atomic(path, "".join(json.dumps(r) + "\n" for r in kept).encode("utf-8"))


def record_metrics(run_dir: Path, kimg: float, snapshot: str, results: dict, best: dict) -> None:
    """Append a snapshot's metrics to metrics.jsonl and update `best` (and best.json) when SWD improved."""
    append_jsonl(run_dir / "metrics.jsonl", {"kimg": kimg, "snapshot": snapshot, **results})
    score = results.get("SWDx1e3_avg")
    if score is not None and (not best or score < best["score"]):
        best.clear()
        best.update({"kimg": kimg, "score": score, "metric": "SWDx1e3_avg", "snapshot": snapshot})
        write_json_atomic(run_dir / "best.json", best, indent=1)
