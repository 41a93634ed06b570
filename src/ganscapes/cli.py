"""The `ganscapes` command line: parse options, call the library, report.

Each command is a thin layer over a library function of the same stage, so everything
here can also be done from Python. Heavy imports (torch, open_clip) happen inside the
commands that need them, keeping `ganscapes --help` and the data commands quick.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ganscapes.data.aspect import Format
from ganscapes.errors import UserError

app = typer.Typer(
    help="New impressionist landscape paintings with StyleGAN2-ADA and CLIP (after GANscapes).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
gather_app = typer.Typer(help="Gather raw paintings: crawl WikiArt or import what you have.", no_args_is_help=True)
dataset_app = typer.Typer(help="Inspect prepared datasets.", no_args_is_help=True)
app.add_typer(gather_app, name="gather")
app.add_typer(dataset_app, name="dataset")


def main() -> None:
    """Console-script entry point: user errors become one line and a non-zero exit."""
    try:
        app()
    except UserError as e:
        typer.echo(f"ganscapes: error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo(_INTERRUPTED, err=True)
        sys.exit(130)
    except SystemExit as e:
        if e.code == 130:  # Typer turns Ctrl-C inside a command into a silent exit 130
            typer.echo(_INTERRUPTED, err=True)
        raise


_INTERRUPTED = "\nganscapes: interrupted; finished work is kept, run the same command again to resume."


# ---------------------------------------------------------------------------------------
# sample


@app.command()
def sample(
    out: Path = typer.Option(..., "--out", help="Folder to write the procedural paintings into."),
    n: int = typer.Option(200, "-n", "--count", help="Number of images."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same images."),
    min_side: int = typer.Option(192, help="Smallest length of the longer side, in pixels."),
    max_side: int = typer.Option(512, help="Largest length of the longer side, in pixels."),
) -> None:
    """Paint procedural landscape "paintings" so the pipeline runs offline."""
    from ganscapes.data.sample import make_samples

    paths = make_samples(out, n=n, seed=seed, min_side=min_side, max_side=max_side)
    typer.echo(f"{len(paths)} sample paintings in {out}")


# ---------------------------------------------------------------------------------------
# gather


@gather_app.command("wikiart")
def gather_wikiart(
    out: Path = typer.Option(..., "--out", help="Folder for the images and manifest.jsonl."),
    movement: str = typer.Option("Impressionism", help="Keep artists whose page mentions this movement."),
    genre: str = typer.Option("landscape", help="Keep paintings of this genre."),
    born_after: int = typer.Option(1800, help="Keep artists born after this year."),
    died_before: int = typer.Option(1950, help="Keep artists who died before this year."),
    public_domain_only: bool = typer.Option(
        True, "--public-domain-only/--any-licence", help="Keep only paintings marked public domain."
    ),
    max_images: Optional[int] = typer.Option(None, help="Stop when the folder holds this many images.", show_default="no limit"),
    letters: str = typer.Option("abcdefghijklmnopqrstuvwxyz", help="Initial letters of the artist lists to walk."),
    base_url: str = typer.Option("https://www.wikiart.org", help="Site to crawl."),
    allow_host: list[str] = typer.Option(
        ["uploads*.wikiart.org"], help="Image host allowed besides the site itself (glob; repeat the option)."
    ),
    delay: float = typer.Option(0.2, help="Seconds between requests."),
    timeout: float = typer.Option(30.0, help="Seconds before a request times out."),
    retries: int = typer.Option(3, help="Retries after 429, 5xx or connection errors."),
    max_bytes: int = typer.Option(50_000_000, help="Largest image accepted, in bytes."),
) -> None:
    """Crawl WikiArt for public-domain impressionist landscapes (resumable)."""
    from ganscapes.data.wikiart import CrawlConfig, crawl_wikiart

    config = CrawlConfig(
        base_url=base_url,
        movement=movement,
        genre=genre,
        born_after=born_after,
        died_before=died_before,
        public_domain_only=public_domain_only,
        max_images=max_images,
        letters=letters,
        delay=delay,
        timeout=timeout,
        retries=retries,
        max_bytes=max_bytes,
        allow_hosts=tuple(allow_host),
    )
    crawl_wikiart(out, config)


@gather_app.command("import")
def gather_import(
    sources: list[Path] = typer.Argument(..., help="Folders (searched recursively), zip archives or image files."),
    out: Path = typer.Option(..., "--out", help="Folder for the images and manifest.jsonl."),
    max_bytes: int = typer.Option(100_000_000, help="Largest image accepted, in bytes."),
) -> None:
    """Import images you already have, skipping duplicates by content."""
    from ganscapes.data.importer import import_images

    import_images(sources, out, max_bytes=max_bytes)


# ---------------------------------------------------------------------------------------
# prepare


def _parse_aspect(value: str) -> float | None:
    if value.strip().lower() == "auto":
        return None
    try:
        return float(value.split(":")[0]) / float(value.split(":")[1]) if ":" in value else float(value)
    except (ValueError, ZeroDivisionError):
        raise UserError(f"--aspect must be 'auto', a number such as 1.27, or a ratio such as 4:3, not {value!r}.")


@app.command()
def prepare(
    src: Path = typer.Argument(..., help="Folder, zip archive or image file of raw paintings."),
    out: Path = typer.Option(..., "--out", help="Dataset to write: a folder, or a .zip file."),
    res: int = typer.Option(1024, help="Output side in pixels (a power of two, 4 to 2048)."),
    format: Format = typer.Option(Format.CENTER_RECT, "--format", help="How to make pictures square."),
    aspect: str = typer.Option("auto", help="center-rect crop ratio: 'auto' (mean of the sources) or e.g. 1.27."),
    workers: Optional[int] = typer.Option(None, help="Worker processes.", show_default="all cores"),
    min_size: int = typer.Option(0, help="Skip sources whose shorter side is below this many pixels (0: keep all)."),
    max_pixels: int = typer.Option(178_956_970, help="Skip sources with more pixels than this (decompression bombs)."),
    strict: bool = typer.Option(False, help="Fail, and leave the dataset unchanged, if any source is skipped."),
) -> None:
    """Make a square training dataset from raw paintings (resumable, parallel)."""
    from ganscapes.data.prepare import PrepareConfig, prepare_dataset

    config = PrepareConfig(
        res=res,
        format=format,
        aspect=_parse_aspect(aspect),
        workers=workers,
        min_size=min_size,
        max_pixels=max_pixels,
        strict=strict,
    )
    result = prepare_dataset(src, out, config)
    state = "already up to date" if result.up_to_date else f"{result.rendered} new, {result.reused} reused"
    typer.echo(
        f"Prepared {result.images} image(s) at {res}x{res} ({state}) in {result.out}; "
        f"{len(result.skipped)} skipped (see {result.report}). Restore aspect: {result.aspect:.3f}"
    )


# ---------------------------------------------------------------------------------------
# dataset


@dataset_app.command("info")
def dataset_info_cmd(dataset: Path = typer.Argument(..., help="A prepared dataset (folder or .zip).")) -> None:
    """Image count, resolution, format, aspect ratio, source and skipped counts."""
    from ganscapes.data.dataset import dataset_info

    info = dataset_info(dataset)

    def show(value, fmt="{}"):
        return "unknown" if value is None else fmt.format(value)

    rows = [
        ("dataset", f"{info.path} ({info.container})"),
        ("images", str(info.images)),
        ("resolution", show(info.resolution, "{0}x{0}")),
        ("format", show(info.format)),
        ("aspect", show(info.aspect, "{:.3f}")),
        ("sources", show(info.source_count)),
        ("skipped", show(info.skipped)),
        ("labels", "yes" if info.labels else "no"),
    ]
    _print_rows(rows)


# ---------------------------------------------------------------------------------------
# generate, import-official


class NoiseMode(str, Enum):
    CONST = "const"
    RANDOM = "random"
    NONE = "none"


class Device(str, Enum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


# ---------------------------------------------------------------------------------------
# CLIP: curate, rank (and generate --prompt)
#
# The same CLIP options on every command that scores images; OptionInfo objects can be
# shared between commands because Typer only reads them.

CLIP_MODEL = typer.Option("ViT-B-32", "--clip-model", help="open_clip architecture.")
CLIP_PRETRAINED = typer.Option(
    "openai", "--clip-pretrained", help="open_clip pretrained tag ('random': random weights, for tests)."
)
CLIP_WEIGHTS = typer.Option(
    None, "--clip-weights", help="Local CLIP weights file (for offline machines).", show_default="$GANSCAPES_CLIP_WEIGHTS"
)
CLIP_CACHE = typer.Option(
    None, "--cache", help="Folder for the embedding cache.", show_default="$GANSCAPES_CACHE or ~/.cache/ganscapes"
)
CLIP_BATCH = typer.Option(32, "--clip-batch", help="Images per CLIP forward pass.")
CLIP_WORKERS = typer.Option(
    None, "--workers", help="Image-decoding processes beside the encoder.", show_default="cores - 1, at most 4"
)
NEGATIVE = typer.Option([], "--negative", help="Phrase to score against (repeat for several).", show_default="none")
TEMPLATE = typer.Option(
    [], "--template", help="Template such as 'a painting of {}', averaged over (repeat).", show_default="phrase as written"
)


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="Prepared dataset (folder or .zip)."),
    outdir: Path = typer.Option(Path("runs"), "--outdir", help="Where numbered run folders go."),
    cfg: str = typer.Option("auto", help="Preset: auto, stylegan2, paper256, paper512, paper1024, cifar, tiny."),
    kimg: Optional[float] = typer.Option(None, help="Train for this many thousand images.", show_default="preset (25000)"),
    batch: Optional[int] = typer.Option(None, help="Total batch size.", show_default="preset"),
    batch_gpu: Optional[int] = typer.Option(None, help="Images per device per round (gradient accumulation).", show_default="batch / devices"),
    gamma: Optional[float] = typer.Option(None, help="R1 regularisation weight.", show_default="preset"),
    aug: str = typer.Option("ada", help="Augmentation: ada (adaptive p), fixed (keep --p), noaug."),
    p: float = typer.Option(0.0, "--p", help="Starting augmentation probability (also in ada mode)."),
    target: float = typer.Option(0.6, help="ADA target for the overfitting heuristic r_t."),
    augpipe: str = typer.Option("bgc", help="Augmentations: blit, geom, color, filter, noise, cutout, bg, bgc, bgcf, bgcfn, bgcfnc."),
    mirror: bool = typer.Option(False, help="Add x-flipped copies of the dataset."),
    cond: bool = typer.Option(False, help="Condition on the dataset's labels."),
    freezed: int = typer.Option(0, help="Freeze-D: keep the first N layers of D fixed."),
    fp32: bool = typer.Option(False, help="No float16 and no clamping (as train.py --fp32)."),
    snap: int = typer.Option(50, help="Snapshot every N ticks."),
    kimg_per_tick: float = typer.Option(4.0, help="Thousands of images per tick (a progress line in log.jsonl)."),
    snap_minutes: Optional[float] = typer.Option(None, help="Also snapshot after this many minutes.", show_default="off"),
    keep: int = typer.Option(5, help="Snapshots to keep (plus the best by SWD)."),
    metrics: str = typer.Option("swd", help="Metrics at snapshots, comma-separated ('' for none)."),
    metric_images: int = typer.Option(512, help="Images per set for the snapshot metrics."),
    seed: int = typer.Option(0, help="Random seed."),
    max_hours: Optional[float] = typer.Option(None, help="Stop with a snapshot before this many hours.", show_default="off"),
    workers: int = typer.Option(3, help="Data-loading worker processes."),
    device: str = typer.Option("auto", help="auto, cuda, mps or cpu."),
    resume: Optional[str] = typer.Option(None, help="'latest' (continue the newest run exactly) or a model file (transfer learning).", show_default="off"),
    dry_run: bool = typer.Option(False, help="Print the resolved configuration and exit."),
) -> None:
    """Train StyleGAN2-ADA on a prepared dataset (resumable; torchrun for several GPUs)."""
    import json

    from ganscapes.gan.train_config import TrainConfig
    from ganscapes.gan.training import train as run_training

    config = TrainConfig(
        data=str(data), outdir=str(outdir), cfg=cfg, kimg=kimg, batch=batch, batch_gpu=batch_gpu, gamma=gamma,
        aug=aug, p=p, target=target, augpipe=augpipe, mirror=mirror, cond=cond, freezed=freezed, fp32=fp32,
        snap=snap, snap_minutes=snap_minutes, kimg_per_tick=kimg_per_tick, keep=keep, metrics=[m for m in metrics.split(",") if m.strip()],
        metric_images=metric_images, seed=seed, max_hours=max_hours, workers=workers, device=device, resume=resume,
    )
    result = run_training(config, dry_run=dry_run)
    if dry_run:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"Run {result.run_dir}: {result.kimg:.1f} kimg, augment p {result.augment_p:.3f}; "
               f"last snapshot {result.snapshot}.")


@app.command()
def generate(
    model: Path = typer.Option(..., "--model", help="Model file: a ganscapes .safetensors or an official NVIDIA .pkl."),
    seeds: str = typer.Option(..., "--seeds", help="Seeds, e.g. 0-999 or 0-99,200,300-310 (ranges inclusive)."),
    out: Path = typer.Option(..., "--out", help="Folder for seedNNNN.png and latents.npz."),
    psi: float = typer.Option(1.0, "--psi", help="Truncation psi: 1 = no truncation, smaller = closer to the average."),
    trunc_cutoff: Optional[int] = typer.Option(
        None, "--trunc-cutoff", help="Truncate only the first N of the num_ws layers.", show_default="all layers"
    ),
    noise_mode: NoiseMode = typer.Option(
        NoiseMode.CONST, "--noise-mode", help="Per-pixel noise: the stored const maps, random, or none."
    ),
    class_idx: Optional[int] = typer.Option(
        None, "--class", help="Class index; required for conditional models, refused for others.", show_default="none"
    ),
    batch: int = typer.Option(8, "--batch", help="Images per network call (rounded up to a multiple of 4)."),
    device: Device = typer.Option(Device.AUTO, "--device", help="auto: CUDA, else MPS, else CPU."),
    compile: bool = typer.Option(
        False, "--compile/--no-compile", help="torch.compile the synthesis network (falls back if it fails)."
    ),
    prompt: list[str] = typer.Option(
        [], "--prompt", help="Rank the pictures by CLIP similarity to this (repeat for several).", show_default="no ranking"
    ),
    top: int = typer.Option(6, "--top", help="With --prompt: how many of the best to keep in OUT/ranked/top/."),
    negative: list[str] = NEGATIVE,
    template: list[str] = TEMPLATE,
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    clip_weights: Optional[Path] = CLIP_WEIGHTS,
    cache: Optional[Path] = CLIP_CACHE,
    clip_batch: int = CLIP_BATCH,
    workers: Optional[int] = CLIP_WORKERS,
    post: bool = typer.Option(
        False, "--post", help="Also post-process the pictures (the top picks with --prompt) into a post/ folder."
    ),
) -> None:
    """Make pictures from a model, one per seed, with their latents (seed, z, w); optionally keep the best for a prompt."""
    from ganscapes.make.generate import generate_images, parse_seeds

    seed_list = parse_seeds(seeds)
    clip = None
    if prompt:  # check everything before spending minutes generating
        from ganscapes.clip.rank import check_top

        the_prompt = _prompt(prompt, negative, template)
        check_top(top, len(seed_list), "seeds")
        clip = _clip_tools(clip_model, clip_pretrained, clip_weights, cache, device.value)
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
            ranking, outputs = rank_generated(result, encoder, the_prompt, top, emb_cache, batch=clip_batch, workers=workers)
        _echo_top(ranking, top, result.out)
        typer.echo(f"Ranked by {the_prompt.describe()}: {outputs.table}; the top {top} with their latents in {outputs.top_dir}.")
    if post:
        picks = outputs.top if clip is not None else result.images
        _post_outputs(picks, (outputs.top_dir.parent if clip is not None else result.out) / "post")


def _clip_tools(model: str, pretrained: str, weights: Optional[Path], cache: Optional[Path], device: str):
    """The encoder and its embedding cache for a command's CLIP options."""
    from ganscapes.clip.cache import EmbeddingCache
    from ganscapes.clip.encoder import ClipSpec, load_clip

    encoder = load_clip(ClipSpec.from_options(model, pretrained, weights), device=device)
    return encoder, EmbeddingCache(cache, encoder.model_id)


