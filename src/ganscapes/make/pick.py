"""generate --prompt: make many paintings, let CLIP pick the best, keep their latents.

The article's recipe: generate about 1,000 images, rank them against a prompt such as
"impressionist painting of autumn woods", keep the top few. All N pictures stay in the
output folder; `ranked/` holds the table and contact sheet, and `ranked/top/` holds the
picks with their scores and a `latents.npz` of just those rows (seeds, z, w, score), in
rank order, ready for mixing or guided search.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganscapes.clip.embed import ImageRef
from ganscapes.clip.rank import RANKED_DIR, Ranking, RankOutputs, rank_images, write_ranking
from ganscapes.make.generate import LATENTS_FILE, GenerateResult, save_npz

ROW_FIELDS = ("seeds", "z", "w")  # per-image arrays in latents.npz; the rest are run settings


def rank_generated(
    result: GenerateResult, encoder, prompt, top: int, cache=None, **embed_options
) -> tuple[Ranking, RankOutputs]:
    """Rank the pictures of a `generate` run; write `ranked/ranking.csv`, `ranked/top.png`, `ranked/top/`."""
    refs = [ImageRef(p) for p in result.images]
    ranking = rank_images(refs, encoder, prompt, cache, desc="ranking", **embed_options)
    outputs = write_ranking(ranking, result.out / RANKED_DIR, top, root=result.out)
    save_top_latents(result.out, ranking, top, outputs.top_dir)
    return ranking, outputs


def save_top_latents(folder: Path, ranking: Ranking, top: int, top_dir: Path) -> Path | None:
    """When `folder` is a generate output, keep the latents of the top picks in `top_dir`.

    Pictures are matched to rows by their `seedNNNN.png` names; returns None (and writes
    nothing) when the folder has no latents file or a pick is not one of its pictures.
    """
    src = Path(folder) / LATENTS_FILE
    if not src.is_file():
        return None
    with np.load(src, allow_pickle=False) as data:
        seeds = [int(s) for s in data["seeds"]] if "seeds" in data.files else []
    row_of = {(Path(folder) / f"seed{s:04d}.png").resolve(): i for i, s in enumerate(seeds)}
    rows = [row_of.get(ref.path.resolve()) if ref.member is None else None for ref in ranking.refs[:top]]
    if any(r is None for r in rows):
        return None
    dest = top_dir / LATENTS_FILE
    save_latent_rows(src, dest, rows, score=ranking.scores[:top])
    return dest


def save_latent_rows(src: Path, dest: Path, rows: list[int], **extra_rows) -> None:
    """Copy the given rows of a latents file (and every run setting) to `dest`."""
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: (data[k][rows] if k in ROW_FIELDS else data[k]) for k in data.files}
    arrays.update({k: np.asarray(v) for k, v in extra_rows.items()})
    save_npz(dest, **arrays)
