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
same length, set against two practical peaks with the same threads: one large matrix
product, and the most favourable convolution of these networks (oneDNN's convolutions can
outrun MKL's matrix product: on AMD CPUs by a third). A table then lists the convolutions
shape by shape (forward or backward, stride, transposed or depthwise) with their seconds,
arithmetic (from the recorded shapes) and rate. What is far below the peak can still be
made faster; what is near it can only be made faster by doing less arithmetic. Run by hand:

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


def _rate(fn, flop: float, repeat: int) -> float:
    """GFLOP/s of `fn` (`flop` operations a call), after one call of warm-up."""
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return flop * repeat / (time.perf_counter() - start) / 1e9


def peak_gflops(threads: int, size: int = 2048, repeat: int = 5) -> float:
    """GFLOP/s of one large float32 matrix product: the practical peak of this CPU and thread count."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    return _rate(lambda: a @ b, 2 * size**3, repeat)


def conv_peak_gflops(threads: int, repeat: int = 3) -> float:
    """GFLOP/s of the most favourable convolution of these networks: 3×3, stride 1, 512 → 512
    channels at 32², batch 8, channels-last float32. oneDNN's direct convolution can beat the
    matrix product above (on AMD CPUs MKL's SGEMM does not use the widest vector units), so the
    convolutions are measured against this rate, which they have shown they can reach."""
    torch.set_num_threads(threads)
    x = torch.randn(8, 512, 32, 32).to(memory_format=torch.channels_last)
    w = torch.randn(512, 512, 3, 3).to(memory_format=torch.channels_last)
    return _rate(lambda: torch.nn.functional.conv2d(x, w, padding=1), 2 * 8 * 32 * 32 * w.numel(), repeat)


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


CONV_OPS = (
    "mkldnn_convolution",
    "_convolution",
    "convolution_backward",
    "_slow_conv2d_forward",
    "_slow_conv2d_backward",
)


def _output_positions(x, w, pad, stride, dilation) -> int:
    """Output pixels of a convolution of input shape `x` with weight shape `w`."""
    ho = (x[2] + 2 * pad[0] - dilation[0] * (w[2] - 1) - 1) // stride[0] + 1
    wo = (x[3] + 2 * pad[1] - dilation[1] * (w[3] - 1) - 1) // stride[1] + 1
    return ho * wo


def _conv_call(ev) -> tuple[str, float] | None:
    """(description, floating-point operations) of one convolution event, from its recorded shapes.

    Every convolution costs 2 · N · (positions on its smaller side) · weight elements per
    pass; a backward call runs one pass per gradient it is asked for (input, weight).
    `_convolution` counts only when transposed: PyTorch calls oneDNN's transposed kernel
    from it directly, so its own time is that kernel's.
    """
    op = ev.name.removeprefix("aten::")
    if op not in CONV_OPS:
        return None
    shapes, args = ev.input_shapes, list(ev.concrete_inputs or [])
    try:
        if op == "mkldnn_convolution" or (op == "_convolution" and args[6] is True):
            x, w = shapes[0], shapes[1]
            transposed, passes = op == "_convolution", 1
            if transposed:
                stride, positions = args[3], x[2] * x[3]
            else:  # (a double backward convolves with dilation: weight gradients of strided layers)
                stride = args[4]
                positions = _output_positions(x, w, args[3], stride, args[5])
        elif op == "convolution_backward":
            go, x, w = shapes[0], shapes[1], shapes[2]
            stride, transposed, mask = args[4], args[7], args[10]
            positions = x[2] * x[3] if transposed else go[2] * go[3]
            passes = int(bool(mask[0])) + int(bool(mask[1]))
        elif op == "_slow_conv2d_forward":
            x, w = shapes[0], shapes[1]
            stride, passes, transposed = args[4], 1, False
            positions = _output_positions(x, w, args[5], stride, (1, 1))
        elif op == "_slow_conv2d_backward":
            go, x, w = shapes[0], shapes[1], shapes[2]
            stride, mask, transposed = args[4], args[6], False
            positions, passes = go[2] * go[3], int(bool(mask[0])) + int(bool(mask[1]))
        else:
            return None
    except (IndexError, TypeError):
        return None
    if not passes:
        return None
    kind = "transposed" if transposed else f"stride {stride[0]}"
    depthwise = len(w) == 4 and w[1] == 1 and w[0] > 1
    name = "backward" if "backward" in op else "forward"
    label = f"{name} {'depthwise ' if depthwise else ''}{w[2]}×{w[3]} {kind}, x {list(x)}, w {list(w)} ({op})"
    weight_elements = w[0] * w[1] * w[2] * w[3]
    return label, 2.0 * x[0] * positions * weight_elements * passes


def conv_calls(prof, units: int, top: int = 16) -> list[dict]:
    """Convolutions grouped by shape: seconds and GFLOP per unit, and the rate each reaches."""
    groups: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for ev in prof.events():
        call = _conv_call(ev)
        if call is not None:
            g = groups[call[0]]
            g[0] += ev.self_cpu_time_total / 1e6 / units
            g[1] += call[1] / 1e9 / units
            g[2] += 1
    rows = [
        {"call": k, "seconds": t, "gflop": f, "calls": n / units, "gflops": f / t if t else None}
        for k, (t, f, n) in groups.items()
    ]
    rows.sort(key=lambda r: -r["seconds"])
    total = {"seconds": sum(r["seconds"] for r in rows), "gflop": sum(r["gflop"] for r in rows)}
    return [total] + rows[:top]


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
        self.prof = profile(activities=[ProfilerActivity.CPU], record_shapes=True)
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
        result = summarise(self.prof, float(sum(v for k, v in ops.items() if "conv" in str(k))), self.active)
        result["conv_calls"] = conv_calls(self.prof, self.active)
        return result


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


def conv_table(calls: list[dict], conv_peak: float) -> str:
    """Markdown: the slowest convolution shapes, their rate, and the whole at the convolution peak."""
    total, rows = calls[0], calls[1:]
    at_peak = total["gflop"] / conv_peak
    lines = [
        f"convolutions: {total['seconds']:.2f} s per unit for {total['gflop']:.0f} GFLOP; "
        f"{at_peak:.2f} s if all ran at the convolution peak",
        "| convolution (per unit) | calls | seconds | GFLOP/s | of the conv peak |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        rate = r["gflops"] or 0.0
        lines.append(f"| {r['call']} | {r['calls']:.2f} | {r['seconds']:.3f} | {rate:.0f} | {rate / conv_peak:.0%} |")
    return "\n".join(lines)


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
    peak, conv_peak = peak_gflops(args.threads), conv_peak_gflops(args.threads)
    print(
        f"practical peaks, {args.threads} thread(s): 2048² float32 matrix product {peak:.0f} GFLOP/s; "
        f"3×3 convolution, 512 channels at 32², batch 8, channels-last {conv_peak:.0f} GFLOP/s"
    )
    results = {"peak_gflops": peak, "conv_peak_gflops": conv_peak, "threads": args.threads, "rows": []}
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
                        f"{r['conv_gflops']:.0f} GFLOP/s ({r['conv_gflops'] / conv_peak:.0%} of the convolution peak)"
                        if r["conv_gflops"]
                        else "–"
                    )
                    shares = ", ".join(f"{k} {v:.0%}" for k, v in r["families"].items() if v >= 0.01)
                    print(
                        f"{res}², {name}, {label}: {r['seconds']:.2f} s; convolutions at {rate}; {shares}", flush=True
                    )
                    print(conv_table(r["conv_calls"], conv_peak), flush=True)
                if len(rows) > 1:
                    print(family_table(rows), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
