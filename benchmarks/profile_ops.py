"""Where the time goes, op by op: generation and training, ours and NVIDIA's, against this CPU's peak.

For each resolution, the `auto` preset with random weights, under PyTorch's profiler:
(a) `--repeat` batches of what `generate` runs (mapping, synthesis, 8-bit conversion),
after one of warm-up; (b) iterations 1 to `--iters` of the real training loop after
iteration 0 (G main every iteration, G path length at iteration 4, D main; D's R1,
every 16th iteration, falls outside the window), augmentation bgc at p 0.2, EMA. With
`--official PATH` (a checkout of NVlabs/stylegan2-ada-pytorch) NVIDIA's code is
profiled the same way: its G with the pixel conversion of its generate.py, and its own
training loop (patched in memory for the CPU, as by `parity_official.py`) over the same
iterations and batches; a table then sets the two side by side, family by family.

Ops are grouped into families (convolutions, their backward passes, element-wise work,
copies, the rest) with their time per unit; convolutions (forward and backward) also get
their arithmetic rate in GFLOP/s, from PyTorch's FLOP counter over the next window of the
same length, set against the rate this CPU reaches on one large matrix product with the
same threads (the practical peak). What is far below the peak can still be made faster;
what is near it can only be made faster by doing less arithmetic. Run by hand:

    .venv/bin/python benchmarks/profile_ops.py [--res 64,128,256] [--batch 8] [--threads 1] [--official PATH]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

FAMILIES = (  # (family, op names it holds): first match wins
    ("convolution forward", ("mkldnn_convolution", "_convolution", "convolution", "_slow_conv2d_forward", "conv2d")),
    ("convolution backward", ("convolution_backward", "mkldnn_convolution_backward", "slow_conv2d_backward")),
    ("matrix products", ("addmm", "mm", "bmm", "matmul", "linear")),
    ("copies and layout", ("copy_", "contiguous", "clone", "_to_copy", "flip", "constant_pad_nd", "cat", "index")),
    ("reductions", ("sum", "mean", "norm", "var", "std")),
    ("grid sampling (augmentation)", ("grid_sampler_2d", "grid_sampler_2d_backward", "affine_grid_generator")),
)


def family(name: str) -> str:
    bare = name.removeprefix("aten::")
    for fam, names in FAMILIES:
        if bare in names or any(bare.startswith(n + "_") and n.endswith("backward") for n in names):
            return fam
    return "element-wise and the rest"


def peak_gflops(threads: int, size: int = 2048, repeat: int = 5) -> float:
    """GFLOP/s of one large float32 matrix product: the practical peak of this CPU and thread count."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * size**3 * repeat / (time.perf_counter() - start) / 1e9


def conv_flops(fn) -> float:
    """Floating-point operations of the convolutions (forward and backward) of one call of
    `fn`, as PyTorch's own FLOP counter counts them from the real shapes and strides."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    ops = counter.get_flop_counts().get("Global", {})
    return float(sum(v for k, v in ops.items() if "conv" in str(k)))


TOP_OPS = 12  # the slowest ops (self time) kept per row, for the JSON


def summarise(prof, conv_work: float, units: int) -> dict:
    """Seconds per unit (a batch, an iteration) by op family, and the convolutions' arithmetic rate."""
    seconds = defaultdict(float)
    for ev in prof.key_averages():
        seconds[family(ev.key)] += ev.self_cpu_time_total / 1e6 / units
    conv_time = seconds["convolution forward"] + seconds["convolution backward"]
    total = sum(seconds.values())
    top = sorted(prof.key_averages(), key=lambda ev: -ev.self_cpu_time_total)[:TOP_OPS]
    return {
        "seconds": total,
        "top_ops": [[ev.key, round(ev.self_cpu_time_total / 1e6 / units, 4)] for ev in top],
        "families": {k: round(v / total, 4) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])},
        "conv_gflops": conv_work / units / conv_time / 1e9 if conv_time else None,
    }


class Windows:
    """Profile units `warmup`+1 … `warmup`+`active` of a loop, then count the FLOPs of the
    next `active` (same phases: the lazy-regularisation pattern repeats every 4 iterations).

    Called at the start of each unit (for NVIDIA's training loop: each time it asks for a
    batch), so it measures that loop as it runs, start-up excluded.
    """

    def __init__(self, warmup: int, active: int):
        from torch.profiler import ProfilerActivity, profile
        from torch.utils.flop_counter import FlopCounterMode

        self.warmup, self.active, self.calls = warmup, active, 0
        self.prof = profile(activities=[ProfilerActivity.CPU])
        self.counter = FlopCounterMode(display=False)

    def tick(self) -> bool:
        """Before unit `calls`; False once both windows are over."""
        k, self.calls = self.calls, self.calls + 1
        if k == self.warmup:
            self.prof.__enter__()
        elif k == self.warmup + self.active:
            self.prof.__exit__(None, None, None)
            self.counter.__enter__()
        elif k == self.warmup + 2 * self.active:
            self.counter.__exit__(None, None, None)
            return False
        return True

    def result(self) -> dict:
        ops = self.counter.get_flop_counts().get("Global", {})
        return summarise(self.prof, float(sum(v for k, v in ops.items() if "conv" in str(k))), self.active)


def profile_units(unit, warmup: int, active: int) -> dict:
    windows = Windows(warmup, active)
    while windows.tick():
        unit()
    return windows.result()


