"""The GAN commands: train, metrics, import-official, and env."""

from __future__ import annotations

from pathlib import Path

import typer

from ganscapes.cli.app import app
from ganscapes.cli.shared import (
    DEVICE,
    MODEL_HELP,
    Device,
    model_file,
    print_rows,
)
from ganscapes.errors import UserError
from ganscapes.fileio import append_jsonl, writable_folder


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="Prepared dataset (folder or .zip)."),
    outdir: Path = typer.Option(Path("runs"), "--outdir", help="Where numbered run folders go."),
    cfg: str = typer.Option("auto", help="Preset: auto, stylegan2, paper256, paper512, paper1024, cifar, tiny."),
    kimg: float | None = typer.Option(None, help="Train for this many thousand images.", show_default="preset (25000)"),
    batch: int | None = typer.Option(None, help="Total batch size.", show_default="preset"),
    batch_gpu: int | None = typer.Option(
        None, help="Images per device per round (gradient accumulation).", show_default="batch / devices"
    ),
    gamma: float | None = typer.Option(None, help="R1 regularisation weight.", show_default="preset"),
    aug: str = typer.Option("ada", help="Augmentation: ada (adaptive p), fixed (keep --p), noaug."),
    p: float = typer.Option(0.0, "--p", help="Starting augmentation probability (also in ada mode)."),
    target: float = typer.Option(0.6, help="ADA target for the overfitting heuristic r_t."),
    augpipe: str = typer.Option(
        "bgc", help="Augmentations: blit, geom, color, filter, noise, cutout, bg, bgc, bgcf, bgcfn, bgcfnc."
    ),
    subset: int | None = typer.Option(
        None, help="Train on a random subset of this many images (chosen by --seed).", show_default="all"
    ),
    mirror: bool = typer.Option(False, help="Add x-flipped copies of the dataset."),
    cond: bool = typer.Option(False, help="Condition on the dataset's labels."),
    freezed: int = typer.Option(0, help="Freeze-D: keep the first N layers of D fixed."),
    fp32: bool = typer.Option(False, help="No float16 and no clamping (as train.py --fp32)."),
    snap: int = typer.Option(50, help="Snapshot every N ticks."),
    kimg_per_tick: float = typer.Option(4.0, help="Thousands of images per tick (a progress line in log.jsonl)."),
    snap_minutes: float | None = typer.Option(None, help="Also snapshot after this many minutes.", show_default="off"),
    keep: int = typer.Option(5, help="Snapshots to keep (plus the best by SWD)."),
    metrics: str = typer.Option("swd", help="Metrics at snapshots, comma-separated ('' for none)."),
    metric_images: int = typer.Option(512, help="Images per set for the snapshot metrics."),
    seed: int = typer.Option(0, help="Random seed."),
    max_hours: float | None = typer.Option(
        None, help="Stop with a snapshot before this many hours.", show_default="off"
    ),
    workers: int | None = typer.Option(
        None, help="Data-loading worker processes.", show_default="3, at most the usable cores"
    ),
    device: str = typer.Option("auto", help="auto, cuda, mps or cpu."),
    resume: str | None = typer.Option(
        None,
        help="'latest' (continue the newest run exactly), or a model file or 'starter' (transfer learning).",
        show_default="off",
    ),
    dry_run: bool = typer.Option(False, help="Print the resolved configuration and exit."),
) -> None:
    """Train StyleGAN2-ADA on a prepared dataset (resumable; torchrun for several GPUs)."""
    import json

    from ganscapes.gan.train_config import TrainConfig
    from ganscapes.gan.training import resolve_training
    from ganscapes.gan.training import train as run_training

    config = TrainConfig(
        data=str(data),
        outdir=str(outdir),
        cfg=cfg,
        kimg=kimg,
        batch=batch,
        batch_gpu=batch_gpu,
        gamma=gamma,
        aug=aug,
        p=p,
        target=target,
        augpipe=augpipe,
        subset=subset,
        mirror=mirror,
        cond=cond,
        freezed=freezed,
        fp32=fp32,
        snap=snap,
        snap_minutes=snap_minutes,
        kimg_per_tick=kimg_per_tick,
        keep=keep,
        metrics=[m for m in metrics.split(",") if m.strip()],
        metric_images=metric_images,
        seed=seed,
        max_hours=max_hours,
        workers=workers,
        device=device,
        resume=resume,
    )
    if dry_run:
        typer.echo(json.dumps(resolve_training(config).to_dict(), indent=2))
        return
    result = run_training(config)
    typer.echo(
        f"Run {result.run_dir}: {result.kimg:.1f} kimg, augment p {result.augment_p:.3f}; "
        f"last snapshot {result.snapshot}."
    )