def _prompt(phrases: list[str], negatives: list[str], templates: list[str]):
    from ganscapes.clip.prompts import Prompt

    return Prompt(tuple(phrases), tuple(negatives), tuple(templates))


@app.command()
def curate(
    dataset: Path = typer.Argument(..., help="A prepared dataset (folder or .zip)."),
    phrase: list[str] = typer.Option(
        ["impressionist landscape painting"], "--phrase", help="What a good training image is (repeat for several)."
    ),
    refuse: Optional[int] = typer.Option(None, "--refuse", help="Refuse this many of the lowest-scored images.", show_default="none"),
    refuse_fraction: Optional[float] = typer.Option(
        None, "--refuse-fraction", help="Refuse this fraction of the images, e.g. 0.06.", show_default="none"
    ),
    min_score: Optional[float] = typer.Option(
        None, "--min-score", help="Refuse every image scoring below this.", show_default="none"
    ),
    negative: list[str] = NEGATIVE,
    template: list[str] = TEMPLATE,
    dry_run: bool = typer.Option(False, "--dry-run", help="Score and write the sheets, but move nothing."),
    undo: bool = typer.Option(False, "--undo", help="Put the refused images back; the dataset is as before, byte for byte."),
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    clip_weights: Optional[Path] = CLIP_WEIGHTS,
    cache: Optional[Path] = CLIP_CACHE,
    batch: int = CLIP_BATCH,
    workers: Optional[int] = CLIP_WORKERS,
    device: Device = typer.Option(Device.AUTO, "--device", help="auto: CUDA, else MPS, else CPU."),
) -> None:
    """Score the training images with CLIP and move the worst to a salon des refusés."""
    from ganscapes.clip.curate import RefuseRule, curate_dataset, curation_dir_for, undo_curation

    if undo:
        n = undo_curation(dataset)
        typer.echo(f"Restored {n} refused image(s) to {dataset}; {curation_dir_for(dataset)} is gone.")
        return
    rule = RefuseRule(count=refuse, fraction=refuse_fraction, min_score=min_score)
    prompt = _prompt(phrase, negative, template)
    encoder, emb_cache = _clip_tools(clip_model, clip_pretrained, clip_weights, cache, device.value)
    with emb_cache:
        result = curate_dataset(dataset, prompt, rule, encoder, emb_cache, dry_run=dry_run, batch=batch, workers=workers)
    n, r = len(result.ranking), len(result.refused)
    for name, reason in result.unreadable:
        typer.echo(f"unreadable, skipped: {name} ({reason})", err=True)
    verb = "would refuse" if result.dry_run else "refused"
    where = "" if result.dry_run or not r else f", moved to {result.curation / 'salon_des_refuses'}"
    typer.echo(
        f"Scored {n} image(s) against {prompt.describe()} ({result.encoded} encoded, {n - result.encoded} from the cache); "
        f"{verb} {r}{where}. Scores: {result.scores_csv}; sheets: {result.top_sheet.name}, {result.bottom_sheet.name}."
    )
    if result.unreadable:
        typer.echo(f"{len(result.unreadable)} unreadable image(s) were skipped, not refused.")


