"""Seconds per kimg, seconds per iteration and peak memory of `ganscapes train`.

Runs the real training loop (augmentation on, ADA, all four phases with lazy
regularisation, EMA, no snapshot metrics) on a synthetic dataset made with
`ganscapes sample` + `prepare`, for a fixed number of iterations after a warm-up, and
reads the figures from the run's log. Run by hand:

    .venv/bin/python benchmarks/train.py [--res 64,128] [--batch 8] [--iters 20] [--cfg auto] [--device cpu]

Side by side with NVIDIA's loop (`--official PATH`, a checkout of
NVlabs/stylegan2-ada-pytorch; its `training_loop.py` is patched in memory to run on a
CPU, as by `parity_official.py`): `--rounds` rounds, each running our loop and NVIDIA's
in fresh processes one after the other (A B, then B A), with the same networks (the
`auto` preset), batch, fp32, fixed augmentation (bgc, p 0.2), threads and data. Each
side's time per iteration comes from a tick of `--iters` iterations after a first
one-iteration tick (start-up excluded); peak memory is the process's resident maximum
(on CUDA, the most GPU memory PyTorch allocated during the measured tick, from each
loop's own log: both reset the peak at every tick).

    .venv/bin/python benchmarks/train.py --official ~/src/stylegan2-ada-pytorch --res 64,128 --iters 4 --rounds 5 \
        --json benchmarks/results/side-by-side-train.json
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
from ganscapes.fileio import read_jsonl
from ganscapes.gan.train_config import TrainConfig
from ganscapes.gan.training import train


def bench(root: Path, res: int, batch: int, iters: int, cfg: str, device: str) -> dict:
    data = root / f"data{res}.zip"
    if not data.exists():
        make_samples(root / "raw", n=64, seed=0, min_side=res, max_side=2 * res, progress=False)
        prepare_dataset(root / "raw", data, PrepareConfig(res=res, workers=1), log=lambda _: None, progress=False)
    kimg = batch * iters / 1000
    config = TrainConfig(
        data=str(data),
        outdir=str(root / f"runs{res}"),
        cfg=cfg,
        batch=batch,
        kimg=kimg,
        kimg_per_tick=batch * max(iters // 2, 1) / 1000,
        snap=10**6,
        metrics=[],
        workers=1,
        device=device,
    )
    start = time.time()
    result = train(config, log=lambda _: None, progress=False)
    wall = time.time() - start
    rows = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    last = rows[-1]  # ticks after the first exclude start-up
    return {
        "res": res,
        "batch": batch,
        "sec_per_kimg": last["sec_per_kimg"],
        "sec_per_iter": last["sec_per_iter"],
        "peak_mem_mb": last["peak_mem_mb"],
        "wall": wall,
    }


def side_config(data: Path, work: Path, batch: int, iters: int, device: str = "cpu") -> TrainConfig:
    """The settings both loops train with: the `auto` preset, fixed bgc augmentation at p 0.2,
    no snapshots or metrics, and `iters` iterations in one tick after a first one-iteration tick."""
    return TrainConfig(
        data=str(data),
        outdir=str(work / "ours"),
        cfg="auto",
        batch=batch,
        kimg=batch * (iters + 1) / 1000,
        kimg_per_tick=batch * iters / 1000,
        aug="fixed",
        p=0.2,
        augpipe="bgc",
        snap=10**6,
        metrics=[],
        workers=0,
        device=device,
    )


def one_side(
    side: str, data: Path, root: Path, batch: int, iters: int, official: Path | None, device: str = "cpu"
) -> dict:
    """Run one side for one round (in this process) and return its seconds per iteration and peak memory."""
    import resource

    config = side_config(data, root, batch, iters, device)
    if side == "ours":
        result = train(config, log=lambda _: None, progress=False)
        rows = read_jsonl(result.run_dir / "log.jsonl")
        seconds = [row["sec_per_tick"] for row in rows]
        gpu_peak_mb = rows[-1].get("peak_mem_mb") or 0  # the measured tick's (reset after each tick)
    else:
        from ganscapes.gan.training import resolve_training

        import parity_official as po

        cfg = resolve_training(config).to_dict()
        loop = po.load_official_loop(official, None, device, extra_patches=po.NO_INITIAL_FAKES)
        run_dir = root / "theirs"
        run_dir.mkdir()
        kwargs = po.official_kwargs(cfg, data, run_dir, seed=0, device=device)
        kwargs["progress_fn"] = None
        loop.training_loop(**kwargs)
        rows = read_jsonl(run_dir / "stats.jsonl")
        seconds = [po._stat(row, "Timing/sec_per_tick") for row in rows]
        # NVIDIA's loop resets CUDA's peak after reporting each tick's, as ours does: both sides report the
        # measured tick's (iterations 1 to `iters`), start-up, cuDNN's first autotuning and snapshots excluded.
        gpu_peak_mb = (po._stat(rows[-1], "Resources/peak_gpu_mem_gb") or 0) * 1024
    return {
        "sec_per_iter": seconds[-1] / iters,
        "peak_rss_mb": gpu_peak_mb if device == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "ticks": len(seconds),
    }


def _round(name: str, data: Path, root: Path, res: int, args, threads: int, memory: dict) -> float:
    """One side's round in a fresh process: its iterations per second (higher is faster)."""
    from official import run_side

    work = Path(tempfile.mkdtemp(dir=root))
    opts = ["--side", name, "--data", str(data), "--work", str(work), "--res", str(res), "--batch", str(args.batch),
            "--iters", str(args.iters), "--threads", str(threads), "--device", args.device]  # fmt: skip
    r = run_side(__file__, opts + (["--official", str(args.official)] if args.official else []))
    memory[name].append(r["peak_rss_mb"])
    return 1 / r["sec_per_iter"]