@app.command("import-official")
def import_official(
    snapshot: Path = typer.Argument(..., help="An official StyleGAN2-ADA network-snapshot-*.pkl."),
    out: Path = typer.Option(..., "--out", help="Model file to write (.safetensors)."),
) -> None:
    """Convert an official NVIDIA snapshot to a ganscapes model, without running its code."""
    from ganscapes.gan.checkpoint import SUFFIX, load_model, save_model

    if out.suffix != SUFFIX:
        raise UserError(f"--out must name a {SUFFIX} file, not {out.name!r}.")
    if snapshot.suffix.lower() != ".pkl":
        raise UserError(f"{snapshot} is not an official snapshot (.pkl).")
    model = load_model(snapshot)
    save_model(out, model)
    R = model.resolution
    print_rows(
        [
            ("model", str(out)),
            ("source", model.meta["source"]),
            ("networks", ", ".join(model.networks)),
            ("resolution", f"{R}x{R}"),
            ("channels", str(model.img_channels)),
            ("c_dim", str(model.c_dim)),
            ("num_ws", str(model.num_ws)),
            ("model hash", model.model_hash),
        ]
    )


# ---------------------------------------------------------------------------------------
# env


@app.command()
def env() -> None:
    """Versions and devices, for bug reports."""
    from ganscapes.env import environment_report

    print_rows(environment_report())


# ---------------------------------------------------------------------------------------
# metrics


@app.command("metrics")
def metrics_cmd(
    model: Path = typer.Option(..., "--model", help=MODEL_HELP),
    data: Path = typer.Option(..., "--data", help="The dataset to compare with (folder or .zip)."),
    metrics: str = typer.Option("swd", "--metrics", help="Comma-separated: swd, fid50k_full, kid50k_full."),
    num: int | None = typer.Option(
        None,
        "--num",
        help="Generated images per metric (SWD: also real images).",
        show_default="the protocol: swd 16384 (at most the dataset), fid/kid 50000",
    ),
    batch: int = typer.Option(16, "--batch", help="Images per network call."),
    device: Device = DEVICE,
    inception: Path | None = typer.Option(
        None,
        "--inception",
        help="NVIDIA's inception-2015-12-05.pt, for FID and KID (runs its TorchScript).",
        show_default="$GANSCAPES_INCEPTION",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for the fakes, the real subset and the metrics' randomness."),
    out: Path | None = typer.Option(
        None, "--out", help="Append the results as one JSON line to this file.", show_default="none"
    ),
) -> None:
    """Measure a model against its data: SWD (no weights needed), FID and KID (Inception file needed)."""
    import datetime

    from ganscapes.device import resolve_device
    from ganscapes.gan.checkpoint import load_model
    from ganscapes.gan.metrics import parse_metrics, run_metrics

    names = parse_metrics(metrics)
    model = model_file(model)
    if out is not None:  # before minutes of measuring, not after
        if out.is_dir():
            raise UserError(f"--out {out} is a folder; name a file to append the results to.")
        writable_folder(out.parent)
    dev = resolve_device(device.value)
    loaded = load_model(model, device=dev, generator_only=True)
    run = run_metrics(
        loaded, data, names, num_images=num, batch=batch, device=dev, seed=seed, inception=inception, progress=True
    )
    width = max(len(n) for n in names)
    for name in names:
        counts = run.counts[name]
        sizes = f"{counts['reals']} reals, {counts['fakes']} fakes"
        if name == "swd":
            levels = ", ".join(
                f"{k.removeprefix('SWDx1e3_')}: {v:.4f}"
                for k, v in run.results.items()
                if k.startswith("SWDx1e3_") and k != "SWDx1e3_avg"
            )
            line = f"{run.results['SWDx1e3_avg']:.4f}  (SWDx1e3_avg; per level {levels}; {sizes})"
        else:
            line = f"{run.results[name]:.4f}  ({sizes})"
        typer.echo(f"{name.ljust(width)}  {line}")
    if out is not None:
        record = {
            "results": run.results,
            "metrics": names,
            "counts": run.counts,
            "model": str(model),
            "model_hash": loaded.model_hash,
            "data": str(data),
            "seed": seed,
            "device": run.device,
            "seconds": round(run.seconds, 3),
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        append_jsonl(out, record)
