"""How closely `ganscapes project` reconstructs paintings the model never saw.

Paints `--count` procedural paintings with a seed the training data did not use (the
starter model trained on `ganscapes sample --seed 2026`; these use `--seed 9000`),
projects each with the default settings (1,000 steps in W as NVIDIA's projector, then
500 in W+; pixels + Laplacian pyramid; no CLIP, no LPIPS), and reports the PSNR and mean
absolute error of the W result and of the final W+ result, per painting and as mean ±
standard deviation. Writes a JSON file and a sheet (rows: target | W | W+). Run by hand:

    .venv/bin/python benchmarks/project.py [--model starter] [--count 6] [--threads 1]
        [--json benchmarks/results/project-heldout.json] [--sheet docs/project-heldout.png]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="starter")
    ap.add_argument("--count", type=int, default=6)
    ap.add_argument("--seed", type=int, default=9000, help="seed of the held-out paintings")
    ap.add_argument("--steps-w", type=int, default=1000)
    ap.add_argument("--steps-wplus", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/project-heldout.json"))
    ap.add_argument("--sheet", type=Path, default=Path("docs/project-heldout.png"))
    args = ap.parse_args()

    import torch
    from PIL import Image

    from ganscapes.data.grid import image_grid
    from ganscapes.data.sample import make_samples
    from ganscapes.gan.checkpoint import load_model
    from ganscapes.gan.model_ref import resolve_model
    from ganscapes.make import project as pj
    from ganscapes.make.paint import paint

    torch.set_num_threads(args.threads)
    choice = resolve_model(Path(args.model))
    model = load_model(choice.path)
    G = model.G_ema.eval().requires_grad_(False)
    cfg = pj.ProjectConfig(steps_w=args.steps_w, steps_wplus=args.steps_wplus)
    rows, tiles = [], []
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_samples(Path(tmp), n=args.count, seed=args.seed, progress=False)
        for path in paths:
            target = pj.load_target(path, G.img_resolution, G.img_channels, "center-rect", pj.model_aspect(model))
            start = time.perf_counter()
            result = pj.project(G, target.pixels, cfg, "cpu")
            seconds = time.perf_counter() - start
            w_only = paint(G, result.w_only[None])[0]
            row = {
                "painting": path.name,
                "w": pj.reconstruction_errors(w_only, target.pixels),
                "wplus": pj.reconstruction_errors(result.pixels, target.pixels),
                "seconds": round(seconds, 1),
            }
            rows.append(row)
            print(
                f"{path.name}: W {row['w']['psnr_db']:.2f} dB, W+ {row['wplus']['psnr_db']:.2f} dB "
                f"(mean error {row['wplus']['mae_levels']:.1f} levels), {seconds:.0f} s",
                flush=True,
            )
            zoom = max(1, 128 // G.img_resolution)
            for px in (target.pixels, w_only, result.pixels):
                tiles.append(Image.fromarray(px).resize((px.shape[1] * zoom,) * 2, Image.Resampling.NEAREST))

    def summary(phase: str, key: str) -> dict:
        values = [r[phase][key] for r in rows]
        return {
            "mean": round(statistics.mean(values), 3),
            "sd": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0,
        }

    report = {
        "model": str(choice.path),
        "model_hash": model.model_hash,
        "held_out": f"ganscapes sample -n {args.count} --seed {args.seed} (training used --seed 2026)",
        "settings": {"steps_w": cfg.steps_w, "steps_wplus": cfg.steps_wplus, "distance": "pixels + laplacian"},
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "paintings": rows,
        "w": {k: summary("w", k) for k in ("psnr_db", "mae_levels")},
        "wplus": {k: summary("wplus", k) for k in ("psnr_db", "mae_levels")},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    size = tiles[0].width
    labels = []
    for r in rows:
        labels += ["target", f"W {r['w']['psnr_db']:.1f} dB", f"W+ {r['wplus']['psnr_db']:.1f} dB"]
    sheet = image_grid(
        tiles,
        6,
        size,
        gap=2,
        background=(255, 255, 255),
        labels=labels,
        label_band=16,
        label_at=(3, size + 2),
        label_colour=(0, 0, 0),
    )
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.sheet)
    w, wp = report["w"], report["wplus"]
    print(
        f"W: PSNR {w['psnr_db']['mean']:.2f} ± {w['psnr_db']['sd']:.2f} dB; W+: PSNR {wp['psnr_db']['mean']:.2f} ± "
        f"{wp['psnr_db']['sd']:.2f} dB, mean error {wp['mae_levels']['mean']:.1f} ± {wp['mae_levels']['sd']:.1f} "
        f"levels ({len(rows)} held-out paintings). {args.json}, {args.sheet}"
    )


if __name__ == "__main__":
    main()