def generation(res: int, batch: int, official: Path | None, root: Path):
    """One batch of what `generate` runs (ours) or NVIDIA's generate.py runs per picture, batched."""
    from ganscapes.gan.config import network_kwargs, resolve_preset
    from ganscapes.gan.networks import build_generator
    from ganscapes.make.generate import synthesis_options, to_uint8

    torch.manual_seed(0)
    if official is not None:
        from official import load_theirs, official_snapshot

        G = load_theirs(official, official_snapshot(official, res, root / f"official{res}.pkl"))
        c = torch.zeros([batch, 0])

        def theirs():
            with torch.no_grad():
                img = G(torch.randn([batch, G.z_dim]), c, truncation_psi=1, noise_mode="const")
                (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)

        return theirs
    G = build_generator(network_kwargs(resolve_preset("auto", res), res)[0]).eval().requires_grad_(False)
    options, c = synthesis_options(torch.device("cpu")), torch.zeros([batch, 0])

    def ours():
        with torch.inference_mode():
            to_uint8(G.synthesis(G.mapping(torch.randn([batch, G.z_dim]), c), noise_mode="const", **options))

    return ours


def training_config(res: int, batch: int, root: Path):
    from ganscapes.data.prepare import PrepareConfig, prepare_dataset
    from ganscapes.data.sample import make_samples
    from ganscapes.gan.train_config import TrainConfig

    data = root / f"data{res}.zip"
    if not data.exists():
        make_samples(root / f"raw{res}", n=32, seed=0, min_side=res, max_side=2 * res, progress=False)
        prepare_dataset(root / f"raw{res}", data, PrepareConfig(res=res, workers=1), log=lambda _: None, progress=False)
    return TrainConfig(
        data=str(data), outdir=str(root / f"runs{res}"), cfg="auto", batch=batch, kimg=1000, aug="fixed", p=0.2,
        augpipe="bgc", snap=10**6, metrics=[], workers=0, device="cpu",
    )  # fmt: skip


def training_profile(res: int, batch: int, root: Path, official: Path | None, warmup: int, active: int) -> dict:
    """`active` iterations of the real training loop (ours, or NVIDIA's patched for the CPU),
    after `warmup` iterations; both sides read the same batches."""
    from ganscapes.gan.training import Trainer

    trainer = Trainer(training_config(res, batch, root), log=lambda _: None, progress=False)
    if official is None:
        result = profile_units(trainer.step, warmup, active)
        trainer.close()
        return result

    import parity_official as po

    class Batches:  # NVIDIA's loop asks for one batch per iteration
        def __init__(self):
            self.windows = Windows(warmup, active)

        def __iter__(self):
            return self

        def __next__(self):
            if not self.windows.tick():
                raise po._Enough
            return next(trainer.data_iter)

    batches = Batches()
    hooks = {"_parity_batches": lambda: batches, "_parity_round": lambda i, j, k, z, c: (z, c)}
    loop = po.load_official_loop(official, hooks, "cpu", extra_patches=po.NO_INITIAL_FAKES)
    run_dir = root / f"theirs{res}"
    run_dir.mkdir()
    cfg = trainer.cfg.to_dict()
    try:
        loop.training_loop(**po.official_kwargs(cfg, Path(cfg["data"]), run_dir, seed=0))
    except po._Enough:
        pass
    finally:
        trainer.close()
    return batches.windows.result()


def family_table(rows: dict) -> str:
    """Markdown: seconds per unit by op family, one column per side."""
    sides = list(rows)
    names = sorted(
        {f for r in rows.values() for f in r["families"]}, key=lambda f: -rows[sides[0]]["families"].get(f, 0)
    )
    lines = ["| op family | " + " | ".join(sides) + " |", "|---|" + "---|" * len(sides)]
    for f in names + ["total"]:
        cells = [rows[s]["seconds"] * (rows[s]["families"].get(f, 0.0) if f != "total" else 1.0) for s in sides]
        lines.append(f"| {f} | " + " | ".join(f"{c:.3f} s" for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", default="64,128,256")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="batches profiled per generation row")
    ap.add_argument("--iters", type=int, default=4, help="training iterations profiled (after one of warm-up)")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--official", type=Path, help="NVIDIA's checkout: profile its code the same way, side by side")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    peak = peak_gflops(args.threads)
    print(f"practical peak (2048² float32 matrix product, {args.threads} thread(s)): {peak:.0f} GFLOP/s")
    results = {"peak_gflops": peak, "threads": args.threads, "rows": []}
    sides = {"ours": None} | ({"NVIDIA's": args.official} if args.official else {})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for res in [int(r) for r in args.res.split(",")]:
            work = {
                "generate, one batch": lambda side, res=res: profile_units(
                    generation(res, args.batch, side, root), 1, args.repeat
                )
            }
            if not args.skip_training:
                work["train, one iteration"] = lambda side, res=res: training_profile(
                    res, args.batch, root, side, 1, args.iters
                )
            for name, run in work.items():
                rows = {}
                for label, side in sides.items():
                    torch.set_num_threads(args.threads)
                    r = rows[label] = run(side)
                    r.update(res=res, work=name, side=label)
                    results["rows"].append(r)
                    rate = (
                        f"{r['conv_gflops']:.0f} GFLOP/s ({r['conv_gflops'] / peak:.0%} of peak)"
                        if r["conv_gflops"]
                        else "–"
                    )
                    shares = ", ".join(f"{k} {v:.0%}" for k, v in r["families"].items() if v >= 0.01)
                    print(
                        f"{res}², {name}, {label}: {r['seconds']:.2f} s; convolutions at {rate}; {shares}", flush=True
                    )
                if len(rows) > 1:
                    print(family_table(rows), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
