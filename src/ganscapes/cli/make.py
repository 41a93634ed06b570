"""Making pictures: generate, mix, post, reproduce, info, guide."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from ganscapes.cli.app import app
from ganscapes.cli.data import parse_aspect
from ganscapes.cli.directions import DIRECTIONS, EDIT, check_edit_options, load_edits
from ganscapes.cli.shared import (
    CLIP_BATCH,
    CLIP_CACHE,
    CLIP_MODEL,
    CLIP_PRETRAINED,
    CLIP_WEIGHTS,
    CLIP_WORKERS,
    DEVICE,
    MODEL_HELP,
    NEGATIVE,
    TEMPLATE,
    Device,
    NoiseMode,
    clip_tools,
    echo_top,
    load_clip,
    make_prompt,
    model_file,
    post_outputs,
    print_rows,
)
from ganscapes.errors import UserError


@app.command()
def generate(
    model: Path = typer.Option(..., "--model", help=MODEL_HELP),
    seeds: str = typer.Option(..., "--seeds", help="Seeds, e.g. 0-999 or 0-99,200,300-310 (ranges inclusive)."),
    out: Path = typer.Option(..., "--out", help="Folder for seedNNNN.png and latents.npz."),
    psi: float = typer.Option(1.0, "--psi", help="Truncation psi: 1 = no truncation, smaller = closer to the average."),
    trunc_cutoff: int | None = typer.Option(
        None, "--trunc-cutoff", help="Truncate only the first N of the num_ws layers.", show_default="all layers"
    ),
    noise_mode: NoiseMode = typer.Option(
        NoiseMode.CONST, "--noise-mode", help="Per-pixel noise: the stored const maps, random, or none."
    ),
    class_idx: int | None = typer.Option(
        None, "--class", help="Class index; required for conditional models, refused for others.", show_default="none"
    ),
    batch: int = typer.Option(8, "--batch", help="Images per network call (rounded up to a multiple of 4)."),
    device: Device = DEVICE,
    compile: bool = typer.Option(
        False, "--compile/--no-compile", help="torch.compile the synthesis network (falls back if it fails)."
    ),
    prompt: list[str] = typer.Option(
        [],
        "--prompt",
        help="Rank the pictures by CLIP similarity to this (repeat for several).",
        show_default="no ranking",
    ),
    top: int = typer.Option(
        6, "--top", help="With --prompt: how many of the best to keep in OUT/ranked/top/ (all, if fewer seeds)."
    ),
    negative: list[str] = NEGATIVE,
    template: list[str] = TEMPLATE,
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    clip_weights: Path | None = CLIP_WEIGHTS,
    cache: Path | None = CLIP_CACHE,
    clip_batch: int = CLIP_BATCH,
    workers: int | None = CLIP_WORKERS,
    post: bool = typer.Option(
        False, "--post", help="Also post-process the pictures (the top picks with --prompt) into a post/ folder."
    ),
    edit: list[str] = EDIT,
    directions: Path | None = DIRECTIONS,
) -> None:
    """Make pictures from a model, one per seed, with their latents (seed, z, w); optionally the best for a prompt."""
    from ganscapes.make.generate import generate_images
    from ganscapes.make.seeds import parse_seeds

    seed_list = parse_seeds(seeds)
    check_edit_options(edit, directions)
    model = model_file(model)
    edits = None
    if edit:
        from ganscapes.gan.checkpoint import load_model

        model = load_model(model, generator_only=True)
        edits = load_edits(edit, directions, model)
    clip = None
    if prompt:  # check everything before spending minutes generating
        from ganscapes.clip.rank import check_top

        the_prompt = make_prompt(prompt, negative, template)
        if top > len(seed_list):  # a quick try with a few seeds: keep them all rather than refuse
            typer.echo(f"note: --top {top} but {len(seed_list)} seed(s); keeping all {len(seed_list)}.", err=True)
            top = len(seed_list)
        check_top(top, len(seed_list), "seeds")
        clip = clip_tools(clip_model, clip_pretrained, clip_weights, cache, device.value)
    elif negative or template:
        raise UserError("--negative and --template only apply with --prompt.")
    result = generate_images(
        model,
        seed_list,
        psi=psi,
        truncation_cutoff=trunc_cutoff,
        noise_mode=noise_mode.value,
        class_idx=class_idx,
        batch=batch,
        device=device.value,
        out=out,
        compile=compile,
        edits=edits,
    )
    n = len(result.images)
    names = result.images[0].name if n == 1 else f"{result.images[0].name} … {result.images[-1].name}"
    typer.echo(
        f"{n} image(s) in {result.out} ({names}); latents in {result.latents}; "
        f"{result.device}{', compiled' if result.compiled else ''}, {n / result.seconds:.1f} images/s"
    )
    if clip is not None:
        from ganscapes.make.pick import rank_generated

        encoder, emb_cache = clip
        with emb_cache:
            ranking, outputs = rank_generated(
                result, encoder, the_prompt, top, emb_cache, batch=clip_batch, workers=workers
            )
        echo_top(ranking, top, result.out)
        typer.echo(
            f"Ranked by {the_prompt.describe()}: {outputs.table}; "
            f"the top {top} with their latents in {outputs.top_dir}."
        )
    if post:
        picks = outputs.top if clip is not None else result.images
        post_outputs(picks, (outputs.top_dir.parent if clip is not None else result.out) / "post")


@app.command()
def mix(
    model: Path = typer.Option(..., "--model", help=MODEL_HELP),
    out: Path = typer.Option(..., "--out", help="Folder for grid.png, forms/, styles/, cells/ and mix.npz."),
    forms: str | None = typer.Option(
        None, "--forms", help="Seeds of the form pictures (columns), e.g. 1-7.", show_default="none"
    ),
    styles: str | None = typer.Option(
        None, "--styles", help="Seeds of the style pictures (rows), e.g. 10,11,12.", show_default="none"
    ),
    forms_from: str | None = typer.Option(
        None,
        "--forms-from",
        help="Form latents from a latents.npz (or mix.npz: its cells): FILE.npz:0,1,2 (rows) or FILE.npz.",
        show_default="none",
    ),
    styles_from: str | None = typer.Option(
        None,
        "--styles-from",
        help="Style latents from a latents.npz (or mix.npz: its cells): FILE.npz:0,1 or FILE.npz.",
        show_default="none",
    ),
    layers: str = typer.Option(
        "auto",
        "--layers",
        help="Layers taken from the style: auto (by resolution), coarse, middle, fine, all, none, 0-6, 8-, 0,2,4.",
    ),
    psi: float = typer.Option(1.0, "--psi", help="Truncation psi for seeds (latents from files are used as stored)."),
    trunc_cutoff: int | None = typer.Option(
        None, "--trunc-cutoff", help="Truncate only the first N layers.", show_default="all layers"
    ),
    noise_mode: NoiseMode = typer.Option(
        NoiseMode.CONST, "--noise-mode", help="Per-pixel noise: const, random or none."
    ),
    class_idx: int | None = typer.Option(
        None, "--class", help="Class index for conditional models.", show_default="none"
    ),
    cell_size: int | None = typer.Option(
        None, "--cell-size", help="Side of a grid cell in pixels.", show_default="model resolution, at most 256"
    ),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Write F1…, S1… on the grid's headers."),
    batch: int = typer.Option(8, "--batch", help="Pictures per network call."),
    device: Device = DEVICE,
    post: bool = typer.Option(
        False, "--post", help="Also post-process the results (0.1/99.9 stretch, dataset aspect) into a post/ folder."
    ),
    edit: list[str] = EDIT,
    directions: Path | None = DIRECTIONS,
) -> None:
    """Style mixing: the forms x styles grid, each cell a form's composition with a style's colours."""
    from ganscapes.device import resolve_device
    from ganscapes.gan.checkpoint import load_model
    from ganscapes.make.mix import file_latents, layer_range, seed_latents, style_mix
    from ganscapes.make.seeds import check_truncation_cutoff, parse_seeds

    if (forms is None) == (forms_from is None):
        raise UserError("Give the forms with exactly one of --forms SEEDS or --forms-from FILE.npz:ROWS.")
    if (styles is None) == (styles_from is None):
        raise UserError("Give the styles with exactly one of --styles SEEDS or --styles-from FILE.npz:ROWS.")
    if cell_size is not None and not 16 <= cell_size <= 2048:
        raise UserError(f"--cell-size must be between 16 and 2048 pixels, not {cell_size}.")
    form_seeds = parse_seeds(forms) if forms is not None else None
    style_seeds = parse_seeds(styles) if styles is not None else None
    check_edit_options(edit, directions)
    dev = resolve_device(device.value)
    loaded = load_model(model_file(model), device=dev, generator_only=True)
    G = loaded.G_ema
    chosen = layer_range(layers, G.num_ws)
    check_truncation_cutoff(trunc_cutoff, G.num_ws)  # even when every latent comes from a file

    def latents(seeds, spec):
        if seeds is not None:
            return seed_latents(G, seeds, psi, trunc_cutoff, class_idx, dev)
        return file_latents(spec, loaded)

    result = style_mix(
        loaded,
        latents(form_seeds, forms_from),
        latents(style_seeds, styles_from),
        chosen,
        out,
        noise_mode=noise_mode.value,
        device=dev,
        cell_size=cell_size,
        labels=labels,
        batch=batch,
        edits=load_edits(edit, directions, loaded),
    )
    span = (
        f"{chosen[0]}-{chosen[-1]}"
        if chosen and chosen == list(range(chosen[0], chosen[-1] + 1))
        else ",".join(map(str, chosen)) or "none"
    )
    typer.echo(
        f"{len(result.forms)} forms x {len(result.styles)} styles, style layers {span} of {G.num_ws}: "
        f"{result.grid}; cells in {out / 'cells'}; latents in {result.latents}."
    )
    if post:
        post_outputs([p for row in result.cells for p in row], out / "post", loaded.meta.get("aspect"))


def parse_post_aspect(value: str) -> float | None:
    if value.strip().lower() == "auto":
        return None
    aspect = parse_aspect(value)
    if aspect is None or aspect <= 0:
        raise UserError(f"--aspect must be 'auto' or a positive ratio such as 1.27 or 4:3, not {value!r}.")
    return aspect


@app.command()
def post(
    images: list[Path] = typer.Argument(..., help="PNG or other image files to finish."),
    out: Path = typer.Option(..., "--out", help="Folder for the finished PNGs (same names)."),
    low: float = typer.Option(0.1, "--low", help="Percentile mapped to 0, per channel."),
    high: float = typer.Option(99.9, "--high", help="Percentile mapped to 255, per channel."),
    aspect: str = typer.Option(
        "auto",
        "--aspect",
        help="Width/height to restore: auto (the training data's, from the recipe or --model), or e.g. 1.27.",
    ),
    width: int | None = typer.Option(
        None, "--width", help="Output width in pixels.", show_default="the picture's width"
    ),
    model: Path | None = typer.Option(
        None,
        "--model",
        help="With --aspect auto: take the aspect from this model's metadata (a file or a run folder).",
        show_default="none",
    ),
) -> None:
    """Stretch the contrast per channel and restore the paintings' aspect ratio."""
    from ganscapes.make.post import PostSettings, post_files

    settings = PostSettings(low=low, high=high, aspect=parse_post_aspect(aspect), width=width)
    model_aspect = None
    if model is not None:
        from ganscapes.gan.checkpoint import load_model

        model_aspect = load_model(model_file(model)).meta.get("aspect")
    result = post_files(images, out, settings, model_aspect=model_aspect)
    if any(origin == "none" for _, origin in result.aspects):
        typer.echo(
            "note: no aspect recorded for some pictures (no recipe and no --model); they keep 1.0. "
            "Pass --aspect 1.27 or --model to restore one.",
            err=True,
        )
    first, origin = result.aspects[0]
    typer.echo(f"{len(result.outputs)} picture(s) in {out}; stretch {low:g}/{high:g} %, aspect {first:.3f} ({origin}).")


