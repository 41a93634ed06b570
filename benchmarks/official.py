"""Side by side with NVIDIA's code: its networks from a checkout, and interleaved timing.

Speed figures taken on another day or another machine say little on shared machines;
ratios measured in one run, the two sides taking turns, do. `interleave` runs rounds of
ours and NVIDIA's alternately (A B, then B A, so that a slow drift of the machine's load
falls on both equally) and reports each side's median and range and the median of the
per-round ratios with their range; `run_side` runs one side's round in a fresh process.

NVIDIA's repository (NVlabs/stylegan2-ada-pytorch) is used from a checkout you name with
`--official PATH`; nothing of it is copied here.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import statistics
import subprocess
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
    run_on_current_torch()
    import dnnlib  # noqa: F401  (NVIDIA's)
    import legacy
    from training import networks

    return networks, legacy


def run_on_current_torch() -> None:
    """Let NVIDIA's CUDA code (written for torch 1.7 to 1.9) run on today's PyTorch, unchanged.

    Two things of the checkout's `torch_utils` no longer work there; both are fixed from
    outside, by wrapping the torch functions they call, so that their own CUDA kernels
    and gradient fixes run as published:

    - `custom_ops.get_plugin` builds its kernels with `torch.utils.cpp_extension.load` and
      then imports the module by name, but PyTorch no longer puts the module it built into
      `sys.modules`; without this, NVIDIA's code falls back to its slow reference ops;
    - `grid_sample_gradfix` enables itself only for torch 1.7 to 1.9 and calls
      `aten::grid_sampler_2d_backward` without the output mask that op has taken since;
      without it, R1 through the augmentation has no double backward on CUDA.
    """
    import torch
    import torch.utils.cpp_extension as cpp_extension

    if not getattr(cpp_extension.load, "_registers_module", False):
        build = cpp_extension.load

        def load(name, *args, **kwargs):
            module = build(name, *args, **kwargs)
            sys.modules.setdefault(name, module)
            return module

        load._registers_module = True
        cpp_extension.load = load

    try:
        from torch_utils.ops import grid_sample_gradfix
    except ImportError:
        return
    if getattr(grid_sample_gradfix, "_runs_on_current_torch", False):
        return

    def backward_of_sampling(ctx, grad_output, input, grid):
        grad_input, grad_grid = torch.ops.aten.grid_sampler_2d_backward(
            grad_output, input, grid, 0, 0, False, [True, True]
        )  # bilinear, zeros, align_corners False, as their call
        ctx.save_for_backward(grid)
        return grad_input, grad_grid

    grid_sample_gradfix._should_use_custom_op = lambda: grid_sample_gradfix.enabled
    grid_sample_gradfix._GridSample2dBackward.forward = staticmethod(backward_of_sampling)
    grid_sample_gradfix._runs_on_current_torch = True


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
    return rounds_summary(a, b)


def run_side(script: str, args: list[str]) -> dict:
    """Run `script` (a benchmark of this folder, for one side's round) in a fresh Python
    process and return the JSON object it prints last; stop with its error if it fails."""
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=Path(__file__).parent)
    if proc.returncode != 0:
        sys.exit(f"{Path(script).name} {' '.join(args[:2])} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rounds_summary(a: list[float], b: list[float]) -> dict:
    """Medians and ranges of each side's rates, round by round, and of their ratios ours / theirs."""
    ratios = [x / y for x, y in zip(a, b)]
    return {"ours": summary(a), "theirs": summary(b), "ratio": summary(ratios), "rounds": len(a)}


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
