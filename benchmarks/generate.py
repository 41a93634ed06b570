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

Side by side with NVIDIA's code (`--official PATH`, a checkout of
NVlabs/stylegan2-ada-pytorch): one official-format snapshot of the `auto` preset per
resolution, written by NVIDIA's code and loaded by both sides (ours through its
restricted unpickler), then `--rounds` interleaved rounds (A B, B A, …), each side's
round in a fresh process, same threads, batch, fp32 and const noise, of (a) the network
alone — mapping, synthesis, 8-bit conversion — and (b) end to end: `ganscapes generate`
(PNGs and recipes written) against NVIDIA's G at the same batch with the PNG writing of
its `generate.py` (`PIL.Image.save`, one picture after another). The pixels of both are
compared too, and each side's peak memory is reported.

    .venv/bin/python benchmarks/generate.py --official ~/src/stylegan2-ada-pytorch --res 64,256 [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


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


def side_round(
    official: Path, pkl: Path, side: str, batch: int, per_round: int, seconds: float, device_name: str, warmup: int = 2
) -> dict:
    """One round of one side, in this (fresh) process: images/s of the network and end to end.

    A process of its own per round, as each side runs for its users: ours with the CPU
    heap setting `generate` makes (`ganscapes.cpu_heap`), NVIDIA's with glibc's defaults;
    in one shared process whichever ran first would set the allocator for both. With
    `per_round` 0 the round picks it: enough batches for about `seconds`.
    """
    import numpy as np
    import PIL.Image
    import torch
    from official import load_theirs, timed_rate

    from ganscapes.make.generate import generate_images, resolve_device

    dev = resolve_device(device_name)
    fp32 = dev.type != "cuda"  # on CUDA both sides run their top layers in float16, as they generate by default
    c = torch.zeros([batch, 0], device=dev)
    out = Path(tempfile.mkdtemp())
    if side == "ours":
        from ganscapes.gan.checkpoint import load_model
        from ganscapes.make.paint import paint

        model = load_model(pkl, device=dev, generator_only=True)  # as the painting commands load it
        G = model.G_ema

        def network() -> np.ndarray:  # mapping, synthesis and 8-bit pixels, as `generate` paints
            with torch.inference_mode():
                ws = G.mapping(torch.randn([batch, G.z_dim], device=dev), c)
            return paint(G, ws, "const", batch)

        def end_to_end(count: int) -> int:
            return len(generate_images(model, range(count), batch=batch, device=dev, out=out, progress=False).images)
    else:
        theirs = load_theirs(official, pkl).to(dev)

        def network() -> np.ndarray:
            with torch.no_grad():
                z = torch.randn([batch, theirs.z_dim], device=dev)
                img = theirs(z, c, truncation_psi=1, noise_mode="const", force_fp32=fp32)
                return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()

        def end_to_end(count: int) -> int:
            for k in range(0, count, batch):
                pixels = network().transpose(0, 2, 3, 1)
                for j, picture in enumerate(pixels):  # as NVIDIA's generate.py saves each picture
                    PIL.Image.fromarray(picture, "RGB").save(out / f"seed{k + j:04d}.png")
            return count

    for _ in range(warmup):
        start = time.perf_counter()
        network()
    if not per_round:
        per_round = max(2, round(seconds / max(time.perf_counter() - start, 1e-3)))
    net = timed_rate(lambda: sum(len(network()) for _ in range(per_round)))
    e2e = timed_rate(lambda: end_to_end(per_round * batch))
    shutil.rmtree(out, ignore_errors=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"network": net, "end_to_end": e2e, "per_round": per_round, "peak_rss_mb": rss / 1024}


def side_by_side(official: Path, res: int, batch: int, rounds: int, seconds: float, device_name: str = "cpu") -> dict:
    """Interleaved rounds of ours and NVIDIA's at one resolution, each in a fresh process
    (see the module's docstring), and the pixels both paint from the same z."""
    import numpy as np
    import torch
    from official import load_theirs, official_snapshot, rounds_summary, run_side

    from ganscapes.gan.checkpoint import load_model
    from ganscapes.make.generate import resolve_device, synthesis_options, to_uint8

    dev = resolve_device(device_name)
    fp32 = dev.type != "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        pkl = official_snapshot(official, res, Path(tmp) / "snapshot.pkl")
        per_round = 0  # the first round (ours) picks it; every later one reuses it
        runs: dict[str, list[dict]] = {"ours": [], "theirs": []}
        for k in range(rounds):
            for side in ("ours", "theirs") if k % 2 == 0 else ("theirs", "ours"):
                opts = ["--side-round", side, "--official", str(official), "--snapshot", str(pkl), "--batch",
                        str(batch), "--per-round", str(per_round), "--seconds", str(seconds), "--device", device_name,
                        "--threads", str(torch.get_num_threads())]  # fmt: skip
                r = run_side(__file__, opts)
                per_round = r["per_round"]
                runs[side].append(r)

        # The same z through both: how far apart are the pictures (in 8-bit levels)?
        G = load_model(pkl, device=dev, generator_only=True).G_ema
        theirs = load_theirs(official, pkl).to(dev)
        c = torch.zeros([batch, 0], device=dev)
        z = torch.from_numpy(np.random.RandomState(0).randn(batch, G.z_dim)).float().to(dev)
        with torch.no_grad():
            a = to_uint8(G.synthesis(G.mapping(z, c), noise_mode="const", **synthesis_options(dev))).int()
            b = to_uint8(theirs(z, c, noise_mode="const", force_fp32=fp32)).int()
        diff = (a - b).abs()

    def summary(key: str) -> dict:
        return rounds_summary([r[key] for r in runs["ours"]], [r[key] for r in runs["theirs"]])

    return {
        "res": res,
        "batch": batch,
        "images_per_round": per_round * batch,
        "network": summary("network"),
        "end_to_end": summary("end_to_end"),
        "peak_memory_mb": {side: [r["peak_rss_mb"] for r in rs] for side, rs in runs.items()},
        "max_level_difference": int(diff.max()),
        "share_differing": float((diff > 0).float().mean()),
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
    parser.add_argument("--official", type=Path, help="NVIDIA's checkout: measure side by side with it")
    parser.add_argument("--rounds", type=int, default=5, help="--official: interleaved rounds per side")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--json", type=Path, help="--official: also write the results here")
    parser.add_argument("--side-round", choices=["ours", "theirs"], help=argparse.SUPPRESS)  # internal: one round
    parser.add_argument("--snapshot", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--per-round", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.side_round:
        r = side_round(
            args.official, args.snapshot, args.side_round, int(args.batch), args.per_round, args.seconds, args.device
        )
        print(json.dumps(r))
        return

    if args.official:
        import torch
        from official import machine_line, ratio_row

        print(machine_line(torch.get_num_threads()))
        print("| measured | ours | NVIDIA's | ours / NVIDIA's |")
        print("|---|---|---|---|")
        results = []
        for res in [int(r) for r in args.res.split(",")]:
            batch = int(args.batch.split(",")[0])
            r = side_by_side(args.official, res, batch, args.rounds, args.seconds, args.device)
            results.append(r)
            print(ratio_row(f"{res}², batch {batch}: network", "img/s", r["network"]), flush=True)
            print(ratio_row(f"{res}², batch {batch}: end to end, PNGs written", "img/s", r["end_to_end"]), flush=True)
            ours_mb, theirs_mb = (max(r["peak_memory_mb"][side]) for side in ("ours", "theirs"))
            print(f"| {res}²: peak memory | {ours_mb:,.0f} MB | {theirs_mb:,.0f} MB | {ours_mb / theirs_mb:.2f} |")
            print(
                f"|  {res}²: same z, pixels | max {r['max_level_difference']} level(s) apart, "
                f"{r['share_differing']:.1e} of them differ | | |",
                flush=True,
            )
        if args.json:
            args.json.write_text(json.dumps({"machine": machine_line(torch.get_num_threads()), "results": results}))
        return

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
