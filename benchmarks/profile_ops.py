"""Where the time goes, op by op: generation and one training iteration, against this CPU's peak.

For each resolution, the `auto` preset with random weights: PyTorch's profiler over
`--repeat` calls of (a) what `generate` runs per batch (mapping, synthesis, 8-bit
conversion) and (b) one training iteration of the real loop (G main, G path-length, D
main and D R1 phases, augmentation bgc at p 0.2, EMA). Ops are grouped into families
(convolutions, their backward passes, element-wise work, copies, the rest) with their
share of the time; convolutions (forward and backward) also get their arithmetic rate in GFLOP/s, from
PyTorch's FLOP counter, set against
the rate this CPU reaches on one large matrix product with the same threads (the
practical peak). What is far below the peak can still be made faster; what is near it
can only be made faster by doing less arithmetic. Run by hand:

    .venv/bin/python benchmarks/profile_ops.py [--res 64,128,256] [--batch 8] [--threads 1] [--repeat 2]
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


def profile(fn, repeat: int) -> dict:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    fn()  # warm-up
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeat):
            fn()
    seconds = defaultdict(float)
    for ev in prof.key_averages():
        seconds[family(ev.key)] += ev.self_cpu_time_total / 1e6 / repeat
    conv_time = seconds["convolution forward"] + seconds["convolution backward"]
    conv_work = conv_flops(fn)
    total = sum(seconds.values())
    return {
        "seconds": total,
        "families": {k: round(v / total, 4) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])},
        "conv_gflops": conv_work / conv_time / 1e9 if conv_time else None,
    }


def generation(res: int, batch: int):
    from ganscapes.gan.config import network_kwargs, resolve_preset
    from ganscapes.gan.networks import build_generator
    from ganscapes.make.generate import synthesis_options, to_uint8

    torch.manual_seed(0)
    G = build_generator(network_kwargs(resolve_preset("auto", res), res)[0]).eval().requires_grad_(False)
    options, c = synthesis_options(torch.device("cpu")), torch.zeros([batch, 0])

    def step():
        with torch.inference_mode():
            to_uint8(G.synthesis(G.mapping(torch.randn([batch, G.z_dim]), c), noise_mode="const", **options))

    return step


def training(res: int, batch: int, root: Path):
    from ganscapes.data.prepare import PrepareConfig, prepare_dataset
    from ganscapes.data.sample import make_samples
    from ganscapes.gan.train_config import TrainConfig
    from ganscapes.gan.training import Trainer

    data = root / f"data{res}.zip"
    make_samples(root / f"raw{res}", n=32, seed=0, min_side=res, max_side=2 * res, progress=False)
    prepare_dataset(root / f"raw{res}", data, PrepareConfig(res=res, workers=1), log=lambda _: None, progress=False)
    config = TrainConfig(
        data=str(data), outdir=str(root / f"runs{res}"), cfg="auto", batch=batch, kimg=1000, aug="fixed", p=0.2,
        snap=10**6, metrics=[], workers=0, device="cpu",
    )  # fmt: skip
    trainer = Trainer(config, log=lambda _: None, progress=False)
    # Lazy regularisation runs R1 and path length every 16th and 4th iteration; profile
    # four iterations so their share is what it is in a run, up to rounding.
    return lambda: [trainer.step() for _ in range(4)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--res", default="64,128,256")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    peak = peak_gflops(args.threads)
    print(f"practical peak (2048² float32 matrix product, {args.threads} thread(s)): {peak:.0f} GFLOP/s")
    results = {"peak_gflops": peak, "threads": args.threads, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for res in [int(r) for r in args.res.split(",")]:
            work = [("generate, one batch", generation(res, args.batch))]
            if not args.skip_training:
                work.append(("train, four iterations", training(res, args.batch, Path(tmp))))
            for name, fn in work:
                torch.set_num_threads(args.threads)
                r = profile(fn, args.repeat)
                r.update(res=res, work=name)
                results["rows"].append(r)
                rate = (
                    f"{r['conv_gflops']:.0f} GFLOP/s ({r['conv_gflops'] / peak:.0%} of peak)"
                    if r["conv_gflops"]
                    else "–"
                )
                shares = ", ".join(f"{k} {v:.0%}" for k, v in r["families"].items() if v >= 0.01)
                print(f"{res}², {name}: {r['seconds']:.2f} s; convolutions at {rate}; {shares}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