# reproduce's exit status for a rebuild that differs; 1 (a UserError) and 2 (Click's usage errors) are taken.
DIFFERS = 3


@app.command()
def reproduce(
    image: Path = typer.Argument(
        ..., help="A PNG written by ganscapes (generate, rank, mix, post, video frames), or a VIDEO.mp4 / VIDEO.json."
    ),
    model: Path = typer.Option(..., "--model", help="The model that made it: a file, or a training run's folder."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder to write the rebuilt PNG into.", show_default="do not write"
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the model's hash differs from the recipe's."),
    device: Device = typer.Option(
        Device.CPU, "--device", help="Device; pictures are bit-exact on the one that made them."
    ),
    frame: int | None = typer.Option(
        None,
        "--frame",
        help="For a video (VIDEO.mp4 or .json): the frame to rebuild, from 0.",
        show_default="none",
    ),
) -> None:
    """Rebuild a picture (or one frame of a video) from its recipe and compare it with the file.

    Exit status: 0 identical; 3 differs; 1 cannot rebuild (no recipe, another model without
    --force; one sentence says why); 2 usage error (a missing or bad option).
    """
    from ganscapes.gan.checkpoint import load_model
    from ganscapes.make.reproduce import reproduce_file
    from ganscapes.provenance import write_png

    if image.suffix.lower() in (".mp4", ".json") or frame is not None:
        _reproduce_frame(image, model, out, force, device, frame)
        return
    if out is not None and (out / image.name).resolve() == image.resolve():
        raise UserError(f"--out {out} would overwrite {image} with its rebuild; choose another folder.")
    loaded = load_model(model_file(model), generator_only=True)
    result = reproduce_file(image, loaded, device=device.value, force=force)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        recipe = {k: v for k, v in result.recipe.items() if k != "version"}
        if recipe.get("model_hash") and recipe["model_hash"] != loaded.model_hash:  # --force: say what made it
            recipe = {**recipe, "model_hash": loaded.model_hash, "forced_from_model_hash": recipe["model_hash"]}
        written = write_png(out / image.name, result.pixels, recipe)
        typer.echo(f"rebuilt: {written}")
    if result.identical:
        typer.echo(f"{image}: identical")
        return
    diff = result.max_difference
    if diff is None:
        typer.echo(f"{image}: differs in size ({result.pixels.shape[:2]} rebuilt, {result.original.shape[:2]} on file)")
    else:
        changed = int((result.pixels != result.original).any(axis=-1).sum())
        typer.echo(f"{image}: differs, max pixel difference {diff} ({changed} pixels)")
    raise typer.Exit(DIFFERS)


def _reproduce_frame(video: Path, model: Path, out: Path | None, force: bool, device: Device, frame: int | None):
    """reproduce VIDEO.mp4 --frame N: rebuild frame N and check it against the digest the video recorded."""
    from ganscapes.gan.checkpoint import load_model
    from ganscapes.make.video import reproduce_frame
    from ganscapes.provenance import write_png

    if video.suffix.lower() not in (".mp4", ".json"):
        raise UserError(f"--frame is for videos (VIDEO.mp4 or VIDEO.json), not {video.name}.")
    if frame is None:
        raise UserError(f"Name the frame of {video.name} to rebuild with --frame N (from 0).")
    if not video.is_file():  # before the model loads
        raise UserError(f"{video} does not exist.")
    loaded = load_model(model_file(model), generator_only=True)
    result = reproduce_frame(video, frame, loaded, device=device.value, force=force)
    name = f"{video.stem}_frame{frame:05d}.png"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        typer.echo(f"rebuilt: {write_png(out / name, result.pixels, result.recipe)}")
    if result.expected is None:
        typer.echo(f"{video} frame {frame}: rebuilt (the recipe records no digest to compare with)")
        return
    if result.identical:
        typer.echo(f"{video} frame {frame}: identical")
        return
    typer.echo(f"{video} frame {frame}: differs (digest {result.digest}, the video recorded {result.expected})")
    raise typer.Exit(DIFFERS)


class WalkSpace(str, Enum):
    Z = "z"
    W = "w"


class Easing(str, Enum):
    LINEAR = "linear"
    SMOOTH = "smooth"


def _keyframe_order(ctx: typer.Context, param: typer.CallbackParam, value):
    """Click processes options in the order they were first given: record it, so that
    `--latents A.npz:0 --seeds 5` starts at the file's row."""
    if value:
        ctx.meta.setdefault("ganscapes_keyframes", []).append(param.name)
    return value


@app.command()
def video(
    ctx: typer.Context,
    model: Path = typer.Option(..., "--model", help=MODEL_HELP),
    out: Path = typer.Option(..., "--out", help="The MP4 to write; VIDEO.json (its recipe) goes beside it."),
    seeds: str | None = typer.Option(
        None, "--seeds", help="Keyframe seeds in order, e.g. 1,5,9.", show_default="none", callback=_keyframe_order
    ),
    latents: list[str] = typer.Option(
        [],
        "--latents",
        help="Keyframes from a latents file: FILE.npz:ROWS (repeat for several; in order of the rows).",
        show_default="none",
        callback=_keyframe_order,
    ),
    frames: int = typer.Option(24, "--frames", help="Frames per transition (keyframe to keyframe)."),
    space: WalkSpace = typer.Option(WalkSpace.Z, "--space", help="z: slerp between the zs; w: straight lines in W."),
    easing: Easing = typer.Option(Easing.SMOOTH, "--easing", help="linear, or smooth: slow near each keyframe."),
    loop: bool = typer.Option(False, "--loop/--no-loop", help="Walk back from the last keyframe to the first."),
    layers: str | None = typer.Option(
        None,
        "--layers",
        help="Only these w rows move (fine, auto, coarse, 8-, …); the rest keep the first keyframe's.",
        show_default="all",
    ),
    psi: float = typer.Option(1.0, "--psi", help="Truncation psi of seeds (and of every step in z)."),
    trunc_cutoff: int | None = typer.Option(
        None, "--trunc-cutoff", help="Truncate only the first N layers.", show_default="all layers"
    ),
    class_idx: int | None = typer.Option(
        None, "--class", help="Class index for conditional models.", show_default="none"
    ),
    noise_mode: NoiseMode = typer.Option(
        NoiseMode.CONST, "--noise-mode", help="const keeps the brushwork still; random makes frames boil."
    ),
    fps: float = typer.Option(24, "--fps", help="Frames per second of the MP4 (1 to 120)."),
    crf: int = typer.Option(18, "--crf", help="H.264 quality: 0 best, 18 visually lossless, 51 worst."),
    post: bool = typer.Option(False, "--post", help="Finish every frame: contrast stretch and the dataset's aspect."),
    gif: bool = typer.Option(False, "--gif", help="Also write VIDEO.gif, a small preview."),
    webp: bool = typer.Option(False, "--webp", help="Also write VIDEO.webp, a small preview."),
    keep_frames: bool = typer.Option(
        False, "--keep-frames", help="Also write every frame as a lossless PNG with its recipe in VIDEO_frames/."
    ),
    batch: int = typer.Option(8, "--batch", help="Frames per network call."),
    device: Device = DEVICE,
    edit: list[str] = EDIT,
    directions: Path | None = DIRECTIONS,
) -> None:
    """Latent walk: a film from keyframe to keyframe (seeds, latents rows), as an H.264 MP4 with its recipe."""
    from ganscapes.device import resolve_device
    from ganscapes.gan.checkpoint import load_model
    from ganscapes.make.latents import parse_latent_spec
    from ganscapes.make.mix import layer_range
    from ganscapes.make.seeds import parse_seeds
    from ganscapes.make.video import MAX_KEYFRAMES, latent_walk

    order = ctx.meta.get("ganscapes_keyframes", [])
    seed_list = parse_seeds(seeds) if seeds is not None else []
    if len(seed_list) > MAX_KEYFRAMES:
        raise UserError(f"A walk has at most {MAX_KEYFRAMES} keyframes; --seeds names {len(seed_list)}.")
    for spec in latents:
        path, _ = parse_latent_spec(spec)  # before loading the model: a typo costs no time
        if not path.is_file():
            raise UserError(f"The latents file {path} does not exist.")
    keys: list[int | str] = []
    for name in order or ["seeds", "latents"]:
        keys += seed_list if name == "seeds" else list(latents)
    if not keys:
        raise UserError("Give the keyframes with --seeds 1,5,9 and/or --latents FILE.npz:ROWS.")
    if out.suffix.lower() != ".mp4":  # the library says so too, but only once the model is loaded
        raise UserError(f"--out must be an .mp4 file, not {out.name}.")
    check_edit_options(edit, directions)
    dev = resolve_device(device.value)
    loaded = load_model(model_file(model), device=dev, generator_only=True)
    chosen = layer_range(layers, loaded.G_ema.num_ws) if layers is not None else None
    if chosen is not None and not chosen:
        raise UserError(f"--layers {layers} names no layer, so nothing would move; use fine, auto, all or 8-.")
    result = latent_walk(
        loaded,
        keys,
        out,
        frames=frames,
        space=space.value,
        easing=easing.value,
        loop=loop,
        psi=psi,
        truncation_cutoff=trunc_cutoff,
        class_idx=class_idx,
        noise_mode=noise_mode.value,
        layers=chosen,
        fps=fps,
        post=post,
        gif=gif,
        webp=webp,
        keep_frames=keep_frames,
        crf=crf,
        batch=batch,
        device=dev,
        edits=load_edits(edit, directions, loaded),
    )
    width, height = result.size
    extras = "".join(f"; {p}" for p in result.previews)
    if result.frame_files:
        extras += f"; PNG frames in {result.frame_files[0].parent}"
    typer.echo(
        f"{result.frames} frames of {width}x{height} at {fps:g} fps: {result.video}; recipe {result.recipe}{extras} "
        f"({result.frames / result.seconds:.1f} frames/s)."
    )


@app.command()
def info(
    image: Path = typer.Argument(..., help="A PNG written by ganscapes, or a video (VIDEO.mp4, VIDEO.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the recipe itself, exactly as the PNG carries it."),
) -> None:
    """What a picture was made from (model, seeds, psi, layers, prompt…) and the command that rebuilds it."""
    import json

    from PIL import Image

    from ganscapes.provenance import read_recipe

    video = image.suffix.lower() in (".mp4", ".json")
    if video:
        from ganscapes.make.video import read_video_recipe

        recipe = read_video_recipe(image)
    else:
        recipe = read_recipe(image)
    if as_json:
        typer.echo(json.dumps(recipe, indent=2, ensure_ascii=False))
        return
    from ganscapes.make.summary import MODEL, summarize

    size = None
    if not video:
        with Image.open(image) as picture:
            size = picture.size
    summary = summarize(image, recipe, size)
    print_rows(summary.rows)
    typer.echo("")
    if summary.why_not is not None:
        typer.echo(f"Cannot be rebuilt: {summary.why_not}.")
        return
    print_rows(summary.commands)
    typer.echo(f"({MODEL}: the model file whose hash the recipe names; ganscapes info --json shows the whole recipe.)")


# ---------------------------------------------------------------------------------------
# guide


class Method(str, Enum):
    ADAM = "adam"
    GENETIC = "genetic"


class Space(str, Enum):
    W = "w"
    WPLUS = "wplus"


@app.command()
def guide(
    model: Path = typer.Option(..., "--model", help=MODEL_HELP),
    prompt: list[str] = typer.Option(..., "--prompt", help="What you want to see (repeat for several phrases)."),
    out: Path = typer.Option(..., "--out", help="Folder for best-NN.png, latents.npz, history.csv/.png, strip.png."),
    method: Method = typer.Option(
        Method.ADAM, "--method", help="adam: gradient ascent; genetic: evolution, no gradients."
    ),
    space: Space = typer.Option(Space.W, "--space", help="w: one w for all layers; wplus: one w per layer."),
    steps: int = typer.Option(100, "--steps", help="adam: optimisation steps; genetic: generations."),
    population: int | None = typer.Option(
        None, "--population", help="adam: parallel starts; genetic: population size.", show_default="adam 4, genetic 16"
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the starting latents and of every random choice."),
    init: str = typer.Option(
        "random", "--init", help="Start from random latents or from FILE.npz:ROWS (a latents file)."
    ),
    psi: float = typer.Option(0.7, "--psi", help="Truncation psi of the random starting latents."),
    lr: float = typer.Option(0.05, "--lr", help="adam: peak learning rate."),
    cutouts: int = typer.Option(8, "--cutouts", help="adam: random crops CLIP sees per picture and step."),
    w_penalty: float = typer.Option(0.01, "--w-penalty", help="adam: weight of the pull towards w_avg."),
    keep: int = typer.Option(4, "--keep", help="Best pictures to save."),
    class_idx: int | None = typer.Option(
        None, "--class", help="Class index for conditional models.", show_default="none"
    ),
    compare: bool = typer.Option(
        False, "--compare", help="Run generate-and-rank, adam and genetic at the same budget and compare."
    ),
    negative: list[str] = NEGATIVE,
    template: list[str] = TEMPLATE,
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    clip_weights: Path | None = CLIP_WEIGHTS,
    device: Device = DEVICE,
) -> None:
    """Search latent space for a prompt with CLIP: gradient ascent (adam) or a genetic algorithm."""
    from ganscapes.clip.tensor_scorer import TensorScorer
    from ganscapes.device import resolve_device
    from ganscapes.fileio import write_bytes_atomic
    from ganscapes.gan.checkpoint import load_model
    from ganscapes.make import guide as g

    cfg = g.GuideConfig(
        method=method.value,
        space=space.value,
        steps=steps,
        population=population,
        seed=seed,
        psi=psi,
        lr=lr,
        cutouts=cutouts,
        w_penalty=w_penalty,
        keep=keep,
        class_idx=class_idx,
    )
    the_prompt = make_prompt(prompt, negative, template)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder.")
    if compare:
        try:
            g.compare_budget(cfg)  # the library's rule, before anything is loaded
        except UserError:
            # Its refusal names two settings; in this command's words (SettingError words only one):
            raise UserError(
                "--compare needs a budget of at least 2 generator evaluations (--steps × --population)."
            ) from None
    from_file = init.strip().lower() != "random"
    if from_file:
        from ganscapes.make.latents import parse_latent_spec

        init_path, _ = parse_latent_spec(init)  # before loading anything: a typo costs no time
        if not init_path.is_file():
            raise UserError(f"The latents file {init_path} does not exist.")
    dev = resolve_device(device.value)
    loaded = load_model(model_file(model), device=dev, generator_only=True)
    G = loaded.G_ema.to(dev).eval().requires_grad_(False)
    if class_idx is not None or G.c_dim:
        from ganscapes.make.seeds import class_label

        class_label(G.c_dim, class_idx)  # validates the class before any work
    start_ws = None
    if from_file:
        from ganscapes.make.latents import load_latent_rows

        start_ws = load_latent_rows(init, loaded).w
    encoder = load_clip(clip_model, clip_pretrained, clip_weights, dev)
    scorer = TensorScorer(encoder, the_prompt)

    from tqdm import tqdm

    if compare:
        with tqdm(desc="comparing", unit="step") as bar:
            result = g.compare_methods(G, scorer, cfg, dev, start_ws, progress=lambda row: bar.update(1))
        rows = []
        for name, res in result.results.items():
            g.save_search(res, loaded, scorer, the_prompt, result.configs[name], out / name, dev)
            rows.append((name, res.evaluations, float(res.scores[0]), result.seconds[name]))
        g.plot_history(out / "compare.png", {n: r.history for n, r in result.results.items()})
        table = "method,evaluations,best_score,seconds\n" + "".join(f"{n},{e},{s:.6f},{t:.1f}\n" for n, e, s, t in rows)
        write_bytes_atomic(out / "compare.csv", table.encode())
        typer.echo(f"Best CLIP score for {the_prompt.describe()} at a budget of {result.budget} generator evaluations:")
        for name, evals, score, secs in rows:
            typer.echo(f"  {name:8s} {score:+.4f}  ({evals} evaluations, {secs:.1f} s)")
        typer.echo(f"Pictures in {out}/rank, {out}/adam, {out}/genetic; curves in {out / 'compare.png'}.")
        return

    def report(row: dict) -> None:
        bar.set_postfix(best=f"{row['best']:+.4f}")
        bar.update(1)

    search = g.adam_search if cfg.method == "adam" else g.genetic_search
    with tqdm(total=steps, desc=cfg.method, unit="step") as bar:
        result = search(G, scorer, cfg, dev, start_ws, progress=report)
    paths = g.save_search(result, loaded, scorer, the_prompt, cfg, out, dev)
    first = result.history[0]["best"]
    typer.echo(
        f"{cfg.method}: best CLIP score {float(result.scores[0]):+.4f} (from {first:+.4f} at the start) after "
        f"{result.evaluations} generator evaluations; {len(paths)} picture(s) in {out}, "
        f"history in {out / 'history.csv'}."
    )