def side_by_side(args) -> None:
    from official import interleave, machine_line, seconds_row

    threads = args.threads or torch.get_num_threads()
    precision = "fp32" if args.device == "cpu" else "mixed precision as each trains by default"
    machine = machine_line(threads) + f"; {args.device}, auto preset, {precision}, augmentation bgc at fixed p 0.2"
    print(machine)
    print("| measured | ours | NVIDIA's | ours / NVIDIA's (speed) |")
    print("|---|---|---|---|")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for res in [int(r) for r in args.res.split(",")]:
            data = root / f"data{res}.zip"
            make_samples(root / f"raw{res}", n=64, seed=0, min_side=res, max_side=2 * res, progress=False)
            prepare_dataset(
                root / f"raw{res}", data, PrepareConfig(res=res, workers=1), log=lambda _: None, progress=False
            )
            memory = {"ours": [], "theirs": []}
            sides = [functools.partial(_round, name, data, root, res, args, threads, memory) for name in memory]
            r = interleave(*sides, args.rounds)
            results.append({"res": res, "batch": args.batch, "iterations_per_second": r, "peak_memory_mb": memory})
            print(seconds_row(f"{res}², batch {args.batch}: one iteration", "iteration", r), flush=True)
            print(
                f"| {res}²: peak memory | {max(memory['ours']):,.0f} MB | {max(memory['theirs']):,.0f} MB | "
                f"{max(memory['ours']) / max(memory['theirs']):.2f} |",
                flush=True,
            )
            if args.json:
                args.json.write_text(json.dumps({"machine": machine, "results": results}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", default="64,128")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=16)
    parser.add_argument("--cfg", default="auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--official", type=Path, help="NVIDIA's checkout: measure side by side with it")
    parser.add_argument("--rounds", type=int, default=5, help="--official: interleaved rounds per side")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--json", type=Path, help="--official: also write the results here (after each resolution)")
    parser.add_argument("--side", choices=["ours", "theirs"], help=argparse.SUPPRESS)  # internal: one round
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.side:
        r = one_side(args.side, args.data, args.work, args.batch, args.iters, args.official, args.device)
        print(json.dumps(r))
        return
    if args.official:
        side_by_side(args)
        return
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"device {args.device}, cfg {args.cfg}, ADA on (bgc)"
    )
    print("| resolution | batch | s/kimg | s/iteration | peak memory |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for res in [int(r) for r in args.res.split(",")]:
            r = bench(Path(tmp), res, args.batch, args.iters, args.cfg, args.device)
            print(
                f"| {res}² | {r['batch']} | {r['sec_per_kimg']:.0f} | {r['sec_per_iter']:.2f} | "
                f"{r['peak_mem_mb']:.0f} MiB |",
                flush=True,
            )


if __name__ == "__main__":
    main()
