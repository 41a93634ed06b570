"""The CLIP commands: curate and rank."""

from __future__ import annotations

from pathlib import Path

import typer

from ganscapes.cli.app import app
from ganscapes.cli.shared import (
    CLIP_BATCH,
    CLIP_CACHE,
    CLIP_MODEL,
    CLIP_PRETRAINED,
    CLIP_WEIGHTS,
    CLIP_WORKERS,
    DEVICE,
    NEGATIVE,
    TEMPLATE,
    Device,
    clip_tools,
    echo_top,
    make_prompt,
    post_outputs,
)
from ganscapes.errors import UserError


@app.command()
def curate(
    dataset: Path = typer.Argument(..., help="A prepared dataset (folder or .zip)."),
    phrase: list[str] = typer.Option(
        ["impressionist landscape painting"], "--phrase", help="What a good training image is (repeat for several)."
    ),
    refuse: int | None = typer.Option(
        None, "--refuse", help="Refuse this many of the lowest-scored images.", show_default="none"
    ),
    refuse_fraction: float | None = typer.Option(
        None, "--refuse-fraction", help="Refuse this fraction of the images, e.g. 0.06.", show_default="none"
    ),
    min_score: float | None = typer.Option(
        None, "--min-score", help="Refuse every image scoring below this.", show_default="none"
    ),
    negative: list[str] = NEGATIVE,
    template: list[str] = TEMPLATE,
    dry_run: bool = typer.Option(False, "--dry-run", help="Score and write the sheets, but move nothing."),
    undo: bool = typer.Option(
        False, "--undo", help="Put the refused images back; the dataset is as before, byte for byte."
    ),
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    clip_weights: Path | None = CLIP_WEIGHTS,
    cache: Path | None = CLIP_CACHE,
    batch: int = CLIP_BATCH,
    workers: int | None = CLIP_WORKERS,
    device: Device = DEVICE,
) -> None:
    """Score the training images with CLIP and move the worst to a salon des refusés."""
    from ganscapes.clip.curate import (
        RefuseRule,
        curate_dataset,
        curation_dir_for,
        undo_curation,
    )

    if undo:
        n = undo_curation(dataset)
        typer.echo(f"Restored {n} refused image(s) to {dataset}; {curation_dir_for(dataset)} is gone.")
        return
    if sum(v is not None for v in (refuse, refuse_fraction, min_score)) != 1:
        raise UserError("Say how many to refuse with exactly one of --refuse N, --refuse-fraction F or --min-score S.")
    rule = RefuseRule(count=refuse, fraction=refuse_fraction, min_score=min_score)
    prompt = make_prompt(phrase, negative, template)
    encoder, emb_cache = clip_tools(clip_model, clip_pretrained, clip_weights, cache, device.value)
    with emb_cache:
        result = curate_dataset(
            dataset, prompt, rule, encoder, emb_cache, dry_run=dry_run, batch=batch, workers=workers
        )
    n, r = len(result.ranking), len(result.refused)
    for name, reason in result.unreadable:
        typer.echo(f"unreadable, skipped: {name} ({reason})", err=True)
    verb = "would refuse" if result.dry_run else "refused"
    where = "" if result.dry_run or not r else f", moved to {result.curation / 'salon_des_refuses'}"
    typer.echo(
        f"Scored {n} image(s) against {prompt.describe()} "
        f"({result.encoded} encoded, {n - result.encoded} from the cache); "
        f"{verb} {r}{where}. Scores: {result.scores_csv}; sheets: {result.top_sheet.name}, {result.bottom_sheet.name}."
    )
    if result.unreadable:
        typer.echo(f"{len(result.unreadable)} unreadable image(s) were skipped, not refused.")


@app.command()
def rank(
    folder: Path = typer.Argument(..., help="A folder of images, e.g. the output of generate."),
    prompt: list[str] = typer.Option(..., "--prompt", help="What you want to see (repeat for several phrases)."),
    top: int = typer.Option(6, "--top", help="How many of the best to keep in top/."),
    out: Path | None = typer.Option(
        None, "--out", help="Folder for ranking.csv, top.png and top/.", show_default="FOLDER/ranked"
    ),
    recursive: bool = typer.Option(False, "--recursive", help="Also rank images in subfolders."),
    negative: list[str] = NEGATIVE,
    template: list[str] = TEMPLATE,
    clip_model: str = CLIP_MODEL,
    clip_pretrained: str = CLIP_PRETRAINED,
    clip_weights: Path | None = CLIP_WEIGHTS,
    cache: Path | None = CLIP_CACHE,
    batch: int = CLIP_BATCH,
    workers: int | None = CLIP_WORKERS,
    device: Device = DEVICE,
    post: bool = typer.Option(False, "--post", help="Also post-process the top picks into OUT/post/."),
) -> None:
    """Rank any folder of images by CLIP similarity to a prompt; keep the top K."""
    from ganscapes.clip.embed import folder_refs
    from ganscapes.clip.rank import check_top, rank_images, write_ranking

    the_prompt = make_prompt(prompt, negative, template)
    from ganscapes.clip.rank import RANKED_DIR

    out = out if out is not None else folder / RANKED_DIR
    refs = [r for r in folder_refs(folder, recursive=recursive) if out.resolve() not in r.path.resolve().parents]
    if not refs:
        raise UserError(f"There are no images in {folder}.")
    check_top(top, len(refs))
    encoder, emb_cache = clip_tools(clip_model, clip_pretrained, clip_weights, cache, device.value)
    with emb_cache:
        ranking = rank_images(refs, encoder, the_prompt, emb_cache, batch=batch, workers=workers)
    for ref, reason in ranking.unreadable:
        typer.echo(f"unreadable, skipped: {ref.name} ({reason})", err=True)
    outputs = write_ranking(ranking, out, top, root=folder)
    from ganscapes.make.pick import save_top_latents

    latents = save_top_latents(folder, ranking, top, outputs.top_dir)
    echo_top(ranking, top, folder)
    typer.echo(
        f"Ranked {len(ranking)} image(s): {outputs.table}; the top {top} in {outputs.top_dir}"
        f"{' with their latents' if latents else ''} and {outputs.sheet}."
    )
    if post:
        post_outputs(outputs.top, out / "post")