@app.command()
def rank(
    folder: Path = typer.Argument(..., help="A folder of images, e.g. the output of generate."),
    prompt: list[str] = typer.Option(..., "--prompt", help="What you want to see (repeat for several phrases)."),
    top: int = typer.Option(6, "--top", help="How many of the best to keep in top/."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for ranking.csv, top.png and top/.", show_default="FOLDER/ranked"),
    recursive: bool = typer.Option(False, "--recursive", help="Also rank images in subfolders."),
    negative: list[str] = NEGATIVE,
    template: list[str] = TEMPLATE,
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    clip_weights: Optional[Path] = CLIP_WEIGHTS,
    cache: Optional[Path] = CLIP_CACHE,
    batch: int = CLIP_BATCH,
    workers: Optional[int] = CLIP_WORKERS,
    device: Device = typer.Option(Device.AUTO, "--device", help="auto: CUDA, else MPS, else CPU."),
    post: bool = typer.Option(False, "--post", help="Also post-process the top picks into OUT/post/."),
) -> None:
    """Rank any folder of images by CLIP similarity to a prompt; keep the top K."""
    from ganscapes.clip.embed import folder_refs
    from ganscapes.clip.rank import check_top, rank_images, write_ranking

    the_prompt = _prompt(prompt, negative, template)
    from ganscapes.clip.rank import RANKED_DIR

    out = out if out is not None else folder / RANKED_DIR
    refs = [r for r in folder_refs(folder, recursive=recursive) if out.resolve() not in r.path.resolve().parents]
    if not refs:
        raise UserError(f"There are no images in {folder}.")
    check_top(top, len(refs))
    encoder, emb_cache = _clip_tools(clip_model, clip_pretrained, clip_weights, cache, device.value)
    with emb_cache:
        ranking = rank_images(refs, encoder, the_prompt, emb_cache, batch=batch, workers=workers)
    for ref, reason in ranking.unreadable:
        typer.echo(f"unreadable, skipped: {ref.name} ({reason})", err=True)
    outputs = write_ranking(ranking, out, top, root=folder)
    from ganscapes.make.pick import save_top_latents

    latents = save_top_latents(folder, ranking, top, outputs.top_dir)
    _echo_top(ranking, top, folder)
    typer.echo(
        f"Ranked {len(ranking)} image(s): {outputs.table}; the top {top} in {outputs.top_dir}"
        f"{' with their latents' if latents else ''} and {outputs.sheet}."
    )
    if post:
        _post_outputs(outputs.top, out / "post")


def _echo_top(ranking, top: int, root: Path) -> None:
    from ganscapes.clip.rank import _display_name

    for k in range(top):
        typer.echo(f"{k + 1:4d}  {ranking.scores[k]:+.4f}  {_display_name(ranking.refs[k], root)}")



# ---------------------------------------------------------------------------------------
# mix, post, reproduce, info

POST = typer.Option(
    False, "--post", help="Also post-process the results (0.1/99.9 stretch, dataset aspect) into a post/ folder."
)


def _post_outputs(images: list[Path], out: Path, model_aspect: float | None = None) -> None:
    """`--post` on generate, rank and mix: the default finishing, into `out`."""
    from ganscapes.make.post import PostSettings, post_files

    result = post_files(images, out, PostSettings(), model_aspect=model_aspect)
    aspect, origin = result.aspects[0]
    note = " (no aspect recorded; 1.0)" if origin == "none" else ""
    typer.echo(f"Post-processed {len(result.outputs)} picture(s) into {out} at aspect {aspect:.3f}{note}.")


@app.command()
def mix(
    model: Path = typer.Option(..., "--model", help="Model file: a ganscapes .safetensors or an official NVIDIA .pkl."),
    out: Path = typer.Option(..., "--out", help="Folder for grid.png, forms/, styles/, cells/ and mix.npz."),
    forms: Optional[str] = typer.Option(None, "--forms", help="Seeds of the form pictures (columns), e.g. 1-7.", show_default="none"),
    styles: Optional[str] = typer.Option(None, "--styles", help="Seeds of the style pictures (rows), e.g. 10,11,12.", show_default="none"),
    forms_from: Optional[str] = typer.Option(
        None, "--forms-from", help="Form latents from a latents.npz: FILE.npz:0,1,2 (rows) or FILE.npz.", show_default="none"
    ),
    styles_from: Optional[str] = typer.Option(
        None, "--styles-from", help="Style latents from a latents.npz: FILE.npz:0,1 or FILE.npz.", show_default="none"
    ),
    layers: str = typer.Option(
        "fine", "--layers", help="Layers taken from the style: coarse, middle, fine, all, none, 0-6, 8-, 0,2,4."
    ),
    psi: float = typer.Option(1.0, "--psi", help="Truncation psi for seeds (latents from files are used as stored)."),
    trunc_cutoff: Optional[int] = typer.Option(None, "--trunc-cutoff", help="Truncate only the first N layers.", show_default="all layers"),
    noise_mode: NoiseMode = typer.Option(NoiseMode.CONST, "--noise-mode", help="Per-pixel noise: const, random or none."),
    class_idx: Optional[int] = typer.Option(None, "--class", help="Class index for conditional models.", show_default="none"),
    cell_size: Optional[int] = typer.Option(None, "--cell-size", help="Side of a grid cell in pixels.", show_default="model resolution, at most 256"),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Write F1…, S1… on the grid's headers."),
    batch: int = typer.Option(8, "--batch", help="Pictures per network call."),
    device: Device = typer.Option(Device.AUTO, "--device", help="auto: CUDA, else MPS, else CPU."),
    post: bool = POST,
) -> None:
    """Style mixing: the forms x styles grid, each cell a form's composition with a style's colours."""
    from ganscapes.device import resolve_device
    from ganscapes.gan.checkpoint import load_model
    from ganscapes.make.generate import parse_seeds
    from ganscapes.make.mix import file_latents, layer_range, seed_latents, style_mix

    if (forms is None) == (forms_from is None):
        raise UserError("Give the forms with exactly one of --forms SEEDS or --forms-from FILE.npz:ROWS.")
    if (styles is None) == (styles_from is None):
        raise UserError("Give the styles with exactly one of --styles SEEDS or --styles-from FILE.npz:ROWS.")
    if cell_size is not None and not 16 <= cell_size <= 2048:
        raise UserError(f"--cell-size must be between 16 and 2048 pixels, not {cell_size}.")
    form_seeds = parse_seeds(forms) if forms is not None else None
    style_seeds = parse_seeds(styles) if styles is not None else None
    dev = resolve_device(device.value)
    loaded = load_model(model, device=dev)
    G = loaded.G_ema
    chosen = layer_range(layers, G.num_ws)
    if trunc_cutoff is not None and not 0 <= trunc_cutoff <= G.num_ws:
        raise UserError(f"--trunc-cutoff must be from 0 to {G.num_ws} (the model's num_ws), not {trunc_cutoff}.")

    def latents(seeds, spec):
        if seeds is not None:
            return seed_latents(G, seeds, psi, trunc_cutoff, class_idx, dev)
        return file_latents(spec, loaded)

    result = style_mix(
        loaded, latents(form_seeds, forms_from), latents(style_seeds, styles_from), chosen, out,
        noise_mode=noise_mode.value, device=dev, cell_size=cell_size, labels=labels, batch=batch,
    )
    span = f"{chosen[0]}-{chosen[-1]}" if chosen and chosen == list(range(chosen[0], chosen[-1] + 1)) else ",".join(map(str, chosen)) or "none"
    typer.echo(
        f"{len(result.forms)} forms x {len(result.styles)} styles, style layers {span} of {G.num_ws}: "
        f"{result.grid}; cells in {out / 'cells'}; latents in {result.latents}."
    )
    if post:
        _post_outputs([p for row in result.cells for p in row], out / "post", loaded.meta.get("aspect"))


def _parse_post_aspect(value: str) -> float | None:
    if value.strip().lower() == "auto":
        return None
    aspect = _parse_aspect(value)
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
        "auto", "--aspect", help="Width/height to restore: auto (the training data's, from the recipe or --model), or e.g. 1.27."
    ),
    width: Optional[int] = typer.Option(None, "--width", help="Output width in pixels.", show_default="the picture's width"),
    model: Optional[Path] = typer.Option(
        None, "--model", help="With --aspect auto: take the aspect from this model's metadata.", show_default="none"
    ),
) -> None:
    """Stretch the contrast per channel and restore the paintings' aspect ratio."""
    from ganscapes.make.post import PostSettings, post_files

    settings = PostSettings(low=low, high=high, aspect=_parse_post_aspect(aspect), width=width)
    model_aspect = None
    if model is not None:
        from ganscapes.gan.checkpoint import load_model

        model_aspect = load_model(model).meta.get("aspect")
    result = post_files(images, out, settings, model_aspect=model_aspect)
    if any(origin == "none" for _, origin in result.aspects):
        typer.echo(
            "note: no aspect recorded for some pictures (no recipe and no --model); they keep 1.0. "
            "Pass --aspect 1.27 or --model to restore one.",
            err=True,
        )
    first, origin = result.aspects[0]
    typer.echo(f"{len(result.outputs)} picture(s) in {out}; stretch {low:g}/{high:g} %, aspect {first:.3f} ({origin}).")


