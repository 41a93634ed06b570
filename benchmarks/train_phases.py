"""Seconds per training phase (G main, G path length, D main, D R1), ours and NVIDIA's.

`benchmarks/train.py --official` says how much faster one iteration is; this says where:
each side runs its real training loop in a fresh process (the settings of `train.py`:
`auto` preset, batch 8, fp32, bgc at fixed p 0.2, the same data), and every call of its
loss's `accumulate_gradients` is timed. Iteration 0 (start-up, both regularisers) is left
out. The measured window of `train.py` (iterations 1 to 4) holds four G main and D main
phases and one G path-length phase, so one iteration there is about
Gmain + Dmain + Greg / 4; D's R1 runs every 16th iteration, outside it.

    .venv/bin/python benchmarks/train_phases.py --official ~/src/stylegan2-ada-pytorch --res 64 --iters 8 --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples

PHASES = ("Gmain", "Greg", "Dmain", "Dreg")


def _time_phases(loss_class, seconds: dict) -> None:
    """Wrap `loss_class.accumulate_gradients` so that each call's wall time lands in `seconds[phase]`."""
    accumulate = loss_class.accumulate_gradients

    def timed(self, phase, *args, **kwargs):
        start = time.perf_counter()
        try:
            return accumulate(self, phase, *args, **kwargs)
        finally:
            seconds[phase].append(time.perf_counter() - start)

    loss_class.accumulate_gradients = timed


def one_side(side: str, data: Path, work: Path, iters: int, official: Path | None) -> dict:
    """Run one side's loop for `iters` iterations after the first; seconds per call of each phase."""
    from train import side_config

    from ganscapes.gan.training import resolve_training, train

    config = side_config(data, work, batch=8, iters=iters)
    seconds: dict[str, list[float]] = defaultdict(list)
    if side == "ours":
        import ganscapes.gan.loss as ours

        _time_phases(ours.StyleGAN2Loss, seconds)
        train(config, log=lambda _: None, progress=False)
    else:
        import parity_official as po

        cfg = resolve_training(config).to_dict()
        loop = po.load_official_loop(official, None, "cpu", extra_patches=po.NO_INITIAL_FAKES)
        import training.loss as theirs  # NVIDIA's module, importable once the loop is loaded

        _time_phases(theirs.StyleGAN2Loss, seconds)
        run_dir = work / "theirs"
        run_dir.mkdir()
        kwargs = po.official_kwargs(cfg, data, run_dir, seed=0)
        kwargs["progress_fn"] = None
        loop.training_loop(**kwargs)
    return {phase: calls[1:] for phase, calls in seconds.items()}  # the first call of each is iteration 0's


def _side(name: str, data: Path, root: Path, args) -> dict:
    from official import run_side

    work = Path(tempfile.mkdtemp(dir=root))
    opts = ["--side", name, "--data", str(data), "--work", str(work), "--res", str(args.res),
            "--iters", str(args.iters), "--threads", str(args.threads), "--official", str(args.official)]  # fmt: skip
    return run_side(__file__, opts)


def _cell(calls: list[float]) -> str:
    if not calls:
        return "–"
    return f"{statistics.median(calls):.2f} s ({min(calls):.2f}–{max(calls):.2f}; n = {len(calls)})"


def table(ours: dict, theirs: dict) -> str:
    rows = ["| phase | ours | NVIDIA's | ours / NVIDIA's (speed) |", "|---|---|---|---|"]
    window = {}
    for phase in PHASES:
        a, b = ours.get(phase, []), theirs.get(phase, [])
        ratio = f"{statistics.median(b) / statistics.median(a):.2f}×" if a and b else "–"
        rows.append(f"| {phase} | {_cell(a)} | {_cell(b)} | {ratio} |")
        if phase != "Dreg" and a and b:
            share = 0.25 if phase == "Greg" else 1.0
            window[phase] = (share * statistics.median(a), share * statistics.median(b))
    if len(window) == 3:
        a, b = (sum(v[i] for v in window.values()) for i in (0, 1))
        rows.append(f"| Gmain + Dmain + Greg / 4 | {a:.2f} s | {b:.2f} s | {b / a:.2f}× |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, default=64)
    parser.add_argument("--iters", type=int, default=8, help="iterations after the first (a G path length every 4th)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--official", type=Path, required=True, help="a checkout of NVlabs/stylegan2-ada-pytorch")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--side", choices=["ours", "theirs"], help=argparse.SUPPRESS)  # internal: one side
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.side:
        print(json.dumps(one_side(args.side, args.data, args.work, args.iters, args.official)))
        return
    from official import machine_line

    machine = machine_line(args.threads) + f"; {args.res}², batch 8, auto preset, fp32, bgc at fixed p 0.2"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data.zip"
        make_samples(root / "raw", n=64, seed=0, min_side=args.res, max_side=2 * args.res, progress=False)
        prepare_dataset(root / "raw", data, PrepareConfig(res=args.res, workers=1), log=lambda _: None, progress=False)
        ours, theirs = _side("ours", data, root, args), _side("theirs", data, root, args)
    print(machine)
    print(table(ours, theirs))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "ours": ours, "theirs": theirs}, indent=1))


if __name__ == "__main__":
    main()
