"""rank: order images by CLIP similarity to a prompt and keep the best.

GANscapes generated 1,000 paintings and kept the handful CLIP placed closest to the
prompt. That both matches the prompt and raises the overall quality, because CLIP
scores the half-formed, "morphed" images of a GAN low. The outputs here are the
ranked table (`ranking.csv`), a contact sheet of the top picks (`top.png`) and the
picks themselves (`top/001-<name>.png`, …) with their score added to their recipe,
all in `ranked/` inside the ranked folder unless told otherwise.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ganscapes.clip.embed import Embedded, ImageRef, embed_images
from ganscapes.clip.prompts import Prompt, prompt_embeddings, scores
from ganscapes.data.contact_sheet import save_contact_sheet
from ganscapes.errors import SettingError, UserError
from ganscapes.fileio import atomic_path
from ganscapes.provenance import RECIPE_KEY, png_info

RANKED_DIR = "ranked"  # default output folder, inside the folder ranked
RANKING_CSV = "ranking.csv"
TOP_SHEET = "top.png"
TOP_DIR = "top"


@dataclass
class Ranking:
    """Images best first, with their scores."""

    refs: list[ImageRef]
    scores: np.ndarray
    digests: list[str]
    prompt: Prompt
    model_id: str
    unreadable: list[tuple[ImageRef, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.refs)


def rank_embedded(embedded: Embedded, encoder, prompt: Prompt) -> Ranking:
    """Sort already-embedded images by their score for `prompt` (ties: input order)."""
    pos, neg = prompt_embeddings(encoder, prompt)
    s = scores(embedded.embeddings, pos, neg)
    order = np.argsort(-s, kind="stable")
    return Ranking(
        refs=[embedded.refs[i] for i in order],
        scores=s[order],
        digests=[embedded.digests[i] for i in order],
        prompt=prompt,
        model_id=encoder.model_id,
        unreadable=embedded.unreadable,
    )


def rank_images(refs: list[ImageRef], encoder, prompt: Prompt, cache=None, **embed_options) -> Ranking:
    """Embed (through the cache) and rank `refs`."""
    if not refs:
        raise UserError("There are no images to rank.")
    return rank_embedded(embed_images(refs, encoder, cache, **embed_options), encoder, prompt)


def check_top(top: int, available: int, what: str = "images") -> None:
    if top < 1:
        raise SettingError("top", f"must be at least 1, not {top}.")
    if top > available:
        raise SettingError("top", f"{top} asks for more than the {available} {what} there are.")


@dataclass
class RankOutputs:
    table: Path
    sheet: Path
    top_dir: Path
    top: list[Path]


def write_ranking(ranking: Ranking, out: Path, top: int, root: Path | None = None) -> RankOutputs:
    """Write `ranking.csv`, `top.png` and the `top/` picks into `out`.

    Paths in the table are relative to `root` when under it. `top/` is rewritten whole,
    so it always holds exactly this ranking's picks.
    """
    check_top(top, len(ranking))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = out / RANKING_CSV
    with atomic_path(table) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "path", "score", "sha256"])
        for k, (ref, s, d) in enumerate(zip(ranking.refs, ranking.scores, ranking.digests), 1):
            w.writerow([k, display_name(ref, root), f"{s:.6f}", d])

    top_dir = out / TOP_DIR
    staging = out / f".{TOP_DIR}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    written = []
    for k in range(top):
        ref = ranking.refs[k]
        name = f"{k + 1:03d}-{Path(ref.name).name}"
        extra = {
            "prompt": list(ranking.prompt.positives),
            "negative": list(ranking.prompt.negatives),
            "templates": list(ranking.prompt.templates),
            "score": round(float(ranking.scores[k]), 6),
            "rank": k + 1,
            "clip_model": ranking.model_id,
        }
        written.append(_copy_with_recipe(ref, staging / name, extra))
    shutil.rmtree(top_dir, ignore_errors=True)
    os.replace(staging, top_dir)
    written = [top_dir / p.name for p in written]

    sheet = save_contact_sheet(
        out / TOP_SHEET,
        [
            (ref.read_bytes, f"#{k + 1} {s:+.4f}")
            for k, (ref, s) in enumerate(zip(ranking.refs[:top], ranking.scores[:top]))
        ],
    )
    return RankOutputs(table=table, sheet=sheet, top_dir=top_dir, top=written)


def display_name(ref: ImageRef, root: Path | None) -> str:
    """How tables and listings name an image: its zip member, or its path relative to `root`."""
    if ref.member is not None:
        return ref.member
    if root is not None:
        try:
            return ref.path.relative_to(root).as_posix()
        except ValueError:
            pass
    return str(ref.path)


def _copy_with_recipe(ref: ImageRef, dest: Path, extra: dict) -> Path:
    """Copy a pick; a PNG keeps its pixels and text chunks and gains the ranking in its recipe."""

    data = ref.read_bytes()
    if not data.startswith(b"\x89PNG"):
        dest = dest.with_suffix(Path(ref.name).suffix.lower() or dest.suffix)
        dest.write_bytes(data)  # not ours to re-encode; the score is in ranking.csv
        return dest
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        chunks = dict(getattr(img, "text", None) or {})
        try:
            recipe = json.loads(chunks.get(RECIPE_KEY, "{}"))
        except json.JSONDecodeError:
            recipe = {}
        recipe = {**(recipe if isinstance(recipe, dict) else {}), **extra}
        recipe.pop("version", None)  # png_info stamps the current one
        img.save(dest, format="PNG", pnginfo=png_info(recipe, keep=chunks))
    return dest