@app.command()
def reproduce(
    image: Path = typer.Argument(..., help="A PNG written by ganscapes (generate, rank, mix, post)."),
    model: Path = typer.Option(..., "--model", help="The model that made it."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder to write the rebuilt PNG into.", show_default="do not write"),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the model's hash differs from the recipe's."),
    device: Device = typer.Option(Device.CPU, "--device", help="Device; pictures are bit-exact on the one that made them."),
) -> None:
    """Rebuild a picture from the recipe it carries and compare: exit 0 if identical, 2 if not."""
    from ganscapes.gan.checkpoint import load_model
    from ganscapes.make.reproduce import reproduce_file
    from ganscapes.provenance import write_png

    if out is not None and (out / image.name).resolve() == image.resolve():
        raise UserError(f"--out {out} would overwrite {image} with its rebuild; choose another folder.")
    loaded = load_model(model)
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
    raise typer.Exit(2)


@app.command()
def info(image: Path = typer.Argument(..., help="A PNG written by ganscapes.")) -> None:
    """Print the recipe a picture carries (latent vectors shown by their shape)."""
    import json

    from ganscapes.provenance import read_recipe

    recipe = read_recipe(image)
    typer.echo(json.dumps(_abbreviate(recipe), indent=2, ensure_ascii=False))


