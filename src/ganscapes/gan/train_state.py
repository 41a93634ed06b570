"""Snapshots of a training run: the networks as a model file, everything else as a state file.

A snapshot is two files written atomically side by side:

- `network-snapshot-{tag}.safetensors`: G, D and G_ema with their settings (an
  ordinary ganscapes model file, usable by `generate` as it is);
- `training-state-{tag}.pt`: what a resume needs to continue *exactly* — optimizer
  moments, the ADA probability and its pending statistics, the image counter, tick and
  iteration, the path-length mean, the data order, RNG states, the resolved
  configuration and the dataset's fingerprint. Plain tensors, numbers, strings, lists
  and dicts only, so it loads with `torch.load(weights_only=True)`.

The state file is written last, after the fakes grid, the metrics and the tick's log
row: only a model *with* its state counts as a snapshot, so a run killed at any moment
of a snapshot resumes from the previous complete one.

The tag is the whole kimg, `000012`, as NVIDIA names snapshots, even when the tick
ended a few images past it (12,008 images at batch 12): a person reads and types these
names. Only a second snapshot within the same kimg (ticks shorter than a kimg: demos,
tests) gets the images too, `000012.500`, so that it does not overwrite the first; the
first of a kimg always gets the whole name, so numeric order is still the order of
training. Run folders written before this rule, with `000012.008`-style names
throughout, are listed, resumed and pruned as they are.

The official code saved neither optimizer state nor p; its resumes restarted ADA at
p = 0, which is what the GANscapes author had to patch by hand.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Collection
from pathlib import Path

import numpy as np
import torch

from ganscapes.errors import UserError, first_line
from ganscapes.fileio import atomic_path

SNAPSHOT_RE = re.compile(r"^network-snapshot-(\d{6}(?:\.\d{3})?)\.safetensors$")
STATE_FORMAT = "ganscapes-training-state"


def snapshot_tag(cur_nimg: int, run_dir: Path | None = None) -> str:
    """The tag of a snapshot after `cur_nimg` images in `run_dir` (see the module docstring).

    `000012` unless `run_dir` already holds a complete snapshot of kimg 12, then
    `000012.008`; without `run_dir`, always the exact tag (`000012` only at 12,000 images).
    """
    kimg, rest = divmod(cur_nimg, 1000)
    exact = f"{kimg:06d}" if rest == 0 else f"{kimg:06d}.{rest:03d}"
    if rest == 0 or run_dir is None:
        return exact
    taken = any(math.floor(k) == kimg for k, _, _ in list_snapshots(run_dir))
    return exact if taken else f"{kimg:06d}"


def snapshot_paths(run_dir: Path, cur_nimg: int) -> tuple[Path, Path]:
    """The model and state files of a new snapshot after `cur_nimg` images in `run_dir`."""
    tag = snapshot_tag(cur_nimg, run_dir)
    return run_dir / f"network-snapshot-{tag}.safetensors", run_dir / f"training-state-{tag}.pt"


def list_snapshots(run_dir: Path) -> list[tuple[float, Path, Path]]:
    """(kimg, model file, state file) for every complete snapshot, oldest first.

    The kimg is the one the name says: whole for most (a tick may have ended a few
    images later), to the image for old names and for later snapshots within a kimg.
    """
    found = []
    for p in Path(run_dir).glob("network-snapshot-*.safetensors"):
        m = SNAPSHOT_RE.match(p.name)
        if m:
            state = Path(run_dir) / f"training-state-{m.group(1)}.pt"
            if state.exists():
                found.append((float(m.group(1)), p, state))
    return sorted(found)


def rng_states() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
        "python": json.dumps(random.getstate()),
    }


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = json.loads(states["python"])
    random.setstate((version, tuple(internal), gauss))


def save_state(path: Path, state: dict) -> None:
    state = {"format": STATE_FORMAT, "version": 1, **state}
    state["content_hash"] = content_hash(state)
    # Through a Python file, so that a full disk is an OSError (ENOSPC) that atomic_path
    # reports in one sentence, not the RuntimeError of torch's own file writer.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)


def content_hash(state: dict) -> str:
    """SHA-256 of everything in a state (but its own hash): names, numbers, strings and tensor bytes.

    torch.load does not notice flipped bytes inside a tensor; this does, so a damaged
    state is refused instead of resuming a run with corrupted optimizer moments.
    """
    h = hashlib.sha256()

    def feed(obj) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().to("cpu").contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(obj, dict):
            h.update(b"{")
            for key in sorted(obj, key=repr):
                if key != "content_hash":
                    h.update(repr(key).encode() + b":")
                    feed(obj[key])
            h.update(b"}")
        elif isinstance(obj, (list, tuple)):
            h.update(b"[")
            for item in obj:
                feed(item)
            h.update(b"]")
        else:
            h.update(repr(obj).encode() + b";")

    feed(state)
    return h.hexdigest()


def load_state(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"Training state {path} does not exist.") from None
    except Exception as e:  # torch raises many kinds for damaged or foreign files
        raise UserError(f"{path} is not a readable ganscapes training state ({first_line(e, 160)}).") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise UserError(f"{path} is not a ganscapes training state.")
    if "content_hash" in state and content_hash(state) != state["content_hash"]:
        raise UserError(f"{path} is damaged: its contents do not match the hash it records.")
    return state


def prune_snapshots(run_dir: Path, keep: int, protect: Collection[str] = ()) -> list[float]:
    """Delete all but the newest `keep` snapshots and those whose model file is named in `protect`
    (best.json's `snapshot`: names, unlike kimgs, are exact); returns the kimgs deleted."""
    snaps = list_snapshots(run_dir)
    deleted = []
    for kimg, model, state in snaps[:-keep] if keep > 0 else snaps:
        if model.name in protect:
            continue
        model.unlink(missing_ok=True)
        state.unlink(missing_ok=True)
        deleted.append(kimg)
    return deleted
