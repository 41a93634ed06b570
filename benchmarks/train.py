"""Seconds per kimg, seconds per iteration and peak memory of `ganscapes train`.

Runs the real training loop (augmentation on, ADA, all four phases with lazy
regularisation, EMA, no snapshot metrics) on a synthetic dataset made with
`ganscapes sample` + `prepare`, for a fixed number of iterations after a warm-up, and
reads the figures from the run's log. Run by hand:

    .venv/bin/python benchmarks/train.py [--res 64,128] [--batch 8] [--iters 20] [--cfg auto] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from ganscapes.data.prepare import PrepareConfig, prepare_dataset
from ganscapes.data.sample import make_samples
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", default="64,128")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=16)
    parser.add_argument("--cfg", default="auto")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
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