def _abbreviate(value):
    if isinstance(value, dict):
        if set(value) >= {"dtype", "shape", "base64"}:
            return f"<{value['dtype']} array {value['shape']}>"
        return {k: _abbreviate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_abbreviate(v) for v in value]
    return value



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
    model: Path = typer.Option(..., "--model", help="Model file: a ganscapes .safetensors or an official NVIDIA .pkl."),
    prompt: list[str] = typer.Option(..., "--prompt", help="What you want to see (repeat for several phrases)."),
    out: Path = typer.Option(..., "--out", help="Folder for best-NN.png, latents.npz, history.csv/.png, strip.png."),
    method: Method = typer.Option(Method.ADAM, "--method", help="adam: gradient ascent; genetic: evolution, no gradients."),
    space: Space = typer.Option(Space.W, "--space", help="w: one w for all layers; wplus: one w per layer."),
    steps: int = typer.Option(100, "--steps", help="adam: optimisation steps; genetic: generations."),
    population: Optional[int] = typer.Option(
        None, "--population", help="adam: parallel starts; genetic: population size.", show_default="adam 4, genetic 16"
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the starting latents and of every random choice."),
    init: str = typer.Option("random", "--init", help="Start from random latents or from FILE.npz:ROWS (a latents file)."),
    psi: float = typer.Option(0.7, "--psi", help="Truncation psi of the random starting latents."),
    lr: float = typer.Option(0.05, "--lr", help="adam: peak learning rate."),
    cutouts: int = typer.Option(8, "--cutouts", help="adam: random crops CLIP sees per picture and step."),
    w_penalty: float = typer.Option(0.01, "--w-penalty", help="adam: weight of the pull towards w_avg."),
    keep: int = typer.Option(4, "--keep", help="Best pictures to save."),
    class_idx: Optional[int] = typer.Option(None, "--class", help="Class index for conditional models.", show_default="none"),
    compare: bool = typer.Option(
        False, "--compare", help="Run generate-and-rank, adam and genetic at the same budget and compare."
    ),
    negative: list[str] = NEGATIVE,
    template: list[str] = TEMPLATE,
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    clip_weights: Optional[Path] = CLIP_WEIGHTS,
    device: Device = typer.Option(Device.AUTO, "--device", help="auto: CUDA, else MPS, else CPU."),
) -> None:
    """Search latent space for a prompt with CLIP: gradient ascent (adam) or a genetic algorithm."""
    from ganscapes.clip.encoder import ClipSpec, load_clip
    from ganscapes.clip.tensor_scorer import TensorScorer
    from ganscapes.device import resolve_device
    from ganscapes.gan.checkpoint import load_model
    from ganscapes.fileio import write_bytes_atomic
    from ganscapes.make import guide as g

    cfg = g.GuideConfig(
        method=method.value, space=space.value, steps=steps, population=population, seed=seed, psi=psi, lr=lr,
        cutouts=cutouts, w_penalty=w_penalty, keep=keep, class_idx=class_idx,
    )
    the_prompt = _prompt(prompt, negative, template)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder.")
    if compare and steps * (population or g.DEFAULT_POPULATION["adam"]) < 2:
        raise UserError("--compare needs a budget of at least 2 generator evaluations (--steps × --population).")
    from_file = init.strip().lower() != "random"
    if from_file:
        from ganscapes.make.latents import parse_latent_spec

        init_path, _ = parse_latent_spec(init)  # before loading anything: a typo costs no time
        if not init_path.is_file():
            raise UserError(f"The latents file {init_path} does not exist.")
    dev = resolve_device(device.value)
    loaded = load_model(model, device=dev)
    G = loaded.G_ema.to(dev).eval().requires_grad_(False)
    if class_idx is not None or G.c_dim:
        from ganscapes.make.generate import class_label

        class_label(G.c_dim, class_idx)  # validates the class before any work
    start_ws = None
    if from_file:
        from ganscapes.make.latents import load_latent_rows

        start_ws = load_latent_rows(init, loaded).ws
    encoder = load_clip(ClipSpec.from_options(clip_model, clip_pretrained, clip_weights), device=dev)
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
        f"{result.evaluations} generator evaluations; {len(paths)} picture(s) in {out}, history in {out / 'history.csv'}."
    )



