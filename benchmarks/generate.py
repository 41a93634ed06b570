"""How fast `generate` makes pictures, and with how much memory, per resolution and batch.

The generator is the `auto` preset at each resolution with random weights (init only:
speed does not depend on the values), noise const, psi 1. One cell times what the
generate loop does per batch: mapping, synthesis, conversion to uint8 and the copy to
host memory; writing PNGs is not included. Warm-up batches (and torch.compile's
compilation) are excluded. Each cell runs in its own process, so that peak memory is
the cell's own: CUDA `torch.cuda.max_memory_allocated`, CPU `ru_maxrss` (the whole
process, Python and PyTorch included). Run by hand, not in CI:

    .venv/bin/python benchmarks/generate.py [--device auto] [--res 64,256,1024] [--batch 8,32]
                                            [--modes eager,compile] [--seconds 10] [--warmup 3]

On a CPU, keep to `--res 64` or `--res 64,256`: 1024² takes minutes per cell there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def run_cell(res: int, batch: int, mode: str, device_name: str, seconds: float, warmup: int) -> dict:
    import torch

    from ganscapes.gan.config import network_kwargs, resolve_preset
    from ganscapes.gan.networks import build_generator
    from ganscapes.make.generate import resolve_device, synthesis_options, to_uint8

    device = resolve_device(device_name)
    torch.manual_seed(0)
    G_kwargs, _ = network_kwargs(resolve_preset("auto", res), res)
    G = build_generator(G_kwargs).eval().requires_grad_(False).to(device)
    run_kwargs = synthesis_options(device)  # exactly as generate runs it
    synthesis = torch.compile(G.synthesis) if mode == "compile" else G.synthesis
    c = torch.zeros([batch, 0], device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elif device.type == "mps":
            torch.mps.synchronize()

    def step():
        z = torch.randn([batch, G.z_dim], device=device)
        ws = G.mapping(z, c, truncation_psi=1.0)
        img = synthesis(ws, noise_mode="const", **run_kwargs)
        return to_uint8(img).permute(0, 2, 3, 1).cpu()

    # as generate: inference mode, or no_grad for compiled runs (dynamo's guards and
    # inference-mode tensors do not mix)
    with torch.no_grad() if mode == "compile" else torch.inference_mode():
        t0 = time.perf_counter()
        for _ in range(warmup):
            step()
        sync()
        warm_s = time.perf_counter() - t0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        n = 0
        t0 = time.perf_counter()
        while True:
            step()
            n += 1
            sync()
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds and n >= 3:
                break
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        peak_kind = "GPU"
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB on Linux
        peak_kind = "RSS"
    return {
        "res": res,
        "batch": batch,
        "mode": mode,
        "device": str(device),
        "images_per_s": n * batch / elapsed,
        "ms_per_batch": elapsed / n * 1000,
        "batches": n,
        "warmup_s": warm_s,
        "peak_bytes": peak,
        "peak_kind": peak_kind,
        "fp16": not run_kwargs["force_fp32"] and G_kwargs["synthesis_kwargs"]["num_fp16_res"] > 0,
    }


def device_description(device_name: str) -> str:
    import torch

    from ganscapes.make.generate import resolve_device

    device = resolve_device(device_name)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    if device.type == "mps":
        return f"Apple MPS, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--res", default="64,256,1024", help="comma-separated resolutions")
    parser.add_argument("--batch", default="8,32", help="comma-separated batch sizes")
    parser.add_argument("--modes", default="eager,compile", help="eager, compile, or both")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per cell (at least 3 batches)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed batches first (compilation happens here)")
    parser.add_argument("--cell", help=argparse.SUPPRESS)  # internal: run one cell, print JSON
    args = parser.parse_args()

    if args.cell:
        res, batch, mode = args.cell.split(",")
        print(json.dumps(run_cell(int(res), int(batch), mode, args.device, args.seconds, args.warmup)))
        return

    resolutions = [int(r) for r in args.res.split(",")]
    batches = [int(b) for b in args.batch.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    for m in modes:
        if m not in ("eager", "compile"):
            parser.error(f"--modes: unknown mode {m!r}")

    print(f"device: {device_description(args.device)}; auto preset, random weights, noise const, psi 1")
    print(f"{args.warmup} warm-up batches, then at least {args.seconds:g} s per cell; PNG writing not included")
    print()
    print("| resolution | batch | mode | images/s | ms/batch | peak memory | note |")
    print("|---|---|---|---|---|---|---|")
    for res in resolutions:
        for batch in batches:
            for mode in modes:
                cmd = [
                    sys.executable,
                    __file__,
                    "--cell",
                    f"{res},{batch},{mode}",
                    "--device",
                    args.device,
                    "--seconds",
                    str(args.seconds),
                    "--warmup",
                    str(args.warmup),
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
                lines = proc.stdout.strip().splitlines()
                if proc.returncode != 0 or not lines:
                    why = (proc.stderr.strip().splitlines() or ["failed"])[-1][:80]
                    print(f"| {res}² | {batch} | {mode} | – | – | – | {why} |", flush=True)
                    continue
                r = json.loads(lines[-1])
                note = ("fp16 top 4 res" if r["fp16"] else "fp32") + f", warm-up {r['warmup_s']:.1f} s"
                print(
                    f"| {res}² | {batch} | {mode} | {r['images_per_s']:.1f} | {r['ms_per_batch']:.0f} | "
                    f"{r['peak_bytes'] / 2**20:,.0f} MiB {r['peak_kind']} | {note} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
