"""generate --prompt: make many paintings, let CLIP pick the best, keep their latents.

The article's recipe: generate about 1,000 images, rank them against a prompt such as
"impressionist painting of autumn woods", keep the top few. All N pictures stay in the
output folder; `ranked/` holds the table and contact sheet, and `ranked/top/` holds the
picks with their scores and a `latents.npz` of just those rows (seeds, z, w, score), in
rank order, ready for mixing or guided search.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ganscapes.clip.embed import ImageRef
from ganscapes.clip.rank import RANKED_DIR, Ranking, RankOutputs, rank_images, write_ranking
from ganscapes.make.generate import GenerateResult
from ganscapes.make.latents import LATENTS_FILE, LatentSet, file_seeds


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
    seeds = file_seeds(src) or []
    row_of = {(Path(folder) / f"seed{s:04d}.png").resolve(): i for i, s in enumerate(seeds)}
    rows = [row_of.get(ref.path.resolve()) if ref.member is None else None for ref in ranking.refs[:top]]
    if any(r is None for r in rows):
        return None
    picks = replace(LatentSet.load(src, rows), score=np.asarray(ranking.scores[:top], dtype=np.float64))
    return picks.save(top_dir / LATENTS_FILE)