# ---------------------------------------------------------------------------------------
# demo


@app.command()
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", help="Folder for everything the demo makes."),
    minutes: float = typer.Option(10.0, "--minutes", help="Training budget in minutes, in total across reruns."),
    res: int = typer.Option(64, "--res", help="Training resolution (a power of two, 16 to 1024)."),
    images: int = typer.Option(300, "--images", help="Procedural paintings to sample."),
    prompt: str = typer.Option("impressionist painting of autumn woods", "--prompt", help="What rank looks for."),
    generate: int = typer.Option(64, "--generate", help="Paintings to generate."),
    device: str = typer.Option("auto", "--device", help="auto, cuda, mps or cpu."),
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    clip_weights: Optional[Path] = CLIP_WEIGHTS,
) -> None:
    """Run the whole pipeline on procedural paintings and write report.html (resumable)."""
    from ganscapes.demo.pipeline import DemoConfig, run_demo

    config = DemoConfig(
        out=out, minutes=minutes, res=res, images=images, prompt=prompt, generate=generate, device=device,
        clip_model=clip_model, clip_pretrained=clip_pretrained, clip_weights=clip_weights,
    )
    run_demo(config, log=lambda line: typer.echo(line))



# ---------------------------------------------------------------------------------------
# studio


@app.command()
def studio(
    model: Path = typer.Option(..., "--model", help="Model file: a ganscapes .safetensors or an official NVIDIA .pkl."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every network; warned)."),
    port: int = typer.Option(7860, "--port", help="Port to listen on."),
    out: Path = typer.Option(Path("studio-output"), "--out", help="Folder for the studio's pictures."),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="SQLite catalog of every picture.", show_default="OUT/catalog.sqlite"),
    device: str = typer.Option("auto", "--device", help="auto, cuda, mps or cpu."),
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    clip_weights: Optional[Path] = CLIP_WEIGHTS,
) -> None:
    """A local web studio: paint from prompts and seeds, mix, guide, finish, browse the catalog."""
    import importlib.util
    import socket

    if importlib.util.find_spec("gradio") is None:
        raise UserError("The studio needs Gradio, an optional extra: pip install 'ganscapes[studio]'.")
    if not 1 <= port <= 65535:
        raise UserError(f"--port must be from 1 to 65535, not {port}.")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise UserError(f"Cannot listen on {host}:{port} ({e.strerror or e}); choose another --port or --host.") from None
    from ganscapes.studio.app import launch
    from ganscapes.studio.core import Studio, StudioConfig

    config = StudioConfig(model=model, out=out, catalog=catalog, device=device, clip_model=clip_model,
                          clip_pretrained=clip_pretrained, clip_weights=clip_weights)
    launch(Studio(config), host=host, port=port, log=lambda line: typer.echo(line, err=line.startswith("ganscapes: warning")))



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
    _print_rows(
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

    _print_rows(environment_report())


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        typer.echo(f"{key.ljust(width)}  {value}")



# ---------------------------------------------------------------------------------------
# metrics


@app.command("metrics")
def metrics_cmd(
    model: Path = typer.Option(..., "--model", help="Model file: a ganscapes .safetensors or an official NVIDIA .pkl."),
    data: Path = typer.Option(..., "--data", help="The dataset to compare with (folder or .zip)."),
    metrics: str = typer.Option("swd", "--metrics", help="Comma-separated: swd, fid50k_full, kid50k_full."),
    num: Optional[int] = typer.Option(
        None, "--num", help="Generated images per metric (SWD: also real images).",
        show_default="the protocol: swd 16384 (at most the dataset), fid/kid 50000",
    ),
    batch: int = typer.Option(16, "--batch", help="Images per network call."),
    device: Device = typer.Option(Device.AUTO, "--device", help="auto: CUDA, else MPS, else CPU."),
    inception: Optional[Path] = typer.Option(
        None, "--inception", help="NVIDIA's inception-2015-12-05.pt, for FID and KID (runs its TorchScript).",
        show_default="$GANSCAPES_INCEPTION",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for the fakes, the real subset and the metrics' randomness."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Append the results as one JSON line to this file.", show_default="none"
    ),
) -> None:
    """Measure a model against its data: SWD (no weights needed), FID and KID (Inception file needed)."""
    import datetime
    import json

    from ganscapes.gan.checkpoint import load_model
    from ganscapes.device import resolve_device
    from ganscapes.gan.metrics import parse_metrics, run_metrics

    names = parse_metrics(metrics)
    dev = resolve_device(device.value)
    loaded = load_model(model, device=dev)
    run = run_metrics(loaded, data, names, num_images=num, batch=batch, device=dev, seed=seed,
                      inception=inception, progress=True)
    width = max(len(n) for n in names)
    for name in names:
        counts = run.counts[name]
        sizes = f"{counts['reals']} reals, {counts['fakes']} fakes"
        if name == "swd":
            levels = ", ".join(f"{k.removeprefix('SWDx1e3_')}: {v:.4f}" for k, v in run.results.items()
                               if k.startswith("SWDx1e3_") and k != "SWDx1e3_avg")
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
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
