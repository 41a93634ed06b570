"""A picture's recipe in a few lines a person reads, and the command line that rebuilds it.

`ganscapes info` prints this; `--json` prints the recipe itself. The summary is read from
the typed recipe (`recipes.parse_recipe`), so it shows what `reproduce` would use, and a
kind this version does not know is named rather than guessed at.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ganscapes.make.recipes import (
    DirectionsSheetRecipe,
    Edit,
    GenerateRecipe,
    GuideRecipe,
    LatentRecipe,
    LatentSource,
    MixGridRecipe,
    MixRecipe,
    OtherRecipe,
    PaintedRecipe,
    PostRecipe,
    Recipe,
    VideoRecipe,
    kind_of,
    parse_recipe,
)
from ganscapes.make.reproduce import REBUILDERS

MODEL = "MODEL"  # the placeholder in command lines: a recipe records the model's hash, not its file
HASH_SHOWN = 12  # characters of a model hash, as reproduce's messages show it


@dataclass
class RecipeSummary:
    rows: list[tuple[str, str]] = field(default_factory=list)  # (what, value), in reading order
    commands: list[tuple[str, str]] = field(default_factory=list)  # (what it does, command line)
    why_not: str | None = None  # why no command rebuilds it, when none does


def summarize(image: Path, raw: dict, size: tuple[int, int] | None = None) -> RecipeSummary:
    """The summary of the recipe `raw` read from `image` (`size`: the picture's width and height)."""
    recipe = parse_recipe(raw)
    out = RecipeSummary()
    shape = f", {size[0]}x{size[1]}" if size else ""
    out.rows.append(("picture", f"{image.name}{shape}"))
    details: list[tuple[str, str]] = []
    out.rows.append(("kind", _describe(recipe, details)[1]))
    out.rows.extend(details)
    if recipe.version:
        out.rows.append(("written by", f"ganscapes {recipe.version}"))
    out.why_not = _why_not(recipe)
    if out.why_not is None:
        frame = ["--frame", "0"] if isinstance(recipe, VideoRecipe) and recipe.frame is None else []
        what = "rebuild frame 0" if frame else "rebuild"
        out.commands.append((what, shlex.join(["ganscapes", "reproduce", str(image), *frame, "--model", MODEL])))
        again = _generate_command(recipe)
        if again:
            out.commands.append(("same picture", again))
    return out


def _describe(recipe: Recipe, rows: list[tuple[str, str]]) -> tuple[str, str]:
    """Append the recipe's rows to `rows`; return its kind and what that kind of picture is."""
    if isinstance(recipe, PostRecipe):
        p = recipe.post
        width = f", width {p.width}" if p.width is not None else ""
        rows.append(("post", f"contrast {p.low:g}–{p.high:g} percentiles, aspect {p.aspect:.3f}{width}"))
        if recipe.source is None:
            name = f" ({recipe.source_file})" if recipe.source_file else ""
            rows.append(("source", f"an image without a recipe{name}"))
            return "post", "post: a finished picture"
        if recipe.source_file:
            rows.append(("source", recipe.source_file))
        source_kind = _describe(recipe.source, rows)[0]
        return "post", f"post: a finished {source_kind} picture"
    _model(recipe, rows)
    if isinstance(recipe, OtherRecipe):
        kind = recipe.kind_name
        return str(kind), f"{kind!r}, which this version of ganscapes does not know" if kind else "none recorded"
    if isinstance(recipe, GenerateRecipe):
        kind = "generate: one seed through the mapping network"
        rows.append(("seed", str(recipe.seed)))
        rows.extend(_mapping(recipe.source()))
    elif isinstance(recipe, GuideRecipe) and recipe.method == "project":
        kind = "project: a latent fitted to a picture"
        rows.append(("latent", _latent(recipe.latent)))
        s = recipe.search
        if s.get("target") is not None:
            digest = str(s.get("target_sha256"))[:12]
            rows.append(("target", f"{s['target']} ({s.get('target_format')}, sha256 {digest}…)"))
        if s.get("psnr_db") is not None:
            rows.append(("reached", f"PSNR {s['psnr_db']} dB, mean error {s.get('mae_levels')} levels"))
    elif isinstance(recipe, GuideRecipe):
        kind = f"guide: found by {_method(recipe.method)}"
        rows.append(("latent", _latent(recipe.latent)))
        if recipe.search:
            rows.append(("search", ", ".join(f"{k} {v}" for k, v in recipe.search.items())))
    elif isinstance(recipe, LatentRecipe):
        kind = "latent: one latent painted (a mix header, a guide pick)"
        rows.append(("latent", _latent(recipe.latent)))
    elif isinstance(recipe, MixRecipe):
        kind = "mix: one cell of a style-mixing grid"
        rows.append(("form", _latent(recipe.form)))
        rows.append(("style", _latent(recipe.style)))
        rows.append(("layers", f"{layer_span(recipe.layers)} from the style"))
    elif isinstance(recipe, MixGridRecipe):
        kind = f"mix-grid: {len(recipe.forms)} forms x {len(recipe.styles)} styles"
        rows.append(("forms", _sources(recipe.forms)))
        rows.append(("styles", _sources(recipe.styles)))
        rows.append(("layers", f"{layer_span(recipe.layers)} from the style"))
    elif isinstance(recipe, VideoRecipe):
        total = recipe.frame_count()
        kind = f"video: frame {recipe.frame} of a latent walk" if recipe.frame is not None else "video: a latent walk"
        rows.append(("keyframes", _sources(recipe.keyframes)))
        how = "slerp in z" if recipe.space == "z" else "straight lines in w"
        loop = ", looping" if recipe.loop else ""
        rows.append(("walk", f"{how}, {recipe.frames} frames per transition, {recipe.easing}{loop}: {total} frames"))
        if recipe.space == "z":
            rows.extend(_mapping(LatentSource(None, recipe.psi, recipe.truncation_cutoff, recipe.class_idx)))
        if recipe.layers is not None:
            rows.append(("layers", f"{layer_span(recipe.layers)} move, the others keep the first keyframe's"))
        rows.append(("fps", f"{recipe.fps:g}"))
        if recipe.post is not None:
            rows.append(("post", f"contrast {recipe.post.low:g}–{recipe.post.high:g}, aspect {recipe.post.aspect:.3f}"))
    elif isinstance(recipe, DirectionsSheetRecipe):
        kind = f"directions-sheet: {recipe.method.upper()} directions, {len(recipe.sigma)} rows per seed"
        rows.append(("seeds", ", ".join(map(str, recipe.seeds)) or "none"))
        rows.append(("layers", f"{layer_span(recipe.layers)} move"))
        rows.append(("steps", ", ".join(f"{a:+g}σ" for a in recipe.steps)))
    else:
        kind = recipe.kind
    if isinstance(recipe, PaintedRecipe):
        for k, edit in enumerate(recipe.edits or ()):
            rows.append(("edit" if k == 0 else "", _edit(edit)))
        if recipe.label:
            rows.append(("label", recipe.label))
        rows.append(("noise", _noise(recipe)))
        if recipe.device:
            rows.append(("device", recipe.device))
        if recipe.aspect is not None:
            rows.append(("aspect", f"{recipe.aspect:.3f} (the training data's, for post)"))
    if recipe.choice is not None:
        c = recipe.choice
        if c.prompt:
            rows.append(("prompt", " + ".join(repr(p) for p in c.prompt)))
        if c.negative:
            rows.append(("negative", " + ".join(repr(p) for p in c.negative)))
        if c.templates:
            rows.append(("templates", " + ".join(repr(t) for t in c.templates)))
        if c.score is not None:
            rank = f", rank {c.rank}" if c.rank is not None else ""
            clip = f" by {c.clip_model}" if c.clip_model else ""
            rows.append(("score", f"{c.score:+.4f}{rank}{clip}"))
    return kind.split(":")[0], kind


def _model(recipe: Recipe, rows: list[tuple[str, str]]) -> None:
    made_by = recipe.made_by()
    rows.append(("model", f"{made_by[:HASH_SHOWN]}… (model hash)" if made_by else "not recorded"))


def _mapping(source: LatentSource) -> list[tuple[str, str]]:
    cutoff = source.truncation_cutoff
    layers = "all layers" if cutoff is None else f"the first {cutoff} layers"
    rows = [("psi", f"{source.psi:g}" + (f" on {layers}" if source.psi != 1 else " (no truncation)"))]
    if source.class_idx is not None:
        rows.append(("class", str(source.class_idx)))
    return rows


def _latent(source: LatentSource) -> str:
    if source.w is None:
        cutoff = "" if source.truncation_cutoff is None else f", first {source.truncation_cutoff} layers"
        label = "" if source.class_idx is None else f", class {source.class_idx}"
        return f"seed {source.seed}, psi {source.psi:g}{cutoff}{label}"
    notes = []
    if source.file is not None:
        notes.append(source.file + (f" row {source.row}" if source.row is not None else ""))
    if source.catalog is not None:
        notes.append(f"catalog {source.catalog}")
    if source.seed is not None:
        notes.append(f"seed {source.seed}")
    return f"exact w {list(source.w.shape)}" + (f" ({', '.join(notes)})" if notes else "")


def _edit(edit: Edit) -> str:
    """`sky (PCA direction 2) +1.5σ = +0.7312 on w rows 0-3, from dirs.npz`."""
    method = f"{edit.method.upper()} " if edit.method else ""
    what = f"{edit.name} ({method}direction {edit.index})" if edit.name else f"{method}direction {edit.index}"
    source = f", from {edit.file}" if edit.file else ""
    step = edit.amount * edit.sigma
    return f"{what} {edit.amount:+g}σ = {step:+.4g} on w rows {layer_span(edit.layers)}{source}"


def _sources(sources: list[LatentSource]) -> str:
    if sources and all(s.w is None for s in sources):
        return "seeds " + ", ".join(str(s.seed) for s in sources)
    return "; ".join(_latent(s) for s in sources) or "none"


def _noise(recipe: PaintedRecipe) -> str:
    if recipe.noise_mode != "random" or recipe.noise is None:
        return recipe.noise_mode
    n = recipe.noise
    return f"random (noise seed {n.seed}, row {n.row} of a {n.batch_rows}-picture call)"


def _method(method: str) -> str:
    return {"adam": "gradient ascent (adam)", "genetic": "a genetic algorithm", "rank": "generate-and-rank"}.get(
        method, method
    )


def layer_span(layers: list[int]) -> str:
    """`4-7`, `0,2,4` or `none`: w rows as mix's --layers writes them."""
    if not layers:
        return "none"
    if layers == list(range(layers[0], layers[-1] + 1)):
        return f"{layers[0]}-{layers[-1]}" if len(layers) > 1 else str(layers[0])
    return ",".join(map(str, layers))


def _why_not(recipe: Recipe) -> str | None:
    """Why `reproduce` cannot rebuild this picture (None: it can), in its words."""
    if not recipe.made_by():
        return "the recipe names no model"
    while isinstance(recipe, PostRecipe):
        if recipe.source is None:
            return "it was post-processed from an image without a recipe"
        recipe = recipe.source
    kind = kind_of(recipe)
    if isinstance(recipe, MixGridRecipe):
        return "it is the whole mix grid, a contact sheet; its cells can be rebuilt one by one"
    if isinstance(recipe, DirectionsSheetRecipe):
        return "it is a preview sheet of directions, a contact sheet; generate --edit makes any of its pictures"
    if kind not in REBUILDERS:
        return f"this version of ganscapes does not rebuild pictures of kind {kind!r}"
    return None


def _generate_command(recipe: Recipe) -> str | None:
    """`ganscapes generate …` for a generate picture whose noise does not depend on its batch."""
    if not isinstance(recipe, GenerateRecipe) or recipe.noise_mode == "random":
        return None
    args = ["ganscapes", "generate", "--model", MODEL, "--seeds", str(recipe.seed), "--psi", f"{recipe.psi!r}"]
    if recipe.truncation_cutoff is not None:
        args += ["--trunc-cutoff", str(recipe.truncation_cutoff)]
    if recipe.class_idx is not None:
        args += ["--class", str(recipe.class_idx)]
    if recipe.noise_mode != "const":
        args += ["--noise-mode", recipe.noise_mode]
    if recipe.device:
        args += ["--device", recipe.device.split(":")[0]]
    if recipe.edits:
        files = {e.file for e in recipe.edits}
        if len(files) != 1 or None in files:
            return None  # edits from several files (or an unnamed one) cannot be given on one command line
        args += ["--directions", files.pop()]
        for e in recipe.edits:
            args += ["--edit", f"{e.name or e.index}={e.amount!r}"]
    return shlex.join([*args, "--out", "OUT"])
