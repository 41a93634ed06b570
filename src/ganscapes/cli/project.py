"""`ganscapes project`: a painting or photo of yours into the model's latent space."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from ganscapes.cli.app import app
from ganscapes.cli.shared import (
    CLIP_MODEL,
    CLIP_PRETRAINED,
    CLIP_WEIGHTS,
    DEVICE,
    MODEL_HELP,
    Device,
    load_clip,
    model_file,
)
from ganscapes.data.aspect import ASPECT_RANGE, Format, is_aspect, parse_aspect
from ganscapes.errors import UserError


@app.command()
def project(
    target: Path = typer.Argument(..., help="The painting or photo to project (any picture prepare reads)."),
    model: Path = typer.Option(..., "--model", help=MODEL_HELP),
    out: Path = typer.Option(
        ..., "--out", help="Folder for projected.png, target.png, latents.npz, strip.png, history.csv, projection.mp4."
    ),
    format: Format = typer.Option(
        Format.CENTER_RECT, "--format", help="How to make the target square, as prepare does for paintings."
    ),
    aspect: str = typer.Option(
        "auto", "--aspect", help="center-rect's crop: width/height (1.27, 4:3); auto: the model's training aspect."
    ),
    steps_w: int = typer.Option(1000, "--steps-w", help="Steps in W (one w for all layers), NVIDIA's projector."),
    steps_wplus: int = typer.Option(500, "--steps-wplus", help="Steps in W+ (one w per layer) after W; 0: W only."),
    lr: float = typer.Option(0.1, "--lr", help="Peak learning rate in W."),
    lr_wplus: float = typer.Option(0.01, "--lr-wplus", help="Peak learning rate in W+."),
    noise_opt: bool = typer.Option(
        True, "--noise-opt/--no-noise-opt", help="Optimise the noise maps in W, as NVIDIA's projector does."
    ),
    lpips_weights: list[Path] = typer.Option(
        [],
        "--lpips-weights",
        help="Local files with VGG16's weights and LPIPS's heads (repeat for two files): LPIPS replaces "
        "the pixel and pyramid distance.",
        show_default="none: pixels + Laplacian pyramid",
    ),
    pixel_weight: float | None = typer.Option(
        None, "--pixel-weight", help="Weight of the pixel distance.", show_default="1, or 0 with LPIPS"
    ),
    laplacian_weight: float | None = typer.Option(
        None, "--laplacian-weight", help="Weight of the Laplacian pyramid distance.", show_default="1, or 0 with LPIPS"
    ),
    clip_weight: float = typer.Option(
        0.1, "--clip-weight", help="Weight of CLIP's image distance, when CLIP's weights are here (0: no CLIP)."
    ),
    w_avg_samples: int = typer.Option(
        10_000, "--w-avg-samples", help="Random latents whose mean w is the starting point."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the starting point's samples and of the noise."),
    class_idx: int | None = typer.Option(
        None, "--class", help="Class index for conditional models.", show_default="none"
    ),
    video: bool = typer.Option(True, "--video/--no-video", help="Write projection.mp4, the search as a film."),
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    clip_weights: Path | None = CLIP_WEIGHTS,
    device: Device = DEVICE,
) -> None:
    """Find the latent whose picture is TARGET; mix, edit and animate it like any other."""
    from ganscapes.clip.encoder import WEIGHTS_ENV
    from ganscapes.fileio import writable_folder
    from ganscapes.make import project as p

    if steps_w == 0 and steps_wplus == 0:
        raise UserError("--steps-w and --steps-wplus are both 0: there is nothing to optimise.")
    cfg = p.ProjectConfig(
        steps_w=steps_w,
        steps_wplus=steps_wplus,
        lr=lr,
        lr_wplus=lr_wplus,
        optimize_noise=noise_opt,
        pixel_weight=pixel_weight,
        laplacian_weight=laplacian_weight,
        clip_weight=clip_weight,
        seed=seed,
        class_idx=class_idx,
        w_avg_samples=w_avg_samples,
    )
    wanted = parse_aspect(aspect)
    if wanted is not None and not is_aspect(wanted):
        raise UserError(f"--aspect must be from {ASPECT_RANGE[0]:g} to {ASPECT_RANGE[1]:g}, not {aspect}.")
    model_path = model_file(model)
    if not target.is_file():
        raise UserError(f"The target picture {target} does not exist.")
    from ganscapes.make.lpips import check_files

    check_files(lpips_weights)
    writable_folder(out)

    from tqdm import tqdm

    from ganscapes.device import resolve_device
    from ganscapes.gan.checkpoint import load_model

    dev = resolve_device(device.value)
    loaded = load_model(model_path, device=dev, generator_only=True)
    G = loaded.G_ema.to(dev).eval().requires_grad_(False)
    if class_idx is not None or G.c_dim:
        from ganscapes.make.seeds import class_label

        class_label(G.c_dim, class_idx)  # validates the class before any work
    shape = p.load_target(
        target,
        G.img_resolution,
        G.img_channels,
        format.value,
        (wanted or p.model_aspect(loaded)) if format is Format.CENTER_RECT else None,
    )
    lpips = None
    if lpips_weights:
        from ganscapes.make.lpips import load_lpips

        lpips = load_lpips(lpips_weights, dev)
    clip, clip_id = None, None
    if clip_weight > 0:
        explicit = clip_weights is not None or os.environ.get(WEIGHTS_ENV)
        try:
            encoder = load_clip(clip_model, clip_pretrained, clip_weights, dev)
        except UserError as e:
            if explicit:
                raise
            typer.echo(f"Projecting without the CLIP term: {e}", err=True)
        else:
            from ganscapes.clip.tensor_scorer import TensorEmbedder

            encoder.model.requires_grad_(False)
            clip, clip_id = TensorEmbedder(encoder), encoder.model_id

    total = cfg.steps_w + cfg.steps_wplus
    with tqdm(total=total, desc="projecting", unit="step") as bar:

        def report(row: dict) -> None:
            bar.set_postfix(phase=row["phase"], loss=f"{row['loss']:.4f}")
            bar.update(1)

        result = p.project(G, shape.pixels, cfg, dev, lpips=lpips, clip=clip, progress=report)
    reached = p.save_projection(result, shape, loaded, cfg, out, dev, lpips=lpips, clip_model=clip_id, video=video)
    used = " + ".join(k for k, v in result.weights.items() if v > 0)
    extra = f", LPIPS {reached['lpips']:.4f}" if "lpips" in reached else ""
    typer.echo(
        f"Projected {target.name} in {total} steps ({used}): PSNR {reached['psnr_db']:.2f} dB, mean error "
        f"{reached['mae_levels']:.1f} of 255 levels{extra}."
    )
    typer.echo(
        f"{out / p.PICTURE} (its recipe rebuilds it), {out / 'latents.npz'} (row 0: the result, row 1: W only), "
        f"{out / p.STRIP}" + (f", {out / p.VIDEO}" if video else "") + "."
    )
    typer.echo(f"Next: ganscapes mix --model {model} --forms-from {out / 'latents.npz'}:0 --styles SEEDS --out DIR")
