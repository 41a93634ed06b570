"""Side by side with NVIDIA's code: its networks from a checkout, and interleaved timing.

Speed figures taken on another day or another machine say little on shared machines;
ratios measured in one run, the two sides taking turns, do. `interleave` runs rounds of
ours and NVIDIA's alternately (A B, then B A, so that a slow drift of the machine's load
falls on both equally) and reports each side's median and range and the median of the
per-round ratios with their range.

NVIDIA's repository (NVlabs/stylegan2-ada-pytorch) is used from a checkout you name with
`--official PATH`; nothing of it is copied here.
"""

from __future__ import annotations

import os
import pickle
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path


def import_official(official: Path):
    """NVIDIA's `training.networks`, `legacy` and `dnnlib` modules from the checkout."""
    official = Path(official).expanduser().resolve()
    if not (official / "training" / "networks.py").is_file():
        sys.exit(f"{official} is not a checkout of NVlabs/stylegan2-ada-pytorch (no training/networks.py).")
    if str(official) not in sys.path:
        sys.path.insert(0, str(official))
    import dnnlib  # noqa: F401  (NVIDIA's)
    import legacy
    from training import networks

    return networks, legacy


def official_snapshot(official: Path, res: int, path: Path, seed: int = 0) -> Path:
    """A NVIDIA-format snapshot (a pickle of {'G_ema': Generator}) of the `auto` preset at
    `res`, random weights from `seed`, written by NVIDIA's own code: the file both sides load."""
    import torch

    from ganscapes.gan.config import network_kwargs, resolve_preset

    networks, _ = import_official(official)
    G_kwargs, D_kwargs = network_kwargs(resolve_preset("auto", res), res)
    torch.manual_seed(seed)
    G = networks.Generator(**G_kwargs).eval().requires_grad_(False)
    D = networks.Discriminator(**D_kwargs).eval().requires_grad_(False)
    with torch.no_grad():  # a trained model's noise strengths and w_avg are not zero: time real work
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
        G.mapping.w_avg.normal_()
    with open(path, "wb") as f:
        pickle.dump({"G_ema": G, "G": G, "D": D, "augment_pipe": None, "training_set_kwargs": None}, f)
    return path


def load_theirs(official: Path, path: Path):
    _, legacy = import_official(official)
    with open(path, "rb") as f:
        return legacy.load_network_pkl(f)["G_ema"].eval().requires_grad_(False)


def interleave(ours: Callable[[], float], theirs: Callable[[], float], rounds: int) -> dict:
    """Run `rounds` rounds of each, alternating who goes first; each call returns a rate
    (higher is faster). Returns medians, ranges and the per-round ratios ours / theirs."""
    a, b = [], []
    for k in range(rounds):
        if k % 2 == 0:
            a.append(ours())
            b.append(theirs())
        else:
            b.append(theirs())
            a.append(ours())
    ratios = [x / y for x, y in zip(a, b)]
    return {
        "ours": summary(a),
        "theirs": summary(b),
        "ratio": summary(ratios),
        "rounds": rounds,
    }


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def timed_rate(work: Callable[[], int]) -> float:
    """Units per second of one call of `work`, which returns how many units it did."""
    start = time.perf_counter()
    units = work()
    return units / (time.perf_counter() - start)


def machine_line(threads: int) -> str:
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu = platform.processor() or platform.machine()
    return (
        f"{cpu}, {os.cpu_count()} cores, {threads} thread(s), torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, load average {load:.2f} at the start"
    )


def ratio_row(name: str, unit: str, r: dict) -> str:
    o, t, q = r["ours"], r["theirs"], r["ratio"]
    return (
        f"| {name} | {o['median']:.3g} ({o['min']:.3g}–{o['max']:.3g}) {unit} | "
        f"{t['median']:.3g} ({t['min']:.3g}–{t['max']:.3g}) {unit} | "
        f"**{q['median']:.2f}×** ({q['min']:.2f}–{q['max']:.2f}) |"
    )


def seconds_row(name: str, unit: str, r: dict) -> str:
    """`ratio_row` for rates of slow units (training iterations): each side as seconds per
    unit, the reciprocal of its rates (median, then the range), the ratio still of speeds."""
    o, t, q = r["ours"], r["theirs"], r["ratio"]
    return (
        f"| {name} | {1 / o['median']:.3g} ({1 / o['max']:.3g}–{1 / o['min']:.3g}) s/{unit} | "
        f"{1 / t['median']:.3g} ({1 / t['max']:.3g}–{1 / t['min']:.3g}) s/{unit} | "
        f"**{q['median']:.2f}×** ({q['min']:.2f}–{q['max']:.2f}) |"
    )
