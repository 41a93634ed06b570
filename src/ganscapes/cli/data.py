"""Commands of the data stages: sample, gather, prepare, dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from ganscapes.cli.app import app, dataset_app, gather_app, option_name
from ganscapes.cli.shared import (
    print_rows,
)
from ganscapes.data.aspect import Format
from ganscapes.data.aspect import parse_aspect as aspect_setting
from ganscapes.errors import SettingError, UserError

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
    max_images: int | None = typer.Option(
        None, help="Stop when the folder holds this many images.", show_default="no limit"
    ),
    letters: str = typer.Option("abcdefghijklmnopqrstuvwxyz", help="Initial letters of the artist lists to walk."),
    base_url: str = typer.Option("https://www.wikiart.org", help="Site to crawl."),
    allow_host: list[str] = typer.Option(
        ["uploads*.wikiart.org"],
        help="Image host allowed besides the site itself (glob, HOST:PORT for a port other than 80/443; repeatable).",
    ),
    delay: float = typer.Option(0.2, help="Seconds between requests."),
    timeout: float = typer.Option(30.0, help="Seconds a whole request (headers and body) may take."),
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


def parse_aspect(value: str) -> float | None:
    """The `--aspect` option: `ganscapes.data.aspect.parse_aspect`, its error naming the option."""
    try:
        return aspect_setting(value)
    except SettingError as e:
        raise UserError(e.worded(option_name(e.setting))) from None


@app.command()
def prepare(
    src: Path = typer.Argument(..., help="Folder, zip archive or image file of raw paintings."),
    out: Path = typer.Option(..., "--out", help="Dataset to write: a folder, or a .zip file."),
    res: int = typer.Option(1024, help="Output side in pixels (a power of two, 4 to 2048)."),
    format: Format = typer.Option(Format.CENTER_RECT, "--format", help="How to make pictures square."),
    aspect: str = typer.Option("auto", help="center-rect crop ratio: 'auto' (mean of the sources) or e.g. 1.27."),
    workers: int | None = typer.Option(None, help="Worker processes.", show_default="all cores"),
    min_size: int = typer.Option(0, help="Skip sources whose shorter side is below this many pixels (0: keep all)."),
    max_pixels: int = typer.Option(178_956_970, help="Skip sources with more pixels than this (decompression bombs)."),
    strict: bool = typer.Option(False, help="Fail, and leave the dataset unchanged, if any source is skipped."),
) -> None:
    """Make a square training dataset from raw paintings (resumable, parallel)."""
    from ganscapes.data.prepare import PrepareConfig, prepare_dataset

    config = PrepareConfig(
        res=res,
        format=format,
        aspect=parse_aspect(aspect),
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
    print_rows(rows)


# ---------------------------------------------------------------------------------------
# generate, import-official
